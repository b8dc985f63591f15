// Who uses a reader (issue 15): the rows under a reader in the Readers view, one per
// connection the helper lists (ReaderInfo.clients): a PC/SC program ("python3 (pid 4711)"),
// an extension's id, a script, the editor's Connect. Pure (no vscode import).
import type { ReaderClient, ReaderInfo } from '../../server/src/protocol';

export interface ClientRow {
  label: string;
  description: string;
  /** The whole row in words, for screen readers (and the e2e test). */
  accessible: string;
  tooltip: string;
  /** A codicon id. */
  icon: string;
}

const SHARE_MEANING: Record<ReaderClient['share'], string> = {
  shared: 'shared: other connections may use the reader too',
  exclusive: 'exclusive: no other connection may use the reader',
  direct: 'direct: the reader itself (control commands; APDUs only with RAW or the card’s protocol), no share of the card',
};

const ICON: Record<ReaderClient['share'], string> = { shared: 'plug', exclusive: 'lock', direct: 'debug-disconnect' };

export function clientRows(r: ReaderInfo): ClientRow[] {
  const rows = (r.clients ?? []).map((c): ClientRow => {
    const description = [c.share, c.transaction ? 'in a transaction' : undefined].filter(Boolean).join(' · ');
    return {
      label: c.client,
      description,
      accessible: `${c.client} · ${description}`,
      tooltip: [c.client, SHARE_MEANING[c.share], c.transaction ? 'holds the reader\'s transaction: the others wait until it ends' : undefined].filter(Boolean).join('\n'),
      icon: ICON[c.share],
    };
  });
  if (r.moreClients) {
    const label = `and ${r.moreClients} more`;
    rows.push({ label, description: '', accessible: `${label} connection${r.moreClients === 1 ? '' : 's'}`, tooltip: `${r.moreClients} more connection(s) on this reader are not listed (the helper lists ${rows.length})`, icon: 'ellipsis' });
  }
  return rows;
}
