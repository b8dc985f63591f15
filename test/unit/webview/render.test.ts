// What the APDU Log renders a collapsed exchange from, without making the row: the fields taken
// straight from the columns (webview/src/columns.ts `exchangeFields`) are the row's own, for every
// row kind and the odd ones, whether the row came as an object or in a packed batch; and the
// formatting the panel does per row while scrolling (clock, duration, spaced status word) gives
// the same text as before, in every time zone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Columns, newExchangeFields, type ExchangeFields } from '../../../webview/src/columns';
import { clock, clockMillis, clockSecond, duration, forgetTimeZone, spacedHex, spacedSw } from '../../../webview/src/format';
import { packRows, unpackRows } from '../../../webview/src/packed';
import type { LogRow } from '../../../webview/src/protocol';

const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const ROWS: LogRow[] = wire([
  { kind: 'manager', id: '0:m1700000000000:0', time: 1_700_000_000_000, state: 'starting', message: 'Starting the reader manager' },
  { kind: 'readerAdded', id: '1:0', time: 1_700_000_000_001.5, reader: 'Lecteur « Ünïcödé » 读卡器 🂡 00 00' },
  { kind: 'cardInserted', id: '1:1', time: 2, reader: 'R', atr: '3B00', protocol: 1, card: 'Some card' },
  { kind: 'cardRemoved', id: '1:5', time: 5, reader: 'R' },
  { kind: 'scriptStarted', id: '1:7', time: 7, file: 'file:///w/a b.apdu', uri: 'file:///w/a b.apdu', client: 'ext.one' },
  { kind: 'echo', id: '1:8', time: 8, message: 'x', line: 3, uri: 'file:///w/a b.apdu' },
  // Plain exchanges: with and without client, line, uri; long hex; empty fields; an automatic step without parent.
  {
    kind: 'exchange', id: '1:9', time: 9, reader: 'R', command: '00A4040007A0000000041010', response: '6F108407A0000000041010A5059000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 0.123456789, line: 7, uri: 'file:///w/a b.apdu', client: 'ext.one',
  },
  { kind: 'exchange', id: '1:10', time: 10, reader: 'R', command: '', response: '', sw: '6A82', swMeaning: '', swCategory: 'error', durationMs: 0 },
  { kind: 'exchange', id: '1:11', time: 11.25, reader: '', command: 'A'.repeat(600), response: 'B'.repeat(600), sw: '63C3', swMeaning: 'Verification failed', swCategory: 'warning', durationMs: 12345, auto: 'resendWithLe' },
  { kind: 'exchange', id: '3:4294967296', time: 12, reader: 'R', command: '00B0000000', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 2, line: 1 },
  // Exchanges that are not plain: an automatic step under its exchange, odd ids, fields of a wrong type, a field the panel does not know.
  { kind: 'exchange', id: '1:12', time: 13, reader: 'R', command: '00C0000010', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 2, auto: 'getResponse', parent: '1:10' },
  { kind: 'exchange', id: 'abc', time: 14, reader: 'R', command: '00', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1 },
  { kind: 'exchange', id: '2:1', time: 23, reader: 7, command: null, response: '90', sw: 9000, swMeaning: 'S', swCategory: 'bogus', durationMs: '3', line: -1 },
  { kind: 'exchange', id: '2:2', time: 24, reader: 'R', command: '00', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1, extra: 1 },
  { kind: 'exchange', id: '2:3', time: 25, reader: 'R', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1 },
  { kind: 'control', id: '1:14', time: 14, reader: 'R', code: 0x42000D48, command: 'FF', response: '', error: 'not supported', durationMs: 5 },
] as unknown as LogRow[]);

const PLAIN = new Set(['1:9', '1:10', '1:11', '3:4294967296']);

/** The fields as the row object has them (absent ones left out). */
const fieldsOf = (f: ExchangeFields) => Object.fromEntries(Object.entries({ kind: 'exchange', ...f }).filter(([, v]) => v !== undefined));

function check(cols: Columns): void {
  const out = newExchangeFields();
  for (let i = 0; i < cols.length; i++) {
    const r = cols.row(i);
    const plain = cols.exchangeFields(i, out);
    assert.equal(plain, PLAIN.has(r.id), `row ${r.id}: plain exchange or not`);
    if (plain) assert.deepEqual(fieldsOf(out), r, `row ${r.id}: the same fields as the row`);
  }
}

test('a collapsed exchange\'s fields from the columns are the row\'s own, for rows pushed as objects', () => {
  const cols = new Columns();
  for (const r of ROWS) cols.push(r);
  check(cols);
});

test('… and for rows copied from a packed batch', () => {
  const u = unpackRows(structuredClone(packRows(ROWS)));
  assert.ok(u);
  const cols = new Columns();
  for (let j = 0; j < u.length; j++) cols.pushPacked(u, j);
  check(cols);
});

test('filling the fields makes no row object: one object is filled again for every row', () => {
  const cols = new Columns();
  for (let k = 0; k < 1000; k++) cols.push({ ...ROWS[6], id: `1:${100 + k}`, time: k } as LogRow);
  const out = newExchangeFields();
  for (let i = 0; i < cols.length; i++) {
    assert.ok(cols.exchangeFields(i, out));
    assert.equal(out.id, `1:${100 + i}`);
    assert.equal(out.time, i);
  }
  // The id can be given when the caller has it already.
  assert.ok(cols.exchangeFields(5, out, 'given'));
  assert.equal(out.id, 'given');
});

/** clock() as it was written first (a Date and padStart per field): the reference. */
function clockReference(time: number): string {
  const d = new Date(time);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

test('clock() gives the same text as with a Date per row, in every time zone and across daylight-saving changes', () => {
  const zone = process.env.TZ;
  const times = [0, 1, 999.9, 1_700_000_000_000, 1_700_000_000_123.75, -1, -86_400_001.5, 253_402_300_799_999];
  // Around the 2026 changes in Europe (29 March, 25 October), North America (8 March, 1 November),
  // Lord Howe (a 30-minute change) and Sydney: every 7 minutes for 3 hours, and odd milliseconds.
  for (const day of [Date.UTC(2026, 2, 29), Date.UTC(2026, 9, 25), Date.UTC(2026, 2, 8, 6), Date.UTC(2026, 10, 1, 5), Date.UTC(2026, 3, 4, 14), Date.UTC(2026, 9, 3, 15)]) {
    for (let t = day - 90 * 60_000; t < day + 90 * 60_000; t += 7 * 60_000 + 37.5) times.push(t);
  }
  try {
    for (const tz of ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata', 'Australia/Sydney', 'Pacific/Chatham']) {
      process.env.TZ = tz;
      for (const t of times) assert.equal(clock(t), clockReference(t), `${tz} ${new Date(t).toISOString()}`);
      // The same times again, out of order (a cache must not hand out another time zone or offset).
      for (const t of [...times].reverse()) assert.equal(clock(t), clockReference(t), `${tz} ${t} again`);
      // The two parts the panel writes to a row's time (offset cached per quarter hour, texts per value).
      forgetTimeZone();
      for (const t of times) assert.equal(clockSecond(t) + clockMillis(t), clockReference(t), `parts: ${tz} ${new Date(t).toISOString()}`);
      for (const t of [...times].reverse()) assert.equal(clockSecond(t) + clockMillis(t), clockReference(t), `parts: ${tz} ${t} again`);
    }
    for (const t of [NaN, Infinity, 8.64e15 + 1]) assert.equal(clockSecond(t) + clockMillis(t), clock(t), `parts: ${t}`);
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
    forgetTimeZone();
  }
});

test('duration() and the spaced status word give the texts they gave', () => {
  const reference = (ms: number) => (ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`);
  for (const ms of [0, 0.004, 0.005, 0.015, 1.005, 0.123456789, 9.994, 9.995, 9.999, 10, 99.95, 999.94, 999.96, 1000, 12345, 1e-9, 0.07, 0.07, 0.07]) {
    assert.equal(duration(ms), reference(ms), String(ms));
  }
  for (const sw of ['9000', '6a82', '61 10', '', '9', 'ZZZZ']) assert.equal(spacedSw(sw), spacedHex(sw), sw);
  assert.equal(spacedSw('9000'), spacedSw('9000'));
});
