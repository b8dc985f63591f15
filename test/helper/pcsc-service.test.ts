// Issue 15, in the editor: the helper serves its readers to PC/SC programs while
// `smartcard.pcscService.enabled` is on, and starts and stops the service when the
// setting changes (no helper restart). A pcsc-lite client over the real socket
// (the wire client speaks what winscard_clnt.c does) sees the simulator reader.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { PcscServiceStatusNotification, type PcscServiceStatus, SettingsNotification } from '../../server/src/protocol';
import { startMemoryHelper, type MemoryHelper } from '../support/memoryHelper';
import { SocketTransport, WireClient } from '../support/pcscWireClient';

let tmp: string;
let helper: MemoryHelper;
const statuses: PcscServiceStatus[] = [];
const waiters: Array<() => void> = [];

/** The next status (bounded) whose state is `state`. */
function status(state: PcscServiceStatus['state'], from: number, ms = 5000): Promise<PcscServiceStatus> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${state}' status within ${ms} ms: ${JSON.stringify(statuses.slice(from))}`)), ms);
    const check = () => {
      const hit = statuses.slice(from).find((s) => s.state === state);
      if (hit) { clearTimeout(timer); resolve(hit); } else waiters.push(check);
    };
    check();
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-helper-pcsc-'));
  helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver()] },
    initializationOptions: { pcscService: { enabled: true, socketPath: path.join(tmp, 'smartcard-workbench', 'pcscd.comm') } },
    handlers: (c) => {
      c.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { statuses.push(p); for (const w of waiters.splice(0)) w(); });
      c.onNotification('window/logMessage', () => undefined);
    },
  });
});

after(async () => {
  await helper?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function readerNames(socket: string): Promise<string[]> {
  const c = new WireClient(await SocketTransport.connect(socket));
  try {
    await c.open(4);
    return (await c.readersState16()).map((e) => e.readerName as string).filter(Boolean);
  } finally {
    c.transport.end();
  }
}

test('on at start: the service runs on the socket after "started", a 4:4 client lists the simulator reader', async () => {
  const st = await status('running', 0);
  assert.equal(st.socketPath, path.join(tmp, 'smartcard-workbench', 'pcscd.comm'));
  assert.equal(fs.statSync(st.socketPath!).mode & 0o777, 0o600);
  assert.deepEqual(await readerNames(st.socketPath!), ['Workbench Simulator 00 00']);
});

test('turned off: stopped, the socket removed; turned on again: running again, no restart', async () => {
  const socket = path.join(tmp, 'smartcard-workbench', 'pcscd.comm');
  let mark = statuses.length;
  void helper.client.sendNotification(SettingsNotification.method, { pcscService: { enabled: false } });
  await status('stopped', mark);
  assert.equal(fs.existsSync(socket), false);
  mark = statuses.length;
  void helper.client.sendNotification(SettingsNotification.method, { pcscService: { enabled: true } });
  const st = await status('running', mark);
  assert.deepEqual(await readerNames(st.socketPath!), ['Workbench Simulator 00 00']);
});

test('shutdown closes the service and removes its socket', async () => {
  const socket = path.join(tmp, 'smartcard-workbench', 'pcscd.comm');
  assert.ok(fs.existsSync(socket));
  await helper.stop();
  assert.equal(fs.existsSync(socket), false);
  helper = undefined as unknown as MemoryHelper;
});
