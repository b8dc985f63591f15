// The work of one APDU in the manager's one path (issue 17: bring the reader side's CPU per APDU
// below pcscd's). Counted, not timed: the promises and timers that one exchange creates, from the
// connection through the queue, the gate (deadline, abort) and the driver to the log entry, on the
// simulator and on the vpcd driver with a card peer that answers at once. Counts are exact on any
// machine; each promise and timer is an allocation and a trip through the microtask or timer queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { createVpcdDriver } from '../../../server/src/drivers/vpcd/driver';
import type { Connection } from '../../../server/src/manager/connection';
import { ReaderManager } from '../../../server/src/manager/manager';
import { connectInstantPeer, freeLoopbackPort } from '../../support/instantVpcdPeer';

const SELECT_MF = Uint8Array.of(0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00);
const N = 200;

/** Promises and timers created per APDU over N transmits (after a warm-up that powers the card). */
async function countPerApdu(conn: Connection, signal?: AbortSignal): Promise<{ promises: number; timers: number }> {
  for (let i = 0; i < 5; i++) await conn.transmit(SELECT_MF, { signal });
  let promises = 0;
  let timers = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') promises++;
      else if (type === 'Timeout') timers++;
    },
  });
  hook.enable();
  try {
    for (let i = 0; i < N; i++) {
      const r = await conn.transmit(SELECT_MF, { signal, runId: 1, line: i + 1 });
      assert.equal(r.sw, 0x9000);
    }
  } finally {
    hook.disable();
  }
  // The loop's own `await` makes one promise per APDU: not the manager's.
  return { promises: promises / N - 1, timers: timers / N };
}

// The simulator answers the gate's call itself too (Driver.transmitTo, in the same turn): no promise of
// the driver's and no reaction to it per APDU. 5 before (its async transmit and the gate's `.then`).
test('simulator: one transmit creates at most 3 promises (8, then 5 before) and no timer (one deadline timer per reader)', async () => {
  const m = new ReaderManager([new SimulatorDriver({ card: 'T=1' })], { historySize: 0 });
  await m.start();
  try {
    const conn = await m.connect('Workbench Simulator 00 00');
    let entries = 0;
    m.onEntry((e) => { if (e.kind === 'exchange') entries++; });
    const ac = new AbortController();
    const cost = await countPerApdu(conn, ac.signal);
    assert.equal(entries, N + 5, 'every exchange is still logged');
    assert.equal(cost.timers, 0, `timers per APDU: ${cost.timers}`);
    assert.ok(cost.promises <= 3, `promises per APDU: ${cost.promises}`);
    await conn.close();
  } finally {
    await m.stop();
  }
});

// The vpcd driver hands its answer straight to the gate's call (Driver.transmitTo): no promise of the
// driver's and no reaction to it per APDU. 5 before (the driver's answer and the gate's `.then` on it).
test('vpcd with a peer that answers at once: one transmit creates at most 3 promises (8, then 5 before) and no timer', async () => {
  const port = await freeLoopbackPort();
  const m = new ReaderManager([createVpcdDriver({ ports: [port] })], { historySize: 0 });
  await m.start();
  const peer = connectInstantPeer(port);
  try {
    const reader = m.list().readers[0].name;
    await m.waitForCard(reader, true, 5000);
    const conn = await m.connect(reader);
    const cost = await countPerApdu(conn, new AbortController().signal);
    assert.equal(cost.timers, 0, `timers per APDU: ${cost.timers}`);
    assert.ok(cost.promises <= 3, `promises per APDU: ${cost.promises}`);
    await conn.close();
  } finally {
    peer.destroy();
    await m.stop();
  }
});

test('a transmit the queue starts at once builds no abort record for a wait that never happens (the Cancel is still heard)', async () => {
  const m = new ReaderManager([new SimulatorDriver({ card: 'T=1' })], { historySize: 0 });
  await m.start();
  try {
    const ac = new AbortController();
    // A script's connection: the run's Cancel signal on every call (scard run's SIGINT, the helper's Cancel).
    const conn = await m.connect('Workbench Simulator 00 00', { signal: ac.signal });
    await conn.transmit(SELECT_MF, { signal: ac.signal });
    const queue = (conn as unknown as { r: { gate: { queue: { run: (...args: unknown[]) => unknown } } } }).r.gate.queue;
    const run = queue.run;
    const aborts: unknown[] = [];
    queue.run = function (this: unknown, ...args: unknown[]) { aborts.push(args[3]); return run.apply(this, args); };
    for (let i = 0; i < 10; i++) assert.equal((await conn.transmit(SELECT_MF, { signal: ac.signal })).sw, 0x9000);
    assert.equal(aborts.length, 10);
    assert.equal(aborts.filter((a) => a !== undefined).length, 0, 'an abort record (an object and a closure) was built for each APDU');
    // The Cancel still stops the next command before anything is sent.
    ac.abort();
    await assert.rejects(conn.transmit(SELECT_MF, { signal: ac.signal }), (e: { code?: string }) => e.code === 'CANCELLED');
    await conn.close();
  } finally {
    await m.stop();
  }
});
