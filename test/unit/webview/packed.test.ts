// The APDU Log's history in column form (webview/src/packed.ts): what the extension packs is what
// the panel's columns hold and give back, row for row, for every row kind and the odd ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Columns } from '../../../webview/src/columns';
import { showAll } from '../../../webview/src/filter';
import { LogModel } from '../../../webview/src/model';
import { packRows, unpackRows, type PackedRows } from '../../../webview/src/packed';
import type { LogRow } from '../../../webview/src/protocol';

/** A row as it arrives after postMessage (JSON: no undefined fields). */
const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/**
 * A message as VS Code carries it from the extension host to a webview (extHostWebview's
 * serializeWebviewMessage, then the workbench's): JSON, with every typed array replaced by a
 * reference and its buffer sent beside the text, given back as a typed array over a fresh
 * ArrayBuffer (which the workbench then transfers to the webview).
 */
function ship<T>(msg: T): { message: T; json: string } {
  const buffers: ArrayBuffer[] = [];
  const json = JSON.stringify(msg, (_, v: unknown) => (ArrayBuffer.isView(v)
    ? { $ref: buffers.push(v.buffer as ArrayBuffer) - 1, byteOffset: v.byteOffset, byteLength: v.byteLength }
    : v));
  const copies = buffers.map((b) => b.slice(0));
  const message = JSON.parse(json, (_, v: { $ref?: number; byteOffset: number; byteLength: number }) => (
    v && typeof v === 'object' && typeof v.$ref === 'number' ? new Uint8Array(copies[v.$ref], v.byteOffset, v.byteLength) : v)) as T;
  return { message, json };
}
const carried = <T>(msg: T): T => ship(msg).message;

const ROWS: LogRow[] = [
  { kind: 'manager', id: '0:m1700000000000:0', time: 1_700_000_000_000, state: 'starting', message: 'Starting the reader manager' },
  { kind: 'readerAdded', id: '1:0', time: 1_700_000_000_001.5, reader: 'Lecteur « Ünïcödé » 读卡器 🂡 00 00' },
  { kind: 'cardInserted', id: '1:1', time: 1_700_000_000_002, reader: 'Lecteur « Ünïcödé » 读卡器 🂡 00 00', atr: '3B8F8001804F0CA000000306030001000000006A', protocol: 1, card: 'Some card' },
  { kind: 'cardPowered', id: '1:2', time: 1_700_000_000_003, reader: 'R', atr: '3B00', protocol: 0 },
  { kind: 'cardUnpowered', id: '1:3', time: 3, reader: 'R' },
  { kind: 'cardReset', id: '1:4', time: 4, reader: 'R' },
  { kind: 'cardRemoved', id: '1:5', time: 5, reader: 'R' },
  { kind: 'readerRemoved', id: '1:6', time: 6, reader: '' },
  { kind: 'scriptStarted', id: '1:7', time: 7, file: 'file:///w/a b.apdu', uri: 'file:///w/a b.apdu', client: 'ext.one' },
  { kind: 'echo', id: '1:8', time: 8, message: 'héllo "quoted" \n line', line: 3, uri: 'file:///w/a b.apdu' },
  {
    kind: 'exchange', id: '1:9', time: 9, reader: 'R', command: '00A4040007A0000000041010', response: '6F108407A0000000041010A5059000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 0.123456789, line: 0, uri: 'file:///w/a b.apdu', client: 'ext.one',
  },
  { kind: 'exchange', id: '1:10', time: 10, reader: 'R', command: '', response: '', sw: '6A82', swMeaning: '', swCategory: 'error', durationMs: 0 },
  { kind: 'exchange', id: '1:11', time: 11, reader: 'R', command: '00C0000010', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 2, auto: 'getResponse', parent: '1:10' },
  { kind: 'exchange', id: '1:12', time: 12, reader: 'R', command: '0020008100', response: '63C3', sw: '63C3', swMeaning: 'Verification failed, 3 tries left', swCategory: 'warning', durationMs: 2, auto: 'retryCounter', parent: '1:13' },
  { kind: 'exchange', id: '1:13', time: 13, reader: 'R', command: '00B0000000', response: '6C10', sw: '6C10', swMeaning: 'Wrong Le', swCategory: 'warning', durationMs: 1e-9, auto: 'resendWithLe' },
  { kind: 'control', id: '1:14', time: 14, reader: 'R', code: 0x42000D48, command: 'FF', response: '', error: 'not supported', durationMs: 5, line: 2_147_483_646, uri: 'x' },
  { kind: 'control', id: '1:15', time: 15, reader: 'R', code: 1, command: 'A'.repeat(5000), durationMs: 1 },
  { kind: 'scriptEnded', id: '1:16', time: 16, ok: false, message: 'failed: ✗', file: 'f', line: 99 },
  // Odd ids: not `gen:seq`, not canonical decimals, beyond 32 bits, negative.
  { kind: 'echo', id: 'abc', time: 17, message: '' },
  { kind: 'echo', id: '01:5', time: 18, message: 'x' },
  { kind: 'echo', id: '4294967296:1', time: 19, message: 'x' },
  { kind: 'echo', id: '1:-3', time: 20, message: 'x' },
  { kind: 'echo', id: '4294967295:9007199254740991', time: 21, message: 'x' },
  { kind: 'echo', id: '', time: -1, message: 'x' },
  // A kind this panel does not know, and a field it does not know, are kept.
  { kind: 'futureKind', id: '2:0', time: 22, reader: 'R', extra: { a: [1, 'b'] } } as unknown as LogRow,
  // Fields of an unexpected type are kept as they came.
  { kind: 'exchange', id: '2:1', time: 23, reader: 7, command: null, response: '90', sw: 9000, swMeaning: 'S', swCategory: 'bogus', durationMs: '3', line: -1, auto: 'other' } as unknown as LogRow,
];

test('every row kind comes back from the packed form as it went in', () => {
  const p = carried(packRows(ROWS));
  const u = unpackRows(p);
  assert.ok(u, 'a packed batch unpacks');
  assert.equal(u.length, ROWS.length);
  for (let j = 0; j < ROWS.length; j++) assert.deepEqual(u.row(j), wire(ROWS[j]), `row ${j} (${ROWS[j].id})`);
});

test('a packed batch survives a structured clone (the webview frames) as well as VS Code\'s carriage', () => {
  const u = unpackRows(structuredClone(carried(packRows(ROWS))));
  assert.ok(u);
  assert.deepEqual(Array.from({ length: u.length }, (_, j) => u.row(j)), wire(ROWS));
});

test('rows packed are copied into the columns without a row object, as pushing them would', () => {
  const u = unpackRows(carried(packRows(ROWS)));
  assert.ok(u);
  const viaPacked = new Columns();
  const viaRows = new Columns();
  for (let j = 0; j < u.length; j++) {
    assert.equal(viaPacked.pushPacked(u, j), j);
    viaRows.push(wire(ROWS[j]));
  }
  for (let j = 0; j < ROWS.length; j++) {
    assert.deepEqual(viaPacked.row(j), wire(ROWS[j]), `row ${j} (${ROWS[j].id})`);
    assert.equal(viaPacked.id(j), viaRows.id(j));
    assert.equal(viaPacked.kind(j), viaRows.kind(j));
    assert.equal(viaPacked.readerOf(j), viaRows.readerOf(j));
    assert.equal(viaPacked.clientOf(j), viaRows.clientOf(j));
  }
  assert.equal(viaPacked.find('1:12'), 13);
  assert.equal(viaPacked.find('abc'), 18);
});

test('batches have their own string tables: the second batch maps onto the columns\' table', () => {
  const c = new Columns();
  const a = unpackRows(carried(packRows(ROWS.slice(0, 10))));
  const b = unpackRows(carried(packRows(ROWS.slice(10))));
  assert.ok(a && b);
  for (let j = 0; j < a.length; j++) c.pushPacked(a, j);
  for (let j = 0; j < b.length; j++) c.pushPacked(b, j);
  assert.deepEqual(Array.from({ length: c.length }, (_, i) => c.row(i)), wire(ROWS));
});

test('an empty batch, and a batch of 100,000 rows, pack and unpack', () => {
  const e = unpackRows(carried(packRows([])));
  assert.ok(e);
  assert.equal(e.length, 0);
  const many: LogRow[] = Array.from({ length: 100_000 }, (_, i) => ({
    kind: 'exchange', id: `3:${i}`, time: 1_700_000_000_000 + i, reader: `Reader ${i % 3}`, command: `00A4000C02${(i & 0xFFFF).toString(16).padStart(4, '0')}`,
    response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: i / 7,
  }));
  const p = carried(packRows(many));
  const u = unpackRows(p);
  assert.ok(u);
  assert.equal(u.length, many.length);
  for (const j of [0, 1, 4242, 65_535, 65_536, 99_999]) assert.deepEqual(u.row(j), many[j]);
  // The point of it: a handful of values on the wire, not one object per row.
  assert.ok(Object.keys(p).length < 10);
  // Each distinct string once: 3 readers, 65,536 commands, '9000' (response and SW), 'Success'.
  assert.equal(p.strings.length, 3 + 65_536 + 1 + 1);
  assert.equal(p.long.length, 0);
  assert.equal(p.rare.length, 0);
});

test('the number-like columns travel as bytes beside the message, not as text in it', () => {
  const rows: LogRow[] = Array.from({ length: 1000 }, (_, i) => ({
    kind: 'exchange', id: `1:${i}`, time: 1_700_000_000_000 + i, reader: 'Workbench Simulator 00 00', command: '00A4000C023F00',
    response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: i / 7, line: 3, uri: 'file:///w/panel100k.apdu',
  }));
  const p = packRows(rows);
  // A typed array: VS Code sends its buffer as binary and the workbench transfers it to the webview,
  // so neither renderer's JS heap holds a copy of the columns as a string.
  assert.ok(p.num instanceof Uint8Array, 'the columns are bytes');
  const { message, json } = ship(p);
  assert.ok(json.length < 1000, `the text of a 1,000-row message is ${json.length} characters`);
  const u = unpackRows(message);
  assert.ok(u);
  for (const j of [0, 1, 999]) assert.deepEqual(u.row(j), rows[j]);
  // Bytes at an offset not aligned for the 8-byte columns are read too (copied).
  const bytes = new Uint8Array(p.num.byteLength + 3);
  bytes.set(p.num, 3);
  const moved = unpackRows({ ...message, num: bytes.subarray(3) });
  assert.ok(moved);
  assert.deepEqual(moved.row(999), rows[999]);
});

test('malformed packed batches are refused, not half-read', () => {
  const good = carried(packRows(ROWS));
  const bad: unknown[] = [
    null, 7, 'x', [], {}, { ...good, n: -1 }, { ...good, n: good.n + 1 }, { ...good, n: 1.5 }, { ...good, num: 'not bytes at all!' },
    { ...good, num: good.num.slice(0, 8) }, { ...good, num: new Uint16Array(good.num.byteLength / 2) }, { ...good, num: Array.from(good.num) },
    { ...good, num: new DataView(good.num.buffer) }, { ...good, strings: 'x' }, { ...good, strings: [1] }, { ...good, long: [1] }, { ...good, rare: [0] },
    { ...good, rare: [good.n, {}] }, { ...good, rare: [0, 'x'] },
  ];
  for (const b of bad) assert.equal(unpackRows(b), undefined, JSON.stringify(b)?.slice(0, 80));
  // A string index past the table is refused too.
  const p = packRows([{ kind: 'echo', id: '1:1', time: 1, reader: 'R', message: 'm' }]);
  const strings: string[] = [];
  assert.equal(unpackRows({ ...wire(p), strings }), undefined);
});

test('the model takes a packed history as it takes the rows themselves', () => {
  const events = () => { const seen: string[] = []; return { seen, ev: { reader: (r: string) => seen.push(`reader ${r}`), client: (c: string) => seen.push(`client ${c}`) } }; };
  const a = events();
  const b = events();
  const viaRows = new LogModel({ ...showAll }, 1000, a.ev);
  const viaPacked = new LogModel({ ...showAll }, 1000, b.ev);
  viaRows.receive(wire(ROWS), true);
  const p: PackedRows = carried(packRows(ROWS));
  viaPacked.receivePacked(p, true);
  assert.equal(viaPacked.queuedRows, ROWS.length);
  // Taken in over several frames, a batch cut in between.
  while (viaRows.queuedRows) viaRows.ingest(5);
  while (viaPacked.queuedRows) viaPacked.ingest(5);
  assert.equal(viaPacked.size, viaRows.size);
  assert.equal(viaPacked.itemCount, viaRows.itemCount);
  assert.equal(viaPacked.exchanges, viaRows.exchanges);
  assert.deepEqual(b.seen, a.seen);
  for (let i = 0; i < viaRows.itemCount; i++) {
    assert.deepEqual(viaPacked.row(i), viaRows.row(i));
    assert.deepEqual(viaPacked.kidsOf(i), viaRows.kidsOf(i));
  }
  assert.deepEqual(Array.from(viaPacked.view), Array.from(viaRows.view));
  // The automatic step nested under its exchange, as from the rows themselves.
  const ex = viaPacked.itemOf('1:10');
  assert.ok(ex !== undefined);
  assert.deepEqual(viaPacked.kidsOf(ex).map((k) => k.id), ['1:11']);
});
