// The APDU Log's rows in column form on the wire: how the extension sends its rows (the history a
// panel gets after `ready`, and the live rows, 1,000 per message) so that neither the workbench's renderer (which
// parses the message) nor the webview (which gets it cloned) makes an object per row. A batch is a
// handful of values: the number-like fields of every row packed into one typed array (carried as
// binary and transferred, never a string), one table of the strings that repeat, a list of the long hex strings, and
// the fields few rows have (an event's ATR, a control code, an automatic step's parent…) as a
// sparse list. ./columns copies a batch in row by row without making the rows.
// Pure (no DOM, no node): imported by the extension and the webview. Both ends are little-endian
// (every platform VS Code runs on); the typed arrays are read in the platform's order.
import type { LogRow, PackedRows } from './protocol';

export type { PackedRows } from './protocol';

export const KINDS = [
  'exchange', 'control', 'readerAdded', 'readerRemoved', 'cardInserted', 'cardRemoved', 'cardPowered', 'cardUnpowered', 'cardReset',
  'scriptStarted', 'scriptEnded', 'echo', 'manager',
] as const;
export const KIND_CODE = new Map<string, number>(KINDS.map((k, i) => [k, i]));
/** A kind not in KINDS: the row keeps its `kind` with its other rare fields. */
export const OTHER_KIND = 255;
export const SW_CATEGORIES = ['success', 'warning', 'error'] as const;
export const AUTO_STEPS = ['getResponse', 'resendWithLe', 'retryCounter'] as const;
export const indexIn = (list: readonly string[], v: unknown): number => (typeof v === 'string' ? list.indexOf(v) : -1);
/** Commands and responses up to this many hex digits go in the string table (they repeat through a run). */
export const SHARED_HEX_MAX = 24;

export type Rare = Record<string, unknown>;

/** `gen:seq` with both plain decimal numbers (the helper's rows); anything else is kept as a string. */
export function parseId(id: string): [number, number] | undefined {
  const c = id.indexOf(':');
  if (c <= 0) return undefined;
  const gen = Number(id.slice(0, c));
  const seq = Number(id.slice(c + 1));
  if (!Number.isInteger(gen) || gen < 0 || gen > 0xFFFF_FFFF || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  return `${gen}:${seq}` === id ? [gen, seq] : undefined;
}

/**
 * Per row: seq, time, durationMs (f64; NaN: absent, or an id not `gen:seq`), gen (u32), line + 1,
 * reader, client, sw, swMeaning, uri, command, response (i32; a string's index in `strings`, -1:
 * absent; command and response -2 - k: `long[k]`), kind code, flags (u8; flags as in ./columns).
 */
const F64 = 3;
const I32 = 9;
const U8 = 2;
const BYTES_PER_ROW = F64 * 8 + I32 * 4 + U8;

class Layout {
  readonly seq: Float64Array; readonly time: Float64Array; readonly dur: Float64Array;
  readonly gen: Uint32Array; readonly line: Int32Array;
  readonly reader: Int32Array; readonly client: Int32Array; readonly sw: Int32Array; readonly swMeaning: Int32Array; readonly uri: Int32Array;
  readonly command: Int32Array; readonly response: Int32Array;
  readonly kindCode: Uint8Array; readonly flags: Uint8Array;
  constructor(readonly bytes: Uint8Array, n: number) {
    const b = bytes.buffer;
    let o = bytes.byteOffset;
    const f64 = () => { const a = new Float64Array(b, o, n); o += n * 8; return a; };
    const i32 = () => { const a = new Int32Array(b, o, n); o += n * 4; return a; };
    const u8 = () => { const a = new Uint8Array(b, o, n); o += n; return a; };
    this.seq = f64(); this.time = f64(); this.dur = f64();
    this.gen = new Uint32Array(b, o, n); o += n * 4;
    this.line = i32(); this.reader = i32(); this.client = i32(); this.sw = i32(); this.swMeaning = i32(); this.uri = i32();
    this.command = i32(); this.response = i32();
    this.kindCode = u8(); this.flags = u8();
  }
}

/** The string columns a row may have, in the order a row object is made again. */
export const STRING_FIELDS = ['reader', 'client', 'sw', 'swMeaning', 'uri'] as const;

/** The columns a row's fields are written into: a packed batch's and ./columns' alike. */
export interface RowColumns {
  gen: Uint32Array; seq: Float64Array; time: Float64Array; dur: Float64Array;
  kindCode: Uint8Array; flags: Uint8Array; line: Int32Array;
  reader: Int32Array; client: Int32Array; sw: Int32Array; swMeaning: Int32Array; uri: Int32Array;
}

/**
 * Writes the fields of row object `r` into row `i` of `c` (already at its defaults: no id, no time,
 * kind OTHER_KIND, flags and line 0, strings -1). A string field takes the index `str` gives (-1:
 * no room, the field stays with the row), command and response go to `hex`. Returns the fields no
 * column took — unknown ones, or of an unexpected type — which travel with the row as they are.
 */
export function writeRow(
  r: LogRow, i: number, c: RowColumns, str: (v: string) => number, hex: (field: 'command' | 'response', v: string) => void,
): Rare | undefined {
  let extra: Rare | undefined;
  const fields = r as unknown as Record<string, unknown>;
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined) continue;
    let kept = false;
    switch (k) {
      case 'id': {
        const p = typeof v === 'string' ? parseId(v) : undefined;
        if (p) { c.gen[i] = p[0]; c.seq[i] = p[1]; kept = true; }
        break;
      }
      case 'time': if (typeof v === 'number' && !Number.isNaN(v)) { c.time[i] = v; kept = true; } break;
      case 'durationMs': if (typeof v === 'number' && !Number.isNaN(v)) { c.dur[i] = v; kept = true; } break;
      case 'kind': {
        const code = typeof v === 'string' ? KIND_CODE.get(v) : undefined;
        if (code !== undefined) { c.kindCode[i] = code; kept = true; }
        break;
      }
      case 'line': if (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 0x7FFF_FFFF) { c.line[i] = (v as number) + 1; kept = true; } break;
      case 'reader': case 'client': case 'sw': case 'swMeaning': case 'uri':
        if (typeof v === 'string') {
          const s = str(v);
          if (s >= 0) { c[k][i] = s; kept = true; }
        }
        break;
      case 'command': case 'response':
        if (typeof v === 'string') { hex(k, v); kept = true; }
        break;
      case 'swCategory': {
        const s = indexIn(SW_CATEGORIES, v);
        if (s >= 0) { c.flags[i] |= s + 1; kept = true; }
        break;
      }
      case 'auto': {
        const a = indexIn(AUTO_STEPS, v);
        if (a >= 0) { c.flags[i] |= (a + 1) << 2; kept = true; }
        break;
      }
    }
    if (!kept) (extra ??= {})[k] = v;
  }
  return extra;
}

/**
 * Packs rows `from` … `to` − 1 (default: all) for the wire (the extension's side), without a copy
 * of the list. Fields of an unexpected type travel as they are.
 */
export function packRows(all: readonly LogRow[], from = 0, to = all.length): PackedRows {
  from = Math.max(0, from);
  const n = Math.max(0, Math.min(to, all.length) - from);
  const bytes = new Uint8Array(n * BYTES_PER_ROW);
  const c = new Layout(bytes, n);
  const strings: string[] = [];
  const index = new Map<string, number>();
  const long: string[] = [];
  const rare: unknown[] = [];
  const put = (v: string): number => {
    let s = index.get(v);
    if (s === undefined) { s = strings.length; strings.push(v); index.set(v, s); }
    return s;
  };
  const hex = (v: string): number => (v.length <= SHARED_HEX_MAX ? put(v) : (long.push(v), -1 - long.length));
  let row = 0;
  const hexOf = (field: 'command' | 'response', v: string): void => { c[field][row] = hex(v); };
  for (let i = 0; i < n; i++) {
    c.seq[i] = NaN; c.time[i] = NaN; c.dur[i] = NaN; c.kindCode[i] = OTHER_KIND;
    c.reader[i] = -1; c.client[i] = -1; c.sw[i] = -1; c.swMeaning[i] = -1; c.uri[i] = -1; c.command[i] = -1; c.response[i] = -1;
    row = i;
    const extra = writeRow(all[from + i], i, c, put, hexOf);
    if (extra) rare.push(i, extra);
  }
  return { n, num: bytes, strings, long, rare };
}

/** A batch as the webview reads it: typed arrays over the decoded bytes. */
export class UnpackedRows {
  readonly length: number;
  readonly rare: Map<number, Rare>;
  /** A batch's string index → the index in one Columns' table (filled by ./columns as it copies). */
  mapped: { owner: object; to: Int32Array } | undefined;
  /** The same for the short hex in `strings` → the index in one Columns' hex list. */
  mappedHex: { owner: object; to: Int32Array } | undefined;

  constructor(readonly c: Layout, readonly strings: readonly string[], readonly long: readonly string[], rare: Map<number, Rare>) {
    this.length = c.kindCode.length;
    this.rare = rare;
  }

  /** The hex of a command/response column value (undefined: absent). */
  hex(v: number): string | undefined {
    return v >= 0 ? this.strings[v] : v <= -2 ? this.long[-2 - v] : undefined;
  }

  /** Row `j` as an object (for a row with rare fields, the tests, and an automatic step). */
  row(j: number): LogRow {
    const c = this.c;
    const r: Record<string, unknown> = {};
    const k = c.kindCode[j];
    if (k !== OTHER_KIND) r.kind = KINDS[k];
    if (!Number.isNaN(c.seq[j])) r.id = `${c.gen[j]}:${c.seq[j]}`;
    if (!Number.isNaN(c.time[j])) r.time = c.time[j];
    for (const f of STRING_FIELDS) if (c[f][j] >= 0) r[f] = this.strings[c[f][j]];
    const command = this.hex(c.command[j]);
    if (command !== undefined) r.command = command;
    const response = this.hex(c.response[j]);
    if (response !== undefined) r.response = response;
    const f = c.flags[j];
    if (f & 3) r.swCategory = SW_CATEGORIES[(f & 3) - 1];
    if (!Number.isNaN(c.dur[j])) r.durationMs = c.dur[j];
    if (f >> 2) r.auto = AUTO_STEPS[(f >> 2) - 1];
    if (c.line[j]) r.line = c.line[j] - 1;
    const extra = this.rare.get(j);
    if (extra) Object.assign(r, extra);
    return r as unknown as LogRow;
  }

  /** The id of the first row that is not about the reader manager (what a reset's history starts with). */
  firstNonManagerId(): string | undefined {
    const manager = KIND_CODE.get('manager');
    for (let j = 0; j < this.length; j++) {
      if (this.c.kindCode[j] === manager) continue;
      if (!Number.isNaN(this.c.seq[j])) return `${this.c.gen[j]}:${this.c.seq[j]}`;
      const id = this.rare.get(j)?.id;
      return typeof id === 'string' ? id : undefined;
    }
    return undefined;
  }
}

/** A Uint8Array, also one made in another realm (a webview frame's). */
const isBytes = (v: unknown): v is Uint8Array => ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === '[object Uint8Array]';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const allStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
/** Rows in one batch at most (the extension sends 10,000). */
const MAX_ROWS = 1_000_000;

/** A packed batch checked and read; undefined when anything in it is out of place. */
export function unpackRows(raw: unknown): UnpackedRows | undefined {
  if (!isObject(raw)) return undefined;
  const { n, num, strings, long, rare } = raw;
  if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > MAX_ROWS || !isBytes(num)) return undefined;
  if (!allStrings(strings) || !allStrings(long) || !Array.isArray(rare) || rare.length % 2) return undefined;
  const rows = n as number;
  if (num.byteLength !== rows * BYTES_PER_ROW) return undefined;
  // The 8-byte columns need an aligned start: bytes at another offset are copied (VS Code gives a fresh buffer).
  const bytes = num.byteOffset % 8 ? new Uint8Array(num) : num;
  const c = new Layout(bytes, rows);
  const extra = new Map<number, Rare>();
  let last = -1;
  for (let k = 0; k < rare.length; k += 2) {
    const j = rare[k];
    const fields = rare[k + 1];
    if (!Number.isInteger(j) || (j as number) <= last || (j as number) >= rows || !isObject(fields)) return undefined;
    extra.set(j as number, fields);
    last = j as number;
  }
  // Column by column, with no value made per row (the webview runs this cold at every reopen,
  // where a double read from a typed array or an iterator is an allocation).
  const ns = strings.length;
  const nl = long.length;
  const seq = c.seq;
  for (let j = 0; j < rows; j++) {
    const v = seq[j];
    if (v !== v) continue;
    if (!(Number.isSafeInteger(v) && v >= 0)) return undefined;
  }
  const kinds = c.kindCode;
  const flags = c.flags;
  const line = c.line;
  for (let j = 0; j < rows; j++) {
    if ((kinds[j] >= KINDS.length && kinds[j] !== OTHER_KIND) || flags[j] >= 16 || line[j] < 0) return undefined;
  }
  for (let q = 0; q < STRING_FIELDS.length; q++) {
    const col = c[STRING_FIELDS[q]];
    for (let j = 0; j < rows; j++) if (col[j] < -1 || col[j] >= ns) return undefined;
  }
  for (const col of [c.command, c.response]) {
    for (let j = 0; j < rows; j++) if (col[j] >= ns || (col[j] <= -2 && -2 - col[j] >= nl)) return undefined;
  }
  return new UnpackedRows(c, strings, long, extra);
}
