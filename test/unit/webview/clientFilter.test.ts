// Issue 15: the APDU Log's client filter beside the reader filter. Rows a program made carry its
// name (an extension through the API, a PC/SC service client such as "pcsc_scan (pid 4711)");
// the workbench's own rows carry none and are chosen as "workbench". Pure: the filter shared by
// the panel and the export, the model's list of clients, the message check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterRows, isFilterActive, showAll, WORKBENCH_CLIENT } from '../../../webview/src/filter';
import { LogModel } from '../../../webview/src/model';
import { isFilter, type LogRow } from '../../../webview/src/protocol';

const A = 'Reader A 00 00';
const B = 'Reader B 00 00';
const SCAN = 'pcsc_scan (pid 4711)';
const EXT = 'acme.smartcard-tests';
const ex = (id: string, reader: string, client?: string, extra: Partial<LogRow> = {}): LogRow => ({
  kind: 'exchange', id, time: 0, reader, command: '00A4040000', response: '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1,
  ...(client ? { client } : {}), ...extra,
} as LogRow);
const rows: LogRow[] = [
  { kind: 'manager', id: '1:m', time: 0, state: 'running', message: 'started' },
  { kind: 'cardInserted', id: '1:1', time: 0, reader: A, atr: '3B00' },
  { kind: 'scriptStarted', id: '1:2', time: 0, reader: A, file: '/w/hello.apdu' },
  ex('1:3', A),
  ex('1:4', A, SCAN),
  ex('1:5', B, SCAN, { command: '0084000008' }),
  ex('1:6', B, EXT),
  ex('1:7', A, SCAN, { auto: 'getResponse', parent: '1:4', command: '00C0000012' }),
  { kind: 'scriptEnded', id: '1:8', time: 0, reader: A, ok: true },
];
const ids = (rs: readonly LogRow[]) => rs.map((r) => r.id);

test('a client: its rows only, with their automatic steps; events and manager rows stay (they are nobody\'s)', () => {
  const f = { ...showAll, client: SCAN };
  assert.equal(isFilterActive(f), true);
  assert.deepEqual(ids(filterRows(rows, f)), ['1:m', '1:1', '1:4', '1:5', '1:7']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, client: EXT })), ['1:m', '1:1', '1:6']);
});

test('"workbench": the rows no client made (the workbench\'s own scripts)', () => {
  assert.deepEqual(ids(filterRows(rows, { ...showAll, client: WORKBENCH_CLIENT })), ['1:m', '1:1', '1:2', '1:3', '1:8']);
});

test('combined with the reader and text filters; no client chosen is no client filter', () => {
  assert.deepEqual(ids(filterRows(rows, { ...showAll, client: SCAN, reader: B })), ['1:m', '1:5']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, client: SCAN, text: '00 84' })), ['1:5']);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, client: WORKBENCH_CLIENT, reader: B })), ['1:m']);
  assert.equal(isFilterActive({ ...showAll, client: '' }), false);
  assert.deepEqual(ids(filterRows(rows, { ...showAll, client: '' })), ids(rows));
});

test('the model: the same rows in its view, and each client named once as it first appears', () => {
  const clients: string[] = [];
  const filter = { ...showAll };
  const m = new LogModel(filter, 100, { client: (name) => clients.push(name) });
  m.receive(rows);
  while (m.queuedRows) m.ingest(1000);
  assert.deepEqual(clients, [SCAN, EXT], 'clients listed once, in order of arrival; the workbench\'s rows name none');
  filter.client = SCAN;
  m.rebuildView();
  assert.deepEqual(Array.from(m.view, (it) => m.id(it)), ['1:m', '1:1', '1:4', '1:5'], 'the step 1:7 stays nested under 1:4');
  filter.client = WORKBENCH_CLIENT;
  m.rebuildView();
  assert.deepEqual(Array.from(m.view, (it) => m.id(it)), ['1:m', '1:1', '1:2', '1:3', '1:8']);
});

test('the export request\'s filter: a client is a bounded string; a filter saved before the client filter still reads', () => {
  assert.equal(isFilter({ ...showAll, client: SCAN }), true);
  assert.equal(isFilter({ ...showAll, client: 7 }), false);
  assert.equal(isFilter({ ...showAll, client: 'x'.repeat(2000) }), false);
  const { client: _, ...older } = { ...showAll };
  assert.equal(isFilter(older), true);
});
