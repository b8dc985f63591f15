// The APDU Log panel's row model: the rows the panel holds, the automatic steps nested under
// their exchange, the filtered view, the pause, and the queue of rows not taken in yet.
// Pure (no DOM): main.ts renders it as a virtual list, unit tests drive it directly.
import { rowText } from './format';
import { needleOf, rowPasses, searchText, textMatches } from './filter';
import { logHighWater, type DecodedExchange, type LogFilter, type LogRow, type TrimmedRow } from './protocol';

/** A top-level row and the automatic steps nested under it. */
export interface Item {
  row: LogRow;
  kids: LogRow[];
  /** Measured height in px, for the virtual list; undefined until rendered (or after it changed). */
  h?: number;
  search?: string;
}

/** An expanded exchange's details: asked for, decoded, failed, or no longer in the extension's log. */
export type DecodeState = DecodedExchange | Error | 'loading' | 'trimmed';

/** What the model tells the page about, as it happens. */
export interface ModelEvents {
  /** A reader seen for the first time (the reader filter lists it). */
  reader?(name: string): void;
  /** A client (a row's `client`) seen for the first time (the client filter lists it). */
  client?(name: string): void;
  /** An item's content changed (an automatic step arrived): its element and height are stale. */
  changed?(it: Item): void;
  /** A script run started (a live `scriptStarted` row, not one from the history sent after a reset). */
  runStarted?(it: Item): void;
}

/** Shared by every row without automatic steps (most of them), until one arrives. */
const NO_KIDS: LogRow[] = [];
/** Nothing left the view (nearly every frame). */
const NONE: readonly Item[] = [];
/**
 * Rows arrive as fresh copies of the same few strings (reader, status word meaning, script
 * URI…). Keeping one copy of each shrinks the webview's heap with 100,000 rows (143 → 118 MB
 * measured), and with it the browser's garbage-collection pauses.
 */
const SHARED_FIELDS = ['kind', 'reader', 'client', 'command', 'response', 'sw', 'swMeaning', 'swCategory', 'auto', 'uri', 'file'] as const;

/** Commands and responses up to this many hex digits are shared too. */
const SHARED_HEX_MAX = 24;

/** Row ids are `generation:seq`; this orders them. */
function idOrder(id: string): number {
  const [gen, seq] = id.split(':').map(Number);
  return (gen || 0) * 1e12 + (seq || 0);
}

export class LogModel {
  /** Every top-level row held, oldest first. */
  readonly items: Item[] = [];
  /** What is shown: the items passing the filter, up to `viewLimit` (the model's length unless paused). */
  view: Item[] = [];
  readonly expanded = new Set<string>();
  readonly decoded = new Map<string, DecodeState>();

  private readonly itemById = new Map<string, Item>();
  /** Automatic step id → the id of the exchange it belongs to. */
  private readonly kidParent = new Map<string, string>();
  /** Automatic steps that arrived before the exchange they belong to. */
  private readonly orphans = new Map<string, LogRow[]>();
  private readonly interned = new Map<string, string>();
  private readonly readersSeen = new Set<string>();
  private readonly clientsSeen = new Set<string>();
  private exchangeCount = 0;
  /** Rows held: top-level rows, their steps, and steps still waiting for their exchange. */
  private held = 0;
  private viewLimit = 0;
  private pausedNow = false;
  private arrived = 0;
  private queue: LogRow[][] = [];
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
  /** Exchanges held, automatic steps included (the toolbar's count). */
  get exchanges(): number { return this.exchangeCount; }
  /** Rows received but not taken in yet. */
  get queuedRows(): number { return this.queued; }
  get paused(): boolean { return this.pausedNow; }
  /** Top-level rows that arrived while paused. */
  get arrivedWhilePaused(): number { return this.arrived; }

  /**
   * A `rows` message from the extension (the model takes the array over); `reset` replaces
   * everything held (the history after `ready`, or a clear) and ends a pause.
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
   * Takes up to `budget` queued rows in, then trims the oldest rows past the bound. Returns
   * the entries that left the front of the view (the virtual list keeps its place by them).
   */
  ingest(budget: number): readonly Item[] {
    const before = this.items.length;
    while (this.queue.length && budget > 0) {
      const batch = this.queue[0];
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
    const added = this.items.length - before;
    const gone = this.trim();
    if (this.pausedNow) {
      this.arrived += added;
    } else if (this.items.length !== this.viewLimit) {
      const from = this.viewLimit;
      this.viewLimit = this.items.length;
      this.extendView(from);
    }
    return gone;
  }

  /** The filter changed: the view is built again. */
  rebuildView(): void {
    const needle = needleOf(this.filter);
    const f = this.filter;
    const active = needle || f.reader || f.client || !f.success || !f.warning || !f.error || !f.events;
    const view: Item[] = [];
    for (let i = 0; i < this.viewLimit; i++) if (!active || this.itemMatches(this.items[i], needle)) view.push(this.items[i]);
    this.view = view;
  }

  /** Pausing holds the view still; rows keep arriving (and counting). Resuming shows them. */
  setPaused(on: boolean): void {
    if (this.pausedNow === on) return;
    this.pausedNow = on;
    if (!on) {
      this.arrived = 0;
      const from = this.viewLimit;
      this.viewLimit = this.items.length;
      this.extendView(from);
    }
  }

  /**
   * Expands or collapses a row (a top-level one or an automatic step). Returns the item to
   * render again, and whether the row's decoding must be asked for; undefined for a row not held.
   */
  toggle(id: string): { item: Item; decode: boolean } | undefined {
    const item = this.itemOf(id);
    if (!item) return undefined;
    const row = item.row.id === id ? item.row : item.kids.find((k) => k.id === id);
    if (!row) return undefined;
    let decode = false;
    if (this.expanded.has(id)) this.expanded.delete(id);
    else {
      this.expanded.add(id);
      if (row.kind === 'exchange' && !this.decoded.has(id)) {
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
  decodedAs(id: string, answer: DecodedExchange | TrimmedRow | Error): Item | undefined {
    if (this.decoded.get(id) !== 'loading') return undefined;
    const item = this.itemOf(id);
    if (!item) { this.decoded.delete(id); return undefined; }
    this.decoded.set(id, answer instanceof Error ? answer : 'trimmed' in answer ? 'trimmed' : answer);
    return item;
  }

  /** The item a row belongs to (itself, or the exchange of an automatic step). */
  itemOf(id: string): Item | undefined {
    return this.itemById.get(this.kidParent.get(id) ?? id);
  }

  /**
   * How many rows of this kind whose trace text contains `text`, and (manager rows) in `state`
   * (for tests and the benchmark).
   */
  count(kind: string, text = '', state?: string): number {
    let n = 0;
    for (const it of this.items) {
      for (const r of [it.row, ...it.kids]) {
        if (r.kind === kind && (state === undefined || (r.kind === 'manager' && r.state === state)) && rowText(r).includes(text)) n++;
      }
    }
    return n;
  }

  // ---------------------------------------------------------------- inside

  private clear(): void {
    this.items.length = 0;
    this.itemById.clear();
    this.kidParent.clear();
    this.orphans.clear();
    this.expanded.clear();
    this.decoded.clear();
    this.readersSeen.clear();
    // The reader filter keeps its choice listed, rows of that reader or not.
    if (this.filter.reader) this.readersSeen.add(this.filter.reader);
    this.clientsSeen.clear();
    this.exchangeCount = 0;
    this.held = 0;
    this.view = [];
    this.viewLimit = 0;
    this.pausedNow = false;
    this.arrived = 0;
  }

  private shareStrings(r: LogRow): void {
    const fields = r as unknown as Record<string, unknown>;
    for (const k of SHARED_FIELDS) {
      const v = fields[k];
      if (typeof v !== 'string') continue;
      // A command or response is shared only while short (a status word, a SELECT, a READ
      // BINARY's header): those repeat through a run; long data rarely does.
      if ((k === 'command' || k === 'response') && v.length > SHARED_HEX_MAX) continue;
      const known = this.interned.get(v);
      if (known !== undefined) fields[k] = known;
      else if (this.interned.size < 10_000) this.interned.set(v, v);
    }
  }

  private addRow(r: LogRow): void {
    this.shareStrings(r);
    this.held++;
    if (r.reader && !this.readersSeen.has(r.reader)) {
      this.readersSeen.add(r.reader);
      this.events.reader?.(r.reader);
    }
    if (r.client && !this.clientsSeen.has(r.client)) {
      this.clientsSeen.add(r.client);
      this.events.client?.(r.client);
    }
    if (r.kind === 'exchange') this.exchangeCount++;
    const parentId = r.kind === 'exchange' ? r.parent : undefined;
    if (parentId) {
      const p = this.itemById.get(parentId);
      if (p) { this.attachKid(p, r); return; }
      this.orphans.set(parentId, [...(this.orphans.get(parentId) ?? []), r]);
      // Automatic steps whose exchange never came are shown on their own rather than lost.
      if (this.orphans.size > 100) this.flushOrphans(() => true);
      return;
    }
    const it: Item = { row: r, kids: this.orphans.get(r.id) ?? NO_KIDS };
    this.orphans.delete(r.id);
    for (const k of it.kids) this.kidParent.set(k.id, r.id);
    this.items.push(it);
    this.itemById.set(r.id, it);
    if (r.kind === 'scriptStarted' && !this.resetPending) this.events.runStarted?.(it);
  }

  private attachKid(p: Item, r: LogRow): void {
    if (p.kids === NO_KIDS) p.kids = [r];
    else p.kids.push(r);
    this.kidParent.set(r.id, p.row.id);
    p.search = undefined;
    this.events.changed?.(p);
  }

  private flushOrphans(which: (parentId: string) => boolean): void {
    for (const [parent, rows] of [...this.orphans]) {
      if (!which(parent)) continue;
      this.orphans.delete(parent);
      for (const r of rows) {
        const it: Item = { row: r, kids: NO_KIDS };
        this.items.push(it);
        this.itemById.set(r.id, it);
      }
    }
  }

  /**
   * Past the high-water mark, drops the oldest items (with their steps) until `capacity` rows
   * are left, as the extension's store does. Returns the entries that left the front of the view.
   */
  private trim(): readonly Item[] {
    if (this.held <= logHighWater(this.capacity)) return NONE;
    let drop = 0;
    let held = this.held;
    while (drop < this.items.length && held > this.capacity) held -= 1 + this.items[drop++].kids.length;
    for (const it of this.items.splice(0, drop)) {
      this.forget(it.row);
      for (const k of it.kids) { this.forget(k); this.kidParent.delete(k.id); }
      this.itemById.delete(it.row.id);
    }
    this.held = held;
    this.viewLimit = Math.max(0, this.viewLimit - drop);
    // The view is in the items' order: what left is at its front.
    let gone = 0;
    while (gone < this.view.length && !this.itemById.has(this.view[gone].row.id)) gone++;
    if (!gone) return NONE;
    const left = this.view.slice(0, gone);
    this.view = this.view.slice(gone);
    return left;
  }

  private forget(r: LogRow): void {
    if (r.kind === 'exchange') this.exchangeCount--;
    this.expanded.delete(r.id);
    this.decoded.delete(r.id);
  }

  private searchOf(it: Item): string {
    it.search ??= searchText(it.row);
    return it.search;
  }

  private itemMatches(it: Item, needle: string): boolean {
    const f = this.filter;
    const self = rowPasses(it.row, f) && (!needle || textMatches(this.searchOf(it), needle));
    // An exchange stays visible when one of its automatic steps matches.
    return self || (needle !== '' && it.kids.some((k) => rowPasses(it.row, f) && textMatches(searchText(k), needle)));
  }

  private extendView(from: number): void {
    const needle = needleOf(this.filter);
    for (let i = from; i < this.viewLimit; i++) {
      const it = this.items[i];
      if (this.itemMatches(it, needle)) this.view.push(it);
    }
  }
}
