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
// automatic steps are nearly every row of a long run: their skeletons are reused as rows
// scroll out of view, so scrolling builds almost no DOM: the garbage it made otherwise
// brought the browser's major collections (over the workbench's heap too — code-server
// serves webviews from the workbench's origin) into the scroll.
interface ExchangeSkeleton {
  el: HTMLElement;
  time: HTMLSpanElement; auto: HTMLSpanElement; reader: HTMLSpanElement; client: HTMLSpanElement; line: HTMLSpanElement; duration: HTMLSpanElement;
  name: HTMLSpanElement; cmd: HTMLSpanElement; data: HTMLSpanElement; text: HTMLSpanElement; dataGap: Text; sw: HTMLSpanElement; meaning: HTMLSpanElement;
  /** The automatic steps' box; an expanded row's details go just before it. */
  children: HTMLDivElement;
}
const skeletonPool: ExchangeSkeleton[] = [];
const skeletonOf = new WeakMap<HTMLElement, ExchangeSkeleton>();
const POOL_MAX = 256;

/** A new skeleton; only a `reusable` one (a plain collapsed row) may go back to the pool. */
function newSkeleton(reusable: boolean): ExchangeSkeleton {
  const s: ExchangeSkeleton = {
    el: document.createElement('div'),
    time: span('time', ''), auto: span('auto', ''), reader: span('reader', ''), client: span('client', ''), line: span('line', ''), duration: span('duration', ''),
    name: span('name', ''), cmd: span('hex cmd', ''), data: span('hex data', ''), text: span('text', ''), dataGap: document.createTextNode(''), sw: span('sw', ''), meaning: span('meaning', ''),
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
  el.textContent = text;
  if (cut) el.title = spacedHex(hex);
  else el.removeAttribute('title');
}

/**
 * An exchange row: a top-level collapsed one without automatic steps in a reused skeleton,
 * any other (expanded, with steps, or a step itself) in a new one with its details and steps.
 */
function exchangeRow(state: RowState, r: Extract<LogRow, { kind: 'exchange' }>, kids: readonly LogRow[], top: boolean): HTMLElement {
  const open = state.expanded.has(r.id);
  const s = top && !open && !kids.length ? skeletonPool.pop() ?? newSkeleton(true) : newSkeleton(false);
  const el = s.el;
  el.className = `row exchange ${open ? 'expanded' : 'collapsed'} sw-${r.swCategory}`;
  el.setAttribute('aria-expanded', String(open));
  el.dataset.kind = 'exchange';
  el.dataset.id = r.id;
  el.dataset.sw = r.sw.toUpperCase();
  if (r.reader) el.dataset.reader = r.reader; else delete el.dataset.reader;
  if (r.auto) el.dataset.auto = r.auto; else delete el.dataset.auto;
  s.time.textContent = clock(r.time);
  s.auto.hidden = !r.auto;
  s.auto.textContent = r.auto ? `↳ ${autoLabels[r.auto]}` : '';
  s.reader.textContent = r.reader;
  // Rows another extension made through the API carry its id.
  s.client.hidden = !r.client;
  s.client.textContent = r.client ?? '';
  if (r.client) el.dataset.client = r.client; else delete el.dataset.client;
  s.line.hidden = !r.line;
  s.line.textContent = r.line ? `line ${r.line}` : '';
  const link = !!(r.line && r.uri);
  s.line.className = link ? 'line link' : 'line';
  if (link) {
    s.line.title = 'Show this line in the script';
    s.line.dataset.uri = r.uri;
    s.line.dataset.line = String(r.line);
  } else {
    s.line.removeAttribute('title');
    delete s.line.dataset.uri;
    delete s.line.dataset.line;
  }
  s.duration.textContent = duration(r.durationMs);
  const name = commandName(r.command);
  s.name.hidden = !name;
  s.name.textContent = name ? `${name} ` : '';
  setHex(s.cmd, r.command);
  const data = responseData(r.response);
  // Text (a READ BINARY of a text file) is shown as text, so it reads without expanding;
  // its hex is in the tooltip and the expanded row.
  const text = data ? printableText(data) : '';
  s.data.hidden = !data || !!text;
  setHex(s.data, data);
  s.dataGap.data = data && !text ? ' ' : '';
  s.text.hidden = !text;
  s.text.textContent = text ? `"${text}" ` : '';
  if (text) s.text.title = spacedHex(data);
  else s.text.removeAttribute('title');
  s.sw.textContent = spacedHex(r.sw);
  s.meaning.textContent = r.swMeaning;
  if (open) el.insertBefore(exchangeDetails(state, r), s.children);
  for (const k of kids) s.children.append(renderRow(state, k, []));
  return el;
}

/** A row element leaving the view: a reusable one goes back to the pool. */
export function release(el: HTMLElement): void {
  const s = skeletonOf.get(el);
  if (s && skeletonPool.length < POOL_MAX) skeletonPool.push(s);
}

/** A row's element: `top` for a row of the list, not for an automatic step inside one. */
export function renderRow(state: RowState, r: LogRow, kids: readonly LogRow[], top = false): HTMLElement {
  if (r.kind === 'exchange') return exchangeRow(state, r, kids, top);
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
