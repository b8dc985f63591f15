import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExchangeEntry, LogEntry } from '../../../server/src/protocol';
import { LogStore, entryToRow } from '../../../extension/src/logStore';

const R = 'Workbench Simulator 00 00';

function exchange(seq: number, extra: Partial<ExchangeEntry> = {}): ExchangeEntry {
  return {
    kind: 'exchange', seq, time: 1000 + seq, reader: R, command: '00A4040007A0000000031010', response: '6F109000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1.5, ...extra,
  };
}

test('exchanges become rows with generation-qualified ids and parents', () => {
  const row = entryToRow(exchange(7, { auto: 'getResponse', parent: 6, runId: 3, line: 4 }), 2, (id) => (id === 3 ? 'file:///x.apdu' : undefined));
  assert.equal(row.kind, 'exchange');
  if (row.kind !== 'exchange') return;
  assert.equal(row.id, '2:7');
  assert.equal(row.parent, '2:6');
  assert.equal(row.auto, 'getResponse');
  assert.equal(row.uri, 'file:///x.apdu');
  assert.equal(row.line, 4);
  assert.equal(row.sw, '9000');
});

test('events keep their reader, ATR and protocol', () => {
  const e: LogEntry = { kind: 'cardInserted', seq: 1, time: 5, reader: R, atr: '3B8E', protocol: 1 };
  assert.deepEqual(entryToRow(e, 1, () => undefined), { kind: 'cardInserted', id: '1:1', time: 5, reader: R, atr: '3B8E', protocol: 1 });
});

test('an idle power-down keeps its idle flag and period in the row (the APDU Log says "powered down (unused for N s)")', () => {
  const idle = entryToRow({ kind: 'cardUnpowered', seq: 4, time: 9, reader: R, idle: true, idleMs: 5000 }, 1, () => undefined);
  assert.deepEqual(idle, { kind: 'cardUnpowered', id: '1:4', time: 9, reader: R, atr: undefined, protocol: undefined, idle: true, idleMs: 5000 });
  const client = entryToRow({ kind: 'cardUnpowered', seq: 5, time: 9, reader: R }, 1, () => undefined);
  assert.equal('idle' in client, false, 'a client\'s or the Readers view\'s power-off has no idle flag');
});

test('new entries are appended once; duplicates from the history are dropped', () => {
  const s = new LogStore();
  s.newGeneration();
  assert.deepEqual(s.addEntries([exchange(1), exchange(2)]).appended.map((r) => r.id), ['1:1', '1:2']);
  const again = s.addEntries([exchange(1), exchange(2), exchange(3)]);
  assert.deepEqual(again.appended.map((r) => r.id), ['1:3']);
  assert.equal(again.reordered, false);
  assert.equal(s.size, 3);
});

test('a missed older entry is inserted in order and asks for a full resend', () => {
  const s = new LogStore();
  s.newGeneration();
  s.addEntries([exchange(1), exchange(3)]);
  const r = s.addEntries([exchange(2)]);
  assert.equal(r.reordered, true);
  assert.deepEqual(s.rows().map((x) => x.id), ['1:1', '1:2', '1:3']);
});

test('a restarted helper starts its sequence numbers again in a new generation', () => {
  const s = new LogStore();
  s.newGeneration();
  s.addEntries([exchange(1), exchange(2)]);
  s.addManager('restarting', 'crashed');
  s.newGeneration();
  s.addManager('starting', 'starting');
  const r = s.addEntries([exchange(1)]);
  assert.deepEqual(r.appended.map((x) => x.id), ['2:1']);
  assert.deepEqual(s.rows().map((x) => x.kind), ['exchange', 'exchange', 'manager', 'manager', 'exchange']);
});

test('script runs lend their file to their exchanges', () => {
  const s = new LogStore();
  s.newGeneration();
  s.addEntries([{ kind: 'scriptStarted', seq: 1, time: 1, runId: 9, file: 'file:///w/hello.apdu' }, exchange(2, { runId: 9, line: 3 })]);
  const row = s.rows()[1];
  assert.equal(row.kind === 'exchange' && row.uri, 'file:///w/hello.apdu');
});

test('the buffer keeps the newest rows up to its capacity; clear empties it', () => {
  const s = new LogStore(3);
  s.newGeneration();
  s.addEntries([1, 2, 3, 4, 5].map((n) => exchange(n)));
  assert.deepEqual(s.rows().map((x) => x.id), ['1:3', '1:4', '1:5']);
  assert.equal(s.clear(), 3);
  assert.equal(s.size, 0);
  assert.deepEqual(s.addEntries([exchange(6)]).appended.map((x) => x.id), ['1:6']);
});

test('a large buffer trims in steps, never beyond capacity plus a quarter', () => {
  const s = new LogStore(100);
  s.newGeneration();
  for (let i = 1; i <= 1000; i++) {
    s.addEntries([exchange(i)]);
    assert.ok(s.size <= 125);
  }
  const ids = s.rows().map((x) => x.id);
  assert.equal(ids[ids.length - 1], '1:1000');
  assert.ok(s.size >= 100);
});

test('rows another extension made through the API keep its id; the editor\'s own rows have none', () => {
  const mine = entryToRow(exchange(8, { client: 'acme.applet-tools' }), 1, () => undefined);
  assert.equal(mine.kind === 'exchange' && mine.client, 'acme.applet-tools');
  const started = entryToRow({ kind: 'scriptStarted', seq: 9, time: 1, runId: 4, file: 'file:///ws/hello.apdu', client: 'acme.applet-tools' }, 1, () => undefined);
  assert.equal(started.client, 'acme.applet-tools');
  const control = entryToRow({ kind: 'control', seq: 10, time: 1, reader: R, code: 3400, command: '', durationMs: 1, client: 'acme.applet-tools' }, 1, () => undefined);
  assert.equal(control.client, 'acme.applet-tools');
  assert.equal('client' in entryToRow(exchange(11), 1, () => undefined), false);
});
