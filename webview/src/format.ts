// Text for the APDU Log rows. Pure (no DOM) so unit tests can check it.
import type { AutoStep, CardEventKind, EventRow, LogRow } from './protocol';

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

const ZERO = 48;

/**
 * `hh:mm:ss.mmm`, local time. Made in one string (the panel formats one per row entering the view
 * while scrolling: padded pieces joined were eight strings more per row, garbage in the heap the
 * webview shares with the workbench in code-server).
 */
export function clock(time: number): string {
  const d = new Date(time);
  const h = d.getHours();
  const m = d.getMinutes();
  const s = d.getSeconds();
  const ms = d.getMilliseconds();
  if (Number.isNaN(h)) return 'NaN:NaN:NaN.NaN';
  return String.fromCharCode(
    ZERO + ((h / 10) | 0), ZERO + (h % 10), 58, ZERO + ((m / 10) | 0), ZERO + (m % 10), 58, ZERO + ((s / 10) | 0), ZERO + (s % 10), 46,
    ZERO + ((ms / 100) | 0), ZERO + (((ms / 10) | 0) % 10), ZERO + (ms % 10),
  );
}

/** The quarter hour of time whose offset from UTC is cached; its offset in ms (NaN: it changes inside it). */
let offsetQuarter = NaN;
let offsetMs = 0;
const QUARTER = 900_000;
const DAY = 86_400_000;

/**
 * Local time's ms since midnight, without a Date per call: the offset from UTC is read once per
 * quarter hour of time (at its first and last ms); a quarter hour where it changes (a time-zone
 * rule's change) takes a Date for each time.
 */
function localMsOfDay(time: number): number {
  // As a Date takes it: whole ms toward zero, and only within ±8.64e15 ms.
  time = Math.trunc(time);
  if (!(Math.abs(time) <= 8.64e15)) return NaN;
  const q = Math.floor(time / QUARTER);
  if (q !== offsetQuarter) {
    offsetQuarter = q;
    const a = new Date(q * QUARTER).getTimezoneOffset();
    const b = new Date(q * QUARTER + QUARTER - 1).getTimezoneOffset();
    offsetMs = a === b ? -a * 60_000 : NaN;
  }
  let off = offsetMs;
  if (Number.isNaN(off)) off = -new Date(time).getTimezoneOffset() * 60_000;
  const t = (time + off) % DAY;
  return t < 0 ? t + DAY : t;
}

/**
 * Forgets the cached offset: for tests that change the process's time zone (the webview's does not
 * change under it; if the system's did, the next quarter hour of time would read the new one).
 */
export function forgetTimeZone(): void {
  offsetQuarter = NaN;
  secondTexts.clear();
}

const secondTexts = new Map<number, string>();
const milliTexts: string[] = [];

/**
 * `clock(time)` in two parts, `hh:mm:ss` and `.mmm`, each made once per value: the panel writes
 * them to two text nodes, so a row entering the view makes no string and no Date for its time.
 * `clockSecond(t) + clockMillis(t) === clock(t)`.
 */
export function clockSecond(time: number): string {
  const local = localMsOfDay(time);
  if (Number.isNaN(local)) return 'NaN:NaN:NaN';
  const sec = Math.floor(local / 1000);
  let text = secondTexts.get(sec);
  if (text === undefined) {
    if (secondTexts.size >= 4096) secondTexts.clear();
    const h = (sec / 3600) | 0;
    const m = ((sec / 60) | 0) % 60;
    const s = sec % 60;
    text = String.fromCharCode(ZERO + ((h / 10) | 0), ZERO + (h % 10), 58, ZERO + ((m / 10) | 0), ZERO + (m % 10), 58, ZERO + ((s / 10) | 0), ZERO + (s % 10));
    secondTexts.set(sec, text);
  }
  return text;
}

/** The `.mmm` part of `clock(time)` (see `clockSecond`). */
export function clockMillis(time: number): string {
  const local = localMsOfDay(time);
  if (Number.isNaN(local)) return '.NaN';
  const ms = Math.floor(local) % 1000;
  return (milliTexts[ms] ??= String.fromCharCode(46, ZERO + ((ms / 100) | 0), ZERO + (((ms / 10) | 0) % 10), ZERO + (ms % 10)));
}

/**
 * `make` remembered by key: a text that repeats row after row (a duration, a status word, a row's
 * class) is made once. At most `max` are kept; the memo starts again when full.
 */
export function memoized<K>(make: (key: K) => string, max = 4096): (key: K) => string {
  const memo = new Map<K, string>();
  return (key) => {
    let text = memo.get(key);
    if (text === undefined) {
      if (memo.size >= max) memo.clear();
      text = make(key);
      memo.set(key, text);
    }
    return text;
  };
}

export const duration = memoized((ms: number) => (ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`));

/** `spacedHex` of a status word, made once per distinct value (a run repeats a few). */
export const spacedSw = memoized(spacedHex);

export const eventLabels: Record<CardEventKind, { icon: string; text: string }> = {
  readerAdded: { icon: '+', text: 'Reader added' },
  readerRemoved: { icon: '−', text: 'Reader removed' },
  cardInserted: { icon: '▣', text: 'Card inserted' },
  cardRemoved: { icon: '□', text: 'Card removed' },
  cardPowered: { icon: '⚡', text: 'Card powered' },
  cardUnpowered: { icon: '○', text: 'Card unpowered' },
  cardReset: { icon: '↻', text: 'Card reset' },
};

/** An event row's icon and words; the reader manager's power-down of an unused card (R77) says so. */
export function eventLabel(r: EventRow): { icon: string; text: string } {
  const l = eventLabels[r.kind];
  if (r.kind !== 'cardUnpowered' || r.idle !== true) return l;
  const ms = r.idleMs;
  const period = typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ` for ${Number((ms / 1000).toFixed(2))} s` : '';
  return { icon: l.icon, text: `Card powered down (unused${period})` };
}

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
      return `${t} ${r.reader}${r.client ? ` [${r.client}]` : ''}${r.line ? ` line ${r.line}` : ''}${auto}\n> ${spacedHex(r.command)}\n< ${data ? `${spacedHex(data)} ` : ''}${spacedHex(r.sw)} : ${r.swMeaning} (${duration(r.durationMs)})`;
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
      return `${t} ${eventLabel(r).text}: ${r.reader}${atr}${proto}`;
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

// Instruction names for collapsed rows and the filter (ISO 7816-4 interindustry commands and
// the PC/SC reader pseudo-APDUs). The helper's codecs/apdu.ts holds the full table and decodes
// an expanded row; the panel cannot import helper code (house rule 1), so it keeps these few.
const ISO_NAMES: Record<number, string> = {
  0x04: 'DEACTIVATE FILE', 0x0C: 'ERASE RECORD', 0x0E: 'ERASE BINARY', 0x20: 'VERIFY', 0x21: 'VERIFY', 0x22: 'MANAGE SECURITY ENVIRONMENT',
  0x24: 'CHANGE REFERENCE DATA', 0x26: 'DISABLE VERIFICATION REQUIREMENT', 0x28: 'ENABLE VERIFICATION REQUIREMENT',
  0x2A: 'PERFORM SECURITY OPERATION', 0x2C: 'RESET RETRY COUNTER', 0x44: 'ACTIVATE FILE', 0x46: 'GENERATE ASYMMETRIC KEY PAIR',
  0x47: 'GENERATE ASYMMETRIC KEY PAIR', 0x70: 'MANAGE CHANNEL', 0x82: 'EXTERNAL AUTHENTICATE', 0x84: 'GET CHALLENGE',
  0x86: 'GENERAL AUTHENTICATE', 0x87: 'GENERAL AUTHENTICATE', 0x88: 'INTERNAL AUTHENTICATE', 0xA0: 'SEARCH BINARY', 0xA1: 'SEARCH BINARY',
  0xA2: 'SEARCH RECORD', 0xA4: 'SELECT', 0xB0: 'READ BINARY', 0xB1: 'READ BINARY', 0xB2: 'READ RECORD', 0xB3: 'READ RECORD',
  0xC0: 'GET RESPONSE', 0xC2: 'ENVELOPE', 0xC3: 'ENVELOPE', 0xCA: 'GET DATA', 0xCB: 'GET DATA', 0xD0: 'WRITE BINARY', 0xD1: 'WRITE BINARY',
  0xD2: 'WRITE RECORD', 0xD6: 'UPDATE BINARY', 0xD7: 'UPDATE BINARY', 0xDA: 'PUT DATA', 0xDB: 'PUT DATA', 0xDC: 'UPDATE RECORD',
  0xDD: 'UPDATE RECORD', 0xE0: 'CREATE FILE', 0xE2: 'APPEND RECORD', 0xE4: 'DELETE FILE', 0xE6: 'TERMINATE DF', 0xE8: 'TERMINATE EF',
};
const READER_NAMES: Record<number, string> = { 0xCA: 'GET DATA (reader)', 0x82: 'LOAD KEYS', 0x86: 'GENERAL AUTHENTICATE (reader)', 0xB0: 'READ BINARY', 0xD6: 'UPDATE BINARY' };

/** The command's name from its CLA and INS (`SELECT`, `READ BINARY`…), or '' for proprietary or unknown ones. */
export function commandName(command: string): string {
  const h = command.replace(/\s+/g, '');
  if (h.length < 4 || !/^[0-9a-fA-F]{4}/.test(h)) return '';
  const cla = parseInt(h.slice(0, 2), 16);
  const ins = parseInt(h.slice(2, 4), 16);
  if (cla === 0xFF) return READER_NAMES[ins] ?? '';
  if (cla & 0x80) return '';
  return ISO_NAMES[ins] ?? '';
}

/** Response data shown as text on a collapsed row: when at least 4 bytes and nearly all are printable. */
export function printableText(dataHex: string, max = 64): string {
  const h = dataHex.replace(/\s+/g, '');
  const n = h.length >> 1;
  if (n < 4 || !/^[0-9a-fA-F]*$/.test(h)) return '';
  let s = '';
  let printable = 0;
  for (let i = 0; i < n; i++) {
    const b = parseInt(h.slice(2 * i, 2 * i + 2), 16);
    const ok = b >= 0x20 && b < 0x7F;
    if (ok) printable++;
    if (s.length < max) s += ok ? String.fromCharCode(b) : b === 0x0A || b === 0x0D || b === 0x09 ? ' ' : '.';
  }
  if (printable + (n >= 8 ? 1 : 0) < n * 0.9) return '';
  return n > max ? `${s}…` : s;
}
