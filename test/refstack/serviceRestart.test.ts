// Issue 15: "a restart of the reader manager looks to clients like pcscd restarting". The same two
// pyscard clients (Debian's libpcsclite; test/support/py/pcsc_restart.py) — one holding a context and
// a card handle, one waiting in SCardGetStatusChange — around a restart of pcscd (+ vpcd, the scripted
// card) and around a restart of `scard serve --vpcd PORT --no-simulator` (the same card), each stopped
// with SIGTERM and killed with SIGKILL; the return codes the clients saw are compared field by field.
// What libpcsclite returns when the socket closes is its own doing (winscard_msg.c MessageSend: a send
// on a closed socket fails with EPIPE -> SCARD_E_NO_SERVICE, 2.5.1 winscard_msg.c:418-423; MessageReceive:
// read() 0 -> SCARD_F_COMM_ERROR, :511-514): the daemon only has to close the connections, promptly.
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports, pcscd its fixed socket).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { missingPyscard, requireCommands } from '../support/system';
import { startServe, type Serve } from '../support/scardServe';
import { aroundRestart, RV, rvName, type RestartRun } from '../support/restartClients';
import { ScriptedCard } from './scriptedCard';
import { clientEnv } from './serviceStack';
import { freePort, loadRefStack, type RefStack, type StackProcess } from './stack';

const READER = 'Virtual PCD 00 00';
const skip = requireCommands('pcscd') || missingPyscard('/usr/bin/python3');

let stack: RefStack;
let tmp: string;
const results: Record<string, RestartRun> = {};

before(async () => {
  if (skip) return;
  stack = await loadRefStack();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-restart-'));
});
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

/** What every run must show, whoever the daemon: the old context fails, a new one works, nothing hangs. */
function assertClean(r: RestartRun, who: string): void {
  const msg = `${who}: ${JSON.stringify(r)}`;
  assert.deepEqual(r.ready, { establish: 0, cardSeen: true, list: 0, listed: true, connect: 0, transmit: 0 }, msg);
  assert.notEqual(r.waited, RV.SUCCESS, `${who}: the pending SCardGetStatusChange came back with success (${msg})`);
  assert.notEqual(r.waited, RV.TIMEOUT, msg);
  assert.ok(r.waitedMsAfterStop < 3000, `${who}: the pending call came back ${r.waitedMsAfterStop} ms after the stop`);
  for (const [k, v] of Object.entries(r.waiterAfter)) if (k !== 'release') assert.notEqual(v, RV.SUCCESS, `${who}: the waiter's old context ${k} succeeded (${msg})`);
  for (const [k, v] of Object.entries(r.old)) if (k !== 'release') assert.notEqual(v, RV.SUCCESS, `${who}: the holder's old ${k} succeeded (${msg})`);
  assert.deepEqual(r.fresh, { establish: 0, cardSeen: true, list: 0, listed: true, connect: 0, transmit: 0, disconnect: 0, release: 0 }, msg);
  assert.deepEqual(r.exits, [0, 0], msg);
}

/** The codes of a run (not the timing). */
function codes(r: RestartRun) {
  return { waited: rvName(r.waited), waiterAfter: named(r.waiterAfter), old: named(r.old), fresh: named(r.fresh) };
}
function named(c: Record<string, unknown>) {
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, typeof v === 'number' ? rvName(v) : v]));
}

describe('pcscd restarted under two pyscard clients', { skip }, () => {
  let pcscd: StackProcess | null = null;
  const card = new ScriptedCard();
  const start = async () => {
    pcscd = await stack.startPcscd({ apduLog: false });
    await card.insert(stack.VPCD_PORTS[0]);
  };
  before(start);
  after(async () => { await card.remove(); await pcscd?.stop(); });

  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    test(`pcscd ${how === 'SIGTERM' ? 'stopped (SIGTERM)' : 'killed (SIGKILL)'}: the old context's calls fail, a new context works`, async (t) => {
      const r = await aroundRestart({
        reader: READER,
        env: clientEnv(null),
        stop: async () => {
          const p = pcscd!;
          process.kill(p.pid, how);
          await Promise.race([p.exited, new Promise((_, reject) => setTimeout(() => reject(new Error('pcscd did not exit')), 5000))]);
          await card.remove();
        },
        start,
      });
      results[`pcscd ${how}`] = r;
      t.diagnostic(`pcscd ${how}: ${JSON.stringify(codes(r))}, the pending call back ${r.waitedMsAfterStop} ms after the stop`);
      assertClean(r, `pcscd ${how}`);
    });
  }
});

describe('scard serve --vpcd restarted under the same clients', { skip }, () => {
  let serve: Serve | null = null;
  let port: number;
  const card = new ScriptedCard();
  let socket: string;
  const start = async () => {
    serve = await startServe(['--no-simulator', '--vpcd', String(port), '--socket', socket]);
    await card.insert(port);
  };
  before(async () => {
    port = await freePort();
    socket = path.join(tmp, 'serve', 'pcscd.comm');
    await start();
  });
  after(async () => { await card.remove(); await serve?.stop(); });

  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    test(`scard serve ${how === 'SIGTERM' ? 'stopped (SIGTERM)' : 'killed (SIGKILL)'}: the clients see what pcscd's saw`, async (t) => {
      const r = await aroundRestart({
        reader: READER,
        env: clientEnv(socket),
        stop: async () => {
          const s = serve!;
          s.p.kill(how);
          await Promise.race([s.exited, new Promise((_, reject) => setTimeout(() => reject(new Error('scard serve did not exit')), 5000))]);
          await card.remove();
        },
        start,
      });
      results[`serve ${how}`] = r;
      t.diagnostic(`scard serve ${how}: ${JSON.stringify(codes(r))}, the pending call back ${r.waitedMsAfterStop} ms after the stop`);
      assertClean(r, `scard serve ${how}`);
      const theirs = results[`pcscd ${how}`];
      assert.ok(theirs, `pcscd's ${how} run is missing`);
      assert.deepEqual(codes(r), codes(theirs), `scard serve (actual) vs pcscd (expected) after ${how}`);
    });
  }
});
