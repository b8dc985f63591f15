// The APDU Log panel. Talks only to the extension, through ./protocol.
// No vscode or host imports here; everything is built with textContent (no HTML from data).
import { autoLabels, clock, duration, eventLabels, fileName, responseData, rowText, spacedHex } from './format';
import type { ErrorValue, HostMessage, LogRow, WebviewMessage, WebviewRequestMethod, WebviewRequests } from './protocol';

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void };
const host = acquireVsCodeApi();

/** Oldest rows leave the page beyond this (the extension keeps more). */
const MAX_DOM_ROWS = 5000;

const logEl = document.getElementById('log') as HTMLElement;
const emptyEl = document.getElementById('empty') as HTMLElement;
const countEl = document.getElementById('count') as HTMLElement;
const stateEl = document.getElementById('state') as HTMLElement;
const filterEl = document.getElementById('filter') as HTMLInputElement;
const followEl = document.getElementById('follow') as HTMLInputElement;
const eventsEl = document.getElementById('showEvents') as HTMLInputElement;
const clearEl = document.getElementById('clear') as HTMLElement;
const copyEl = document.getElementById('copy') as HTMLElement;

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

// ---------------------------------------------------------------- rendering

const byId = new Map<string, HTMLElement>();
const rowsById = new Map<string, LogRow>();
/** Automatic steps that arrived before the exchange they belong to. */
const orphans = new Map<string, HTMLElement[]>();
let exchanges = 0;

function span(cls: string, text: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = cls;
  s.textContent = text;
  return s;
}

function line(cls: string, ...children: (Node | string)[]): HTMLDivElement {
  const d = document.createElement('div');
  d.className = cls;
  d.append(...children);
  return d;
}

function lineLink(uri: string | undefined, n: number | undefined): HTMLElement | string {
  if (!n) return '';
  const a = span('line', `line ${n}`);
  if (uri) {
    a.classList.add('link');
    a.title = 'Show this line in the script';
    a.tabIndex = 0;
    a.addEventListener('click', () => { request('revealLine', { uri, line: n }).catch(showError); });
  }
  return a;
}

function render(r: LogRow): HTMLElement {
  const el = document.createElement('div');
  el.className = `row ${r.kind}`;
  el.dataset.kind = r.kind;
  el.dataset.id = r.id;
  if (r.reader) el.dataset.reader = r.reader;
  const meta = line('meta', span('time', clock(r.time)));
  switch (r.kind) {
    case 'exchange': {
      exchanges++;
      el.dataset.sw = r.sw.toUpperCase();
      el.classList.add(`sw-${r.swCategory}`);
      if (r.auto) {
        el.dataset.auto = r.auto;
        meta.append(span('auto', `↳ ${autoLabels[r.auto]}`));
      }
      meta.append(span('reader', r.reader), lineLink(r.uri, r.line), span('duration', duration(r.durationMs)));
      const data = responseData(r.response);
      // Response data, status word and meaning flow as one text after the `<`.
      const rsp = span('body', '');
      if (data) rsp.append(span('hex', spacedHex(data)), ' ');
      rsp.append(span('sw', spacedHex(r.sw)), ' ', span('meaning', r.swMeaning));
      el.append(meta, line('cmd', span('dir', '>'), span('body hex', spacedHex(r.command))), line('rsp', span('dir', '<'), rsp));
      const kids = document.createElement('div');
      kids.className = 'children';
      el.append(kids);
      break;
    }
    case 'control':
      meta.append(span('reader', r.reader), span('label', `control ${r.code}`), lineLink(r.uri, r.line), span('duration', duration(r.durationMs)));
      el.append(meta, line('cmd', span('dir', '>'), span('body hex', spacedHex(r.command))),
        line('rsp', span('dir', '<'), r.error ? span('body error', r.error) : span('body hex', spacedHex(r.response ?? ''))));
      break;
    case 'scriptStarted':
      meta.append(span('label', '▶ Script started'), r.file ? Object.assign(span('file', fileName(r.file)), { title: r.file }) : '');
      el.append(meta);
      break;
    case 'scriptEnded':
      el.dataset.ok = String(!!r.ok);
      meta.append(span('label', r.ok ? '✓ Script passed' : '✗ Script failed'), span('message', r.message ?? ''), lineLink(r.uri, r.line));
      el.append(meta);
      break;
    case 'echo':
      meta.append(span('label', 'echo'), span('message', r.message ?? ''), lineLink(r.uri, r.line));
      el.append(meta);
      break;
    case 'manager':
      el.dataset.state = r.state;
      meta.append(span('label', `Reader manager ${r.state}`), span('message', r.message));
      el.append(meta);
      break;
    default: {
      el.classList.add('event');
      const l = eventLabels[r.kind];
      meta.append(span('label', `${l.icon} ${l.text}`), span('reader', r.reader));
      if (r.atr) meta.append(span('atr', `ATR ${spacedHex(r.atr)}`));
      if (r.protocol !== undefined) meta.append(span('protocol', `T=${r.protocol}`));
      if (r.card) meta.append(span('card', r.card));
      el.append(meta);
    }
  }
  return el;
}

function matchesFilter(el: HTMLElement, f: string): boolean {
  if (!f) return true;
  const text = (el.textContent ?? '').toLowerCase();
  return text.includes(f) || text.replace(/\s+/g, '').includes(f.replace(/\s+/g, ''));
}

function add(rows: readonly LogRow[]): void {
  const f = filterEl.value?.trim().toLowerCase() ?? '';
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const el = render(r);
    byId.set(r.id, el);
    rowsById.set(r.id, r);
    if (f && !matchesFilter(el, f)) el.hidden = true;
    const parent = r.kind === 'exchange' && r.parent ? r.parent : undefined;
    if (parent) {
      const p = byId.get(parent)?.querySelector(':scope > .children');
      if (p) p.append(el);
      else orphans.set(parent, [...(orphans.get(parent) ?? []), el]);
      continue;
    }
    const waiting = orphans.get(r.id);
    if (waiting) {
      el.querySelector(':scope > .children')?.append(...waiting);
      orphans.delete(r.id);
    }
    frag.append(el);
  }
  logEl.append(frag);
  // Automatic steps whose parent never came are shown on their own rather than lost.
  if (orphans.size > 100) {
    for (const els of orphans.values()) logEl.append(...els);
    orphans.clear();
  }
  while (logEl.childElementCount > MAX_DOM_ROWS) {
    const first = logEl.firstElementChild as HTMLElement;
    for (const e of [first, ...first.querySelectorAll<HTMLElement>('[data-id]')]) {
      byId.delete(e.dataset.id ?? '');
      rowsById.delete(e.dataset.id ?? '');
    }
    first.remove();
  }
  updateCounts();
  if (followEl.checked !== false) logEl.lastElementChild?.scrollIntoView({ block: 'end' });
}

// Rows arriving close together are rendered once (one layout and one scroll per
// frame's worth of messages), and rows the DOM cap would drop at once are never built.
let queued: LogRow[] = [];
let renderTimer: ReturnType<typeof setTimeout> | undefined;

function enqueue(rows: readonly LogRow[]): void {
  for (const r of rows) queued.push(r);
  renderTimer ??= setTimeout(() => {
    renderTimer = undefined;
    const batch = queued.length > MAX_DOM_ROWS ? queued.slice(-MAX_DOM_ROWS) : queued;
    queued = [];
    add(batch);
  }, 16);
}

function dropQueued(): void {
  if (renderTimer) clearTimeout(renderTimer);
  renderTimer = undefined;
  queued = [];
}

function reset(rows: readonly LogRow[]): void {
  logEl.replaceChildren();
  byId.clear();
  rowsById.clear();
  orphans.clear();
  exchanges = 0;
  add(rows);
  // Automatic steps whose parent was cut from the history are shown on their own;
  // those whose parent is still to come (a check before its VERIFY) keep waiting.
  const first = rows.find((r) => r.kind !== 'manager');
  if (first) {
    for (const [parent, els] of orphans) {
      if (idOrder(parent) < idOrder(first.id)) {
        logEl.prepend(...els);
        orphans.delete(parent);
      }
    }
  }
  updateCounts();
}

/** Row ids are `generation:seq`; this orders them. */
function idOrder(id: string): number {
  const [gen, seq] = id.split(':').map(Number);
  return (gen || 0) * 1e12 + (seq || 0);
}

function updateCounts(): void {
  countEl.textContent = String(exchanges);
  countEl.title = `${exchanges} exchange(s)`;
  emptyEl.hidden = logEl.childElementCount > 0;
}

function applyFilter(): void {
  const f = filterEl.value?.trim().toLowerCase() ?? '';
  for (const el of byId.values()) el.hidden = !matchesFilter(el, f);
  // A parent stays visible when one of its automatic steps matches.
  for (const el of byId.values()) if (!el.hidden) for (let p = el.parentElement?.closest<HTMLElement>('.row'); p; p = p.parentElement?.closest<HTMLElement>('.row')) p.hidden = false;
}

function showError(err: Error): void {
  stateEl.textContent = err.message;
  stateEl.dataset.state = 'error';
}

// ---------------------------------------------------------------- wiring

window.addEventListener('message', (ev: MessageEvent<HostMessage>) => {
  const msg = ev.data;
  switch (msg?.type) {
    case 'rows': if (msg.reset) { dropQueued(); reset(msg.rows); } else enqueue(msg.rows); break;
    case 'state':
      stateEl.dataset.state = msg.state;
      stateEl.textContent = `Reader manager: ${msg.state}${msg.state === 'running' ? ` (${msg.readers} reader${msg.readers === 1 ? '' : 's'})` : ''}`;
      stateEl.title = msg.detail ?? '';
      break;
    case 'response': settle(msg.id, msg.result); break;
    case 'error': settle(msg.id, undefined, msg.error); break;
  }
});

filterEl.addEventListener('input', applyFilter);
eventsEl.addEventListener('change', () => document.body.classList.toggle('hide-events', !eventsEl.checked));
clearEl.addEventListener('click', () => { request('clear', {}).catch(showError); });
// Copy the visible rows as a readable trace (document order, automatic steps under their parent).
copyEl.addEventListener('click', () => {
  const text = [...logEl.querySelectorAll<HTMLElement>('.row')]
    .filter((el) => !el.hidden && !el.closest('[hidden]') && rowsById.has(el.dataset.id ?? ''))
    .map((el) => rowText(rowsById.get(el.dataset.id ?? '') as LogRow))
    .join('\n');
  request('copy', { text }).catch(showError);
});

updateCounts();
post({ type: 'ready' });
