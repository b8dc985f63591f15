// What the Readers tree shows for each reader and card. Pure (no vscode import).
import type { CardInfo, ReaderInfo } from '../../server/src/protocol';

/** `contextValue` of a reader row; package.json's menus match on these words. */
export function readerContextValue(r: ReaderInfo): string {
  const parts = ['reader'];
  if (r.driver === 'simulator') parts.push('simulator');
  if (r.unavailable) parts.push('unavailable');
  else parts.push(r.card ? 'present' : 'empty');
  return parts.join('-');
}

export const protocolName = (p: 0 | 1 | undefined): string | undefined => (p === undefined ? undefined : `T=${p}`);

export function spacedHex(hex: string): string {
  return (hex.replace(/\s+/g, '').toUpperCase().match(/.{1,2}/g) ?? []).join(' ');
}

export interface ItemText {
  label: string;
  description?: string;
  tooltip: string;
}

export function readerText(r: ReaderInfo, selected: boolean): ItemText {
  const state = r.unavailable ? 'unavailable' : r.card ? 'card present' : 'no card';
  const description = [r.driver, selected ? 'selected' : undefined].filter(Boolean).join(' · ');
  const lines = [r.name, `driver: ${r.driver}`, `slot: ${r.slot}`, state, `events: ${r.eventCount}`];
  if (r.connections) lines.push(`${r.connections} connection(s)${r.exclusive ? ', exclusive' : ''}${r.inTransaction ? ', in a transaction' : ''}`);
  if (r.unavailable) lines.push(r.unavailable);
  for (const [k, v] of Object.entries(r.details ?? {})) lines.push(`${k}: ${v}`);
  if (r.features?.length) lines.push('PC/SC features:', ...r.features.map((f) => `  ${f}`));
  return { label: r.name, description, tooltip: lines.join('\n') };
}

/** The child rows under a reader: why it cannot be used, or its card, or "no card". */
export function cardText(r: ReaderInfo): ItemText {
  if (r.unavailable) return { label: r.unavailable, tooltip: r.unavailable };
  const card: CardInfo | null = r.card;
  if (!card) return { label: 'no card', tooltip: 'No card in this reader' };
  if (card.mute) return { label: 'mute card', description: 'no answer to reset', tooltip: 'A card is present but did not answer to reset' };
  if (!card.atr) return { label: 'card present', description: card.powered ? 'powered' : 'not powered', tooltip: 'Card present, not powered yet' };
  const proto = protocolName(card.protocol);
  // The card's name from smartcard_list.txt (its first description line), when known.
  const name = card.identified?.[0];
  const description = [name, proto, card.powered ? 'powered' : 'not powered'].filter(Boolean).join(' · ');
  const identified = card.identified?.length ? `\nIdentified (smartcard_list.txt):\n  ${card.identified.join('\n  ')}` : '';
  return { label: `ATR ${spacedHex(card.atr)}`, description, tooltip: `ATR ${spacedHex(card.atr)}\n${proto ?? 'no protocol yet'}\n${card.powered ? 'powered' : 'not powered'}${identified}` };
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
