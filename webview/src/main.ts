// The APDU Log panel: the virtual list and the wiring. Talks only to the extension, through
// ./protocol. No vscode or host imports here. The rows are held by ./model (pure) and built
// as elements by ./rows.
//
// A virtual list: the model's rows (what the extension holds, bounded alike) are an array; only
// the rows in view plus a small overscan are in the DOM, so rendering cost does not grow with
// the log. Collapsed rows have a fixed height (long hex is cut); expanded rows are measured.
import { rowText } from './format';
import { showAll, WORKBENCH_CLIENT } from './filter';
import { LogModel } from './model';
import { newExchangeFields } from './columns';
import { placeInOrder } from './order';
import { release, renderPlainExchange, renderRow, reusable } from './rows';
import {
  LOG_CAPACITY, type DecodedExchange, type ErrorValue, type HostMessage, type LogFilter, type TrimmedRow, type WebviewMessage,
  type WebviewRequestMethod, type WebviewRequests,
} from './protocol';

interface VsCodeApi { postMessage(msg: unknown): void; getState(): unknown; setState(s: unknown): void }
declare function acquireVsCodeApi(): VsCodeApi;
const host = acquireVsCodeApi();

/** Rows rendered above and below the viewport. */
const OVERSCAN = 8;
/**
 * Rows rendered above and below the viewport in a frame that jumped (no row in view was shown
 * before: a drag of the scroll bar, a jump through a long log). Every row then rendered is new, and
 * the overscan's rows, out of view, were two thirds of the rendering of such a frame; the frame
 * after, if the scroll stopped, renders the full overscan (`overscanLater`).
 */
const JUMP_OVERSCAN = 1;
/** Rows taken from the queue per frame, so a long history never blocks a frame for long. */
const INGEST_PER_FRAME = 25_000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const scroller = $<HTMLElement>('scroller');
const spacer = $<HTMLElement>('spacer');
const logEl = $<HTMLElement>('log');
const emptyEl = $<HTMLElement>('empty');
const countEl = $<HTMLElement>('count');
const stateEl = $<HTMLElement>('state');
const filterEl = $<HTMLInputElement>('filter');
const readerEl = $<HTMLSelectElement>('reader');
const clientEl = $<HTMLSelectElement>('client');
const followEl = $<HTMLButtonElement>('follow');
const eventsEl = $<HTMLButtonElement>('showEvents');
const swEls = { success: $<HTMLButtonElement>('swSuccess'), warning: $<HTMLButtonElement>('swWarning'), error: $<HTMLButtonElement>('swError') };
const pauseEl = $<HTMLElement>('pause');
const arrivedEl = $<HTMLElement>('arrived');
const clearEl = $<HTMLElement>('clear');
const copyEl = $<HTMLElement>('copy');
const exportEl = $<HTMLElement>('export');
/** "No rows match" when a filter hides every row (created here: the page's HTML stays the extension's). */
const noMatchEl = Object.assign(document.createElement('p'), { id: 'nomatch', hidden: true });
emptyEl.after(noMatchEl);
/** "N new rows ↓": rows arrived below the view while Follow is off; a click goes there and follows. */
const newRowsEl = Object.assign(document.createElement('button'), { id: 'newRows', hidden: true, type: 'button' });
scroller.after(newRowsEl);

// ---------------------------------------------------------------- requests

let nextId = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

function post(msg: WebviewMessage): void {
  host.postMessage(msg);
}

function request<M extends WebviewRequestMethod>(method: M, params: WebviewRequests[M]['params']): Promise<WebviewRequests[M]['result']> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    post({ type: 'request', id, method, params } as WebviewMessage);
  });
}

function settle(id: number, result: unknown, error?: ErrorValue): void {
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  if (error) p.reject(Object.assign(new Error(error.message), { code: error.code }));
  else p.resolve(result);
}

// ---------------------------------------------------------------- state kept across reloads

interface SavedState { filter: LogFilter; follow: boolean }
const saved = host.getState() as Partial<SavedState> | undefined;
const filter: LogFilter = { ...showAll, ...(saved?.filter ?? {}) };
let follow = saved?.follow ?? true;

function saveState(): void {
  host.setState({ filter, follow } satisfies SavedState);
}

// ---------------------------------------------------------------- the model and the virtual list

const model = new LogModel(filter, LOG_CAPACITY, {
  reader: (name) => addReaderOption(name),
  client: (name) => addClientOption(name),
  changed: (it) => changed(it),
  trimming: (count) => trimming(count),
  dropped: (count) => dropped(count),
  // A new run is what the user is waiting for: Follow comes back on, and the view goes to it.
  runStarted: () => { if (!follow) setFollow(true); },
});
/** Rows added to the view below what is shown since Follow went off. */
let newBelow = 0;
const { expanded } = model;

/** Offsets of the view's rows: `offsets[i]` is the top of row i; valid for the first `offsetsCount` rows. */
let offsets = new Float64Array(1);
let offsetsValid = false;
let offsetsCount = 0;
/** Typical heights, learnt from the first rows measured. */
const base = { exchange: 40, control: 40, line: 22, kid: 40 };
const learnt = new Set<string>();

const shapeOf = (kind: string): keyof typeof base => (kind === 'exchange' ? 'exchange' : kind === 'control' ? 'control' : 'line');
/** An item's height: measured, or its shape's with its automatic steps. */
const estimate = (it: number) => model.height(it) ?? base[shapeOf(model.kind(it))] + model.kidCount(it) * base.kid;

/** Room for `need` offsets: the history's length told at a reset when it holds them (sized once), else twice what is needed. */
const offsetsRoom = (need: number) => Math.max(1024, need <= model.reserved + 1 ? model.reserved + 1 : need * 2);

function recomputeOffsets(): void {
  const view = model.view;
  if (offsets.length < view.length + 1) offsets = new Float64Array(offsetsRoom(view.length + 1));
  offsets[0] = 0;
  for (let i = 0; i < view.length; i++) offsets[i + 1] = offsets[i] + estimate(view[i]);
  offsetsValid = true;
  offsetsCount = view.length;
}

/** Offsets for rows added to the end of the view since they were computed. */
function syncOffsets(): void {
  if (!offsetsValid) { recomputeOffsets(); return; }
  if (offsetsCount >= model.viewLength) return;
  const view = model.view;
  if (offsets.length < view.length + 1) {
    const next = new Float64Array(offsetsRoom(view.length + 1));
    next.set(offsets);
    offsets = next;
  }
  for (let i = offsetsCount; i < view.length; i++) offsets[i + 1] = offsets[i] + estimate(view[i]);
  offsetsCount = view.length;
}

/** First index whose bottom is below y. */
function indexAt(y: number): number {
  const n = model.viewLength;
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (offsets[mid + 1] <= y) lo = mid + 1;
    else hi = mid;
  }
  return Math.min(lo, Math.max(0, n - 1));
}

/** Everything is sent again (a clear, or the panel shown again): the pause ends with it. */
function resetShown(): void {
  showPaused();
  offsetsValid = false;
  dropRendered();
  readerEl.replaceChildren(new Option('All readers', ''));
  if (filter.reader) addReaderOption(filter.reader);
  resetClientOptions();
}

/**
 * The client filter: shown once a row names a client (or while a client is chosen), with
 * "workbench" for the rows of the workbench's own scripts.
 */
function resetClientOptions(): void {
  clientEl.replaceChildren(new Option('All clients', ''), new Option('workbench', WORKBENCH_CLIENT));
  clientEl.hidden = !filter.client;
  if (filter.client && filter.client !== WORKBENCH_CLIENT) addClientOption(filter.client);
  clientEl.value = filter.client ?? '';
}

function addClientOption(name: string): void {
  clientEl.hidden = false;
  if ([...clientEl.options].some((o) => o.value === name)) return;
  clientEl.append(new Option(name, name, false, name === filter.client));
  if (name === filter.client) clientEl.value = name;
}

function addReaderOption(name: string): void {
  if ([...readerEl.options].some((o) => o.value === name)) return;
  readerEl.append(new Option(name, name, false, name === filter.reader));
  if (name === filter.reader) readerEl.value = name;
}

/** The oldest `count` items were dropped: the rows in the DOM are found by their new numbers (-2: trimmed). */
function dropped(count: number): void {
  for (let k = 0; k < shownItems.length; k++) {
    const it = shownItems[k];
    if (it >= 0) shownItems[k] = it >= count ? it - count : -2;
  }
}

/** The oldest rows are being trimmed and the view's first `count` go with them: the rows in view stay where they are. */
function trimming(count: number): void {
  if (!(follow && !model.paused)) {
    let height = 0;
    for (let k = 0; k < count; k++) height += estimate(model.viewAt(k));
    setScrollTop(Math.max(0, scroller.scrollTop - height));
  }
  offsetsValid = false;
}

// ---------------------------------------------------------------- layout, one per frame

// The rows in the DOM, in the view's order from `first`: item number, id and element, in three
// arrays kept from frame to frame. A row staying in view keeps its id (made once, when it came
// in); a frame makes no map entry, set entry, iterator or id string for the rows it keeps, and
// finds them by item number (the view is in the items' order) without allocating.
let shownItems: number[] = [];
let shownIds: string[] = [];
let shownRows: HTMLElement[] = [];
// The next frame's arrays, swapped with the shown ones.
let nextItems: number[] = [];
let nextIds: string[] = [];
let nextRows: HTMLElement[] = [];

/** The element of the row with this id in the DOM, if it is there. */
function shownById(id: string): HTMLElement | undefined {
  const k = shownIds.indexOf(id);
  return k < 0 ? undefined : shownRows[k];
}

/** The element of the row of this item in the DOM, if it is there. */
function shownByItem(it: number): HTMLElement | undefined {
  const k = shownItems.indexOf(it);
  return k < 0 ? undefined : shownRows[k];
}
let first = 0;
let last = -1;
/** The spacer's height as last written. */
let shownHeight = -1;
/** The list's translateY as last written (NaN: to be written). */
let shownShift = NaN;
let expectedTop = 0;
let frameScheduled = false;
let focusWanted = false;
let activeId: string | undefined;

function dropRendered(): void {
  shownItems.length = 0;
  shownIds.length = 0;
  shownRows.length = 0;
  shownShift = NaN;
  logEl.replaceChildren();
  first = 0;
  last = -1;
}

function changed(it: number): void {
  model.setHeight(it, undefined);
  offsetsValid = false;
  // Rendered again at the next frame (its element stays until then).
  const k = shownItems.indexOf(it);
  if (k >= 0) shownItems[k] = -1;
  schedule();
}

/** The scheduled frame, if it has not run yet (by requestAnimationFrame or by the fallback timer). */
const runFrame = () => { if (frameScheduled) { frameScheduled = false; frame(); } };
/** Whether the fallback timer is armed. */
let fallbackArmed = false;
const fallback = () => { fallbackArmed = false; runFrame(); };

function schedule(): void {
  if (frameScheduled) return;
  frameScheduled = true;
  // requestAnimationFrame, with a timer for when frames are throttled (a panel in the background).
  // One timer at a time: a scroll schedules a frame every frame, and a timer armed for each was
  // one more task per frame for the renderer's main thread (it finds the frame run and does nothing).
  // A timer armed for an earlier frame runs a frame scheduled since at most 50 ms after it was armed.
  requestAnimationFrame(runFrame);
  if (!fallbackArmed) { fallbackArmed = true; setTimeout(fallback, 50); }
}

/** Whether a frame after a jump is asked for (to render the full overscan if the scroll stopped). */
let overscanAsked = false;
/**
 * The frame after a jump, by requestAnimationFrame only: a frame scheduled the usual way (schedule)
 * could run from its fallback timer between two frames of a scroll, and render the full overscan
 * that the next jump takes out again.
 */
function overscanLater(): void {
  if (overscanAsked) return;
  overscanAsked = true;
  requestAnimationFrame(() => { overscanAsked = false; if (!frameScheduled) frame(); });
}

function setScrollTop(y: number): void {
  scroller.scrollTop = y;
  expectedTop = scroller.scrollTop;
}

/** Time spent in our own per-frame work (for the benchmark: what is ours and what is the browser's). */
const work = { frames: 0, totalMs: 0, maxMs: 0 };

function frame(): void {
  const t0 = performance.now();
  if (model.queuedRows) {
    const shownBefore = model.viewLength;
    const gone = model.ingest(INGEST_PER_FRAME);
    if (!follow && !model.paused) newBelow += Math.max(0, model.viewLength - shownBefore + gone);
  }
  if (model.queuedRows) schedule();
  syncOffsets();
  layout();
  updateCounts();
  showNewRows();
  const ms = performance.now() - t0;
  work.frames++;
  work.totalMs += ms;
  work.maxMs = Math.max(work.maxMs, ms);
}

function layout(): void {
  // The view's length, not the view (`model.view` makes a typed array each call).
  const n = model.viewLength;
  const paused = model.paused;
  // An anchor keeps the row at the top of the view in place while heights above it are learnt.
  const anchor = n ? indexAt(scroller.scrollTop) : 0;
  const anchorDelta = n ? scroller.scrollTop - offsets[anchor] : 0;
  let overscan = OVERSCAN;
  for (let pass = 0; pass < 3; pass++) {
    const total = offsets[n];
    if (shownHeight !== total) {
      shownHeight = total;
      spacer.style.height = `${total}px`;
    }
    if (follow && !paused) setScrollTop(offsets[n]);
    else if (pass > 0 && n) setScrollTop(offsets[anchor] + anchorDelta);
    const top = scroller.scrollTop;
    const height = scroller.clientHeight || 600;
    const inView = indexAt(top);
    const inViewLast = indexAt(top + height);
    // A jump (rows were shown, none of those now in view): the small overscan, and a frame after
    // this one, which renders the full overscan when the scroll has stopped there.
    if (pass === 0 && last >= first && (inViewLast < first || inView > last)) {
      overscan = JUMP_OVERSCAN;
      overscanLater();
    }
    const start = Math.max(0, inView - overscan);
    const end = n ? Math.min(n - 1, inViewLast + overscan) : -1;
    renderRange(start, end);
    if (!measure()) break;
    recomputeOffsets();
  }
  if (focusWanted && activeId) {
    focusWanted = false;
    shownById(activeId)?.focus({ preventScroll: true });
  }
}

/** Elements of rows that left the view, refilled for the rows arriving (in the order they were shown). */
const leaving: HTMLElement[] = [];
/** The list's children before a frame's changes (a copy: the live collection changes as they move). */
const childEls: HTMLElement[] = [];
const listOps = {
  remove: (el: HTMLElement) => el.remove(),
  insertBefore: (el: HTMLElement, before: HTMLElement | null) => logEl.insertBefore(el, before),
};
/** Per shown row (by position): kept in the next frame. */
let kept = new Uint8Array(64);
/** Filled for each plain exchange entering the view (no row object made for it). */
const fields = newExchangeFields();

function renderRange(start: number, end: number): void {
  const count = end - start + 1;
  const before = shownItems.length;
  if (kept.length < before) kept = new Uint8Array(before * 2);
  kept.fill(0, 0, before);
  nextItems.length = 0;
  nextIds.length = 0;
  nextRows.length = 0;
  // The rows staying: both lists are in the items' order, so one pass over each finds them.
  let k = 0;
  for (let i = start; i <= end; i++) {
    const it = model.viewAt(i);
    while (k < before && shownItems[k] < it) k++;
    nextItems.push(it);
    if (k < before && shownItems[k] === it) {
      kept[k] = 1;
      nextIds.push(shownIds[k]);
      nextRows.push(shownRows[k]);
      k++;
    } else {
      nextIds.push('');
      nextRows.push(logEl);
    }
  }
  // A row changed (-1) is made again, not refilled; a trimmed one's element (-2) is reused.
  for (let j = 0; j < before; j++) if (!kept[j] && shownItems[j] !== -1 && reusable(shownRows[j])) leaving.push(shownRows[j]);
  // Rows arriving take the leaving rows' elements in order: a jump of a whole page refills the
  // same elements in the same places, and the DOM's structure does not change at all.
  let next = 0;
  for (let j = 0; j < count; j++) {
    let el = nextRows[j];
    let id = nextIds[j];
    if (el === logEl) {
      const it = nextItems[j];
      id = model.id(it);
      nextIds[j] = id;
      const reuse = next < leaving.length ? leaving[next] : undefined;
      el = !model.kidCount(it) && !(expanded.size && expanded.has(id)) && model.exchangeFields(it, fields, id)
        ? renderPlainExchange(model, fields, reuse)
        : renderRow(model, model.row(it), model.kidsOf(it), true, reuse);
      if (el === reuse) next++;
      nextRows[j] = el;
    }
    const active = id === activeId;
    if (el.classList.contains('active') !== active) el.classList.toggle('active', active);
  }
  for (let i = next; i < leaving.length; i++) release(leaving[i]);
  leaving.length = 0;
  const items = shownItems; shownItems = nextItems; nextItems = items;
  const ids = shownIds; shownIds = nextIds; nextIds = ids;
  const rows = shownRows; shownRows = nextRows; nextRows = rows;
  const els = shownRows;
  const children = logEl.children;
  let same = children.length === els.length;
  for (let i = 0; same && i < els.length; i++) same = children[i] === els[i];
  if (!same) {
    // The fewest moves: a row re-inserted is restyled and laid out again, so taking them all out
    // and back (when only the number of rows in view changed) made a frame redo every row.
    childEls.length = 0;
    for (let i = 0; i < children.length; i++) childEls.push(children[i] as HTMLElement);
    placeInOrder(childEls, els, listOps);
  }
  first = start;
  last = end;
  const y = model.viewLength ? offsets[start] : 0;
  if (y !== shownShift) {
    shownShift = y;
    logEl.style.transform = `translateY(${y}px)`;
  }
}

/**
 * Reads the heights of the rendered rows; true when one differs from what the offsets assumed.
 * A collapsed row without automatic steps has its shape's fixed height: once that is learnt only
 * one such row per frame is read (a row that differs keeps its own height), so a scroll through
 * plain rows reads one height instead of every row's.
 */
function measure(): boolean {
  let differs = false;
  let probed = false;
  for (let i = first; i <= last; i++) {
    const it = model.viewAt(i);
    const id = shownIds[i - first];
    const plain = !model.kidCount(it) && !(expanded.size && expanded.has(id));
    const shape = shapeOf(model.kind(it));
    const own = model.height(it);
    if (plain && learnt.has(shape) && own === undefined) {
      if (probed) continue;
      probed = true;
    }
    const el = shownRows[i - first];
    if (!el) continue;
    const h = el.offsetHeight;
    if (!h) continue;
    if (plain && !learnt.has(shape)) {
      learnt.add(shape);
      if (base[shape] !== h) { base[shape] = h; differs = true; }
    }
    const off = Math.abs(offsets[i + 1] - offsets[i] - h) > 0.5;
    if (off) differs = true;
    // A plain row keeps its shape's height unless it has one of its own.
    if (!plain || off || own !== undefined) model.setHeight(it, h);
  }
  return differs;
}

/** What the toolbar shows, as last written: compared value by value (a key string made each frame was garbage). */
const shownCounts = { exchanges: -1, viewLength: -1, itemCount: -1, queued: false, paused: false, arrivedWhilePaused: -1 };

function updateCounts(): void {
  const { exchanges, viewLength, itemCount, queuedRows, paused, arrivedWhilePaused } = model;
  const c = shownCounts;
  const queued = queuedRows > 0;
  if (c.exchanges === exchanges && c.viewLength === viewLength && c.itemCount === itemCount && c.queued === queued
    && c.paused === paused && c.arrivedWhilePaused === arrivedWhilePaused) return;
  Object.assign(c, { exchanges, viewLength, itemCount, queued, paused, arrivedWhilePaused });
  countEl.textContent = String(exchanges);
  countEl.title = `${exchanges} exchange(s); ${viewLength} row(s) shown of ${itemCount}`;
  emptyEl.hidden = itemCount > 0 || queuedRows > 0;
  arrivedEl.hidden = !paused;
  arrivedEl.textContent = `Paused: ${arrivedWhilePaused} new row${arrivedWhilePaused === 1 ? '' : 's'}`;
  showNoMatch();
}

/** "No rows match" beside an empty view that a filter made empty; what the filter is, in words. */
function showNoMatch(): void {
  const none = model.itemCount > 0 && model.viewLength === 0 && !model.queuedRows;
  noMatchEl.hidden = !none;
  if (!none) return;
  const what: string[] = [];
  if (filter.text.trim()) what.push(`"${filter.text.trim()}"`);
  if (filter.reader) what.push(`reader ${filter.reader}`);
  if (filter.client) what.push(filter.client === WORKBENCH_CLIENT ? 'the workbench\'s rows' : `client ${filter.client}`);
  const hiddenSw = (['success', 'warning', 'error'] as const).filter((k) => !filter[k]);
  if (hiddenSw.length) what.push(`${hiddenSw.join(', ')} hidden`);
  if (!filter.events) what.push('events hidden');
  noMatchEl.textContent = `No rows match the filter${what.length ? ` (${what.join('; ')})` : ''}: ${model.itemCount} row${model.itemCount === 1 ? '' : 's'} hidden.`;
}

let shownNewBelow = -1;

/** The "new rows ↓" marker: shown while Follow is off and rows arrived below the view. */
function showNewRows(): void {
  const below = offsets[model.viewLength] > scroller.scrollTop + scroller.clientHeight + 4;
  if (!below) newBelow = 0;
  const on = !follow && !model.paused && newBelow > 0;
  if (newRowsEl.hidden !== !on) newRowsEl.hidden = !on;
  if (on && shownNewBelow !== newBelow) {
    shownNewBelow = newBelow;
    newRowsEl.textContent = `${newBelow} new row${newBelow === 1 ? '' : 's'} ↓`;
  }
}

// ---------------------------------------------------------------- interaction

function toggle(id: string): void {
  const t = model.toggle(id);
  if (!t) return;
  if (t.decode) {
    request('decode', { id }).then(
      (d) => decodedAs(id, d),
      (e: Error) => decodedAs(id, e),
    );
  }
  activeId = model.id(t.item);
  // The row opened stays where it is, read: Follow goes off, visibly (the button says so), and
  // comes back with the next run, the "new rows ↓" marker, End, or a scroll to the bottom.
  if (follow && model.expanded.has(id)) {
    const i = model.view.indexOf(t.item);
    if (i >= 0 && i < model.viewLength - 1) setFollow(false);
  }
  changed(t.item);
}

function decodedAs(id: string, answer: DecodedExchange | TrimmedRow | Error): void {
  const it = model.decodedAs(id, answer);
  if (it !== undefined) changed(it);
}

function setFollow(on: boolean): void {
  follow = on;
  if (on) newBelow = 0;
  showFollow();
  saveState();
  schedule();
}

/** The Follow button says its state in words, not only by its shade. */
function showFollow(): void {
  followEl.setAttribute('aria-pressed', String(follow));
  followEl.textContent = follow ? 'Follow: on' : 'Follow: off';
  followEl.title = follow ? 'Following the newest row; click to stay where you are' : 'Not following: new rows arrive below; click to follow the newest row';
}

function setPaused(on: boolean): void {
  if (model.paused === on) return;
  model.setPaused(on);
  showPaused();
  schedule();
}

function showPaused(): void {
  const paused = model.paused;
  // The icon follows aria-pressed (log.css).
  pauseEl.setAttribute('aria-label', paused ? 'Resume' : 'Pause');
  pauseEl.title = paused ? 'Resume: show the rows that arrived' : 'Pause: hold the view still; rows keep arriving';
  pauseEl.setAttribute('aria-pressed', String(paused));
}

function filterChanged(): void {
  saveState();
  model.rebuildView();
  offsetsValid = false;
  dropRendered();
  schedule();
}

function showError(err: Error): void {
  stateEl.textContent = err.message;
  stateEl.title = err.message;
  stateEl.dataset.state = 'error';
}

function moveActive(to: (index: number) => number): void {
  const view = model.view;
  if (!view.length) return;
  syncOffsets();
  const activeItem = activeId ? model.itemOf(activeId) : undefined;
  const cur = activeItem === undefined ? -1 : view.indexOf(activeItem);
  const next = Math.max(0, Math.min(view.length - 1, to(cur < 0 ? indexAt(scroller.scrollTop) : cur)));
  activeId = model.id(view[next]);
  // Bring it into view.
  const top = offsets[next];
  const bottom = offsets[next + 1];
  if (top < scroller.scrollTop) setScrollTop(top);
  else if (bottom > scroller.scrollTop + scroller.clientHeight) setScrollTop(bottom - scroller.clientHeight);
  if (next !== view.length - 1 && follow) setFollow(false);
  focusWanted = true;
  schedule();
}

// ---------------------------------------------------------------- wiring

window.addEventListener('message', (ev: MessageEvent<HostMessage>) => {
  const msg = ev.data;
  switch (msg?.type) {
    case 'rows':
      model.receive(msg.rows, msg.reset);
      if (msg.reset) resetShown();
      schedule();
      break;
    case 'packedRows':
      // Not expected (the extension packs what it sends): said, not swallowed; the rows of that batch are missing.
      if (!model.receivePacked(msg.rows, msg.reset, msg.total)) { showError(new Error('The APDU Log could not read part of its history: reopen the panel.')); break; }
      if (msg.reset) resetShown();
      schedule();
      break;
    case 'state':
      stateEl.dataset.state = msg.state;
      stateEl.textContent = `Reader manager: ${msg.state}${msg.state === 'running' ? ` (${msg.readers} reader${msg.readers === 1 ? '' : 's'})` : ''}`;
      // The toolbar may cut the text short: the tooltip has it whole.
      stateEl.title = msg.detail ? `${stateEl.textContent}: ${msg.detail}` : stateEl.textContent;
      break;
    case 'response': settle(msg.id, msg.result); break;
    case 'error': settle(msg.id, undefined, msg.error); break;
  }
});

scroller.addEventListener('scroll', () => {
  // A scroll the user made (not ours): follow while at the bottom, stop following above it.
  if (Math.abs(scroller.scrollTop - expectedTop) > 1) {
    expectedTop = scroller.scrollTop;
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 4;
    if (atBottom !== follow) setFollow(atBottom);
  }
  schedule();
}, { passive: true });
// A resize may change the rows' shapes (a short view puts a collapsed row on one line, see
// log.css): their heights are learnt again.
new ResizeObserver(() => { learnt.clear(); offsetsValid = false; schedule(); }).observe(scroller);

logEl.addEventListener('click', (ev) => {
  const target = ev.target as HTMLElement;
  const link = target.closest<HTMLElement>('.link');
  if (link?.dataset.uri) {
    request('revealLine', { uri: link.dataset.uri, line: Number(link.dataset.line) }).catch(showError);
    return;
  }
  if (target.closest('.details') || !(window.getSelection()?.isCollapsed ?? true)) return;
  const row = target.closest<HTMLElement>('.row');
  if (row?.dataset.id) toggle(row.dataset.id);
});

scroller.addEventListener('keydown', (ev) => {
  const page = Math.max(1, Math.floor(scroller.clientHeight / base.exchange) - 1);
  switch (ev.key) {
    case 'ArrowDown': moveActive((i) => i + 1); break;
    case 'ArrowUp': moveActive((i) => i - 1); break;
    case 'PageDown': moveActive((i) => i + page); break;
    case 'PageUp': moveActive((i) => i - page); break;
    case 'Home': moveActive(() => 0); break;
    case 'End': moveActive(() => model.viewLength - 1); setFollow(true); break;
    case 'Enter':
    case ' ': {
      const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>('.row');
      const id = focused?.dataset.id ?? activeId;
      if (!id) return;
      toggle(id);
      focusWanted = true;
      break;
    }
    default: return;
  }
  ev.preventDefault();
});

filterEl.setAttribute('value', filter.text); // before the toolkit upgrades the element
filterEl.addEventListener('input', () => { filter.text = (filterEl.value ?? '').toString(); filterChanged(); });
readerEl.addEventListener('change', () => { filter.reader = readerEl.value; filterChanged(); });
resetClientOptions();
clientEl.addEventListener('change', () => { filter.client = clientEl.value; filterChanged(); });
const pressed = (el: HTMLElement, on: boolean) => el.setAttribute('aria-pressed', String(on));
for (const [key, el] of Object.entries(swEls) as [keyof typeof swEls, HTMLButtonElement][]) {
  pressed(el, filter[key]);
  el.addEventListener('click', () => { filter[key] = !filter[key]; pressed(el, filter[key]); filterChanged(); });
}
pressed(eventsEl, filter.events);
eventsEl.addEventListener('click', () => { filter.events = !filter.events; pressed(eventsEl, filter.events); filterChanged(); });
showFollow();
followEl.addEventListener('click', () => setFollow(!follow));
newRowsEl.addEventListener('click', () => { setFollow(true); scroller.focus({ preventScroll: true }); });
pauseEl.addEventListener('click', () => setPaused(!model.paused));
clearEl.addEventListener('click', () => { request('clear', {}).catch(showError); });
// Copy the rows shown as a readable trace (automatic steps under their exchange).
copyEl.addEventListener('click', () => {
  const text = Array.from(model.view, (it) => [model.row(it), ...model.kidsOf(it)].map(rowText).join('\n')).join('\n');
  if (text.length >= 10_000_000) {
    showError(new Error('Too many rows to copy: filter them first, or use Export… to write them to a file.'));
    return;
  }
  request('copy', { text }).catch(showError);
});
exportEl.addEventListener('click', () => {
  request('export', { filter: { ...filter } }).then((r) => {
    if (!r) return;
    stateEl.dataset.state = 'info';
    stateEl.textContent = `Exported ${r.rows} row${r.rows === 1 ? '' : 's'} to ${r.path}`;
    stateEl.title = stateEl.textContent;
  }, showError);
});

/** For tests and the benchmark: what the model holds, without reading the DOM. */
Object.assign(window, { apduLog: {
  rows: () => model.size,
  shown: () => model.viewLength,
  pending: () => model.queuedRows,
  /** Our own work per frame since the last call (ms), then reset. */
  work: () => { const w = { ...work }; work.frames = 0; work.totalMs = 0; work.maxMs = 0; return w; },
  /** How many rows of this kind whose trace text contains `text` (manager rows: in `state`). */
  count: (kind: string, text = '', state?: string) => model.count(kind, text, state),
  /** Whether the panel follows the newest row, and the "new rows ↓" marker's count (0: hidden). */
  follow: () => follow,
  newRows: () => (newRowsEl.hidden ? 0 : newBelow),
  /** Whether the newest row of this kind is wholly inside the scroller's viewport. */
  inView: (kind: string) => {
    const view = model.view;
    let i = view.length - 1;
    while (i >= 0 && model.kind(view[i]) !== kind) i--;
    if (i < 0) return false;
    const el = shownByItem(view[i]);
    if (!el) return false;
    const a = el.getBoundingClientRect();
    const b = scroller.getBoundingClientRect();
    return a.height > 0 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  },
} });

updateCounts();
post({ type: 'ready' });
