// The APDU Log panel's row model: the rows the panel holds, the automatic steps nested under
// their exchange, the filtered view, the pause, and the queue of rows not taken in yet.
// Pure (no DOM): main.ts renders it as a virtual list, unit tests drive it directly.
//
// The rows are held as columns (./columns): an item is a top-level row's index, 0 for the
// oldest, and the view is an Int32Array of items. Indices move down when the oldest rows are
// trimmed (the `trimming` event comes first). A row is an object again only when asked for
// (`row`), for the few rows rendered, a copy or a search.
import { rowText } from './format';
import { needleOf, rowPasses, searchText, textMatches } from './filter';
import { Columns, type ExchangeFields } from './columns';
import { KIND_CODE, unpackRows, type PackedRows, type UnpackedRows } from './packed';
import { logHighWater, type DecodedExchange, type LogFilter, type LogRow, type TrimmedRow } from './protocol';

/** An expanded exchange's details: asked for, decoded, failed, or no longer in the extension's log. */
export type DecodeState = DecodedExchange | Error | 'loading' | 'trimmed';

/** What the model tells the page about, as it happens. */
export interface ModelEvents {
  /** A reader seen for the first time (the reader filter lists it). */
  reader?(name: string): void;
  /** A client (a row's `client`) seen for the first time (the client filter lists it). */
  client?(name: string): void;
  /** An item's content changed (an automatic step arrived): its element and height are stale. */
  changed?(item: number): void;
  /** A script run started (a live `scriptStarted` row, not one from the history sent after a reset). */
  runStarted?(item: number): void;
  /**
   * The first `count` entries of the view are about to be trimmed (with every item before
   * them): still readable now, gone (and every index moved down) when `ingest` returns.
   */
  trimming?(count: number): void;
  /** The oldest `count` items were dropped: every item number after them is now `count` less. */
  dropped?(count: number): void;
}

const SCRIPT_STARTED = KIND_CODE.get('scriptStarted');

/** Shared by every row without automatic steps (most of them), until one arrives. */
const NO_KIDS: readonly LogRow[] = [];

/** Row ids are `generation:seq`; this orders them. */
function idOrder(id: string): number {
  const [gen, seq] = id.split(':').map(Number);
  return (gen || 0) * 1e12 + (seq || 0);
}

export class LogModel {
  readonly expanded = new Set<string>();
  readonly decoded = new Map<string, DecodeState>();

  /** Every top-level row held, oldest first. */
  private readonly rows = new Columns();
  /** Automatic steps by the index of their exchange (few rows have any). */
  private kids = new Map<number, LogRow[]>();
  /** The view: indices of the items passing the filter, up to `viewLimit`. */
  private viewBuf = new Int32Array(1024);
  private viewLen = 0;
  /** Automatic step id → the id of the exchange it belongs to. */
  private readonly kidParent = new Map<string, string>();
  /** Automatic steps that arrived before the exchange they belong to. */
  private readonly orphans = new Map<string, LogRow[]>();
  private readonly sharedKidStrings = new Map<string, string>();
  private readonly readersSeen = new Set<string>();
  private readonly clientsSeen = new Set<string>();
  private exchangeCount = 0;
  /** Rows held: top-level rows, their steps, and steps still waiting for their exchange. */
  private held = 0;
  private viewLimit = 0;
  private pausedNow = false;
  private arrived = 0;
  /** Batches not taken in yet: rows, or a packed batch with the next row to take. */
  private queue: (LogRow[] | { packed: UnpackedRows; next: number })[] = [];
  private queued = 0;
  private resetPending: { firstId?: string } | undefined;

  /**
   * `filter` is the page's own object: it changes it, then calls `rebuildView`. `capacity`
   * bounds the rows held: main.ts passes LOG_CAPACITY (protocol.ts), the extension's store's
   * bound too; tests pass a small one.
   */
  constructor(readonly filter: LogFilter, readonly capacity: number, private readonly events: ModelEvents = {}) {}

  /** Rows held (every row, automatic steps included). */
  get size(): number { return this.held; }
  /** Top-level rows held (items 0 … itemCount − 1). */
  get itemCount(): number { return this.rows.length; }
  /** What is shown: the items passing the filter, up to the newest unless paused (valid until the next call that changes the model). */
  get view(): Int32Array { return this.viewBuf.subarray(0, this.viewLen); }
  get viewLength(): number { return this.viewLen; }
  /** Exchanges held, automatic steps included (the toolbar's count). */
  get exchanges(): number { return this.exchangeCount; }
  /** Top-level rows the model has room for without growing (the history's length, when told). */
  get reserved(): number { return this.rows.capacity; }
  /** Rows received but not taken in yet. */
  get queuedRows(): number { return this.queued; }
  get paused(): boolean { return this.pausedNow; }
  /** Top-level rows that arrived while paused. */
  get arrivedWhilePaused(): number { return this.arrived; }

  /** The item shown at position `k` of the view. */
  viewAt(k: number): number { return this.viewBuf[k]; }
  /** An item's row, as an object made for the caller. */
  row(item: number): LogRow { return this.rows.row(item); }
  /** Fills `out` with a top-level plain exchange's fields, without making the row (false: any other row; see Columns). */
  exchangeFields(item: number, out: ExchangeFields, id?: string): boolean { return this.rows.exchangeFields(item, out, id); }
  id(item: number): string { return this.rows.id(item); }
  kind(item: number): string { return this.rows.kind(item); }
  kidsOf(item: number): readonly LogRow[] { return this.kids.get(item) ?? NO_KIDS; }
  kidCount(item: number): number { return this.kids.get(item)?.length ?? 0; }
  /** The item's measured height (undefined: not measured, or changed since). */
  height(item: number): number | undefined { return this.rows.getHeight(item); }
  setHeight(item: number, h: number | undefined): void { this.rows.setHeight(item, h); }

  /**
   * A `rows` message from the extension; `reset` replaces everything held (the history after
   * `ready`, or a clear) and ends a pause. The rows are copied into the columns as they are
   * taken in, and the message's objects dropped.
   */
  receive(rows: LogRow[], reset = false): void {
    if (reset) {
      this.queue = [];
      this.queued = 0;
      this.clear();
      this.resetPending = { firstId: rows.find((r) => r.kind !== 'manager')?.id };
    } else if (this.resetPending && !this.resetPending.firstId) {
      this.resetPending.firstId = rows.find((r) => r.kind !== 'manager')?.id;
    }
    if (rows.length) { this.queue.push(rows); this.queued += rows.length; }
  }

  /**
   * A `packed` message (the history in column form, ./packed): as `receive`. Its rows are copied
   * into the columns as they are taken in, without being made objects (but for the few with rare
   * fields). `total`, with a reset: the history's length, which sizes the columns and the view
   * once (up to the bound), instead of growing them batch after batch. Returns false, changing
   * nothing, for a batch that does not read.
   */
  receivePacked(p: PackedRows, reset = false, total?: number): boolean {
    const u = unpackRows(p);
    if (!u) return false;
    if (reset) {
      this.queue = [];
      this.queued = 0;
      this.clear();
      if (typeof total === 'number' && Number.isSafeInteger(total) && total > 0) this.reserve(Math.min(total, logHighWater(this.capacity)));
      this.resetPending = { firstId: u.firstNonManagerId() };
    } else if (this.resetPending && !this.resetPending.firstId) {
      this.resetPending.firstId = u.firstNonManagerId();
    }
    if (u.length) { this.queue.push({ packed: u, next: 0 }); this.queued += u.length; }
    return true;
  }

  /**
   * Takes up to `budget` queued rows in, then trims the oldest rows past the bound. Returns
   * how many entries left the front of the view (the virtual list keeps its place by them;
   * `trimming` told which, before they went).
   */
  ingest(budget: number): number {
    const before = this.rows.length;
    while (this.queue.length && budget > 0) {
      const batch = this.queue[0];
      if (!Array.isArray(batch)) {
        const { packed } = batch;
        const end = Math.min(packed.length, batch.next + budget);
        this.addPacked(packed, batch.next, end);
        budget -= end - batch.next;
        this.queued -= end - batch.next;
        batch.next = end;
        if (end === packed.length) this.queue.shift();
        continue;
      }
      const take = batch.length <= budget ? batch : batch.splice(0, budget);
      if (take === batch) this.queue.shift();
      for (const r of take) this.addRow(r);
      budget -= take.length;
      this.queued -= take.length;
    }
    if (this.resetPending && !this.queue.length) {
      // Automatic steps whose exchange was cut from the history are shown on their own;
      // those whose exchange is still to come (a check before its VERIFY) keep waiting.
      const first = this.resetPending.firstId;
      if (first) this.flushOrphans((parent) => idOrder(parent) < idOrder(first));
      this.resetPending = undefined;
    }
    const added = this.rows.length - before;
    const gone = this.trim();
    if (this.pausedNow) {
      this.arrived += added;
    } else if (this.rows.length !== this.viewLimit) {
      const from = this.viewLimit;
      this.viewLimit = this.rows.length;
      this.extendView(from);
    }
    return gone;
  }

  /** The filter changed: the view is built again. */
  rebuildView(): void {
    this.viewLen = 0;
    this.extendView(0);
  }

  /** Pausing holds the view still; rows keep arriving (and counting). Resuming shows them. */
  setPaused(on: boolean): void {
    if (this.pausedNow === on) return;
    this.pausedNow = on;
    if (!on) {
      this.arrived = 0;
      const from = this.viewLimit;
      this.viewLimit = this.rows.length;
      this.extendView(from);
    }
  }

  /**
   * Expands or collapses a row (a top-level one or an automatic step). Returns the item to
   * render again, and whether the row's decoding must be asked for; undefined for a row not held.
   */
  toggle(id: string): { item: number; decode: boolean } | undefined {
    const item = this.itemOf(id);
    if (item === undefined) return undefined;
    const isTop = this.rows.id(item) === id;
    const kid = isTop ? undefined : this.kidsOf(item).find((k) => k.id === id);
    if (!isTop && !kid) return undefined;
    const exchange = isTop ? this.rows.isExchange(item) : kid?.kind === 'exchange';
    let decode = false;
    if (this.expanded.has(id)) this.expanded.delete(id);
    else {
      this.expanded.add(id);
      if (exchange && !this.decoded.has(id)) {
        this.decoded.set(id, 'loading');
        decode = true;
      }
    }
    return { item, decode };
  }

  /**
   * The extension's answer to a decode: the details, an error, or `trimmed` (its log no longer
   * holds the row). Returns the item to render again; ignored when the row left the model meanwhile.
   */
  decodedAs(id: string, answer: DecodedExchange | TrimmedRow | Error): number | undefined {
    if (this.decoded.get(id) !== 'loading') return undefined;
    const item = this.itemOf(id);
    if (item === undefined) { this.decoded.delete(id); return undefined; }
    this.decoded.set(id, answer instanceof Error ? answer : 'trimmed' in answer ? 'trimmed' : answer);
    return item;
  }

  /** The item a row belongs to (itself, or the exchange of an automatic step); undefined when not held. */
  itemOf(id: string): number | undefined {
    const i = this.rows.find(this.kidParent.get(id) ?? id);
    return i < 0 ? undefined : i;
  }

  /**
   * How many rows of this kind whose trace text contains `text`, and (manager rows) in `state`
   * (for tests and the benchmark).
   */
  count(kind: string, text = '', state?: string): number {
    let n = 0;
    const matches = (r: LogRow) => r.kind === kind && (state === undefined || (r.kind === 'manager' && r.state === state)) && (!text || rowText(r).includes(text));
    for (let i = 0; i < this.rows.length; i++) {
      // Asked every quarter second while a test waits: a row is made only when its kind matches.
      if (this.rows.kind(i) === kind && matches(this.rows.row(i))) n++;
      for (const k of this.kidsOf(i)) if (matches(k)) n++;
    }
    return n;
  }

  // ---------------------------------------------------------------- inside

  private clear(): void {
    this.rows.clear();
    this.kids = new Map();
    this.kidParent.clear();
    this.orphans.clear();
    this.sharedKidStrings.clear();
    this.expanded.clear();
    this.decoded.clear();
    this.readersSeen.clear();
    // The reader filter keeps its choice listed, rows of that reader or not.
    if (this.filter.reader) this.readersSeen.add(this.filter.reader);
    this.clientsSeen.clear();
    this.exchangeCount = 0;
    this.held = 0;
    this.viewLen = 0;
    this.viewLimit = 0;
    this.pausedNow = false;
    this.arrived = 0;
  }

  /** An automatic step is kept as an object (few rows are): its repeated strings are shared. */
  private shareKidStrings(r: LogRow): void {
    const fields = r as unknown as Record<string, unknown>;
    for (const k of ['reader', 'client', 'command', 'response', 'sw', 'swMeaning', 'swCategory', 'auto', 'uri'] as const) {
      const v = fields[k];
      if (typeof v !== 'string' || v.length > 64) continue;
      const known = this.sharedKidStrings.get(v);
      if (known !== undefined) fields[k] = known;
      else if (this.sharedKidStrings.size < 10_000) this.sharedKidStrings.set(v, v);
    }
  }

  private seen(r: LogRow): void {
    if (r.reader && !this.readersSeen.has(r.reader)) {
      this.readersSeen.add(r.reader);
      this.events.reader?.(r.reader);
    }
    if (r.client && !this.clientsSeen.has(r.client)) {
      this.clientsSeen.add(r.client);
      this.events.client?.(r.client);
    }
  }

  private addRow(r: LogRow): void {
    this.held++;
    this.seen(r);
    if (r.kind === 'exchange') this.exchangeCount++;
    const parentId = r.kind === 'exchange' ? r.parent : undefined;
    if (parentId) {
      this.shareKidStrings(r);
      const p = this.rows.find(parentId);
      if (p >= 0) { this.attachKid(p, parentId, r); return; }
      const waiting = this.orphans.get(parentId);
      if (waiting) waiting.push(r);
      else this.orphans.set(parentId, [r]);
      // Automatic steps whose exchange never came are shown on their own rather than lost.
      if (this.orphans.size > 100) this.flushOrphans(() => true);
      return;
    }
    const it = this.rows.push(r);
    const waiting = this.orphans.get(r.id);
    if (waiting) {
      this.orphans.delete(r.id);
      this.kids.set(it, waiting);
      for (const k of waiting) this.kidParent.set(k.id, r.id);
    }
    if (r.kind === 'scriptStarted' && !this.resetPending) this.events.runStarted?.(it);
  }

  /** Room for `n` top-level rows in the columns and the view, made at once. */
  private reserve(n: number): void {
    this.rows.reserve(n);
    if (this.viewBuf.length < n) this.viewBuf = new Int32Array(n);
  }

  /**
   * Rows `from` … `to` − 1 of a packed batch: copied into the columns a run at a time; one with
   * rare fields (an event's ATR, an automatic step…) as an object, in its place.
   */
  private addPacked(u: UnpackedRows, from: number, to: number): void {
    const rows = this.rows;
    for (let j = from; j < to;) {
      if (u.rare.has(j)) { this.addRow(u.row(j)); j++; continue; }
      let k = j + 1;
      while (k < to && !u.rare.has(k)) k++;
      const first = rows.pushPackedRange(u, j, k);
      const end = first + (k - j);
      this.held += k - j;
      // Readers and clients are looked at when a row's differs from the row before (a run is mostly one reader's).
      let lastReader = -2;
      let lastClient = -2;
      for (let it = first; it < end; it++) {
        if (rows.reader[it] !== lastReader || lastReader < 0) {
          lastReader = rows.reader[it];
          const reader = rows.readerOf(it);
          if (reader && !this.readersSeen.has(reader)) { this.readersSeen.add(reader); this.events.reader?.(reader); }
        }
        if (rows.client[it] !== lastClient || lastClient < 0) {
          lastClient = rows.client[it];
          const client = rows.clientOf(it);
          if (client && !this.clientsSeen.has(client)) { this.clientsSeen.add(client); this.events.client?.(client); }
        }
        if (rows.isExchange(it)) this.exchangeCount++;
        if (this.orphans.size) {
          const id = rows.id(it);
          const waiting = this.orphans.get(id);
          if (waiting) {
            this.orphans.delete(id);
            this.kids.set(it, waiting);
            for (const w of waiting) this.kidParent.set(w.id, id);
          }
        }
        if (!this.resetPending && rows.kindCode[it] === SCRIPT_STARTED) this.events.runStarted?.(it);
      }
      j = k;
    }
  }

  private attachKid(p: number, parentId: string, r: LogRow): void {
    const list = this.kids.get(p);
    if (list) list.push(r);
    else this.kids.set(p, [r]);
    this.kidParent.set(r.id, parentId);
    this.rows.forgetSearch(p);
    this.rows.setHeight(p, undefined);
    this.events.changed?.(p);
  }

  private flushOrphans(which: (parentId: string) => boolean): void {
    for (const [parent, rows] of [...this.orphans]) {
      if (!which(parent)) continue;
      this.orphans.delete(parent);
      for (const r of rows) this.rows.push(r);
    }
  }

  /**
   * Past the high-water mark, drops the oldest items (with their steps) until `capacity` rows
   * are left, as the extension's store does. Returns how many entries left the front of the view.
   */
  private trim(): number {
    if (this.held <= logHighWater(this.capacity)) return 0;
    const n = this.rows.length;
    let drop = 0;
    let held = this.held;
    while (drop < n && held > this.capacity) held -= 1 + this.kidCount(drop++);
    // The view is in the items' order: what leaves is at its front.
    let gone = 0;
    while (gone < this.viewLen && this.viewBuf[gone] < drop) gone++;
    if (gone) this.events.trimming?.(gone);
    for (let i = 0; i < drop; i++) {
      if (this.rows.isExchange(i)) this.exchangeCount--;
      for (const k of this.kidsOf(i)) {
        if (k.kind === 'exchange') this.exchangeCount--;
        this.kidParent.delete(k.id);
        this.forget(k.id);
      }
    }
    if (this.expanded.size || this.decoded.size) {
      for (let i = 0; i < drop; i++) this.forget(this.rows.id(i));
    }
    this.rows.dropFront(drop);
    if (this.kids.size) {
      const kids = new Map<number, LogRow[]>();
      for (const [i, list] of this.kids) if (i >= drop) kids.set(i - drop, list);
      this.kids = kids;
    }
    this.viewBuf.copyWithin(0, gone, this.viewLen);
    this.viewLen -= gone;
    for (let k = 0; k < this.viewLen; k++) this.viewBuf[k] -= drop;
    this.held = held;
    this.viewLimit = Math.max(0, this.viewLimit - drop);
    if (drop) this.events.dropped?.(drop);
    return gone;
  }

  private forget(id: string): void {
    this.expanded.delete(id);
    this.decoded.delete(id);
  }

  private itemMatches(i: number, needle: string): boolean {
    const f = this.filter;
    const row = this.rows.row(i);
    const passes = rowPasses(row, f);
    const self = passes && (!needle || textMatches(this.rows.searchOf(i, searchText), needle));
    // An exchange stays visible when one of its automatic steps matches.
    return self || (needle !== '' && passes && this.kidsOf(i).some((k) => textMatches(searchText(k), needle)));
  }

  private extendView(from: number): void {
    const needle = needleOf(this.filter);
    const f = this.filter;
    const active = needle || f.reader || f.client || !f.success || !f.warning || !f.error || !f.events;
    const need = this.viewLen + (this.viewLimit - from);
    if (this.viewBuf.length < need) {
      const next = new Int32Array(Math.max(need, this.viewBuf.length * 2));
      next.set(this.viewBuf.subarray(0, this.viewLen));
      this.viewBuf = next;
    }
    for (let i = from; i < this.viewLimit; i++) {
      if (!active || this.itemMatches(i, needle)) this.viewBuf[this.viewLen++] = i;
    }
  }
}
