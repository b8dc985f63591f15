import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterRows, rowMatches, showAll } from '../../../webview/src/filter';
import { jsonLines, shortHex, traceText } from '../../../webview/src/format';
import { isFilter, parseWebviewMessage, type LogRow } from '../../../webview/src/protocol';

const A = 'Reader A 00 00';
const B = 'Reader B 00 00';
const rows: LogRow[] = [
  { kind: 'cardPowered', id: '1:1', time: 0, reader: A, atr: '3B00', protocol: 0 },
  { kind: 'exchange', id: '1:2', time: 1, reader: A, command: '00A4040007A0000000031010', response: '6112', sw: '6112', swMeaning: '18 bytes available', swCategory: 'success', durationMs: 1 },
  { kind: 'exchange', id: '1:3', time: 2, reader: A, command: '00C0000012', response: '6F109000', sw: '9000', swMeaning: 'Normal processing', swCategory: 'success', durationMs: 1, auto: 'getResponse', parent: '1:2' },
  { kind: 'exchange', id: '1:4', time: 3, reader: B, command: '0084000008', response: '6A82', sw: '6A82', swMeaning: 'File or application not found', swCategory: 'error', durationMs: 2 },
  { kind: 'exchange', id: '1:5', time: 4, reader: B, command: '0020000104********', response: '63C2', sw: '63C2', swMeaning: 'Verification failed, 2 tries left', swCategory: 'warning', durationMs: 2 },
  { kind: 'manager', id: '1:m', time: 5, state: 'running', message: 'started' },
];
const ids = (rs: LogRow[]) => rs.map((r) => r.id);

test('no filter keeps everything', () => {
  assert.deepEqual(ids(filterRows(rows, showAll)), ids(rows));
});

test('by reader: rows of that reader, and rows of no reader', () => {
  assert.deepEqual(ids(filterRows(rows, { ...showAll, reader: B })), ['1:4', '1:5', '1:m']);
});

test('by status-word class; an automatic step goes with its exchange', () => {
  assert.deepEqual(ids(filterRows(rows, { ...showAll, success: false, warning: false })), ['1:1', '1:4', '1:m']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, error: false, warning: false, events: false })), ['1:2', '1:3', '1:m']);
});

test('by text: hex with or without spaces, SW, meaning; a matching step keeps its exchange', () => {
  assert.deepEqual(ids(filterRows(rows, { ...showAll, text: '00 84 00 00 08' })), ['1:4']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, text: '0084000008' })), ['1:4']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, text: 'not FOUND' })), ['1:4']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, text: '00 c0 00' })), ['1:2', '1:3']);
  assert.equal(rowMatches(rows[4], { ...showAll, text: '63 c2' }), true);
});

test('events toggle hides card events only', () => {
  assert.deepEqual(ids(filterRows(rows, { ...showAll, events: false })), ['1:2', '1:3', '1:4', '1:5', '1:m']);
});

test('exports: a text trace with > / < lines and meanings; JSON Lines one row per line; the PIN stays masked', () => {
  const text = traceText(rows, new Date(0));
  assert.match(text, /^# APDU Log exported 1970-01-01T00:00:00.000Z: 6 rows\n/);
  assert.match(text, /> 00 A4 04 00 07 A0 00 00 00 03 10 10\n< 61 12 : 18 bytes available/);
  assert.match(text, /\[GET RESPONSE \(automatic, 61xx\)\]\n> 00 C0 00 00 12\n< 6F 10 90 00 : Normal processing/);
  assert.match(text, /> 00 20 00 01 04 \*\* \*\* \*\* \*\*/);
  const lines = jsonLines(rows).trimEnd().split('\n');
  assert.equal(lines.length, rows.length);
  assert.deepEqual(lines.map((l) => JSON.parse(l)), rows);
});

test('long hex is cut for a collapsed row', () => {
  assert.deepEqual(shortHex('00A4'), { text: '00 A4', cut: false });
  const long = shortHex('AB'.repeat(100), 4);
  assert.equal(long.text, 'AB AB AB AB …');
  assert.equal(long.cut, true);
});

test('decode and export requests are validated', () => {
  assert.equal(parseWebviewMessage({ type: 'request', id: 1, method: 'decode', params: { id: '1:2' } }).ok, true);
  assert.equal(parseWebviewMessage({ type: 'request', id: 1, method: 'decode', params: { id: 7 } }).ok, false);
  assert.equal(parseWebviewMessage({ type: 'request', id: 1, method: 'export', params: { filter: showAll } }).ok, true);
  assert.equal(parseWebviewMessage({ type: 'request', id: 1, method: 'export', params: { filter: { ...showAll, error: 'yes' } } }).ok, false);
  assert.equal(parseWebviewMessage({ type: 'request', id: 1, method: 'export', params: {} }).ok, false);
  assert.equal(isFilter({ ...showAll, text: 'x'.repeat(20_000) }), false);
});
