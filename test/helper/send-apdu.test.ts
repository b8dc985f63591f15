// Issue 18 item 15: "Smart Card: Send APDU…" over the helper's smartcard/sendApdu: one typed
// command, checked like a script line, sent through the manager like a one-line script.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import {
  EventsNotification, type LogEntry, ReaderConnectRequest, ReaderDisconnectRequest, SendApduRequest, type ResultOf,
} from '../../server/src/protocol';
import { checkOneApdu } from '../../server/src/lsp/sendApdu';
import { startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';

const READER = 'Workbench Simulator 00 00';
let helper: MemoryHelper;
let client: MessageConnection;
const entries: LogEntry[] = [];
/** Resolves when the log entries seen so far satisfy `check` (they arrive batched, after the answer). */
const { changed, until } = notified();

before(async () => {
  helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ card: 'T=0' })] },
    handlers: (c) => {
      c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => { entries.push(...p.entries); changed(); });
      c.onNotification('window/logMessage', () => undefined);
    },
  });
  client = helper.client;
  await helper.started;
});

after(() => helper.stop());

type Answer = ResultOf<typeof SendApduRequest>;
const send = (apdu: string, reader?: string): Promise<Answer> => client.sendRequest(SendApduRequest.method, { apdu, ...(reader ? { reader } : {}) });

test('the typed command is checked by the script parser', () => {
  assert.deepEqual(checkOneApdu(' 00 A4 04 00 07 F057424445 4D4F00 '), { script: '00 A4 04 00 07 F057424445 4D4F00' });
  assert.deepEqual(checkOneApdu('00 84 00 00 08 => 90 00'), { script: '00 84 00 00 08 => 90 00' });
  assert.match((checkOneApdu('') as { error: string }).error, /Type a command APDU in hex/);
  assert.match((checkOneApdu('00 B0 0') as { error: string }).error, /odd|hex|nibble|digit/i);
  assert.match((checkOneApdu('reset') as { error: string }).error, /one command APDU/);
  assert.match((checkOneApdu('00 20 00 01 04 ${pin:"User PIN"}') as { error: string }).error, /PIN or a variable needs a script/);
});

test('one APDU sent: the answer with the exchanges it made (T=0 GET RESPONSE included), logged like a run', async () => {
  const r = await send('00 A4 04 00 07 F0 57 42 44 45 4D 4F 00');
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.equal(r.reader, READER);
  assert.equal(r.commands, 1);
  assert.ok(r.exchanges.length >= 1);
  assert.match(r.exchanges[0].command.replace(/\s/g, ''), /^00A4040007F0574244454D4F/i, 'the command as typed (T=0: without Le)');
  const last = r.exchanges.at(-1)!;
  assert.equal(last.sw, '9000');
  await until(() => entries.some((e) => e.kind === 'scriptEnded' && e.runId === r.runId));
  assert.ok(entries.some((e) => e.kind === 'scriptStarted' && e.runId === r.runId), 'the log shows it like a run');
  assert.deepEqual(entries.filter((e) => e.kind === 'exchange' && e.runId === r.runId).map((e) => e.seq), r.exchanges.map((e) => e.seq));
  assert.ok(r.exchanges.every((e) => e.runId === r.runId));
});

test('an expectation that fails is reported, not thrown', async () => {
  const r = await send('00 84 00 00 08 => 6A 82');
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'EXPECTATION_FAILED');
  assert.equal(r.exchanges.at(-1)?.sw, '9000');
});

test('the gate rules of scripts hold: refused while the editor holds the reader exclusively', async () => {
  await client.sendRequest(ReaderConnectRequest.method, { reader: READER, share: 'exclusive' });
  const r = await send('00 84 00 00 08');
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'SHARING_VIOLATION');
  assert.equal(r.exchanges.length, 0);
  await client.sendRequest(ReaderDisconnectRequest.method, { reader: READER, disposition: 'leave' });
  assert.equal((await send('00 84 00 00 08')).ok, true);
});

test('bad input is refused with the parser\'s words', async () => {
  await assert.rejects(send('00 B0 0'), (e: Error) => /hex|odd|digit|nibble/i.test(e.message));
  await assert.rejects(send('reset'), /one command APDU/);
});
