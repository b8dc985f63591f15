// The APDU Log panel's row model (webview/src/model.ts), without a browser: the bound it
// shares with the extension's store, the view and filters, pause, automatic steps, decoding.
// This file is type-checked by the root tsconfig, whose lib has no DOM: a DOM use creeping
// into the model fails `npm run typecheck`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { LogStore } from '../../../extension/src/logStore';
import { showAll } from '../../../webview/src/filter';
import { LogModel, type ModelEvents } from '../../../webview/src/model';
import { LOG_CAPACITY, logHighWater, type ExchangeRow, type LogFilter, type LogRow } from '../../../webview/src/protocol';

const R = 'Workbench Simulator 00 00';
const B = 'Other Reader 00 00';

function exchange(seq: number, extra: Partial<ExchangeRow> = {}): ExchangeRow {
  return {
    kind: 'exchange', id: `1:${seq}`, time: 1000 + seq, reader: R, command: '00B0000004', response: '010203049000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1, ...extra,
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
/** Every item the model holds, oldest first. */
const all = (m: LogModel) => range(0, m.itemCount);
const ids = (m: LogModel, items: ArrayLike<number>) => Array.from(items, (i) => m.id(i));
const idOf = (m: LogModel, item: number | undefined) => (item === undefined ? undefined : m.id(item));

/** Everything the model holds, counted again from its items (what `size` must equal). */
const recount = (m: LogModel) => all(m).reduce((n, i) => n + 1 + m.kidCount(i), 0);

function model(capacity = 8, filter: LogFilter = { ...showAll }, events: ModelEvents = {}): LogModel {
  return new LogModel(filter, capacity, events);
}

function feed(m: LogModel, rows: LogRow[], reset = false): number {
  m.receive(rows, reset);
  let gone = 0;
  while (m.queuedRows) gone += m.ingest(25_000);
  return gone;
}

test('the items dropped from the front are told (also when none was in the view): the virtual list finds its rows by their new numbers', () => {
  // A filter that shows only reader B: the rows trimmed are none of the view's.
  const drops: number[] = [];
  let before: string[] = [];
  const m: LogModel = model(8, { ...showAll, reader: B }, {
    trimming: () => assert.fail('no row of the view leaves'),
    dropped: (count) => {
      drops.push(count);
      // Told after the drop: the items known before (by id) are now `count` lower.
      before.forEach((id, it) => { if (it >= count) assert.equal(m.id(it - count), id, `item ${it} is now ${it - count}`); });
    },
  });
  feed(m, [...range(0, 9).map((i) => exchange(i)), exchange(9, { reader: B })]);
  assert.deepEqual(drops, [], 'nothing dropped up to the high-water mark');
  before = ids(m, all(m));
  feed(m, [exchange(10)]);
  assert.deepEqual(drops, [3], 'three items went, none of them in the view');
  assert.deepEqual(ids(m, m.view), ['1:9']);
});

test('the panel and the extension keep the same number of rows: one constant', () => {
  assert.equal(LOG_CAPACITY, 100_000);
  assert.equal(new LogStore().capacity, LOG_CAPACITY);
  assert.equal(new LogModel({ ...showAll }, LOG_CAPACITY).capacity, new LogStore().capacity);
});

test('appending past the bound: the oldest rows go, the size comes back to the bound, ids and view stay consistent', () => {
  let leaving: string[] = [];
  const m: LogModel = model(8, { ...showAll }, { trimming: (count) => { leaving = ids(m, m.view.slice(0, count)); } });
  const high = logHighWater(8);
  assert.equal(high, 10);
  feed(m, range(0, high).map((i) => exchange(i)));
  assert.equal(m.size, high, 'up to the high-water mark nothing is trimmed');
  m.receive([exchange(high)]);
  const gone = m.ingest(25_000);
  assert.equal(m.size, 8, 'trimmed back to the bound');
  assert.equal(recount(m), m.size);
  assert.equal(gone, 3);
  assert.deepEqual(leaving, ['1:0', '1:1', '1:2'], 'the entries leaving the top of the view, told before they go, for the virtual list');
  assert.deepEqual(ids(m, all(m)), range(3, 11).map((i) => `1:${i}`), 'the oldest went, in order');
  assert.deepEqual(ids(m, m.view), ids(m, all(m)), 'the view follows');
  assert.equal(m.exchanges, 8, "the toolbar's count follows");
  for (const i of range(0, 3)) assert.equal(m.itemOf(`1:${i}`), undefined, `1:${i} is no longer found by id`);
  for (const i of range(3, 11)) assert.equal(idOf(m, m.itemOf(`1:${i}`)), `1:${i}`);
  // Many more: never above the high-water mark, always the newest rows.
  for (let i = 11; i < 200; i++) {
    feed(m, [exchange(i)]);
    assert.ok(m.size <= high && m.size >= 8, `size ${m.size} after row ${i}`);
    assert.equal(m.id(m.itemCount - 1), `1:${i}`);
    assert.equal(recount(m), m.size);
    assert.equal(m.view.length, m.itemCount);
  }
});

test('a whole history bigger than the bound, in one message: the newest rows are kept', () => {
  const m = model(100);
  feed(m, range(0, 1000).map((i) => exchange(i)), true);
  assert.ok(m.size <= logHighWater(100));
  assert.equal(m.id(m.itemCount - 1), '1:999');
  assert.equal(m.id(0), `1:${1000 - m.size}`);
  assert.deepEqual(ids(m, m.view), ids(m, all(m)));
});

test('automatic steps count as rows and go with their exchange', () => {
  const m = model(8);
  // Five exchanges, each with one GET RESPONSE step: 10 rows.
  feed(m, range(0, 5).flatMap((i) => [exchange(2 * i), exchange(2 * i + 1, { auto: 'getResponse', parent: `1:${2 * i}` })]));
  assert.equal(m.size, 10);
  assert.equal(m.itemCount, 5);
  feed(m, [exchange(10)]);
  assert.ok(m.size <= 8, `size ${m.size}`);
  assert.equal(recount(m), m.size);
  assert.equal(m.exchanges, m.size, 'every held row is an exchange here');
  assert.equal(m.itemOf('1:1'), undefined, 'a trimmed exchange takes its step with it');
  assert.equal(idOf(m, m.itemOf('1:9')), '1:8', 'a kept step still finds its exchange');
});

test('with a filter, the view holds only the kept rows that pass it', () => {
  const m = model(8, { ...showAll, reader: B });
  feed(m, range(0, 10).map((i) => exchange(i, { reader: i % 2 ? B : R })));
  assert.deepEqual(ids(m, m.view), ['1:1', '1:3', '1:5', '1:7', '1:9']);
  const gone = feed(m, [exchange(10, { reader: R })]);
  assert.deepEqual(ids(m, all(m)), range(3, 11).map((i) => `1:${i}`));
  assert.deepEqual(ids(m, m.view), ['1:3', '1:5', '1:7', '1:9'], 'only the trimmed view entry left');
  assert.equal(gone, 1);
  m.filter.reader = R;
  m.rebuildView();
  assert.deepEqual(ids(m, m.view), ['1:4', '1:6', '1:8', '1:10']);
});

test('paused: rows keep arriving and the bound holds; resuming shows the kept ones', () => {
  const m = model(8);
  feed(m, range(0, 4).map((i) => exchange(i)));
  m.setPaused(true);
  feed(m, range(4, 11).map((i) => exchange(i)));
  assert.equal(m.size, 8);
  assert.deepEqual(ids(m, m.view), ['1:3'], 'the view holds still, less what was trimmed');
  assert.equal(m.arrivedWhilePaused, 7);
  m.setPaused(false);
  assert.deepEqual(ids(m, m.view), ids(m, all(m)));
  assert.equal(m.arrivedWhilePaused, 0);
});

test('the expanded and decoded state of trimmed rows goes with them', () => {
  const m = model(8);
  feed(m, range(0, 10).map((i) => exchange(i)));
  assert.deepEqual(m.toggle('1:0'), { item: 0, decode: true });
  m.decodedAs('1:0', new Error('x'));
  feed(m, [exchange(10)]);
  assert.equal(m.expanded.has('1:0'), false);
  assert.equal(m.decoded.has('1:0'), false);
  assert.equal(m.toggle('1:0'), undefined, 'a trimmed row cannot be expanded');
});

test('the extension answering "trimmed" to a decode is a state of its own, not an error', () => {
  const m = model(8);
  feed(m, [exchange(1)]);
  const t = m.toggle('1:1');
  assert.equal(t?.decode, true);
  assert.equal(m.decoded.get('1:1'), 'loading');
  assert.equal(m.decodedAs('1:1', { trimmed: true }), t?.item);
  assert.equal(m.decoded.get('1:1'), 'trimmed');
  // An answer for a row cleared meanwhile is dropped.
  feed(m, [exchange(2)], true);
  assert.equal(m.decodedAs('1:1', { trimmed: true }), undefined);
  assert.equal(m.decoded.has('1:1'), false);
});

test('the store and the model fed the same rows keep the same rows (same bound, same trimming)', () => {
  const store = new LogStore(1000);
  const m = new LogModel({ ...showAll }, store.capacity);
  store.newGeneration();
  let seq = 0;
  const entry = (): ExchangeEntry => ({
    kind: 'exchange', seq: ++seq, time: seq, reader: R, command: '0084000008', response: '01020304050607089000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1,
  });
  // Batches of varied sizes, as the helper sends them; the panel gets what the store appended.
  for (const n of [1, 7, 300, 999, 13, 250, 2, 600, 1, 1, 400]) {
    const { appended, reordered } = store.addEntries(Array.from({ length: n }, entry));
    assert.equal(reordered, false);
    feed(m, appended);
    assert.equal(m.size, store.size, `after a batch of ${n}`);
    assert.deepEqual(ids(m, all(m)), store.rows().map((r) => r.id));
  }
  assert.ok(seq > logHighWater(1000), 'the run went past the bound');
});

test('count: by kind and text, and manager rows by their state (a message may name another state)', () => {
  const m = model(20);
  const manager = (seq: number, state: 'starting' | 'running' | 'restarting' | 'stopped', message: string): LogRow =>
    ({ kind: 'manager', id: `m:${seq}`, time: 1000 + seq, state, message });
  feed(m, [
    manager(0, 'starting', 'starting'),
    manager(1, 'restarting', 'The reader manager stopped: exit code 1; restarting in 1 s'),
    manager(2, 'stopped', 'The reader manager stopped: run "Smart Card: Restart Reader Manager"'),
    exchange(3),
  ]);
  assert.equal(m.count('manager'), 3);
  assert.equal(m.count('manager', 'reader manager stopped:'), 2, 'the text alone also finds the restarting row');
  assert.equal(m.count('manager', '', 'stopped'), 1);
  assert.equal(m.count('manager', '', 'restarting'), 1);
  assert.equal(m.count('exchange', '', 'stopped'), 0, 'a state only matches manager rows');
  assert.equal(m.count('exchange', '00 B0'), 1);
});

test('100,000 rows held as columns: no object per row (what a major collection must mark), the messages not kept', async () => {
  const { queryObjects } = await import('node:v8');
  const objects = () => queryObjects(Object, { format: 'count' }) as number;
  const m = model(100_000);
  const readers = ['Workbench Simulator 00 00', 'Other Reader 01 00'];
  const batch = (from: number) => range(from, from + 10_000).map((i) => exchange(i, {
    reader: readers[i % 2], swMeaning: 'Success', command: `00B0${(i & 0xFFFF).toString(16).padStart(4, '0')}00`,
    response: `${'AB'.repeat(32)}${i.toString(16).padStart(8, '0')}9000`, line: (i % 50) + 1, uri: 'file:///w/examples/read.apdu',
  }));
  // Warm up (the string tables, the columns' first growth), then count what 100,000 rows add.
  feed(m, batch(0));
  const before = objects();
  for (let from = 10_000; from < 110_000; from += 10_000) feed(m, batch(from));
  const added = objects() - before;
  assert.equal(m.size, 110_000);
  // An object per row (the row, its holder) would be 200,000 or more; the columns grow by a handful.
  assert.ok(added < 1_000, `the model added ${added} objects for 100,000 rows`);
});

test('every kind of row comes back from the columns as it went in, and changing the message afterwards changes nothing', () => {
  const rows: LogRow[] = [
    exchange(1, { client: 'ext.scan', line: 0, uri: 'file:///w/a.apdu', auto: 'getResponse', parent: '1:0' }),
    exchange(2, { swCategory: 'error', sw: '6A82', swMeaning: 'File or application not found', durationMs: 12.5, line: 7 }),
    { kind: 'control', id: '1:3', time: 3, reader: R, code: 0x42000C00, command: 'FF00', error: 'E_TIMEOUT', durationMs: 0 },
    { kind: 'control', id: '1:4', time: 4, reader: B, code: 1, command: '', response: '' , durationMs: 1e9 },
    { kind: 'cardInserted', id: '1:5', time: 5, reader: R, atr: '3B8F8001', protocol: 1, card: 'Test card' },
    { kind: 'readerRemoved', id: '2:0', time: -1, reader: B },
    { kind: 'scriptStarted', id: '2:1', time: 6, file: 'a.apdu', uri: 'file:///w/a.apdu' },
    { kind: 'scriptEnded', id: '2:2', time: 7, ok: false, message: 'line 3: expected 9000', line: 3 },
    { kind: 'echo', id: '2:3', time: 8, message: 'hello' },
    { kind: 'manager', id: '2:m1700000000000:4', time: 9, state: 'restarting', message: 'exit code 1' },
    // Odd ids and values the columns do not take are kept as they are.
    { kind: 'manager', id: '02:5', time: 10, state: 'running', message: '' },
    { kind: 'manager', id: `1:${Number.MAX_SAFE_INTEGER + 2}`, time: 11, state: 'running', message: 'x' },
    exchange(12, { swCategory: 'strange' as 'error', line: 1.5, durationMs: Number.NaN }),
    { kind: 'futureKind', id: '1:13', time: 13, reader: R, extra: [1, 2] } as unknown as LogRow,
  ];
  const copies = structuredClone(rows);
  const m = model(100);
  feed(m, rows);
  for (const r of rows) Object.assign(r, { reader: 'changed', time: 0, message: 'changed' });
  assert.equal(m.itemCount, copies.length - 1, 'the step went under its exchange… whose id 1:0 never came: it stays waiting');
  const back = all(m).map((i) => m.row(i));
  assert.deepEqual(back, copies.slice(1));
  assert.deepEqual(all(m).map((i) => m.kind(i)), copies.slice(1).map((r) => r.kind));
  assert.deepEqual(ids(m, all(m)), copies.slice(1).map((r) => r.id));
  assert.equal(idOf(m, m.itemOf('2:m1700000000000:4')), '2:m1700000000000:4', 'a manager row is found by its id');
  assert.equal(idOf(m, m.itemOf('02:5')), '02:5');
});

test('a search finds rows held as columns, steps included; and survives a trim', () => {
  const f = { ...showAll };
  const m = model(8, f);
  feed(m, range(0, 6).flatMap((i) => [exchange(2 * i, { command: `00A4040007A00000000${i}1010` }), exchange(2 * i + 1, { auto: 'getResponse', parent: `1:${2 * i}`, command: '00C0000010', response: `${'CAFE'.repeat(i + 1)}9000` })]));
  f.text = 'cafe cafe cafe cafe';
  m.rebuildView();
  assert.deepEqual(ids(m, m.view), ['1:6', '1:8', '1:10'], 'an exchange whose step matches, by its step');
  f.text = 'select';
  m.rebuildView();
  assert.deepEqual(ids(m, m.view), ids(m, all(m)));
  const toggled = m.toggle('1:9');
  assert.equal(idOf(m, toggled?.item), '1:8', 'a step toggles within its exchange');
  assert.equal(m.expanded.has('1:9'), true);
});
