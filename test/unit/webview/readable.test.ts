// Issue 18 items 4 and 5, the panel's pure parts: collapsed rows name the command and show text
// as text; the filter finds command names; a new run is announced to the page (Follow comes back).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterRows, showAll } from '../../../webview/src/filter';
import { commandName, printableText } from '../../../webview/src/format';
import { LogModel } from '../../../webview/src/model';
import type { ExchangeRow, LogRow } from '../../../webview/src/protocol';

const R = 'Workbench Simulator 00 00';
const text = Buffer.from('Hello from the Workbench demo card, EF 5001.\n', 'latin1').toString('hex').toUpperCase();
const ex = (seq: number, command: string, response: string): ExchangeRow => ({
  kind: 'exchange', id: `1:${seq}`, time: 1000 + seq, reader: R, command, response, sw: response.slice(-4), swMeaning: 'Success', swCategory: 'success', durationMs: 1,
});

test('collapsed rows name the command; proprietary classes are not guessed', () => {
  assert.equal(commandName('00A4040007F0574244454D4F00'), 'SELECT');
  assert.equal(commandName('00 B0 00 00 2E'), 'READ BINARY');
  assert.equal(commandName('00B2010C00'), 'READ RECORD');
  assert.equal(commandName('0C B0 00 00 00'), 'READ BINARY');
  assert.equal(commandName('FFCA000000'), 'GET DATA (reader)');
  assert.equal(commandName('80CA9F7F00'), '', 'a GlobalPlatform GET DATA is not an ISO one by its INS alone');
});

test('text responses read as text; binary ones do not', () => {
  assert.equal(printableText(text), 'Hello from the Workbench demo card, EF 5001. ');
  assert.equal(printableText('6F0B8407F0574244454D4FA500'), '');
  assert.equal(printableText('0102'), '');
});

test('the filter matches command names, as typed', () => {
  const rows: LogRow[] = [ex(1, '00A4040007F0574244454D4F00', '6F009000'), ex(2, '00B000002E', `${text}9000`), ex(3, '0084000008', '01020304050607089000')];
  for (const needle of ['READ BINARY', 'read binary', 'readbinary']) {
    assert.deepEqual(filterRows(rows, { ...showAll, text: needle }).map((r) => r.id), ['1:2'], needle);
  }
  assert.deepEqual(filterRows(rows, { ...showAll, text: 'GET CHALLENGE' }).map((r) => r.id), ['1:3']);
  assert.deepEqual(filterRows(rows, { ...showAll, text: 'UPDATE RECORD' }), []);
});

test('a live run start is announced; the history sent after a reset is not', () => {
  const started: string[] = [];
  const m = new LogModel({ ...showAll }, 100, { runStarted: (it) => started.push(m.id(it)) });
  const run = (seq: number): LogRow => ({ kind: 'scriptStarted', id: `1:${seq}`, time: seq, runId: seq } as LogRow);
  m.receive([run(1), ex(2, '0084000008', '9000')], true);
  while (m.queuedRows) m.ingest(100);
  assert.deepEqual(started, [], 'history is not a new run');
  m.receive([run(3)]);
  m.ingest(100);
  assert.deepEqual(started, ['1:3']);
});
