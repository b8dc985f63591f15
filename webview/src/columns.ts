// The APDU Log panel's rows as columns: one typed array per number-like field, indices into one
// string table for the strings that repeat (reader, client, status word and its meaning, script
// URI), one array each for command and response hex, and an object only for the fields a row
// rarely has (a control call's code, an event's ATR, a script's message…). 100,000 rows are a few
// dozen objects instead of 200,000 (a row and its holder each): the webview's heap is shared
// with the workbench in code-server, and every major collection marks and moves what is live.
// Rows come in as the extension's packed batches (./packed: the history) copied in column by
// column, or as message objects (live rows) copied in field by field (the objects are not kept); a row is made again as an object only when it is rendered, copied or searched.
// Pure (no DOM).
import {
  AUTO_STEPS, KINDS, OTHER_KIND, SHARED_HEX_MAX, STRING_FIELDS, SW_CATEGORIES, parseId, writeRow, type Rare, type RowColumns, type UnpackedRows,
} from './packed';
import type { AutoStep, LogRow, SwCategory } from './protocol';

export const EXCHANGE = 0;

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
  /** Bits 0–1: status-word category + 1; bits 2–3: automatic step + 1 (0: none). */
  flags = new Uint8Array(0);
  /** Script line + 1 (0: none). */
  line = new Int32Array(0);
  /** Indices into `strings` (-1: absent). */
  reader = new Int32Array(0);
  client = new Int32Array(0);
  sw = new Int32Array(0);
  swMeaning = new Int32Array(0);
  uri = new Int32Array(0);
  /** Measured height in px for the virtual list (NaN: not measured, or changed since). */
  private height = new Float64Array(0);
  private command: (string | undefined)[] = [];
  private response: (string | undefined)[] = [];
  /** The fields few rows have, or that did not fit a column; mostly empty. */
  private rare: (Rare | undefined)[] = [];
  /** The filter's search text per row, made when a search first needs it. */
  private search: (string | undefined)[] = [];

  private readonly strings: string[] = [];
  private readonly stringIndex = new Map<string, number>();
  private readonly sharedHex = new Map<string, string>();
  /** Changes when the string table is cleared: a batch's map onto the table (`pushPacked`) is then stale. */
  private epoch: object = {};
  // Bound once for writeRow (`push`): a string's index in the table, and a command's or response's hex for the row being pushed.
  private readonly stringIndexOf = (v: string): number => this.stringAt(v);
  private readonly hexOf = (field: 'command' | 'response', v: string): void => { this[field][this.length - 1] = this.shareHex(v); };

  /** Every row and string forgotten. */
  clear(): void {
    this.length = 0;
    this.command = [];
    this.response = [];
    this.rare = [];
    this.search = [];
    this.strings.length = 0;
    this.stringIndex.clear();
    this.sharedHex.clear();
    this.epoch = {};
  }

  /** Copies a row in (the object is not kept); returns its index. */
  push(r: LogRow): number {
    const i = this.length;
    if (i === this.cap) this.grow(Math.max(1024, this.cap * 2));
    this.length = i + 1;
    this.gen[i] = 0; this.seq[i] = NaN; this.time[i] = NaN; this.dur[i] = NaN;
    this.kindCode[i] = OTHER_KIND; this.flags[i] = 0; this.line[i] = 0;
    this.reader[i] = -1; this.client[i] = -1; this.sw[i] = -1; this.swMeaning[i] = -1; this.uri[i] = -1;
    this.height[i] = NaN;
    this.command.push(undefined);
    this.response.push(undefined);
    this.rare.push(writeRow(r, i, this, this.stringIndexOf, this.hexOf));
    this.search.push(undefined);
    return i;
  }

  /**
   * Copies row `j` of a packed batch in without making it an object; returns its index. A string
   * the table cannot take any more goes with the row's rare fields, as in `push`.
   */
  pushPacked(u: UnpackedRows, j: number): number {
    const i = this.length;
    if (i === this.cap) this.grow(Math.max(1024, this.cap * 2));
    this.length = i + 1;
    const c = u.c;
    this.gen[i] = c.gen[j]; this.seq[i] = c.seq[j]; this.time[i] = c.time[j]; this.dur[i] = c.dur[j];
    this.kindCode[i] = c.kindCode[j]; this.flags[i] = c.flags[j]; this.line[i] = c.line[j];
    this.height[i] = NaN;
    let rare = u.rare.get(j);
    if (rare) rare = { ...rare };
    if (u.mapped?.owner !== this.epoch) u.mapped = { owner: this.epoch, to: new Int32Array(u.strings.length).fill(-1) };
    const map = u.mapped.to;
    for (const f of STRING_FIELDS) {
      const s = c[f][j];
      const col = this[f];
      col[i] = -1;
      if (s < 0) continue;
      let to = map[s];
      if (to === -1) {
        to = this.putString(col, i, u.strings[s]) ? col[i] : -2;
        map[s] = to;
      }
      if (to >= 0) col[i] = to;
      else (rare ??= {})[f] = u.strings[s];
    }
    const command = u.hex(c.command[j]);
    const response = u.hex(c.response[j]);
    this.command.push(command === undefined ? undefined : this.shareHex(command));
    this.response.push(response === undefined ? undefined : this.shareHex(response));
    this.rare.push(rare);
    this.search.push(undefined);
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
    const command = this.command[i];
    if (command !== undefined) r.command = command;
    const response = this.response[i];
    if (response !== undefined) r.response = response;
    this.getString(r, 'sw', this.sw[i]);
    this.getString(r, 'swMeaning', this.swMeaning[i]);
    const f = this.flags[i];
    if (f & 3) r.swCategory = SW_CATEGORIES[(f & 3) - 1];
    if (!Number.isNaN(this.dur[i])) r.durationMs = this.dur[i];
    if (f >> 2) r.auto = AUTO_STEPS[(f >> 2) - 1];
    if (this.line[i]) r.line = this.line[i] - 1;
    this.getString(r, 'uri', this.uri[i]);
    const rare = this.rare[i];
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
    if (this.kindCode[i] !== EXCHANGE || this.rare[i] !== undefined) return false;
    const f = this.flags[i];
    const command = this.command[i];
    const response = this.response[i];
    const reader = this.reader[i];
    const sw = this.sw[i];
    const swMeaning = this.swMeaning[i];
    if (!(f & 3) || command === undefined || response === undefined || reader < 0 || sw < 0 || swMeaning < 0) return false;
    if (Number.isNaN(this.seq[i]) || Number.isNaN(this.time[i]) || Number.isNaN(this.dur[i])) return false;
    const strings = this.strings;
    out.id = id ?? this.id(i);
    out.time = this.time[i];
    out.reader = strings[reader];
    out.client = this.client[i] >= 0 ? strings[this.client[i]] : undefined;
    out.command = command;
    out.response = response;
    out.sw = strings[sw];
    out.swMeaning = strings[swMeaning];
    out.swCategory = SW_CATEGORIES[(f & 3) - 1];
    out.durationMs = this.dur[i];
    out.auto = f >> 2 ? AUTO_STEPS[(f >> 2) - 1] : undefined;
    out.line = this.line[i] ? this.line[i] - 1 : undefined;
    out.uri = this.uri[i] >= 0 ? strings[this.uri[i]] : undefined;
    return true;
  }

  id(i: number): string {
    if (!Number.isNaN(this.seq[i])) return `${this.gen[i]}:${this.seq[i]}`;
    const id = this.rare[i]?.id;
    return typeof id === 'string' ? id : '';
  }

  kind(i: number): string {
    const c = this.kindCode[i];
    return c !== OTHER_KIND ? KINDS[c] : String(this.rare[i]?.kind);
  }

  isExchange(i: number): boolean {
    return this.kindCode[i] === EXCHANGE;
  }

  readerOf(i: number): string | undefined {
    const s = this.reader[i];
    return s >= 0 ? this.strings[s] : typeof this.rare[i]?.reader === 'string' ? this.rare[i]?.reader as string : undefined;
  }

  clientOf(i: number): string | undefined {
    const s = this.client[i];
    return s >= 0 ? this.strings[s] : typeof this.rare[i]?.client === 'string' ? this.rare[i]?.client as string : undefined;
  }

  /** The newest row with this id, or -1. Scans from the newest: a step's exchange is nearly always the row before it. */
  find(id: string): number {
    const p = parseId(id);
    if (p) {
      const [gen, seq] = p;
      for (let i = this.length - 1; i >= 0; i--) if (this.seq[i] === seq && this.gen[i] === gen) return i;
      return -1;
    }
    for (let i = this.length - 1; i >= 0; i--) if (Number.isNaN(this.seq[i]) && this.rare[i]?.id === id) return i;
    return -1;
  }

  getHeight(i: number): number | undefined {
    const h = this.height[i];
    return Number.isNaN(h) ? undefined : h;
  }

  setHeight(i: number, h: number | undefined): void {
    this.height[i] = h ?? NaN;
  }

  searchOf(i: number, make: (r: LogRow) => string): string {
    return (this.search[i] ??= make(this.row(i)));
  }

  forgetSearch(i: number): void {
    this.search[i] = undefined;
  }

  /** Drops the oldest `n` rows; the others move down by `n`. */
  dropFront(n: number): void {
    if (n <= 0) return;
    n = Math.min(n, this.length);
    const end = this.length;
    for (const a of [this.gen, this.seq, this.time, this.dur, this.kindCode, this.flags, this.line, this.reader, this.client, this.sw, this.swMeaning, this.uri, this.height]) {
      a.copyWithin(0, n, end);
    }
    this.command.splice(0, n);
    this.response.splice(0, n);
    this.rare.splice(0, n);
    this.search.splice(0, n);
    this.length = end - n;
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
    this.height = g(this.height, Float64Array);
    this.cap = cap;
  }

  private putString(col: Int32Array, i: number, v: unknown): boolean {
    if (typeof v !== 'string') return false;
    const s = this.stringAt(v);
    if (s < 0) return false;
    col[i] = s;
    return true;
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

  private shareHex(v: string): string {
    if (v.length > SHARED_HEX_MAX) return v;
    const known = this.sharedHex.get(v);
    if (known !== undefined) return known;
    if (this.sharedHex.size < SHARED_HEX_COUNT) this.sharedHex.set(v, v);
    return v;
  }
}
