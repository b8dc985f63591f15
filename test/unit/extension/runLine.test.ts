// Issue 18 item 13: a "Run line" adds one row group to the log (its exchange, automatic steps
// nested), not "Script started" / exchange / "Script ended"; a failing line keeps its end row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { LogEntry } from '../../../server/src/protocol';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { LogStore } from '../../../extension/src/logStore';

const SCRIPT = '00 A4 04 00 07 F0 57 42 44 45 4D 4F 00 => 6F * 90 00\n00 B0 00 00 2E => * 90 00\n00 B0 00 00 2E => 6A 82\n';

async function rowsOf(run: (m: ReaderManager) => Promise<unknown>) {
  const m = new ReaderManager([new SimulatorDriver()]);
  await m.start();
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await run(m);
  const store = new LogStore();
  store.newGeneration();
  store.addEntries(entries);
  return store.rows();
}

test('Run line: the exchange is the row; no start/end rows, and its row links to the file', async () => {
  const rows = await rowsOf((m) => runScript(parseScript(SCRIPT), { manager: m, uri: 'file:///ws/hello.apdu', fromLine: 1, toLine: 1 }));
  assert.deepEqual(rows.map((r) => r.kind).filter((k) => k !== 'cardPowered' && k !== 'cardInserted' && k !== 'readerAdded'), ['exchange']);
  const x = rows.find((r) => r.kind === 'exchange')!;
  assert.equal(x.line, 1);
  assert.equal(x.uri, 'file:///ws/hello.apdu', 'the line link still names the file');
});

test('Run line that fails keeps its end row saying why; a whole run keeps start and end', async () => {
  const failed = await rowsOf((m) => runScript(parseScript(SCRIPT), { manager: m, uri: 'file:///ws/hello.apdu', fromLine: 3, toLine: 3 }));
  const kinds = failed.map((r) => r.kind);
  assert.ok(!kinds.includes('scriptStarted'));
  assert.equal(kinds.filter((k) => k === 'scriptEnded').length, 1);
  const whole = await rowsOf((m) => runScript(parseScript(SCRIPT), { manager: m, uri: 'file:///ws/hello.apdu' }));
  assert.equal(whole.filter((r) => r.kind === 'scriptStarted').length, 1);
  assert.equal(whole.filter((r) => r.kind === 'scriptEnded').length, 1);
  const toHere = await rowsOf((m) => runScript(parseScript(SCRIPT), { manager: m, uri: 'file:///ws/hello.apdu', fromLine: 1, toLine: 2 }));
  assert.equal(toHere.filter((r) => r.kind === 'scriptStarted').length, 1, '"Run to here" is a run of its own, with its rows');
});
