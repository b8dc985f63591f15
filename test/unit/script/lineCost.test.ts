// The engine's own work for one script line (issue 17: the reader side's CPU per APDU below
// pcscd's). Counted, not timed: the promises one command line of hex literals creates in
// runScript, beyond those of `Connection.transmit` (test/unit/manager/apduCost.test.ts counts
// those), on the simulator and on the vpcd driver with a card peer that answers at once; and
// the frame the vpcd driver writes for each command. Counts are exact on any machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { createVpcdDriver } from '../../../server/src/drivers/vpcd/driver';
import type { Driver } from '../../../server/src/drivers/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { connectInstantPeer, freeLoopbackPort } from '../../support/instantVpcdPeer';
import { promisesIn } from '../../support/promises';

const LINE = '00 A4 00 0C 02 3F 00\n';
const N = 100; // N and 2N lines stay below the engine's yield interval (256): no setImmediate counted
const SELECT_MF = Uint8Array.of(0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00);

/**
 * Promises per line that runScript creates beyond what the same commands through `Connection.transmit`
 * create (awaited one by one). Each is counted for N and 2N commands and the difference taken, so
 * what a run or a loop creates once (its connection, its end) drops out.
 */
async function enginePromisesPerLine(m: ReaderManager, reader: string): Promise<number> {
  // Warm-up: the card powered, every path taken once.
  assert.ok((await runScript(parseScript(LINE.repeat(5)), { manager: m, reader })).ok);
  const run = (n: number) => promisesIn(async () => {
    const result = await runScript(parseScript(LINE.repeat(n)), { manager: m, reader, signal: new AbortController().signal });
    assert.ok(result.ok, result.failure?.message);
    assert.equal(result.commands, n);
  });
  const loop = (n: number) => promisesIn(async () => {
    const conn = await m.connect(reader);
    for (let i = 0; i < n; i++) await conn.transmit(SELECT_MF, { runId: 1, line: i + 1 });
    await conn.close();
  });
  const perLine = ((await run(2 * N)) - (await run(N))) / N;
  const perTransmit = ((await loop(2 * N)) - (await loop(N))) / N;
  return perLine - perTransmit;
}

async function withManager(driver: Driver, body: (m: ReaderManager, reader: string) => Promise<void>): Promise<void> {
  const m = new ReaderManager([driver], { historySize: 0 });
  await m.start();
  try {
    await body(m, m.list().readers[0].name);
  } finally {
    await m.stop();
  }
}

test('simulator: a command line of hex literals adds no promise of the engine beyond its transmit (1 before)', async () => {
  await withManager(new SimulatorDriver({ card: 'T=1' }), async (m, reader) => {
    const extra = await enginePromisesPerLine(m, reader);
    assert.equal(extra, 0, `the engine's promises per line: ${extra}`);
  });
});

/** A vpcd card that answers at once; records every frame it receives, as received. */
async function vpcdWithPeer(): Promise<{ driver: Driver; frames: Buffer[]; close(): void }> {
  const port = await freeLoopbackPort();
  const driver = createVpcdDriver({ ports: [port] });
  const frames: Buffer[] = [];
  let peer: net.Socket | undefined;
  const start = driver.start.bind(driver);
  driver.start = async (sink) => {
    await start(sink);
    peer = connectInstantPeer(port, frames);
  };
  return { driver, frames, close: () => peer?.destroy() };
}

test('vpcd with a peer that answers at once: a command line adds no promise of the engine beyond its transmit', async () => {
  const { driver, frames, close } = await vpcdWithPeer();
  try {
    await withManager(driver, async (m, reader) => {
      await m.waitForCard(reader, true, 5000);
      const extra = await enginePromisesPerLine(m, reader);
      assert.equal(extra, 0, `the engine's promises per line: ${extra}`);
      // Every command went out as its own whole frame: length 7, then the APDU.
      const commands = frames.filter((f) => f.length > 3);
      assert.equal(commands.length, 5 + 3 * N + 3 * N);
      for (const f of commands) assert.deepEqual([...f], [0, 7, ...SELECT_MF]);
    });
  } finally {
    close();
  }
});
