// Soak through the real card emulator: 100,000 APDUs from the engine through our
// vpcd driver to vicc; memory and handles stay flat, nothing is lost.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { requireCommands } from '../support/system';
import { freePort } from '../support/net';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import { runScript } from '../../server/src/script/engine';
import { parseScript } from '../../server/src/script/parser';
import { loadRefStack, type StackProcess } from './stack';

const skip = requireCommands('vicc');
const APDUS = Number(process.env.SOAK_VICC_APDUS ?? 100_000);
let vicc: StackProcess | null = null;
after(async () => { await vicc?.stop(); });

test(`soak: ${APDUS} APDUs through the vpcd driver to vicc, RSS and handles flat`, { skip, timeout: 600_000 }, async () => {
  const stack = await loadRefStack();
  const port = await freePort();
  const m = new ReaderManager([createVpcdDriver({ ports: [port] })]);
  await m.start();
  vicc = stack.startVicc({ port, host: '127.0.0.1' });
  await m.waitForCard('Virtual PCD 00 00', true, 20_000);
  const warm = await runScript(parseScript('repeat 1000\n00 84 00 00 08 => * 90 00\nend'), { manager: m });
  assert.equal(warm.ok, true, warm.failure?.message);
  global.gc?.();
  const before = { rss: process.memoryUsage().rss, resources: process.getActiveResourcesInfo().length };
  const t0 = performance.now();
  const r = await runScript(parseScript(`repeat ${APDUS}\n00 84 00 00 08 => ?? ?? ?? ?? ?? ?? ?? ?? 90 00\nend`), { manager: m });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.ok, true, r.failure?.message);
  assert.equal(r.commands, APDUS, 'every APDU answered');
  assert.equal(r.lines[0].count, APDUS);
  global.gc?.();
  const afterRun = { rss: process.memoryUsage().rss, resources: process.getActiveResourcesInfo().length };
  console.log(`# ${APDUS} APDUs in ${seconds.toFixed(1)} s (${Math.round(APDUS / seconds)} APDU/s); RSS ${(before.rss / 2 ** 20).toFixed(0)} → ${(afterRun.rss / 2 ** 20).toFixed(0)} MB; active resources ${before.resources} → ${afterRun.resources}`);
  assert.ok(afterRun.resources <= before.resources, 'no handle left behind');
  assert.ok(afterRun.rss - before.rss < 150 * 2 ** 20, `RSS grew by ${((afterRun.rss - before.rss) / 2 ** 20).toFixed(0)} MB`);
  assert.ok(m.historySince().length <= 10_000, 'the log history stays bounded');
  await vicc.stop();
  vicc = null;
  await m.stop();
});
