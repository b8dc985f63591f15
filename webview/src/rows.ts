// The APDU Log's rows as DOM elements, built with textContent (no HTML from data).
// An exchange row is a skeleton filled in; plain collapsed ones are pooled and reused.
import type { ExchangeFields } from './columns';
import { autoLabels, clock, clockMillis, clockSecond, commandName, duration, eventLabel, fileName, memoized, printableText, responseData, rowText, shortHex, spacedHex, spacedSw } from './format';
import type { DecodeState } from './model';
import { LOG_CAPACITY, type AutoStep, type LogRow, type TlvView } from './protocol';

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
// What a skeleton shows is also kept on the JavaScript side and compared there: reading a text or
// an attribute back from the DOM gives a new string each time it changed, each held by a weak
// handle in Blink's string cache, and a major collection processes every one of them in its pause.
/** A text node, and the text written there. */
interface TextPart { node: Text; text: string }
/** A span holding one text node, and the text written there. */
interface TextField extends TextPart { el: HTMLSpanElement }
interface ExchangeSkeleton {
  el: HTMLElement;
  /** The time in two text nodes, `hh:mm:ss` and `.mmm` (`clockSecond`, `clockMillis`): texts made once per value. */
  time: TextField; timeMs: TextPart; auto: TextField; reader: TextField; client: TextField; line: TextField; duration: TextField;
  name: TextField; cmd: TextField; data: TextField; text: TextField; dataGap: Text; sw: TextField; meaning: TextField;
  /** The automatic steps' box; an expanded row's details go just before it. */
  children: HTMLDivElement;
  /** The attributes written, by element and name (`el class`, `line title`…); absent: not set. */
  attrs: Map<string, string>;
  gap: string;
  /** What the fields show now: the row's id, and the inputs of the derived texts, so a refill skips what did not change. */
  id?: string;
  command?: string;
  response?: string;
}
const skeletonPool: ExchangeSkeleton[] = [];
const skeletonOf = new WeakMap<HTMLElement, ExchangeSkeleton>();
const POOL_MAX = 256;

function textField(cls: string): TextField {
  const el = document.createElement('span');
  el.className = cls;
  const node = document.createTextNode('');
  el.append(node);
  return { el, node, text: '' };
}

/** Writes a field's text node in place when its text changes (setting textContent would make a new node each time). */
function setText(f: TextPart, text: string): void {
  if (f.text !== text) { f.text = text; f.node.data = text; }
}

function setHidden(el: HTMLElement, hidden: boolean): void {
  if (el.hidden !== hidden) el.hidden = hidden;
}

/** Sets (or with undefined removes) an attribute of a skeleton's element, touching it only when it changes. */
function setAttr(s: ExchangeSkeleton, key: string, el: HTMLElement, name: string, value: string | undefined): void {
  const was = s.attrs.get(key);
  if (was === value) return;
  if (value === undefined) { s.attrs.delete(key); el.removeAttribute(name); }
  else { s.attrs.set(key, value); el.setAttribute(name, value); }
}

/** A new skeleton; only a `reusable` one (a plain collapsed row) may be refilled for another row. */
function newSkeleton(reusable: boolean): ExchangeSkeleton {
  const s: ExchangeSkeleton = {
    el: document.createElement('div'),
    time: textField('time'), timeMs: { node: document.createTextNode(''), text: '' }, auto: textField('auto'), reader: textField('reader'), client: textField('client'), line: textField('line'), duration: textField('duration'),
    name: textField('name'), cmd: textField('hex cmd'), data: textField('hex data'), text: textField('text'), dataGap: document.createTextNode(''), sw: textField('sw'), meaning: textField('meaning'),
    children: div('children'), attrs: new Map([['line class', 'line']]), gap: '',
  };
  s.el.tabIndex = -1;
  s.time.el.append(s.timeMs.node);
  s.el.append(
    div('meta', s.time.el, s.auto.el, s.reader.el, s.client.el, s.line.el, s.duration.el),
    div('apdu', s.name.el, span('dir', '>'), ' ', s.cmd.el, ' ', span('dir', '<'), ' ', s.data.el, s.dataGap, s.text.el, s.sw.el, ' ', s.meaning.el),
    s.children,
  );
  if (reusable) skeletonOf.set(s.el, s);
  return s;
}

function setHex(s: ExchangeSkeleton, f: TextField, key: string, hex: string): void {
  const { text, cut } = shortHex(hex);
  setText(f, text);
  setAttr(s, key, f.el, 'title', cut ? spacedHex(hex) : undefined);
}

/** A plain collapsed exchange's element: `reuse` (an element leaving the view) refilled when it is one, else one from the pool. */
function plainSkeleton(reuse: HTMLElement | undefined): ExchangeSkeleton {
  const s = reuse && skeletonOf.get(reuse);
  return s || (skeletonPool.pop() ?? newSkeleton(true));
}

/** The texts and attributes that repeat row after row, made once. */
const collapsedClass = memoized((category: string) => `row exchange collapsed sw-${category}`, 64);
const expandedClass = memoized((category: string) => `row exchange expanded sw-${category}`, 64);
const rowClass = (open: boolean, category: string) => (open ? expandedClass : collapsedClass)(category);
const upperSw = memoized((sw: string) => sw.toUpperCase());
const lineTexts: string[] = [];
const lineNumbers: string[] = [];
const lineText = (n: number) => (n < 100_000 ? (lineTexts[n] ??= `line ${n}`) : `line ${n}`);
const lineNumber = (n: number) => (n < 100_000 ? (lineNumbers[n] ??= String(n)) : String(n));

/**
 * An exchange row: a top-level collapsed one without automatic steps in a reused skeleton,
 * any other (expanded, with steps, or a step itself) in a new one with its details and steps.
 * `r`: the row, or a plain exchange's fields as the columns give them (`exchangeFields`).
 */
function exchangeRow(state: RowState, r: ExchangeFields, kids: readonly LogRow[], top: boolean, reuse?: HTMLElement): HTMLElement {
  const open = state.expanded.size > 0 && state.expanded.has(r.id);
  const plain = top && !open && !kids.length;
  const s = plain ? plainSkeleton(reuse) : newSkeleton(false);
  const el = s.el;
  if (s.id === r.id && plain) return el;
  s.id = plain ? r.id : undefined;
  setAttr(s, 'class', el, 'class', rowClass(open, r.swCategory));
  setAttr(s, 'aria-expanded', el, 'aria-expanded', open ? 'true' : 'false');
  setAttr(s, 'data-kind', el, 'data-kind', 'exchange');
  setAttr(s, 'data-id', el, 'data-id', r.id);
  setAttr(s, 'data-sw', el, 'data-sw', upperSw(r.sw));
  setAttr(s, 'data-reader', el, 'data-reader', r.reader || undefined);
  setAttr(s, 'data-auto', el, 'data-auto', r.auto);
  setText(s.time, clockSecond(r.time));
  setText(s.timeMs, clockMillis(r.time));
  setHidden(s.auto.el, !r.auto);
  setText(s.auto, r.auto ? autoTexts[r.auto] : '');
  setText(s.reader, r.reader);
  // Rows another program made (an extension through the API, a PC/SC client) carry its name.
  setHidden(s.client.el, !r.client);
  setText(s.client, r.client ?? '');
  setAttr(s, 'data-client', el, 'data-client', r.client || undefined);
  setHidden(s.line.el, !r.line);
  setText(s.line, r.line ? lineText(r.line) : '');
  const link = !!(r.line && r.uri);
  setAttr(s, 'line class', s.line.el, 'class', link ? 'line link' : 'line');
  setAttr(s, 'line title', s.line.el, 'title', link ? 'Show this line in the script' : undefined);
  setAttr(s, 'line data-uri', s.line.el, 'data-uri', link ? r.uri : undefined);
  setAttr(s, 'line data-line', s.line.el, 'data-line', link ? lineNumber(r.line as number) : undefined);
  setText(s.duration, duration(r.durationMs));
  if (s.command !== r.command) {
    s.command = r.command;
    const name = commandName(r.command);
    setHidden(s.name.el, !name);
    setText(s.name, name ? `${name} ` : '');
    setHex(s, s.cmd, 'cmd title', r.command);
  }
  if (s.response !== r.response) {
    s.response = r.response;
    const data = responseData(r.response);
    // Text (a READ BINARY of a text file) is shown as text, so it reads without expanding;
    // its hex is in the tooltip and the expanded row.
    const text = data ? printableText(data) : '';
    setHidden(s.data.el, !data || !!text);
    setHex(s, s.data, 'data title', data);
    const gap = data && !text ? ' ' : '';
    if (s.gap !== gap) { s.gap = gap; s.dataGap.data = gap; }
    setHidden(s.text.el, !text);
    setText(s.text, text ? `"${text}" ` : '');
    setAttr(s, 'text title', s.text.el, 'title', text ? spacedHex(data) : undefined);
  }
  setText(s.sw, spacedSw(r.sw));
  setText(s.meaning, r.swMeaning);
  if (open) el.insertBefore(exchangeDetails(state, r), s.children);
  for (const k of kids) s.children.append(renderRow(state, k, []));
  return el;
}

const autoTexts = Object.fromEntries(Object.entries(autoLabels).map(([k, v]) => [k, `↳ ${v}`])) as Record<AutoStep, string>;

/**
 * A plain collapsed exchange of the list from its fields (`exchangeFields`: no row object made),
 * in `reuse` when given (see `reusable`): the same element `renderRow` makes from the row.
 */
export function renderPlainExchange(state: RowState, r: ExchangeFields, reuse?: HTMLElement): HTMLElement {
  return exchangeRow(state, r, [], true, reuse);
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
      const l = eventLabel(r);
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

function exchangeDetails(state: RowState, r: ExchangeFields): HTMLElement {
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
