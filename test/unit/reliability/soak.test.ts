// Soak: a million APDUs through the script engine, the reader manager and the
// simulator, and ten thousand short runs, with heap, RSS and the process's
// active resources sampled before, during and after. Nothing may grow with the
// number of APDUs except what is documented as bounded (the manager's history).
//   SOAK_APDUS=<n> sets the length of the long run (default 1,000,000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parseScript } from '../../../server/src/script/parser';
import { runScript } from '../../../server/src/script/engine';
import { simulatorManager } from './support';

// A real collection makes heap samples comparable; `--expose-gc` is not needed.
v8.setFlagsFromString('--expose-gc');
const gc = (globalThis as { gc?: () => void }).gc ?? (vm.runInNewContext('gc') as () => void);

const APDUS = Number(process.env.SOAK_APDUS ?? 1_000_000);
const HISTORY = 10_000;

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Active handles and requests by type, e.g. { Timeout: 1 }. */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;

test(`soak: ${APDUS.toLocaleString('en')} APDUs in one repeat script: heap flat during and after the run, history bounded, no resource left`, async (t) => {
  const { manager, name } = await simulatorManager({ historySize: HISTORY });
  t.after(() => manager.stop());
  const script = parseScript(`connect\nrepeat ${APDUS}\n  00 84 00 00 08 => * 90 00\nend\n`);
  await settle();
  gc();
  const before = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss, res: resources() };

  // Retained heap at a quarter and at three quarters of the run: the growth in
  // between is what one more half of the run keeps alive.
  const samples: number[] = [];
  let peakRss = 0;
  const q1 = Math.floor(APDUS / 4), q3 = Math.floor((3 * APDUS) / 4);
  const t0 = performance.now();
  let result = await runScript(script, {
    manager, reader: name,
    onProgress: (done) => {
      if (done === q1 || done === q3) { gc(); samples.push(process.memoryUsage().heapUsed); }
      if (done % 100_000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
    },
  });
  const ms = performance.now() - t0;
  assert.equal(result.ok, true, result.failure?.message);
  assert.equal(result.commands, APDUS);
  const lineResults = result.lines.length;
  result = undefined as never; // drop it: only what the helper keeps should stay

  assert.ok(manager.historySince().length <= HISTORY, `history holds ${manager.historySince().length} entries, limit ${HISTORY}`);
  await settle();
  gc();
  const after = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss, res: resources() };
  const during = samples[1] - samples[0];
  const perApdu = during / (q3 - q1);
  t.diagnostic(`${APDUS} APDUs in ${Math.round(ms)} ms = ${Math.round(APDUS / (ms / 1000))} APDU/s`);
  t.diagnostic(`heap before ${mb(before.heap)}, at 1/4 ${mb(samples[0])}, at 3/4 ${mb(samples[1])} (${perApdu.toFixed(1)} bytes kept per APDU), after ${mb(after.heap)}`);
  t.diagnostic(`rss before ${mb(before.rss)}, peak ${mb(peakRss)}, after ${mb(after.rss)}; per-line results in the run's result: ${lineResults}`);
  t.diagnostic(`active resources before ${JSON.stringify(before.res)}, after ${JSON.stringify(after.res)}`);

  assert.deepEqual(after.res, before.res, 'active handles/requests after the run');
  // After the run: the history (≤ 10,000 entries of a few hundred bytes) may stay; nothing per APDU.
  assert.ok(after.heap - before.heap < 16 * 2 ** 20, `heap grew by ${mb(after.heap - before.heap)} after the run`);
  // During the run: a long-running script must not keep something per APDU
  // (a run of 10^8 APDUs would otherwise exhaust the helper's memory).
  assert.ok(perApdu < 16, `the run keeps ${perApdu.toFixed(1)} bytes per APDU alive while it runs (${mb(during)} over ${q3 - q1} APDUs)`);
});

test('soak: 10,000 short runs (connect, transaction, 3 APDUs, end, disconnect): no connection, listener, waiter or timer left', async (t) => {
  const { manager, name } = await simulatorManager({ historySize: HISTORY });
  t.after(() => manager.stop());
  const script = parseScript('transaction begin\n00 A4 04 00 07 F0574244454D4F => * 90 00\n00 84 00 00 08 => * 90 00\n00 20 00 01 => 63 C3\ntransaction end\n');
  await settle();
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const res0 = resources();
  let ok = 0;
  for (let i = 0; i < 10_000; i++) if ((await runScript(script, { manager, reader: name })).ok) ok++;
  assert.equal(ok, 10_000);
  const info = manager.reader(name);
  assert.equal(info.connections, 0);
  assert.equal(info.inTransaction, false);
  await settle();
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const res1 = resources();
  t.diagnostic(`heap ${mb(heap0)} → ${mb(heap1)}; resources ${JSON.stringify(res0)} → ${JSON.stringify(res1)}`);
  assert.ok(heap1 - heap0 < 16 * 2 ** 20, `heap grew by ${mb(heap1 - heap0)}`);
  // An ended transaction leaves no idle timer armed (it would keep the process alive for 30 s).
  assert.deepEqual(res1, res0, 'active handles/requests after 10,000 runs');
});
