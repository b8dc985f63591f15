// Text for the APDU Log rows. Pure (no DOM) so unit tests can check it.
import type { AutoStep, CardEventKind, LogRow } from './protocol';

export function spacedHex(hex: string): string {
  return (hex.replace(/\s+/g, '').toUpperCase().match(/.{1,2}/g) ?? []).join(' ');
}

/** Response data without its last two bytes (the status word). */
export function responseData(response: string): string {
  const h = response.replace(/\s+/g, '');
  return h.length >= 4 ? h.slice(0, -4) : '';
}

/** The last path segment of a script's URI or path, for display. */
export function fileName(uriOrPath: string): string {
  const clean = uriOrPath.split(/[?#]/)[0];
  const last = clean.split(/[\\/]/).filter(Boolean).pop() ?? clean;
  try { return decodeURIComponent(last); } catch { return last; }
}

export function clock(time: number): string {
  const d = new Date(time);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function duration(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export const eventLabels: Record<CardEventKind, { icon: string; text: string }> = {
  readerAdded: { icon: '+', text: 'Reader added' },
  readerRemoved: { icon: '−', text: 'Reader removed' },
  cardInserted: { icon: '▣', text: 'Card inserted' },
  cardRemoved: { icon: '□', text: 'Card removed' },
  cardPowered: { icon: '⚡', text: 'Card powered' },
  cardUnpowered: { icon: '○', text: 'Card unpowered' },
  cardReset: { icon: '↻', text: 'Card reset' },
};

export const autoLabels: Record<AutoStep, string> = {
  getResponse: 'GET RESPONSE (automatic, 61xx)',
  resendWithLe: 'resent with Le (automatic, 6Cxx)',
  retryCounter: 'PIN retry counter check (automatic)',
};

/** One row as plain text, like a scriptor / GlobalPlatformPro trace; used for "Copy". */
export function rowText(r: LogRow): string {
  const t = clock(r.time);
  switch (r.kind) {
    case 'exchange': {
      const data = responseData(r.response);
      const auto = r.auto ? ` [${autoLabels[r.auto]}]` : '';
      return `${t} ${r.reader}${r.line ? ` line ${r.line}` : ''}${auto}\n> ${spacedHex(r.command)}\n< ${data ? `${spacedHex(data)} ` : ''}${spacedHex(r.sw)} : ${r.swMeaning} (${duration(r.durationMs)})`;
    }
    case 'control':
      return `${t} ${r.reader} control ${r.code}\n> ${spacedHex(r.command)}\n< ${r.error ? `error: ${r.error}` : spacedHex(r.response ?? '')}`;
    case 'scriptStarted':
      return `${t} script started${r.file ? `: ${r.file}` : ''}`;
    case 'scriptEnded':
      return `${t} script ${r.ok ? 'passed' : 'failed'}${r.message ? `: ${r.message}` : ''}${r.line ? ` (line ${r.line})` : ''}`;
    case 'echo':
      return `${t} echo: ${r.message ?? ''}`;
    case 'manager':
      return `${t} reader manager ${r.state}: ${r.message}`;
    default: {
      const atr = r.atr ? ` ATR ${spacedHex(r.atr)}` : '';
      const proto = r.protocol !== undefined ? ` T=${r.protocol}` : '';
      return `${t} ${eventLabels[r.kind].text}: ${r.reader}${atr}${proto}`;
    }
  }
}

/** The text trace of an export: a header line, then one `rowText` block per row. */
export function traceText(rows: readonly LogRow[], when = new Date()): string {
  const head = `# APDU Log exported ${when.toISOString()}: ${rows.length} row${rows.length === 1 ? '' : 's'}`;
  return `${[head, ...rows.map(rowText)].join('\n')}\n`;
}

/** JSON Lines: one row object per line, for tools. */
export function jsonLines(rows: readonly LogRow[]): string {
  let s = '';
  for (const r of rows) s += `${JSON.stringify(r)}\n`;
  return s;
}

/** Spaced hex cut to `max` bytes with an ellipsis, for a collapsed row (the full text is in its tooltip and expansion). */
export function shortHex(hex: string, max = 48): { text: string; cut: boolean } {
  const clean = hex.replace(/\s+/g, '');
  if (clean.length <= max * 2) return { text: spacedHex(clean), cut: false };
  return { text: `${spacedHex(clean.slice(0, max * 2))} …`, cut: true };
}
