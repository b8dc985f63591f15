// Issue 15: "a restart of the reader manager (a settings change, a crash) looks to clients like pcscd
// restarting: their calls fail cleanly, new contexts work again". Two real libpcsclite clients
// (pyscard under Debian's python3, test/support/py/pcsc_restart.py): one holds a context and a card
// handle, one waits in SCardGetStatusChange, while (a) the helper's service is turned off and on by
// the setting, (b) the helper process is killed (SIGKILL) and a new one started on the same socket.
// What they must see is what they see when pcscd itself is stopped or killed under them
// (test/refstack/serviceRestart.test.ts compares the two with pcscd 1.9.9): the pending call comes
// back at once with SCARD_F_COMM_ERROR (libpcsclite's read() of 0, winscard_msg.c:511-514 in 2.5.1),
// every later call on the old context with SCARD_E_NO_SERVICE (its send() fails with EPIPE,
// winscard_msg.c:418-423), and a new context works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { forkHelperProcess } from '../support/forkHelper';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IPCMessageReader, IPCMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { PcscServiceStatusNotification, type PcscServiceStatus, SettingsNotification } from '../../server/src/protocol';
import { startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';
import { aroundRestart, rvName, type RestartRun } from '../support/restartClients';
import { missingPyscard } from '../support/system';

const READER = 'Workbench Simulator 00 00';
const skip = missingPyscard('/usr/bin/python3');

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-helper-restart-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

function clientEnv(socket: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PCSCLITE_CSOCK_NAME: socket };
  delete env.LD_LIBRARY_PATH;
  return env;
}

/** What pcscd's clients saw when pcscd was stopped (SIGTERM) or killed (SIGKILL): the same both ways. */
const AS_PCSCD = {
  waited: 'COMM_ERROR',
  waiterAfter: { list: 'NO_SERVICE', getStatusChange: 'NO_SERVICE', release: 'NO_SERVICE' },
  old: { transmit: 'NO_SERVICE', status: 'NO_SERVICE', list: 'NO_SERVICE', getStatusChange: 'NO_SERVICE', disconnect: 'NO_SERVICE', release: 'NO_SERVICE' },
  fresh: { establish: 'SUCCESS', cardSeen: true, list: 'SUCCESS', listed: true, connect: 'SUCCESS', transmit: 'SUCCESS', disconnect: 'SUCCESS', release: 'SUCCESS' },
};

function assertAsPcscd(r: RestartRun): void {
  const named = (c: Record<string, unknown>) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, typeof v === 'number' ? rvName(v) : v]));
  assert.deepEqual(named(r.ready), { establish: 'SUCCESS', cardSeen: true, list: 'SUCCESS', listed: true, connect: 'SUCCESS', transmit: 'SUCCESS' });
  assert.deepEqual({ waited: rvName(r.waited), waiterAfter: named(r.waiterAfter), old: named(r.old), fresh: named(r.fresh) }, AS_PCSCD);
  assert.ok(r.waitedMsAfterStop < 2000, `the pending SCardGetStatusChange came back ${r.waitedMsAfterStop} ms after the stop`);
  assert.deepEqual(r.exits, [0, 0]);
}

test('the service turned off and on by the setting under a holding and a waiting pyscard client: as pcscd restarted', { skip }, async (t) => {
  const socket = path.join(tmp, 'setting', 'pcscd.comm');
  let state = '';
  const n = notified();
  const helper: MemoryHelper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver()] },
    initializationOptions: { pcscService: { enabled: true, socketPath: socket } },
    handlers: (c) => {
      c.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { state = p.state; n.changed(); });
      c.onNotification('window/logMessage', () => undefined);
    },
  });
  try {
    await bounded(n.until(() => state === 'running'), 5000, 'the service did not start');
    const r = await aroundRestart({
      reader: READER,
      env: clientEnv(socket),
      stop: async () => {
        void helper.client.sendNotification(SettingsNotification.method, { pcscService: { enabled: false } });
        await bounded(n.until(() => state === 'stopped'), 5000, 'the service did not stop');
      },
      start: async () => {
        void helper.client.sendNotification(SettingsNotification.method, { pcscService: { enabled: true } });
        await bounded(n.until(() => state === 'running'), 5000, 'the service did not start again');
      },
    });
    t.diagnostic(JSON.stringify(r));
    assertAsPcscd(r);
  } finally {
    await helper.stop();
  }
});

test('the helper process killed (SIGKILL) and a new one started on the same socket: as pcscd killed', { skip }, async (t) => {
  const socket = path.join(tmp, 'killed', 'pcscd.comm');
  let current = await forkedHelper(socket);
  const helpers = [current];
  try {
    const r = await aroundRestart({
      reader: READER,
      env: clientEnv(socket),
      stop: async () => {
        current.child.kill('SIGKILL');
        await bounded(current.exited, 5000, 'the helper did not die');
        assert.ok(fs.existsSync(socket), 'the killed helper left its socket file (a crash removes nothing)');
      },
      start: async () => {
        current = await forkedHelper(socket);
        helpers.push(current);
      },
    });
    t.diagnostic(JSON.stringify(r));
    assertAsPcscd(r);
  } finally {
    for (const h of helpers) if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL');
    await Promise.all(helpers.map((h) => bounded(h.exited, 5000, 'a helper did not exit')));
  }
});

/** The product's helper bundle (out/server.js), forked with IPC as the extension forks it; resolves once its service runs. */
async function forkedHelper(socket: string) {
  const child = forkHelperProcess(__dirname);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const conn = createMessageConnection(new IPCMessageReader(child), new IPCMessageWriter(child));
  const n = notified();
  let state = '';
  conn.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { state = p.state; n.changed(); });
  conn.onNotification('window/logMessage', () => undefined);
  conn.onError(() => undefined);
  conn.onClose(() => undefined);
  void exited.then(() => conn.dispose());
  conn.listen();
  await bounded(conn.sendRequest('initialize', {
    processId: process.pid, rootUri: null, capabilities: {},
    initializationOptions: { simulator: { card: 'T=1' }, pcsc: { enabled: false }, pcscService: { enabled: true, socketPath: socket } },
  }), 15_000, `the helper did not answer initialize: ${stderr}`);
  conn.sendNotification('initialized', {});
  await bounded(n.until(() => state === 'running'), 10_000, `the helper's service did not start (${state}): ${stderr}`);
  return { child, exited };
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(what)), ms); })]).finally(() => clearTimeout(timer));
}
