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
  return n < 10 ? `${n.toFixed(2)} ms` : `${Math.round(n)} ms`;
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
    case 'cardUnpowered': return [`# card powered off: ${e.reader}`];
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
 */
const FLUSH_MS = 20;

export class BufferedOutput {
  private pending = '';
  private scheduled = false;
  private readonly flushSoon = (): void => { this.scheduled = false; this.flush(); };

  constructor(private readonly write: (text: string) => void, private readonly limit = 65_536) {}

  line(text: string): void {
    this.pending += text + '\n';
    if (this.pending.length >= this.limit) this.flush();
    else if (!this.scheduled) { this.scheduled = true; setTimeout(this.flushSoon, FLUSH_MS); }
  }

  flush(): void {
    if (!this.pending) return;
    const text = this.pending;
    this.pending = '';
    this.write(text);
  }
}

/** Prints log entries as the CLI does: trace lines, or JSON Lines with `json`. */
export function entryPrinter(out: BufferedOutput, json: boolean): (e: LogEntry) => void {
  if (json) return (e) => out.line(toJsonLine(e));
  return (e) => {
    if (e.kind === 'readerAdded' || e.kind === 'cardInserted') return;
    const lines = formatEntry(e);
    for (let i = 0; i < lines.length; i++) out.line(lines[i]);
  };
}
