// Faults on the real reference stack, seen by a script run through the reader
// manager: vicc killed mid-script (our vpcd driver, and pcscd's vpcd through the
// PC/SC driver), pcscd stopped and started mid-run. Each must end the run with
// a clear, typed error (no hang), and the next script must work.
// The refstack tier runs its files one at a time (pcscd's vpcd ports are fixed).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { requireCommands } from '../support/system';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { createPcscDriver } from '../../server/src/drivers/pcsc/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import { parseScript } from '../../server/src/script/parser';
import { runScript } from '../../server/src/script/engine';
import type { RunScriptResult } from '../../server/src/protocol';
import { freePort, loadRefStack, type RefStack, type StackProcess } from './stack';

const skip = requireCommands('pcscd', 'vicc');
const HANG_MS = 20_000;
const LONG = parseScript('repeat 1000000\n  00 84 00 00 08 => * 90 00\nend\n');
const SHORT = parseScript('00 84 00 00 08 => * 90 00\n00 20 00 00 00\n');

let stack: RefStack;
const processes = new Set<StackProcess>();

before(async () => {
  if (skip) return;
  stack = await loadRefStack();
});
after(async () => {
  for (const p of processes) await p.stop();
});

function track(p: StackProcess): StackProcess {
  processes.add(p);
  void p.exited.then(() => processes.delete(p));
  return p;
}

/** Rejects if `p` has not settled after `ms`: a hang is reported, not waited out. */
async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: still pending after ${HANG_MS} ms (hang)`)), HANG_MS); })]);
  } finally { clearTimeout(timer); }
}

/** Resolves when the manager's cache satisfies `check` (on its change events, no polling). */
function whenReaders(m: ReaderManager, check: () => boolean, what: string): Promise<void> {
  return within(new Promise<void>((resolve) => {
    if (check()) { resolve(); return; }
    const off = m.onReadersChanged(() => { if (check()) { off(); resolve(); } });
  }), what);
}

const cardIn = (m: ReaderManager, name: string) => () => m.list().readers.some((r) => r.name === name && r.card !== null);

function assertClearFailure(r: RunScriptResult, codes: string[], what: string): void {
  assert.equal(r.ok, false, `${what}: the run should fail`);
  assert.ok(codes.includes(r.failure!.code), `${what}: ${r.failure!.code}: ${r.failure!.message}`);
  assert.match(r.failure!.message, /^line \d+: /, `${what}: the failure names the line`);
  assert.ok(r.commands > 0, `${what}: the run was under way`);
}

test('vicc killed mid-script on our vpcd driver (3 times): CARD_REMOVED, no hang, the next script works', { skip }, async (t) => {
  const port = await freePort();
  const manager = new ReaderManager([createVpcdDriver({ ports: [port], responseTimeoutMs: 10_000 })]);
  await manager.start();
  t.after(() => manager.stop());
  const name = manager.list().readers[0].name;
  for (let i = 0; i < 3; i++) {
    let vicc = track(stack.startVicc({ port }));
    await whenReaders(manager, cardIn(manager, name), 'vicc connecting');
    const run = runScript(LONG, { manager, reader: name, onProgress: (done) => { if (done === 20) void vicc.stop(); } });
    const r = await within(run, 'run with vicc killed');
    assertClearFailure(r, ['CARD_REMOVED', 'NO_CARD'], 'vicc killed');
    assert.equal(manager.reader(name).connections, 0);
    await whenReaders(manager, () => !cardIn(manager, name)(), 'the removal');
    vicc = track(stack.startVicc({ port }));
    await whenReaders(manager, cardIn(manager, name), 'vicc reconnecting');
    const next = await within(runScript(SHORT, { manager, reader: name }), 'next run');
    assert.equal(next.ok, true, next.failure?.message);
    await vicc.stop();
    await whenReaders(manager, () => !cardIn(manager, name)(), 'the removal after the next run');
  }
});

test('through pcscd (PC/SC driver): vicc killed mid-script, then pcscd stopped and started mid-run; clear errors, the next script works', { skip }, async (t) => {
  const pcscd0 = track(await stack.startPcscd());
  let pcscd = pcscd0;
  // The driver's log is kept, to show with a failure (it holds no PIN: these scripts use none).
  const driverLog: string[] = [];
  const manager = new ReaderManager([createPcscDriver({ reconnectDelaysMs: [100, 200, 400] })], {
    log: (level, message) => { driverLog.push(`${new Date().toISOString()} ${level} ${message}`); },
  });
  await manager.start();
  t.after(async () => { await manager.stop(); await pcscd.stop(); });
  const pcscState = manager.driverStates().find((d) => d.id === 'pcsc');
  assert.equal(pcscState?.state, 'running', pcscState?.message);
  const name = 'Virtual PCD 00 00';
  await whenReaders(manager, () => manager.list().readers.some((x) => x.name === name), `'${name}' listed by the PC/SC driver`)
    .catch((e: Error) => { throw new Error(`${e.message}\ndriver log:\n${driverLog.join('\n')}`); });

  // vicc killed mid-script.
  let vicc = track(stack.startVicc({ port: stack.VPCD_PORTS[0] }));
  await whenReaders(manager, cardIn(manager, name), 'vicc connecting to pcscd');
  let r = await within(runScript(LONG, { manager, reader: name, onProgress: (done) => { if (done === 20) void vicc.stop(); } }), 'run with vicc killed (pcscd)');
  // pcscd's vpcd answers SCardTransmit with success and 0 bytes when vicc vanishes
  // mid-exchange; the manager then reports PROTOCOL ("answered 0 bytes"). Reported (R8).
  assertClearFailure(r, ['CARD_REMOVED', 'NO_CARD', 'READER_UNAVAILABLE', 'DRIVER', 'PROTOCOL'], 'vicc killed (pcscd)');
  t.diagnostic(`vicc killed under pcscd: ${r.failure!.code} after ${r.commands} commands: ${r.failure!.message}`);
  // pcscd sees the removal on its next poll (≤ 400 ms); wait for it before the new card.
  await whenReaders(manager, () => !cardIn(manager, name)(), 'the removal seen through pcscd');
  vicc = track(stack.startVicc({ port: stack.VPCD_PORTS[0] }));
  await whenReaders(manager, cardIn(manager, name), 'vicc reconnecting to pcscd');
  let next = await within(runScript(SHORT, { manager, reader: name }), 'next run (pcscd)');
  assert.equal(next.ok, true, next.failure?.message);

  // pcscd stopped mid-run, then started again.
  r = await within(runScript(LONG, { manager, reader: name, onProgress: (done) => { if (done === 20) void pcscd.stop(); } }), 'run with pcscd stopped');
  assertClearFailure(r, ['READER_UNAVAILABLE', 'NO_READER', 'CARD_REMOVED', 'DRIVER', 'NO_CARD'], 'pcscd stopped');
  t.diagnostic(`pcscd stopped: ${r.failure!.code} after ${r.commands} commands: ${r.failure!.message}`);
  await vicc.stop();
  await whenReaders(manager, () => manager.list().readers.length === 0, 'readers gone with pcscd');
  pcscd = track(await stack.startPcscd());
  await whenReaders(manager, () => manager.list().readers.some((x) => x.name === name), 'readers back with pcscd');
  vicc = track(stack.startVicc({ port: stack.VPCD_PORTS[0] }));
  await whenReaders(manager, cardIn(manager, name), 'vicc connecting to the new pcscd');
  next = await within(runScript(SHORT, { manager, reader: name }), 'next run after pcscd restart');
  assert.equal(next.ok, true, next.failure?.message);
  await vicc.stop();
});
