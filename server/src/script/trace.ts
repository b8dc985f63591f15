// Readable trace of a run: `>`/`<` lines like scriptor and GlobalPlatformPro,
// with the status word's meaning and the time taken. JSON Lines is one entry a line.

import type { ExchangeEntry, LogEntry } from '../protocol';

/** Room for spaced() of an extended APDU (65,548 bytes); grown when a longer text comes. */
let spacedScratch = Buffer.allocUnsafe(1024);

/**
 * "00A40400" as "00 A4 04 00". Runs twice for every traced APDU: the characters go into a
 * scratch buffer and come out as one flat string, not one small string and one join per byte.
 */
export function spaced(hex: string): string {
  const n = hex.length;
  if (n <= 2) return hex;
  const size = n + ((n + 1) >> 1) - 1;
  if (spacedScratch.length < size) spacedScratch = Buffer.allocUnsafe(size * 2);
  const out = spacedScratch;
  let j = 0;
  let wide = 0;
  for (let i = 0; i < n; i += 2) {
    if (i !== 0) out[j++] = 0x20;
    const a = hex.charCodeAt(i);
    out[j++] = a;
    wide |= a;
    if (i + 1 < n) {
      const b = hex.charCodeAt(i + 1);
      out[j++] = b;
      wide |= b;
    }
  }
  return wide < 0x80 ? out.toString('latin1', 0, j) : spacedText(hex);
}

/** The same for a text that is not ASCII (never hex; kept exact all the same). */
function spacedText(hex: string): string {
  let s = hex.slice(0, 2);
  for (let i = 2; i < hex.length; i += 2) s += ' ' + hex.slice(i, i + 2);
  return s;
}

function ms(n: number): string {
  return `${msNumber(n)} ms`;
}

/** The texts of durations under 10 ms in whole µs (what the log keeps), made once each: toFixed runs per APDU otherwise. */
const SHORT_MS: string[] = [];

function msNumber(n: number): string {
  if (!(n < 10)) return String(Math.round(n));
  const us = Math.round(n * 1000);
  if (us >= 0 && us / 1000 === n) return SHORT_MS[us] ??= n.toFixed(2);
  return n.toFixed(2);
}

const AUTO_TAGS: Record<NonNullable<ExchangeEntry['auto']>, string> = {
  getResponse: 'GET RESPONSE',
  resendWithLe: 'resent with the Le from 6Cxx',
  retryCounter: 'PIN retry counter read before VERIFY',
};

/** Who sent it, as the APDU Log's export names it: a PC/SC program ("python3 (pid 4711)") or an extension's id. */
function sender(client: string | undefined): string {
  return client ? `  [${client}]` : '';
}

export function formatEntry(e: LogEntry): string[] {
  switch (e.kind) {
    case 'exchange': {
      const indent = e.auto && e.auto !== 'retryCounter' ? '    ' : '';
      const tag = e.auto ? `  (${AUTO_TAGS[e.auto]}, automatic)` : '';
      const where = !e.auto && e.line ? `  (line ${e.line})` : '';
      return [
        `${indent}> ${spaced(e.command)}${tag}${where}${sender(e.client)}`,
        `${indent}< ${spaced(e.response)} : ${e.swMeaning} [${ms(e.durationMs)}]`,
      ];
    }
    case 'control':
      return [`> CONTROL ${e.code} ${spaced(e.command)}${sender(e.client)}`, e.error ? `< error: ${e.error}` : `< ${spaced(e.response ?? '')} [${ms(e.durationMs)}]`];
    case 'readerAdded': return [`# reader added: ${e.reader}`];
    case 'readerRemoved': return [`# reader removed: ${e.reader}`];
    case 'cardInserted': return [`# card inserted: ${e.reader}`];
    case 'cardRemoved': return [`# card removed: ${e.reader}`];
    case 'cardPowered': return [`# card powered: ATR ${spaced(e.atr ?? '')}, T=${e.protocol}${e.identified?.length ? ` (${e.identified[0]})` : ''}`];
    case 'cardReset': return [`> RESET`, `< OK: ${spaced(e.atr ?? '')} (T=${e.protocol})`];
    case 'cardUnpowered': return [e.idle ? `# card powered down (unused${e.idleMs ? ` for ${Number((e.idleMs / 1000).toFixed(2))} s` : ''}): ${e.reader}` : `# card powered off: ${e.reader}`];
    case 'echo': return [e.message ?? ''];
    case 'scriptStarted': return [];
    case 'scriptEnded': return [e.ok ? `# passed: ${e.message}` : `# FAILED: ${e.message}`];
  }
}

export function toJsonLine(e: LogEntry): string {
  return JSON.stringify(e);
}

/**
 * Output gathered and written in large pieces: one write per 64 KiB or 20 ms,
 * not two per APDU (each write to a file or pipe is a system call; with a card
 * answering over a socket every APDU is its own turn of the event loop, so
 * "once per turn" would still be one write per APDU). `flush()` before anything
 * else reaches the terminal (stderr, a prompt) and at the end.
 *
 * The text is gathered as UTF-8 bytes: an exchange's two lines are written straight
 * into the buffer (`exchange`), no strings of their own, and nothing is encoded again
 * at the write. Each write gets a buffer of its own (the next text goes into a new one).
 */
const FLUSH_MS = 20;

export class BufferedOutput {
  private buf: Buffer | null = null;
  private at = 0;
  private scheduled = false;
  private readonly flushSoon = (): void => { this.scheduled = false; this.flush(); };

  constructor(private readonly write: (bytes: Buffer) => void, private readonly limit = 65_536) {}

  line(text: string): void {
    const b = this.room(text.length * 3 + 1);
    let at = this.at;
    at += b.write(text, at);
    b[at++] = 0x0a;
    this.at = at;
    this.written();
  }

  /** An exchange's two trace lines (formatEntry's), written into the buffer as they are made. */
  exchange(e: ExchangeEntry): void {
    const indent = e.auto && e.auto !== 'retryCounter';
    const tag = e.auto ? AUTO_TAGS[e.auto] : '';
    const line = !e.auto && e.line ? String(e.line) : '';
    const client = e.client ?? '';
    const meaning = e.swMeaning ?? '';
    const b = this.room(64 + tag.length * 3 + line.length + client.length * 3 + meaning.length * 3 + (e.command.length + e.response.length) * 6);
    let at = this.at;
    if (indent) at = ascii(b, at, '    ');
    b[at++] = 0x3e; // '>'
    b[at++] = 0x20;
    at = spacedInto(b, at, e.command);
    if (tag) { at = ascii(b, at, '  ('); at = text(b, at, tag); at = ascii(b, at, ', automatic)'); }
    if (line) { at = ascii(b, at, '  (line '); at = ascii(b, at, line); b[at++] = 0x29; }
    if (client) { at = ascii(b, at, '  ['); at = text(b, at, client); b[at++] = 0x5d; }
    b[at++] = 0x0a;
    if (indent) at = ascii(b, at, '    ');
    b[at++] = 0x3c; // '<'
    b[at++] = 0x20;
    at = spacedInto(b, at, e.response);
    at = ascii(b, at, ' : ');
    at = text(b, at, meaning);
    at = ascii(b, at, ' [');
    at = ascii(b, at, msNumber(e.durationMs));
    at = ascii(b, at, ' ms]\n');
    this.at = at;
    this.written();
  }

  flush(): void {
    const b = this.buf;
    if (b === null || this.at === 0) return;
    const n = this.at;
    this.buf = null;
    this.at = 0;
    this.write(b.subarray(0, n));
  }

  /** A buffer with `bytes` free after the text held (written out first when it would not fit). */
  private room(bytes: number): Buffer {
    let b = this.buf;
    if (b !== null && this.at + bytes <= b.length) return b;
    this.flush();
    b = Buffer.allocUnsafe(Math.max(this.limit + 1024, bytes));
    this.buf = b;
    return b;
  }

  private written(): void {
    if (this.at >= this.limit) this.flush();
    else if (!this.scheduled) { this.scheduled = true; setTimeout(this.flushSoon, FLUSH_MS); }
  }
}

/** An ASCII text (the printer's own words and numbers) into `b` at `at`; returns the end. */
function ascii(b: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
  return at;
}

/** Any text as UTF-8: byte by byte while it is ASCII, else encoded by Node. */
function text(b: Buffer, at: number, s: string): number {
  const start = at;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return start + b.write(s, start);
    b[at++] = c;
  }
  return at;
}

/** spaced(hex) into `b` at `at` (as UTF-8 for a text that is not ASCII, which hex never is). */
function spacedInto(b: Buffer, at: number, hex: string): number {
  const n = hex.length;
  if (n <= 2) return text(b, at, hex);
  const start = at;
  for (let i = 0; i < n; i += 2) {
    if (i !== 0) b[at++] = 0x20;
    const c = hex.charCodeAt(i);
    b[at++] = c;
    let wide = c;
    if (i + 1 < n) {
      const d = hex.charCodeAt(i + 1);
      b[at++] = d;
      wide |= d;
    }
    if (wide >= 0x80) return text(b, start, spacedText(hex));
  }
  return at;
}

/** Prints log entries as the CLI does: trace lines, or JSON Lines with `json`. */
export function entryPrinter(out: BufferedOutput, json: boolean): (e: LogEntry) => void {
  if (json) return (e) => out.line(toJsonLine(e));
  return (e) => {
    if (e.kind === 'exchange') { out.exchange(e); return; }
    if (e.kind === 'readerAdded' || e.kind === 'cardInserted') return;
    const lines = formatEntry(e);
    for (let i = 0; i < lines.length; i++) out.line(lines[i]);
  };
}
