// The APDU Log's rows as DOM elements, built with textContent (no HTML from data).
// An exchange row is a skeleton filled in; plain collapsed ones are pooled and reused.
import { autoLabels, clock, commandName, duration, eventLabels, fileName, printableText, responseData, rowText, shortHex, spacedHex } from './format';
import type { DecodeState } from './model';
import { LOG_CAPACITY, type LogRow, type TlvView } from './protocol';

/** What a row's look depends on besides the row: whether it is expanded, and its decoding. */
export interface RowState {
  readonly expanded: ReadonlySet<string>;
  readonly decoded: ReadonlyMap<string, DecodeState>;
}

function span(cls: string, text: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = cls;
  s.textContent = text;
  return s;
}

function div(cls: string, ...children: (Node | string)[]): HTMLDivElement {
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
    a.dataset.uri = uri;
    a.dataset.line = String(n);
  }
  return a;
}

function hexSpan(cls: string, hex: string): HTMLSpanElement {
  const { text, cut } = shortHex(hex);
  const s = span(cls, text);
  if (cut) s.title = spacedHex(hex);
  return s;
}

// An exchange row is built from a skeleton and filled in. Collapsed exchanges without
// automatic steps are nearly every row of a long run: their skeletons are refilled in place as
// rows scroll out of view (main.ts hands the leaving rows' elements to the arriving ones), and
// each field keeps its one text node, written only when its text changes. Scrolling so builds no
// DOM at all: the nodes it made otherwise were garbage in the heap the webview shares with the
// workbench (code-server serves webviews from the workbench's origin), and their collection
// brought the browser's major GCs into the scroll.
interface ExchangeSkeleton {
  el: HTMLElement;
  time: HTMLSpanElement; auto: HTMLSpanElement; reader: HTMLSpanElement; client: HTMLSpanElement; line: HTMLSpanElement; duration: HTMLSpanElement;
  name: HTMLSpanElement; cmd: HTMLSpanElement; data: HTMLSpanElement; text: HTMLSpanElement; dataGap: Text; sw: HTMLSpanElement; meaning: HTMLSpanElement;
  /** The automatic steps' box; an expanded row's details go just before it. */
  children: HTMLDivElement;
  /** What the fields show now: the row's id, and the inputs of the derived texts, so a refill skips what did not change. */
  id?: string;
  command?: string;
  response?: string;
}
const skeletonPool: ExchangeSkeleton[] = [];
const skeletonOf = new WeakMap<HTMLElement, ExchangeSkeleton>();
const POOL_MAX = 256;

/** A span holding one text node, written with `setText`. */
function textSpan(cls: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = cls;
  s.append(document.createTextNode(''));
  return s;
}

/** Writes a text span's text node in place (setting textContent would make a new node each time). */
function setText(s: HTMLElement, text: string): void {
  const t = s.firstChild as Text;
  if (t.data !== text) t.data = text;
}

function setHidden(el: HTMLElement, hidden: boolean): void {
  if (el.hidden !== hidden) el.hidden = hidden;
}

/** Sets (or with undefined removes) an attribute, touching the element only when it changes. */
function setAttr(el: HTMLElement, name: string, value: string | undefined): void {
  if (value === undefined) { if (el.hasAttribute(name)) el.removeAttribute(name); }
  else if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/** A new skeleton; only a `reusable` one (a plain collapsed row) may be refilled for another row. */
function newSkeleton(reusable: boolean): ExchangeSkeleton {
  const s: ExchangeSkeleton = {
    el: document.createElement('div'),
    time: textSpan('time'), auto: textSpan('auto'), reader: textSpan('reader'), client: textSpan('client'), line: textSpan('line'), duration: textSpan('duration'),
    name: textSpan('name'), cmd: textSpan('hex cmd'), data: textSpan('hex data'), text: textSpan('text'), dataGap: document.createTextNode(''), sw: textSpan('sw'), meaning: textSpan('meaning'),
    children: div('children'),
  };
  s.el.tabIndex = -1;
  s.el.append(
    div('meta', s.time, s.auto, s.reader, s.client, s.line, s.duration),
    div('apdu', s.name, span('dir', '>'), ' ', s.cmd, ' ', span('dir', '<'), ' ', s.data, s.dataGap, s.text, s.sw, ' ', s.meaning),
    s.children,
  );
  if (reusable) skeletonOf.set(s.el, s);
  return s;
}

function setHex(el: HTMLSpanElement, hex: string): void {
  const { text, cut } = shortHex(hex);
  setText(el, text);
  setAttr(el, 'title', cut ? spacedHex(hex) : undefined);
}

/** A plain collapsed exchange's element: `reuse` (an element leaving the view) refilled when it is one, else one from the pool. */
function plainSkeleton(reuse: HTMLElement | undefined): ExchangeSkeleton {
  const s = reuse && skeletonOf.get(reuse);
  return s || (skeletonPool.pop() ?? newSkeleton(true));
}

/**
 * An exchange row: a top-level collapsed one without automatic steps in a reused skeleton,
 * any other (expanded, with steps, or a step itself) in a new one with its details and steps.
 */
function exchangeRow(state: RowState, r: Extract<LogRow, { kind: 'exchange' }>, kids: readonly LogRow[], top: boolean, reuse?: HTMLElement): HTMLElement {
  const open = state.expanded.has(r.id);
  const plain = top && !open && !kids.length;
  const s = plain ? plainSkeleton(reuse) : newSkeleton(false);
  const el = s.el;
  if (s.id === r.id && plain) return el;
  s.id = plain ? r.id : undefined;
  setAttr(el, 'class', `row exchange ${open ? 'expanded' : 'collapsed'} sw-${r.swCategory}`);
  setAttr(el, 'aria-expanded', open ? 'true' : 'false');
  setAttr(el, 'data-kind', 'exchange');
  setAttr(el, 'data-id', r.id);
  setAttr(el, 'data-sw', r.sw.toUpperCase());
  setAttr(el, 'data-reader', r.reader || undefined);
  setAttr(el, 'data-auto', r.auto);
  setText(s.time, clock(r.time));
  setHidden(s.auto, !r.auto);
  setText(s.auto, r.auto ? `↳ ${autoLabels[r.auto]}` : '');
  setText(s.reader, r.reader);
  // Rows another program made (an extension through the API, a PC/SC client) carry its name.
  setHidden(s.client, !r.client);
  setText(s.client, r.client ?? '');
  setAttr(el, 'data-client', r.client || undefined);
  setHidden(s.line, !r.line);
  setText(s.line, r.line ? `line ${r.line}` : '');
  const link = !!(r.line && r.uri);
  setAttr(s.line, 'class', link ? 'line link' : 'line');
  setAttr(s.line, 'title', link ? 'Show this line in the script' : undefined);
  setAttr(s.line, 'data-uri', link ? r.uri : undefined);
  setAttr(s.line, 'data-line', link ? String(r.line) : undefined);
  setText(s.duration, duration(r.durationMs));
  if (s.command !== r.command) {
    s.command = r.command;
    const name = commandName(r.command);
    setHidden(s.name, !name);
    setText(s.name, name ? `${name} ` : '');
    setHex(s.cmd, r.command);
  }
  if (s.response !== r.response) {
    s.response = r.response;
    const data = responseData(r.response);
    // Text (a READ BINARY of a text file) is shown as text, so it reads without expanding;
    // its hex is in the tooltip and the expanded row.
    const text = data ? printableText(data) : '';
    setHidden(s.data, !data || !!text);
    setHex(s.data, data);
    const gap = data && !text ? ' ' : '';
    if (s.dataGap.data !== gap) s.dataGap.data = gap;
    setHidden(s.text, !text);
    setText(s.text, text ? `"${text}" ` : '');
    setAttr(s.text, 'title', text ? spacedHex(data) : undefined);
  }
  setText(s.sw, spacedHex(r.sw));
  setText(s.meaning, r.swMeaning);
  if (open) el.insertBefore(exchangeDetails(state, r), s.children);
  for (const k of kids) s.children.append(renderRow(state, k, []));
  return el;
}

/** Whether an element leaving the view can be refilled for another plain collapsed exchange. */
export function reusable(el: HTMLElement): boolean {
  return skeletonOf.has(el);
}

/** A row element leaving the view: a reusable one goes back to the pool. */
export function release(el: HTMLElement): void {
  const s = skeletonOf.get(el);
  if (s && skeletonPool.length < POOL_MAX) skeletonPool.push(s);
}

/**
 * A row's element: `top` for a row of the list, not for an automatic step inside one. `reuse`: a
 * reusable element leaving the view (see `reusable`), refilled when the row is a plain collapsed
 * exchange; the caller releases it when it was not used.
 */
export function renderRow(state: RowState, r: LogRow, kids: readonly LogRow[], top = false, reuse?: HTMLElement): HTMLElement {
  if (r.kind === 'exchange') return exchangeRow(state, r, kids, top, reuse);
  const el = document.createElement('div');
  const open = state.expanded.has(r.id);
  el.className = `row ${r.kind} ${open ? 'expanded' : 'collapsed'}`;
  el.dataset.kind = r.kind;
  el.dataset.id = r.id;
  el.tabIndex = -1;
  el.setAttribute('aria-expanded', String(open));
  if (r.reader) el.dataset.reader = r.reader;
  if (r.client) el.dataset.client = r.client;
  const meta = div('meta', span('time', clock(r.time)));
  const client = r.client ? span('client', r.client) : '';
  switch (r.kind) {
    case 'control':
      meta.append(span('reader', r.reader), client, span('label', `control ${r.code}`), lineLink(r.uri, r.line), span('duration', duration(r.durationMs)));
      el.append(meta, div('apdu', span('dir', '>'), ' ', hexSpan('hex cmd', r.command), ' ', span('dir', '<'), ' ',
        r.error ? span('error', r.error) : hexSpan('hex data', r.response ?? '')));
      break;
    case 'scriptStarted':
      meta.append(span('label', '▶ Script started'), r.file ? Object.assign(span('file', fileName(r.file)), { title: r.file }) : '', client);
      el.append(meta);
      break;
    case 'scriptEnded':
      el.dataset.ok = String(!!r.ok);
      meta.append(span('label', r.ok ? '✓ Script passed' : '✗ Script failed'), span('message', r.message ?? ''), lineLink(r.uri, r.line), client);
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
  if (open) el.append(div('details', Object.assign(document.createElement('pre'), { textContent: rowText(r) })));
  return el;
}

function field(key: string, name: string, ...value: (Node | string)[]): HTMLElement {
  const d = div('field', span('k', name), span('v', ''));
  d.dataset.field = key;
  (d.lastChild as HTMLElement).append(...value);
  return d;
}

function tlvTree(nodes: readonly TlvView[]): HTMLElement {
  const ul = document.createElement('ul');
  ul.className = 'tlv';
  for (const n of nodes) {
    const li = document.createElement('li');
    li.dataset.tag = n.tag;
    li.append(span('tag', n.tag), ' ');
    if (n.name) li.append(span('name', n.name), ' ');
    li.append(span('len', `(${n.length} byte${n.length === 1 ? '' : 's'})`));
    if (n.children) li.append(tlvTree(n.children));
    else if (n.value !== undefined) {
      li.append(' ', span('hex value', n.value || '(empty)'));
      if (n.text !== undefined) li.append(' ', span('text', `"${n.text}"`));
    }
    ul.append(li);
  }
  return ul;
}

function exchangeDetails(state: RowState, r: Extract<LogRow, { kind: 'exchange' }>): HTMLElement {
  const d = div('details');
  const got = state.decoded.get(r.id);
  if (got === undefined || got === 'loading') {
    d.append(span('pending', 'Decoding…'));
  } else if (got instanceof Error) {
    d.append(span('error', `Could not decode: ${got.message}`));
  } else if (got === 'trimmed') {
    d.append(span('trimmed note', `Trimmed: the log keeps the newest ${LOG_CAPACITY.toLocaleString('en-US')} rows and no longer holds this one, so it cannot be decoded. Its command and response are shown above.`));
  } else {
    const c = got.command;
    const cmd = div('section command', div('title', c.summary));
    cmd.append(
      field('cla', 'CLA', `${c.cla} — ${c.claMeaning.replace(/^CLA [0-9A-F]{2}: /, '')}`),
      field('ins', 'INS', `${c.ins}${c.insName ? ` — ${c.insName}` : ''}`),
    );
    // P1/P2 explained by the helper's decoder, the one the editor's hover uses.
    const meaning = (f: string) => c.params?.find((p) => p.field === f)?.meaning;
    const p1p2 = meaning('P1P2');
    if (p1p2) cmd.append(field('p1p2', 'P1 P2', `${c.p1} ${c.p2} — ${p1p2}`));
    else {
      const m1 = meaning('P1');
      const m2 = meaning('P2');
      cmd.append(field('p1', 'P1', m1 ? `${c.p1} — ${m1}` : c.p1), field('p2', 'P2', m2 ? `${c.p2} — ${m2}` : c.p2));
    }
    if (c.lc !== undefined) cmd.append(field('lc', 'Lc', `${c.lc}${c.extended ? ' (extended)' : ''}`));
    if (c.data) cmd.append(field('data', 'Data', span('hex', c.data)));
    if (c.dataTlv) cmd.append(field('dataTlv', 'Data as TLV', tlvTree(c.dataTlv)));
    if (c.le !== undefined) cmd.append(field('le', 'Le', String(c.le)));
    cmd.append(field('case', 'Case', c.case ? `case ${c.case}` : 'does not fit an ISO 7816-4 case'));
    for (const e of c.errors) cmd.append(div('error', `⚠ ${e}`));
    const s = got.response;
    const rsp = div('section response', div('title', 'Response'));
    if (s.data) rsp.append(field('rdata', 'Data', span('hex', s.data)));
    if (s.ascii !== undefined) rsp.append(field('ascii', s.isText ? 'Text' : 'ASCII', span('ascii', s.ascii)));
    if (s.tlv) rsp.append(field('tlv', 'TLV', tlvTree(s.tlv)));
    else if (s.tlvError) rsp.append(field('tlv', 'TLV', span('note quiet', s.tlvError)));
    const extra = s.retries !== undefined ? ` (${s.retries} tries left)` : s.available !== undefined ? ` (${s.available || 256} bytes available)` : s.correctLe !== undefined ? ` (Le should be ${s.correctLe || 256})` : '';
    rsp.append(field('sw', 'SW', span(`sw sw-${s.swCategory}`, spacedHex(s.sw)), ` — ${s.swMeaning}${extra}`));
    d.append(cmd, rsp);
  }
  d.append(div('section timing', field('timing', 'Timing', `${duration(r.durationMs)} at ${clock(r.time)} on ${r.reader}${r.line ? `, script line ${r.line}` : ''}`)));
  return d;
}
