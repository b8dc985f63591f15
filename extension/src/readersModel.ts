// What the Readers tree shows: driver groups, readers, their card and details,
// the state of each reader and its icon, and the words package.json's menus
// match on. Pure (no vscode import), so it is tested without an editor.
import type { CardInfo, DriverStatus, ProtocolNumber, ReaderInfo, ShareMode } from '../../server/src/protocol';

// ------------------------------------------------------------ state and icon

/** A reader's state, most telling first: what its icon and description show. */
export type ReaderState = 'unavailable' | 'empty' | 'mute' | 'exclusive' | 'inUse' | 'powered' | 'present';

export function readerState(r: ReaderInfo): ReaderState {
  if (r.unavailable) return 'unavailable';
  if (!r.card) return 'empty';
  if (r.card.mute) return 'mute';
  if (r.exclusive) return 'exclusive';
  if (r.connections > 0 || r.inTransaction) return 'inUse';
  return r.card.powered ? 'powered' : 'present';
}

export interface StateLook {
  /** A codicon id for ThemeIcon. */
  icon: string;
  /** A theme color id for ThemeColor, where colour helps tell states apart. */
  color?: string;
  /** Short words for the description. */
  words: string;
}

export const STATE_LOOK: Readonly<Record<ReaderState, StateLook>> = {
  unavailable: { icon: 'warning', color: 'problemsWarningIcon.foreground', words: 'unavailable' },
  empty: { icon: 'circle-large-outline', words: 'empty' },
  mute: { icon: 'mute', color: 'problemsErrorIcon.foreground', words: 'mute card' },
  exclusive: { icon: 'lock', color: 'charts.orange', words: 'exclusive' },
  inUse: { icon: 'plug', color: 'charts.blue', words: 'in use' },
  powered: { icon: 'zap', color: 'charts.green', words: 'powered' },
  present: { icon: 'credit-card', words: 'unpowered' },
};

/**
 * `contextValue` of reader and card rows: space-separated words that the
 * `when` clauses of package.json's menus match with `viewItem =~ /\bword\b/`.
 * kind (reader|card), simulator, the card (unavailable|empty|present), powered,
 * atr, mute, editor (the editor holds a connection) or free, eject.
 */
export function itemContextValue(kind: 'reader' | 'card', r: ReaderInfo): string {
  const words: string[] = [kind];
  if (r.driver === 'simulator') words.push('simulator');
  if (r.unavailable) words.push('unavailable');
  else if (!r.card) words.push('empty');
  else {
    words.push('present');
    if (r.card.powered) words.push('powered');
    if (r.card.atr) words.push('atr');
    if (r.card.mute) words.push('mute');
  }
  words.push(r.editor ? 'editor' : 'free');
  if (r.canEject) words.push('eject');
  return words.join(' ');
}

/** Kept for callers that only need the reader row's value. */
export const readerContextValue = (r: ReaderInfo): string => itemContextValue('reader', r);

// ------------------------------------------------------------ text

export const protocolName = (p: 0 | 1 | undefined): string | undefined => (p === undefined ? undefined : `T=${p}`);

export function spacedHex(hex: string): string {
  return (hex.replace(/\s+/g, '').toUpperCase().match(/.{1,2}/g) ?? []).join(' ');
}

export interface ItemText {
  label: string;
  description?: string;
  tooltip: string;
}

/** The editor's connection in words: "editor: exclusive, T=1". */
export function editorText(r: ReaderInfo): string | undefined {
  if (!r.editor) return undefined;
  return `editor: ${r.editor.share}${r.editor.protocol !== undefined ? `, T=${r.editor.protocol}` : ''}`;
}

export function connectionsText(r: ReaderInfo): string {
  if (!r.connections) return 'no connection';
  return `${r.connections} connection${r.connections === 1 ? '' : 's'}${r.exclusive ? ', exclusive' : ''}${r.inTransaction ? ', in a transaction' : ''}`;
}

export function readerText(r: ReaderInfo, selected: boolean): ItemText {
  const state = readerState(r);
  const description = [STATE_LOOK[state].words, editorText(r), selected ? 'selected' : undefined].filter(Boolean).join(' · ');
  const lines = [r.name, `state: ${STATE_LOOK[state].words}`, `driver: ${r.driver}`, `slot: ${r.slot}`, `events: ${r.eventCount}`, connectionsText(r)];
  const ed = editorText(r);
  if (ed) lines.push(`${ed} (Disconnect to release it)`);
  if (r.unavailable) lines.push(r.unavailable);
  if (selected) lines.push('Scripts run on this reader (selected).');
  return { label: r.name, description, tooltip: lines.join('\n') };
}

/** The card row under a reader: why it cannot be used, or its card, or "no card". */
export function cardText(r: ReaderInfo): ItemText {
  if (r.unavailable) return { label: r.unavailable, tooltip: r.unavailable };
  const card: CardInfo | null = r.card;
  if (!card) return { label: 'no card', tooltip: 'No card in this reader' };
  if (card.mute) return { label: 'mute card', description: 'no answer to reset', tooltip: 'A card is present but did not answer to reset. Reset it, or remove and reinsert it.' };
  if (!card.atr) return { label: 'card present', description: card.powered ? 'powered' : 'not powered', tooltip: 'Card present, not powered (Reset powers it up).' };
  const proto = protocolName(card.protocol);
  // The card's name from smartcard_list.txt (its first description line), when known.
  const name = card.identified?.[0];
  const description = [name, proto, card.powered ? 'powered' : 'not powered'].filter(Boolean).join(' · ');
  const identified = card.identified?.length ? `\nIdentified (smartcard_list.txt):\n  ${card.identified.join('\n  ')}` : '';
  return { label: `ATR ${spacedHex(card.atr)}`, description, tooltip: `ATR ${spacedHex(card.atr)}\n${proto ?? 'no protocol yet'}\n${card.powered ? 'powered' : 'not powered'}${identified}` };
}

/** The rows under a reader's "Details": label and value. */
export function detailRows(r: ReaderInfo): Array<{ label: string; value: string }> {
  const rows = [
    { label: 'driver', value: r.driver },
    { label: 'slot', value: String(r.slot) },
    { label: 'events', value: String(r.eventCount) },
    { label: 'connections', value: connectionsText(r) },
  ];
  for (const [k, v] of Object.entries(r.details ?? {})) rows.push({ label: k, value: v });
  for (const f of r.features ?? []) {
    const [name, code] = f.split(' ');
    rows.push({ label: 'PC/SC feature', value: code ? `${name} (${code})` : name });
  }
  return rows;
}

// ------------------------------------------------------------ driver groups

const DRIVER_TITLES: Record<string, string> = { simulator: 'Simulator', vpcd: 'vpcd', pcsc: 'PC/SC', 'usb-ccid': 'USB CCID' };
export const driverTitle = (id: string): string => DRIVER_TITLES[id] ?? id;

export interface DriverGroup {
  id: string;
  title: string;
  status?: DriverStatus;
  readers: ReaderInfo[];
}

/**
 * One group per enabled driver, in the helper's order, with its readers; a
 * driver that failed keeps its group, which says why. Readers of a driver the
 * helper did not list (none expected) get a group of their own.
 */
export function driverGroups(drivers: readonly DriverStatus[], readers: readonly ReaderInfo[]): DriverGroup[] {
  const groups = new Map<string, DriverGroup>();
  for (const d of drivers) {
    if (d.state === 'disabled') continue;
    groups.set(d.id, { id: d.id, title: driverTitle(d.id), status: d, readers: [] });
  }
  for (const r of readers) {
    let g = groups.get(r.driver);
    if (!g) { g = { id: r.driver, title: driverTitle(r.driver), readers: [] }; groups.set(r.driver, g); }
    g.readers.push(r);
  }
  return [...groups.values()];
}

/** A driver's state in a few words, for the start-up message and the log ("pcsc waiting for the PC/SC service"). */
export function driverStateWords(d: DriverStatus): string {
  switch (d.state) {
    case 'waiting': return d.id === 'pcsc' ? 'waiting for the PC/SC service' : 'waiting';
    case 'unavailable': return 'unavailable';
    default: return d.state;
  }
}

export function groupText(g: DriverGroup): ItemText & { failed: boolean; warning: boolean } {
  const s = g.status;
  if (s && (s.state === 'waiting' || s.state === 'unavailable')) {
    const short = s.state === 'waiting' ? (g.id === 'pcsc' ? 'waiting for pcscd' : 'waiting') : (g.id === 'usb-ccid' ? 'USB not available' : 'unavailable');
    const head = s.state === 'waiting'
      ? `The ${g.title} driver is waiting: ${s.message ?? 'no reason given'}.`
      : `The ${g.title} driver is idle: ${s.message ?? 'no reason given'}.`;
    return {
      label: g.title, failed: false, warning: true,
      description: g.readers.length ? `${short} · ${plural(g.readers.length, 'reader')}` : short,
      tooltip: [head, s.hint, s.state === 'waiting' ? 'Its readers appear here as soon as it is back; nothing to restart.' : undefined].filter(Boolean).join('\n'),
    };
  }
  if (s?.state === 'failed') {
    const setting = g.id === 'usb-ccid' ? 'usbCcid' : g.id;
    return {
      label: g.title, failed: true, warning: false,
      description: `failed: ${s.message ?? 'no reason given'}`,
      tooltip: `The ${g.id} driver could not start: ${s.message ?? 'no reason given'}\nThe other drivers carry on. Check the smartcard.${setting}.* settings, then "Smart Card: Restart Reader Manager".`,
    };
  }
  const n = g.readers.length;
  // Readers that exist but cannot be used (a device the system's driver claimed): the group says so and how out.
  const unusable = g.readers.filter((r) => r.unavailable);
  if (unusable.length) {
    return {
      label: g.title, failed: false, warning: true,
      description: `${plural(n, 'reader')}, ${unusable.length} unavailable`,
      tooltip: [`${g.title} driver (${g.id}): ${plural(n, 'reader')}, ${unusable.length} cannot be used:`, ...unusable.map((r) => `• ${r.name}: ${r.unavailable}`)].join('\n'),
    };
  }
  return { label: g.title, failed: false, warning: false, description: n ? plural(n, 'reader') : 'no reader', tooltip: `${g.title} driver (${g.id}): ${n ? plural(n, 'reader') : 'no reader connected'}` };
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

// ------------------------------------------------------------ commands

export interface ConnectMode { label: string; share: ShareMode; protocol?: ProtocolNumber; description?: string }

/**
 * Connect's choices: share mode × protocol, only the protocols the card's ATR offers
 * (all of them while the ATR is not known yet: the helper refuses the others before touching the card).
 */
export function connectModes(card: CardInfo | null | undefined): ConnectMode[] {
  const offered = card?.protocols?.length ? card.protocols : ([0, 1] as ProtocolNumber[]);
  const modes: ConnectMode[] = [];
  for (const share of ['shared', 'exclusive'] as const) {
    const Share = share === 'shared' ? 'Shared' : 'Exclusive';
    modes.push({ label: `${Share}, any protocol`, share, ...(card?.protocols?.length ? { description: `the card offers ${card.protocols.map((p) => `T=${p}`).join(' and ')}` } : {}) });
    for (const p of offered) modes.push({ label: `${Share}, T=${p}`, share, protocol: p });
  }
  return modes;
}

/** The reader a script runs on when the user has not picked one. */
export function defaultReader(readers: readonly ReaderInfo[], selected: string | undefined): string | undefined {
  if (selected && readers.some((r) => r.name === selected)) return selected;
  const withCard = readers.filter((r) => r.card && !r.unavailable);
  if (withCard.length === 1) return withCard[0].name;
  const usable = readers.filter((r) => !r.unavailable);
  if (usable.length === 1) return usable[0].name;
  return undefined;
}

/**
 * A control code typed by the user: decimal (`3400`), hex (`0x42000D48`) or a
 * PC/SC part 10 feature the reader announced (`VERIFY_PIN_DIRECT`).
 */
export function parseControlCode(text: string, features: readonly string[] = []): { code: number } | { error: string } {
  const t = text.trim();
  if (!t) return { error: 'Enter a control code: decimal (3400), hex (0x42000D48) or a PC/SC feature name.' };
  let code: number | undefined;
  if (/^0x[0-9a-f]{1,8}$/i.test(t)) code = parseInt(t.slice(2), 16);
  else if (/^\d{1,10}$/.test(t)) code = Number(t);
  else if (/^[A-Z_][A-Z0-9_]*$/i.test(t)) {
    const hit = features.map((f) => f.split(' ')).find(([name]) => name.toUpperCase() === t.toUpperCase());
    if (!hit?.[1]) {
      const known = features.map((f) => f.split(' ')[0]);
      return { error: `The reader announced no PC/SC feature '${t}'${known.length ? ` (it has: ${known.join(', ')})` : ' (it announced none)'}.` };
    }
    code = parseInt(hit[1].replace(/^0x/i, ''), 16);
  }
  if (code === undefined || !Number.isFinite(code)) return { error: `'${t}' is not a control code: use decimal (3400), hex (0x42000D48) or a PC/SC feature name.` };
  if (code > 0xffffffff) return { error: `The control code ${t} does not fit in 32 bits.` };
  return { code };
}

/** Hex data typed by the user (spaces allowed); an error says what is wrong. */
export function parseHexInput(text: string): { hex: string } | { error: string } {
  const t = text.replace(/[\s:]+/g, '');
  if (!/^[0-9a-f]*$/i.test(t)) {
    const bad = /[^0-9a-f]/i.exec(t)![0];
    return { error: `'${bad}' is not a hex digit.` };
  }
  if (t.length % 2) return { error: `Odd number of hex digits (${t.length}): each byte takes two.` };
  if (t.length > 2 * 65_536) return { error: 'At most 65,536 bytes.' };
  return { hex: t.toUpperCase() };
}

// ------------------------------------------------------------ Decode ATR

/** An ATR typed into Decode ATR: hex (spaces allowed), 2 to 33 bytes, TS 3B or 3F. Empty is allowed (the card's ATR). */
export function parseAtrInput(text: string): { hex: string } | { error: string } {
  const h = parseHexInput(text);
  if ('error' in h) return h;
  if (!h.hex) return h;
  const n = h.hex.length / 2;
  if (n < 2) return { error: 'An ATR has at least TS and T0 (2 bytes).' };
  if (n > 33) return { error: `An ATR has at most 33 bytes; this is ${n}.` };
  const ts = h.hex.slice(0, 2);
  if (ts !== '3B' && ts !== '3F') return { error: `An ATR starts with TS = 3B (direct) or 3F (inverse convention), not ${ts}.` };
  return h;
}

/** The card whose ATR an empty Decode ATR box decodes: the selected reader's, else the only card with an ATR. */
export function defaultAtrReader(readers: readonly ReaderInfo[], selected: string | undefined): ReaderInfo | undefined {
  const sel = readers.find((r) => r.name === selected && r.card?.atr);
  if (sel) return sel;
  const withAtr = readers.filter((r) => r.card?.atr);
  return withAtr.length === 1 ? withAtr[0] : undefined;
}
