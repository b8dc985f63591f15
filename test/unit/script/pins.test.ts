import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { runScript, type EngineContext } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { SessionPinCache } from '../../../server/src/script/pins';
import { simulatorManager } from './support';

const setup = () => simulatorManager();

const VERIFY = '00 20 00 01 04 ${pin:"User PIN"} => 90 00';

function asker(answers: string[]) {
  const asked: string[] = [];
  return { asked, askPin: async (label: string) => { asked.push(label); return answers.shift() ?? '1234'; } };
}

test('policy none asks every time, run asks once per run, session remembers across runs', async () => {
  const { m } = await setup();
  const two = parseScript(`${VERIFY}\n${VERIFY}`);
  const none = asker([]);
  assert.equal((await runScript(two, { manager: m, pinPolicy: 'none', askPin: none.askPin })).ok, true);
  assert.equal(none.asked.length, 2);
  const run = asker([]);
  await runScript(two, { manager: m, pinPolicy: 'run', askPin: run.askPin });
  await runScript(two, { manager: m, pinPolicy: 'run', askPin: run.askPin });
  assert.equal(run.asked.length, 2, 'once per run');
  const cache = new SessionPinCache();
  const ses = asker([]);
  await runScript(two, { manager: m, pinPolicy: 'session', sessionPins: cache, askPin: ses.askPin });
  await runScript(two, { manager: m, pinPolicy: 'session', sessionPins: cache, askPin: ses.askPin });
  assert.equal(ses.asked.length, 1, 'once per session');
  assert.equal(JSON.stringify({ cache }), '{"cache":"[1 cached PIN(s)]"}', 'never serialized');
});

test('a refused PIN is forgotten, so a cached wrong PIN never burns a second try', async () => {
  const { m, sim } = await setup();
  const cache = new SessionPinCache();
  const a = asker(['0000', '1234']);
  const r1 = await runScript(parseScript(VERIFY), { manager: m, pinPolicy: 'session', sessionPins: cache, askPin: a.askPin });
  assert.equal(r1.ok, false);
  assert.match(r1.failure!.message, /63 C2 \(Verification failed, 2 retries left\)/);
  assert.ok(!r1.failure!.message.includes('30 30') && !r1.failure!.message.includes('0000'), 'no PIN in the error');
  assert.equal(cache.size, 0);
  const r2 = await runScript(parseScript(VERIFY), { manager: m, pinPolicy: 'session', sessionPins: cache, askPin: a.askPin });
  assert.equal(r2.ok, true);
  assert.equal(a.asked.length, 2);
  assert.equal(sim.cardIn('sim:0')!.triesLeft, 3);
});

test('session cache: idle time-out and per-reader clearing', () => {
  let now = 0;
  const c = new SessionPinCache(1000, () => now);
  c.set('R1', 'ATR', 'PIN', '1234');
  c.set('R2', 'ATR', 'PIN', '9999');
  now = 900;
  assert.equal(c.get('R1', 'ATR', 'PIN'), '1234');
  now = 1800;
  assert.equal(c.get('R1', 'ATR', 'PIN'), '1234', 'use refreshes the idle timer');
  assert.equal(c.get('R2', 'ATR', 'PIN'), undefined, 'idle too long');
  assert.equal(c.get('R1', 'OTHER ATR', 'PIN'), undefined, 'another card');
  assert.equal(c.clearReader('R1'), 1);
  assert.equal(c.size, 0);
});

test('retry counter: read before VERIFY, confirm on the last try, refuse when blocked, without asking the PIN', async () => {
  const { m, sim, entries } = await setup();
  const card = sim.cardIn('sim:0')!;
  card.reset();
  card.process(new Uint8Array([0, 0x20, 0, 1, 4, 0x30, 0x30, 0x30, 0x30]));
  card.process(new Uint8Array([0, 0x20, 0, 1, 4, 0x30, 0x30, 0x30, 0x30]));
  assert.equal(card.triesLeft, 1);
  const confirms: string[] = [];
  const base: Omit<EngineContext, 'manager'> = { pinPolicy: 'none', confirm: async (msg) => { confirms.push(msg); return false; } };
  const a = asker([]);
  const declined = await runScript(parseScript(VERIFY), { manager: m, ...base, askPin: a.askPin });
  assert.equal(declined.failure?.code, 'CANCELLED');
  assert.match(confirms[0], /Only 1 try is left for the PIN "User PIN"/);
  assert.equal(a.asked.length, 0, 'the PIN is not asked when the user declines');
  assert.equal(card.triesLeft, 1, 'no try used');
  const check = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange' && e.auto === 'retryCounter');
  assert.deepEqual(check.map((e) => [e.command, e.sw]), [['00200001', '63C1']]);
  // accepted: the VERIFY goes out
  const ok = await runScript(parseScript(VERIFY), { manager: m, pinPolicy: 'none', confirm: async () => true, askPin: a.askPin });
  assert.equal(ok.ok, true, ok.failure?.message);
  // blocked: refused without sending
  for (let i = 0; i < 3; i++) card.process(new Uint8Array([0, 0x20, 0, 1, 4, 0x30, 0x30, 0x30, 0x30]));
  const blocked = await runScript(parseScript(VERIFY), { manager: m, ...base, askPin: a.askPin });
  assert.match(blocked.failure!.message, /is blocked \(no tries left\); the VERIFY was not sent/);
  assert.equal(a.asked.length, 1);
});

test('a session PIN past its idle time-out is dropped when the timer fires, not at the next look-up', async () => {
  const cache = new SessionPinCache(30);
  const dropped = new Promise<string>((resolve) => cache.onDropped((reason) => resolve(reason)));
  cache.set('Workbench Simulator 00 00', '3B00', 'User PIN', '1234');
  assert.equal(cache.size, 1);
  // The cache's timer is unref'd (a PIN never keeps a process alive); this guard keeps the test's loop alive.
  let guardTimer: NodeJS.Timeout | undefined;
  const guard = new Promise<string>((resolve) => { guardTimer = setTimeout(() => resolve('no drop within 5 s'), 5000); });
  assert.equal(await Promise.race([dropped, guard]), 'idle');
  clearTimeout(guardTimer);
  assert.equal(cache.size, 0, 'gone without any look-up');
  cache.dispose();
});

test('a session PIN that is used stays; its idle timer restarts; dispose stops the timer', async () => {
  let now = 0;
  const cache = new SessionPinCache(60_000, () => now);
  cache.set('R', 'A', 'L', '1234');
  now = 59_000;
  assert.equal(cache.get('R', 'A', 'L'), '1234');
  now = 118_000;
  assert.equal(cache.get('R', 'A', 'L'), '1234', 'used 59 s ago: still there');
  cache.dispose();
  assert.equal(cache.size, 0, 'dispose forgets the PINs');
});
