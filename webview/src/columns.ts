// The APDU Log panel's rows as columns: one typed array per number-like field, indices into one
// string table for the strings that repeat (reader, client, status word and its meaning, script
// URI), one array each for command and response hex, and an object only for the fields a row
// rarely has (a control call's code, an event's ATR, a script's message…). 100,000 rows are a few
// dozen objects instead of 200,000 (a row and its holder each): the webview's heap is shared
// with the workbench in code-server, and every major collection marks and moves what is live.
// Rows come in as the extension's packed batches (./packed) copied in column by column, a run of
// rows at a time (`pushPackedRange`: typed-array copies, no value per row made in the heap), or as
// message objects copied in field by field (the objects are not kept); a row is made again as an
// object only when it is rendered, copied or searched. The history's length, when told, sizes the
// columns once (`reserve`). Command and response are indices too, into a list of hex strings (the
// short ones shared), so that 100,000 rows hold no JavaScript array of 100,000 entries.
// Pure (no DOM).
import {
  AUTO_STEPS, KINDS, OTHER_KIND, SHARED_HEX_MAX, STRING_FIELDS, SW_CATEGORIES, parseId, writeRow, type Rare, type RowColumns, type UnpackedRows,
} from './packed';
import type { AutoStep, LogRow, SwCategory } from './protocol';

export const EXCHANGE = 0;
/** `flags` bits: the automatic step, and whether the row's height was measured (the columns' own). */
const AUTO_BITS = 0b1100;
const MEASURED = 0b10000;

/** Distinct strings kept in the table; past it, a row keeps a new string with its rare fields. */
const STRINGS_MAX = 65_536;
/** Short commands and responses are shared (a status word, a SELECT, a READ BINARY's header repeat through a run). */
const SHARED_HEX_COUNT = 10_000;


/**
 * What a collapsed exchange shows: an exchange row's fields (without `parent`: a plain exchange is
 * not an automatic step), filled in place by `Columns.exchangeFields` for row after row.
 */
export interface ExchangeFields {
  id: string; time: number; reader: string; client?: string;
  command: string; response: string; sw: string; swMeaning: string; swCategory: SwCategory;
  durationMs: number; auto?: AutoStep; line?: number; uri?: string;
}

/** One object to fill again and again. */
export function newExchangeFields(): ExchangeFields {
  return {
    id: '', time: 0, reader: '', client: undefined, command: '', response: '', sw: '', swMeaning: '', swCategory: 'success',
    durationMs: 0, auto: undefined, line: undefined, uri: undefined,
  };
}

export class Columns implements RowColumns {
  /** Rows held. */
  length = 0;
  private cap = 0;
  // The row columns (RowColumns): open for ./packed's writeRow, which `push` hands them to; written by nothing else.
  gen = new Uint32Array(0);
  /** NaN: the id is not `gen:seq` (kept in the row's rare fields). */
  seq = new Float64Array(0);
  /** NaN: absent. */
  time = new Float64Array(0);
  dur = new Float64Array(0);
  kindCode = new Uint8Array(0);
  /** Bits 0–1: status-word category + 1; bits 2–3: automatic step + 1 (0: none); bit 4: `height` measured. */
  flags = new Uint8Array(0);
  /** Script line + 1 (0: none). */
  line = new Int32Array(0);
  /** Indices into `strings` (-1: absent). */
  reader = new Int32Array(0);
  client = new Int32Array(0);
  sw = new Int32Array(0);
  swMeaning = new Int32Array(0);
  uri = new Int32Array(0);
  /**
   * Measured height in px for the virtual list, read only when the row's MEASURED flag is set (a
   * flag, so that asking an unmeasured row's height reads no double: cold code boxes one).
   */
  private height = new Float64Array(0);
  /** Indices into `hex` (-1: absent). */
  command = new Int32Array(0);
  response = new Int32Array(0);
  /** The fields few rows have, or that did not fit a column, by row; mostly empty. */
  private rare = new Map<number, Rare>();
  /** The filter's search text per row, made when a search first needs it (no array until then). */
  private search: (string | undefined)[] | undefined;

  private readonly strings: string[] = [];
  private readonly stringIndex = new Map<string, number>();
  /** Command and response hex: the short ones once each (up to SHARED_HEX_COUNT), the others once per row. */
  private hex: string[] = [];
  private hexIndex = new Map<string, number>();
  /** Changes when the string table is cleared: a batch's map onto the table (`pushPacked`) is then stale. */
  private epoch: object = {};
  /** Changes when the hex list is cleared or compacted: a batch's map onto it is then stale. */
  private hexEpoch: object = {};
  // Bound once for writeRow (`push`): a string's index in the table, and a command's or response's hex for the row being pushed.
  private readonly stringIndexOf = (v: string): number => this.stringAt(v);
  private readonly hexOf = (field: 'command' | 'response', v: string): void => { this[field][this.length - 1] = this.hexAt(v); };

  /** Every row and string forgotten (the columns' buffers are kept for the next rows). */
  clear(): void {
    this.length = 0;
    this.rare = new Map();
    this.search = undefined;
    this.strings.length = 0;
    this.stringIndex.clear();
    this.hex = [];
    this.hexIndex = new Map();
    this.epoch = {};
    this.hexEpoch = {};
  }

  /** Rows the columns can hold without growing. */
  get capacity(): number {
    return this.cap;
  }

  /**
   * Sizes the columns for `n` rows at once (the history's length, told with its first batch),
   * so that taking it in copies no column to a larger one. Never shrinks.
   */
  reserve(n: number): void {
    if (Number.isSafeInteger(n) && n > this.cap) this.grow(n);
  }

  /** Copies a row in (the object is not kept); returns its index. */
  push(r: LogRow): number {
    const i = this.length;
    if (i === this.cap) this.grow(Math.max(1024, this.cap * 2));
    this.length = i + 1;
    this.gen[i] = 0; this.seq[i] = NaN; this.time[i] = NaN; this.dur[i] = NaN;
    this.kindCode[i] = OTHER_KIND; this.flags[i] = 0; this.line[i] = 0;
    this.reader[i] = -1; this.client[i] = -1; this.sw[i] = -1; this.swMeaning[i] = -1; this.uri[i] = -1;
    this.command[i] = -1; this.response[i] = -1;
    const rare = writeRow(r, i, this, this.stringIndexOf, this.hexOf);
    if (rare) this.rare.set(i, rare);
    if (this.search) this.search.push(undefined);
    return i;
  }

  /**
   * Copies row `j` of a packed batch in without making it an object; returns its index. A string
   * the table cannot take any more goes with the row's rare fields, as in `push`.
   */
  pushPacked(u: UnpackedRows, j: number): number {
    const i = this.pushPackedRange(u, j, j + 1);
    const extra = u.rare.get(j);
    if (extra) this.rare.set(i, { ...extra, ...this.rare.get(i) });
    return i;
  }

  /**
   * Copies rows `from` … `to` − 1 of a packed batch in, column by column (the number columns as
   * typed-array copies); returns the index of the first. The rows' rare fields are the caller's
   * (model.ts takes a row that has some as an object); a string the table cannot take any more
   * goes with the row's rare fields, as in `push`.
   */
  pushPackedRange(u: UnpackedRows, from: number, to: number): number {
    const i = this.length;
    const n = to - from;
    if (n <= 0) return i;
    if (i + n > this.cap) this.grow(Math.max(1024, this.cap * 2, i + n));
    this.length = i + n;
    const c = u.c;
    this.gen.set(c.gen.subarray(from, to), i);
    this.seq.set(c.seq.subarray(from, to), i);
    this.time.set(c.time.subarray(from, to), i);
    this.dur.set(c.dur.subarray(from, to), i);
    this.kindCode.set(c.kindCode.subarray(from, to), i);
    // A batch's flags are below 16 (./packed checks): no row comes in measured.
    this.flags.set(c.flags.subarray(from, to), i);
    this.line.set(c.line.subarray(from, to), i);
    if (u.mapped?.owner !== this.epoch) u.mapped = { owner: this.epoch, to: new Int32Array(u.strings.length).fill(-1) };
    const map = u.mapped.to;
    for (let q = 0; q < STRING_FIELDS.length; q++) {
      const f = STRING_FIELDS[q];
      const src = c[f];
      const col = this[f];
      for (let j = from, k = i; j < to; j++, k++) {
        const s = src[j];
        if (s < 0) { col[k] = -1; continue; }
        let at = map[s];
        if (at === -1) {
          at = this.stringAt(u.strings[s]);
          map[s] = at < 0 ? -2 : at;
        }
        if (at >= 0) { col[k] = at; continue; }
        col[k] = -1;
        const rare = this.rare.get(k);
        if (rare) rare[f] = u.strings[s];
        else this.rare.set(k, { [f]: u.strings[s] });
      }
    }
    if (u.mappedHex?.owner !== this.hexEpoch) u.mappedHex = { owner: this.hexEpoch, to: new Int32Array(u.strings.length).fill(-1) };
    const hexMap = u.mappedHex.to;
    for (let q = 0; q < 2; q++) {
      const src = q ? c.response : c.command;
      const col = q ? this.response : this.command;
      for (let j = from, k = i; j < to; j++, k++) {
        const v = src[j];
        if (v === -1) { col[k] = -1; continue; }
        if (v <= -2) { col[k] = this.hexAt(u.long[-2 - v]); continue; }
        let at = hexMap[v];
        if (at === -1) hexMap[v] = at = this.hexAt(u.strings[v]);
        col[k] = at;
      }
    }
    if (this.search) for (let k = 0; k < n; k++) this.search.push(undefined);
    return i;
  }

  /** The row at `i` as an object again (a fresh one each call). */
  row(i: number): LogRow {
    const r: Record<string, unknown> = {};
    const c = this.kindCode[i];
    if (c !== OTHER_KIND) r.kind = KINDS[c];
    if (!Number.isNaN(this.seq[i])) r.id = `${this.gen[i]}:${this.seq[i]}`;
    if (!Number.isNaN(this.time[i])) r.time = this.time[i];
    this.getString(r, 'reader', this.reader[i]);
    this.getString(r, 'client', this.client[i]);
    if (this.command[i] >= 0) r.command = this.hex[this.command[i]];
    if (this.response[i] >= 0) r.response = this.hex[this.response[i]];
    this.getString(r, 'sw', this.sw[i]);
    this.getString(r, 'swMeaning', this.swMeaning[i]);
    const f = this.flags[i];
    if (f & 3) r.swCategory = SW_CATEGORIES[(f & 3) - 1];
    if (!Number.isNaN(this.dur[i])) r.durationMs = this.dur[i];
    if (f & AUTO_BITS) r.auto = AUTO_STEPS[((f & AUTO_BITS) >> 2) - 1];
    if (this.line[i]) r.line = this.line[i] - 1;
    this.getString(r, 'uri', this.uri[i]);
    const rare = this.rare.get(i);
    if (rare) Object.assign(r, rare);
    return r as unknown as LogRow;
  }

  /**
   * Fills `out` with row `i`'s fields when it is a plain exchange (every field an exchange must have
   * in its column, and nothing else: no rare field, an id `gen:seq`); returns false, `out` then
   * half-filled, for any other row. `id`: the row's id when the caller has made it already.
   * Rendering a row entering the view this way makes no object (`row` makes one per call).
   */
  exchangeFields(i: number, out: ExchangeFields, id?: string): boolean {
    if (this.kindCode[i] !== EXCHANGE || this.rare.has(i)) return false;
    const f = this.flags[i];
    const command = this.command[i];
    const response = this.response[i];
    const reader = this.reader[i];
    const sw = this.sw[i];
    const swMeaning = this.swMeaning[i];
    if (!(f & 3) || command < 0 || response < 0 || reader < 0 || sw < 0 || swMeaning < 0) return false;
    if (Number.isNaN(this.seq[i]) || Number.isNaN(this.time[i]) || Number.isNaN(this.dur[i])) return false;
    const strings = this.strings;
    out.id = id ?? this.id(i);
    out.time = this.time[i];
    out.reader = strings[reader];
    out.client = this.client[i] >= 0 ? strings[this.client[i]] : undefined;
    out.command = this.hex[command];
    out.response = this.hex[response];
    out.sw = strings[sw];
    out.swMeaning = strings[swMeaning];
    out.swCategory = SW_CATEGORIES[(f & 3) - 1];
    out.durationMs = this.dur[i];
    out.auto = f & AUTO_BITS ? AUTO_STEPS[((f & AUTO_BITS) >> 2) - 1] : undefined;
    out.line = this.line[i] ? this.line[i] - 1 : undefined;
    out.uri = this.uri[i] >= 0 ? strings[this.uri[i]] : undefined;
    return true;
  }

  id(i: number): string {
    if (!Number.isNaN(this.seq[i])) return `${this.gen[i]}:${this.seq[i]}`;
    const id = this.rare.get(i)?.id;
    return typeof id === 'string' ? id : '';
  }

  kind(i: number): string {
    const c = this.kindCode[i];
    return c !== OTHER_KIND ? KINDS[c] : String(this.rare.get(i)?.kind);
  }

  isExchange(i: number): boolean {
    return this.kindCode[i] === EXCHANGE;
  }

  readerOf(i: number): string | undefined {
    const s = this.reader[i];
    return s >= 0 ? this.strings[s] : typeof this.rare.get(i)?.reader === 'string' ? this.rare.get(i)?.reader as string : undefined;
  }

  clientOf(i: number): string | undefined {
    const s = this.client[i];
    return s >= 0 ? this.strings[s] : typeof this.rare.get(i)?.client === 'string' ? this.rare.get(i)?.client as string : undefined;
  }

  /** The newest row with this id, or -1. Scans from the newest: a step's exchange is nearly always the row before it. */
  find(id: string): number {
    const p = parseId(id);
    if (p) {
      const [gen, seq] = p;
      for (let i = this.length - 1; i >= 0; i--) if (this.seq[i] === seq && this.gen[i] === gen) return i;
      return -1;
    }
    for (let i = this.length - 1; i >= 0; i--) if (Number.isNaN(this.seq[i]) && this.rare.get(i)?.id === id) return i;
    return -1;
  }

  getHeight(i: number): number | undefined {
    return this.flags[i] & MEASURED ? this.height[i] : undefined;
  }

  setHeight(i: number, h: number | undefined): void {
    if (h === undefined || Number.isNaN(h)) { this.flags[i] &= ~MEASURED; return; }
    this.height[i] = h;
    this.flags[i] |= MEASURED;
  }

  searchOf(i: number, make: (r: LogRow) => string): string {
    if (!this.search) {
      // Pushed, not `new Array(length)`: past 100,000 entries V8 would make that a dictionary.
      const search: (string | undefined)[] = [];
      for (let k = 0; k < this.length; k++) search.push(undefined);
      this.search = search;
    }
    return (this.search[i] ??= make(this.row(i)));
  }

  forgetSearch(i: number): void {
    if (this.search) this.search[i] = undefined;
  }

  /** Drops the oldest `n` rows; the others move down by `n`. */
  dropFront(n: number): void {
    if (n <= 0) return;
    n = Math.min(n, this.length);
    const end = this.length;
    for (const a of [
      this.gen, this.seq, this.time, this.dur, this.kindCode, this.flags, this.line, this.reader, this.client, this.sw, this.swMeaning, this.uri,
      this.command, this.response, this.height,
    ]) {
      a.copyWithin(0, n, end);
    }
    if (this.rare.size) {
      const rare = new Map<number, Rare>();
      for (const [i, r] of this.rare) if (i >= n) rare.set(i - n, r);
      this.rare = rare;
    }
    this.search?.splice(0, n);
    this.length = end - n;
    this.compactHex();
  }

  /** The hex list keeps only what the rows left refer to (after a trim); the short ones stay shared. */
  private compactHex(): void {
    const map = new Int32Array(this.hex.length).fill(-1);
    const hex: string[] = [];
    const index = new Map<string, number>();
    for (const col of [this.command, this.response]) {
      for (let i = 0; i < this.length; i++) {
        const h = col[i];
        if (h < 0) continue;
        let to = map[h];
        if (to === -1) {
          const v = this.hex[h];
          to = map[h] = hex.length;
          hex.push(v);
          if (this.hexIndex.get(v) === h) index.set(v, to);
        }
        col[i] = to;
      }
    }
    this.hex = hex;
    this.hexIndex = index;
    this.hexEpoch = {};
  }

  private grow(cap: number): void {
    const g = <T extends Uint8Array | Int32Array | Uint32Array | Float64Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(cap);
      b.set(a.subarray(0, this.length));
      return b;
    };
    this.gen = g(this.gen, Uint32Array);
    this.seq = g(this.seq, Float64Array);
    this.time = g(this.time, Float64Array);
    this.dur = g(this.dur, Float64Array);
    this.kindCode = g(this.kindCode, Uint8Array);
    this.flags = g(this.flags, Uint8Array);
    this.line = g(this.line, Int32Array);
    this.reader = g(this.reader, Int32Array);
    this.client = g(this.client, Int32Array);
    this.sw = g(this.sw, Int32Array);
    this.swMeaning = g(this.swMeaning, Int32Array);
    this.uri = g(this.uri, Int32Array);
    this.command = g(this.command, Int32Array);
    this.response = g(this.response, Int32Array);
    this.height = g(this.height, Float64Array);
    this.cap = cap;
  }

  /** The index of `v` in the string table, added if new; -1 when the table is full. */
  private stringAt(v: string): number {
    let s = this.stringIndex.get(v);
    if (s === undefined) {
      if (this.strings.length >= STRINGS_MAX) return -1;
      s = this.strings.length;
      this.strings.push(v);
      this.stringIndex.set(v, s);
    }
    return s;
  }

  private getString(r: Record<string, unknown>, key: string, s: number): void {
    if (s >= 0) r[key] = this.strings[s];
  }

  /** `v`'s index in the hex list: a short one shared (while there is room), any other added. */
  private hexAt(v: string): number {
    if (v.length <= SHARED_HEX_MAX) {
      const known = this.hexIndex.get(v);
      if (known !== undefined) return known;
      if (this.hexIndex.size < SHARED_HEX_COUNT) this.hexIndex.set(v, this.hex.length);
    }
    this.hex.push(v);
    return this.hex.length - 1;
  }
}
