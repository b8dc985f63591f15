// The APDU Log's filter as one pure predicate, shared by the panel (what it shows) and
// the extension (what an export from the panel writes), so both agree. No DOM, no vscode.
import { commandName, rowText } from './format';
import type { CardEventKind, LogFilter, LogRow } from './protocol';

export const showAll: LogFilter = { text: '', reader: '', client: '', success: true, warning: true, error: true, events: true };

/**
 * The client filter's choice for the workbench's own rows (those without a client). No client's
 * name can be it: names are extension ids and process names, which hold no NUL.
 */
export const WORKBENCH_CLIENT = '\u0000workbench';

/** Rows a program makes (an exchange, a control call, a script's rows); events and manager rows are nobody's. */
const CLIENT_KINDS: ReadonlySet<string> = new Set(['exchange', 'control', 'scriptStarted', 'scriptEnded', 'echo']);

const EVENT_KINDS: ReadonlySet<string> = new Set<CardEventKind>(['readerAdded', 'readerRemoved', 'cardInserted', 'cardRemoved', 'cardPowered', 'cardUnpowered', 'cardReset']);

export const isEventRow = (r: LogRow): boolean => EVENT_KINDS.has(r.kind);

/** The text the filter searches: the row's trace text, lower case, then again without white space, then the command's name. */
export function searchText(r: LogRow): string {
  const name = r.kind === 'exchange' ? commandName(r.command) : '';
  const t = (name ? `${name}\u0000${rowText(r)}` : rowText(r)).toLowerCase();
  return `${t}\u0000${t.replace(/\s+/g, '')}`;
}

/** The filter's text as searched: lower case; hex typed with or without spaces matches either way. */
export function needleOf(f: LogFilter): string {
  return f.text.trim().toLowerCase();
}

/** Reader, client, status-word class and events: everything but the text. */
export function rowPasses(r: LogRow, f: LogFilter): boolean {
  if (f.reader && r.reader !== undefined && r.reader !== f.reader) return false;
  if (f.client && CLIENT_KINDS.has(r.kind) && (f.client === WORKBENCH_CLIENT ? r.client !== undefined : r.client !== f.client)) return false;
  if (r.kind === 'exchange' && !f[r.swCategory]) return false;
  if (r.kind === 'control' && !(r.error ? f.error : f.success)) return false;
  if (!f.events && isEventRow(r)) return false;
  return true;
}

export function textMatches(search: string, needle: string): boolean {
  return !needle || search.includes(needle) || search.includes(needle.replace(/\s+/g, ''));
}

export function rowMatches(r: LogRow, f: LogFilter, search?: string): boolean {
  if (!rowPasses(r, f)) return false;
  const needle = needleOf(f);
  return !needle || textMatches(search ?? searchText(r), needle);
}

export function isFilterActive(f: LogFilter): boolean {
  return !!(needleOf(f) || f.reader || f.client || !f.success || !f.warning || !f.error || !f.events);
}

/**
 * The rows a filter keeps, in order. An automatic step goes with its exchange:
 * a step is kept when its exchange is, and an exchange when one of its steps matches
 * (as the panel shows an exchange with all its steps).
 */
export function filterRows(rows: readonly LogRow[], f: LogFilter): LogRow[] {
  if (!isFilterActive(f)) return [...rows];
  const match = rows.map((r) => rowMatches(r, f));
  const keepParent = new Set<string>();
  rows.forEach((r, i) => { if (match[i] && r.kind === 'exchange' && r.parent) keepParent.add(r.parent); });
  const kept = new Set<string>();
  rows.forEach((r, i) => { if (match[i] || keepParent.has(r.id)) kept.add(r.id); });
  return rows.filter((r) => kept.has(r.id) || (r.kind === 'exchange' && r.parent !== undefined && kept.has(r.parent)));
}
