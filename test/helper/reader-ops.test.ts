// The Readers view's operations over the helper's requests (smartcard/reader/*):
// the editor's connection, reset, power off, control; parameters validated.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import {
  type ControlEntry, EventsNotification, type LogEntry, type ReaderInfo, type ReaderList, ReadersChangedNotification, ReadersRequest,
  ReaderConnectRequest, ReaderControlRequest, ReaderDisconnectRequest, ReaderPowerOffRequest, ReaderResetRequest,
  RunScriptRequest, type RunScriptResult, SimulatorRemoveCardRequest, SimulatorInsertCardRequest,
} from '../../server/src/protocol';
import { startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';

const READER = 'Workbench Simulator 00 00';
let helper: MemoryHelper;
let client: MessageConnection;
const entries: LogEntry[] = [];
const lists: ReaderList[] = [];
/** Resolves when what the notifications brought satisfies `check`. */
const { changed, until } = notified();
const reader = async (): Promise<ReaderInfo> => ((await client.sendRequest(ReadersRequest.method, {})) as ReaderList).readers[0];

before(async () => {
  helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ card: 'T=1', keypad: async () => '1234' })] },
    handlers: (c) => {
      c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => { entries.push(...p.entries); changed(); });
      c.onNotification(ReadersChangedNotification.method, (p: ReaderList) => { lists.push(p); changed(); });
      c.onNotification('window/logMessage', () => undefined);
    },
  });
  client = helper.client;
});

after(() => helper.stop());

test('connect exclusive: the reader shows the editor connection; a script is refused; disconnect clears it', async () => {
  const info = await client.sendRequest(ReaderConnectRequest.method, { reader: READER, share: 'exclusive', protocol: 1 }) as ReaderInfo;
  assert.deepEqual(info.editor, { share: 'exclusive', protocol: 1 });
  assert.equal(info.exclusive, true);
  await until(() => lists.at(-1)?.readers[0].editor?.share === 'exclusive');
  const r = await client.sendRequest(RunScriptRequest.method, { text: '00 84 00 00 08', reader: READER }) as RunScriptResult;
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'SHARING_VIOLATION');
  await assert.rejects(client.sendRequest(ReaderConnectRequest.method, { reader: READER }), /already holds a exclusive connection/);
  await client.sendRequest(ReaderDisconnectRequest.method, { reader: READER, disposition: 'leave' });
  const after = await reader();
  assert.equal(after.editor, undefined);
  assert.equal(after.connections, 0);
  await assert.rejects(client.sendRequest(ReaderDisconnectRequest.method, { reader: READER }), /holds no connection/);
});

test('reset (cold, warm) and power off act on the card and are logged, with or without the editor connection', async () => {
  const before = entries.length;
  const cold = await client.sendRequest(ReaderResetRequest.method, { reader: READER, mode: 'cold' }) as { atr: string; protocol: number };
  assert.match(cold.atr, /^3B/);
  assert.equal(cold.protocol, 1);
  await client.sendRequest(ReaderPowerOffRequest.method, { reader: READER });
  assert.equal((await reader()).card?.powered, false);
  await client.sendRequest(ReaderConnectRequest.method, { reader: READER, share: 'shared' });
  const warm = await client.sendRequest(ReaderResetRequest.method, { reader: READER, mode: 'warm' }) as { atr: string };
  assert.equal(warm.atr, cold.atr);
  await client.sendRequest(ReaderPowerOffRequest.method, { reader: READER });
  await client.sendRequest(ReaderDisconnectRequest.method, { reader: READER, disposition: 'unpower' });
  // cold reset = off + on; power off; connect powers up; warm reset; power off (the unpowering disconnect finds it off).
  await until(() => entries.slice(before).filter((e) => e.kind.startsWith('card')).length >= 6);
  assert.deepEqual(entries.slice(before).map((e) => e.kind).filter((k) => k.startsWith('card')),
    ['cardUnpowered', 'cardPowered', 'cardUnpowered', 'cardPowered', 'cardReset', 'cardUnpowered']);
});

test('control: the answer comes back and lands in the log as a control row; errors are logged too', async () => {
  const before = entries.length;
  const r = await client.sendRequest(ReaderControlRequest.method, { reader: READER, code: 3400, data: '' }) as { response: string };
  assert.match(r.response, /^0604[0-9A-F]{8}$/, 'the pinpad feature list: VERIFY_PIN_DIRECT and its code');
  await assert.rejects(client.sendRequest(ReaderControlRequest.method, { reader: READER, code: 1234 }), /knows no control code 1234/);
  await until(() => entries.slice(before).filter((e) => e.kind === 'control').length === 2);
  const rows = entries.slice(before).filter((e): e is ControlEntry => e.kind === 'control');
  assert.equal(rows[0].code, 3400);
  assert.equal(rows[0].response, r.response);
  assert.match(rows[1].error ?? '', /knows no control code 1234/);
});

test('bad parameters get clear errors', async () => {
  await assert.rejects(client.sendRequest(ReaderControlRequest.method, { reader: READER, code: -1 }), /whole number from 0 to 0xFFFFFFFF/);
  await assert.rejects(client.sendRequest(ReaderControlRequest.method, { reader: READER, code: 1.5 }), /whole number/);
  await assert.rejects(client.sendRequest(ReaderControlRequest.method, { reader: READER, code: 3400, data: 'zz' }), /control data is not hex/);
  await assert.rejects(client.sendRequest(ReaderControlRequest.method, { reader: READER, code: 3400, data: 'AA'.repeat(70_000) }), /at most 65,536 bytes/);
  await assert.rejects(client.sendRequest(ReaderConnectRequest.method, { reader: 'Workbench*' }), /No reader named 'Workbench\*'/);
  await assert.rejects(client.sendRequest(ReaderConnectRequest.method, { reader: 'x'.repeat(300) }), /at most 256 characters/);
  await assert.rejects(client.sendRequest(ReaderConnectRequest.method, { reader: READER, share: 'direct' }), /share is 'shared' or 'exclusive'/);
  await assert.rejects(client.sendRequest(ReaderConnectRequest.method, { reader: READER, protocol: 2 }), /protocol is 0 \(T=0\) or 1 \(T=1\)/);
  await assert.rejects(client.sendRequest(ReaderResetRequest.method, { reader: READER, mode: 'hot' }), /mode is 'cold' or 'warm'/);
  // Two Connects at once: one connection, the other is refused.
  const both = await Promise.allSettled([client.sendRequest(ReaderConnectRequest.method, { reader: READER }), client.sendRequest(ReaderConnectRequest.method, { reader: READER })]);
  assert.deepEqual(both.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  assert.equal((await reader()).connections, 1);
  await assert.rejects(client.sendRequest(ReaderDisconnectRequest.method, { reader: READER, disposition: 'eject' }), /cannot eject cards/);
  await assert.rejects(client.sendRequest(ReaderDisconnectRequest.method, { reader: READER, disposition: 'drop' }), /disposition is/);
  await client.sendRequest(ReaderDisconnectRequest.method, { reader: READER });
});

test('removing the card ends the editor connection; the reinserted card is initialized again', async () => {
  await client.sendRequest(ReaderConnectRequest.method, { reader: READER, share: 'exclusive' });
  const powered = entries.filter((e) => e.kind === 'cardPowered').length;
  await client.sendRequest(SimulatorRemoveCardRequest.method, { reader: READER });
  await until(() => lists.at(-1)?.readers[0].card === null);
  const gone = lists.at(-1)!.readers[0];
  assert.equal(gone.editor, undefined);
  assert.equal(gone.connections, 0);
  await client.sendRequest(SimulatorInsertCardRequest.method, { reader: READER });
  await until(() => entries.filter((e) => e.kind === 'cardPowered').length === powered + 1);
  await until(() => lists.at(-1)?.readers[0].card?.powered === true);
  assert.match(lists.at(-1)!.readers[0].card!.atr!, /^3B/);
});
