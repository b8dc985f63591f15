// The per-reader gate every driver call passes through (issue 14, items 4–7, 9):
// abort checked before the call, a deadline on every call (power, control,
// transactions), a late result consumed, the driver-side transaction ended on
// every release path, resets and removals reported once to the other
// connections, per-call time-outs and the reader's time extensions.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import type { PowerMode } from '../../../server/src/drivers/driver';
import { ReaderManager, type ManagerOptions } from '../../../server/src/manager/manager';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { fromHex, toHex } from '../../../server/src/util/hex';
import { ScError } from '../../../server/src/util/errors';
import { FaultyDriver, settlesWithin } from '../reliability/support';

/** Unhandled rejections seen while this file runs (a late driver failure must be consumed). */
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => { unhandled.push(reason); };
process.on('unhandledRejection', onUnhandled);
after(() => { process.off('unhandledRejection', onUnhandled); });

type Hang = 'powerOn' | 'control' | 'begin' | 'end';

/**
 * The simulator behind hooks: any call can be made to hang (never answer) once,
 * and the driver-side transaction calls are recorded.
 */
class GateDriver extends FaultyDriver {
  readonly calls: string[] = [];
  /** The next call of each kind never answers (or answers when the test says so). */
  readonly hang = new Set<Hang>();
  /** Settles the calls left hanging, for late-result tests. */
  readonly late: Array<{ resolve: (v?: unknown) => void; reject: (e: unknown) => void }> = [];
  private endWaiters: Array<() => void> = [];

  constructor() { super(new SimulatorDriver({ card: 'T=1', readers: 1 })); }

  private hung<T>(kind: Hang): Promise<T> | undefined {
    if (!this.hang.delete(kind)) return undefined;
    return new Promise<T>((resolve, reject) => this.late.push({ resolve: resolve as (v?: unknown) => void, reject }));
  }

  override powerOn(key: string, mode: PowerMode): Promise<Uint8Array> {
    this.calls.push(`powerOn ${mode}`);
    return this.hung<Uint8Array>('powerOn') ?? super.powerOn(key, mode);
  }
  /** The next control call answers this (e.g. CARD_RESET: another program reset the card, PC/SC). */
  controlError?: ScError;
  override control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    this.calls.push(`control ${code}`);
    const err = this.controlError;
    this.controlError = undefined;
    if (err) return Promise.reject(err);
    return this.hung<Uint8Array>('control') ?? super.control(key, code, data);
  }
  async beginTransaction(_key: string): Promise<void> {
    this.calls.push('begin');
    await (this.hung<void>('begin') ?? Promise.resolve());
  }
  async endTransaction(_key: string, disposition: string): Promise<void> {
    this.calls.push(`end ${disposition}`);
    for (const w of this.endWaiters.splice(0)) w();
    await (this.hung<void>('end') ?? Promise.resolve());
  }
  /** Resolves when endTransaction has been called `n` times in all. */
  ended(n = 1): Promise<void> {
    return new Promise((resolve) => {
      const check = () => { if (this.calls.filter((c) => c.startsWith('end')).length >= n) resolve(); else this.endWaiters.push(check); };
      check();
    });
  }
  card() { return this.inner.cardIn('sim:0')!; }
}

async function gateManager(opts: ManagerOptions = {}) {
  const driver = new GateDriver();
  const manager = new ReaderManager([driver], { initializeCards: false, ...opts });
  await manager.start();
  const name = manager.list().readers[0].name;
  return { driver, manager, name };
}

const CHALLENGE = fromHex('00 84 00 00 08');
const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof ScError && e.code === code && (!re || re.test(e.message)) ? true : assert.fail(`expected ${code}${re ? ` ${re}` : ''}, got ${e instanceof ScError ? `${e.code}: ${e.message}` : String(e)}`);

// ------------------------------------------------------------ item 4

test('item 4: Cancel while the PIN box is open sends no VERIFY; the error says the run was cancelled', async () => {
  const sim = new SimulatorDriver();
  const m = new ReaderManager([sim]);
  await m.start();
  const card = sim.cardIn('sim:0')!;
  card.historyLimit = 100;
  const before = card.triesLeft;
  const ac = new AbortController();
  let answer!: (pin: string) => void;
  let boxOpen!: () => void;
  const opened = new Promise<void>((resolve) => { boxOpen = resolve; });
  const run = runScript(parseScript('00 84 00 00 08\n00 20 00 01 04 ${pin:"User PIN"} => 90 00'), {
    manager: m, signal: ac.signal, pinPolicy: 'none',
    askPin: () => new Promise<string>((resolve) => { answer = resolve; boxOpen(); }),
  });
  // The user cancels while the box is open, then types a wrong PIN and presses Enter.
  await settlesWithin(opened, 5000, 'PIN box');
  ac.abort();
  answer('9999');
  const r = await settlesWithin(run, 5000, 'run');
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'CANCELLED');
  assert.match(r.failure!.message, /cancel/i);
  assert.doesNotMatch(r.failure!.message, /waiting for the card/);
  assert.doesNotMatch(r.failure!.message, /9999|39393939/);
  assert.equal(card.triesLeft, before, 'the card lost no try');
  assert.equal(card.history.filter((c) => c[1] === 0x20).length, 0, 'no VERIFY reached the card');
  await m.stop();
});

test('item 4: the gate checks the abort before the driver call (nothing is sent) and consumes a late failure', async () => {
  const { driver, manager, name } = await gateManager();
  const ac = new AbortController();
  const c = await manager.connect(name);
  ac.abort();
  const sent = driver.transmits;
  driver.onTransmit = () => Promise.reject(new Error('late failure nobody waits for'));
  await assert.rejects(c.transmit(CHALLENGE, { signal: ac.signal }), isCode('CANCELLED', /cancelled/i));
  assert.equal(driver.transmits, sent, 'the driver was not called after Cancel');
  // A call abandoned by Cancel that fails afterwards: its rejection is consumed.
  driver.onTransmit = () => new Promise((_, reject) => driver.late.push({ resolve: () => {}, reject }));
  const ac2 = new AbortController();
  const entered = driver.nextTransmit();
  const p = c.transmit(CHALLENGE, { signal: ac2.signal });
  await entered;
  ac2.abort();
  await assert.rejects(settlesWithin(p, 5000, 'cancelled transmit'), isCode('CANCELLED'));
  driver.late.pop()!.reject(new Error('the reader failed after the caller gave up'));
  driver.onTransmit = null;
  assert.equal((await c.transmit(CHALLENGE)).sw, 0x9000, 'the reader works after');
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(unhandled.map(String), []);
  await manager.stop();
});

// ------------------------------------------------------------ item 5

test('item 5: the driver-side transaction is ended on disconnect without end', async () => {
  const { driver, manager, name } = await gateManager();
  const c = await manager.connect(name);
  await c.beginTransaction();
  await c.transmit(CHALLENGE);
  await c.disconnect('leave');
  await settlesWithin(driver.ended(1), 2000, 'endTransaction');
  assert.deepEqual(driver.calls.filter((x) => /begin|end/.test(x)), ['begin', 'end leave']);
  await manager.stop();
});

test('item 5: the driver-side transaction is ended by the idle release', async () => {
  const { driver, manager, name } = await gateManager({ transactionTimeoutMs: 30 });
  const c = await manager.connect(name);
  await c.beginTransaction();
  await settlesWithin(driver.ended(1), 5000, 'endTransaction after the idle release');
  assert.equal(manager.reader(name).inTransaction, false);
  await c.disconnect();
  assert.equal(driver.calls.filter((x) => x.startsWith('end')).length, 1, 'ended once');
  await manager.stop();
});

test('item 5: the driver-side transaction is ended on card removal', async () => {
  const { driver, manager, name } = await gateManager();
  const c = await manager.connect(name);
  await c.beginTransaction();
  driver.inner.removeCard('sim:0');
  await settlesWithin(driver.ended(1), 2000, 'endTransaction after removal');
  await c.endTransaction('leave'); // the script's own end after the card left: quiet
  await c.disconnect();
  assert.equal(driver.calls.filter((x) => x.startsWith('end')).length, 1, 'ended once');
  await manager.stop();
});

test('item 5: the driver-side transaction is ended when the reader goes away', async () => {
  const { driver, manager, name } = await gateManager();
  const c = await manager.connect(name);
  await c.beginTransaction();
  driver.removeReader();
  await settlesWithin(driver.ended(1), 2000, 'endTransaction after the reader left');
  await c.endTransaction('leave');
  await manager.stop();
});

test('item 5: the driver-side transaction is ended on helper shutdown (manager stop)', async () => {
  const { driver, manager, name } = await gateManager();
  const c = await manager.connect(name);
  await c.beginTransaction();
  await c.beginTransaction(); // nested: still one system transaction
  await settlesWithin(manager.stop(), 2000, 'stop');
  assert.deepEqual(driver.calls.filter((x) => /begin|end/.test(x)), ['begin', 'end leave']);
});

// ------------------------------------------------------------ item 6

test('item 6: a power-up that never answers fails at its deadline and the next call works', async () => {
  const { driver, manager, name } = await gateManager({ exchangeTimeoutMs: 100 });
  driver.hang.add('powerOn');
  await assert.rejects(settlesWithin(manager.connect(name), 5000, 'connect'), isCode('TIMEOUT', /did not answer .*within 100 ms/));
  const c = await settlesWithin(manager.connect(name), 5000, 'next connect');
  assert.equal((await c.transmit(CHALLENGE)).sw, 0x9000);
  // inside transmit and reset too
  await c.powerOff();
  driver.hang.add('powerOn');
  await assert.rejects(settlesWithin(c.transmit(CHALLENGE), 5000, 'transmit'), isCode('TIMEOUT'));
  driver.hang.add('powerOn');
  await assert.rejects(settlesWithin(c.reset('warm'), 5000, 'reset'), isCode('TIMEOUT'));
  await settlesWithin(c.reset('cold'), 5000, 'next reset');
  assert.equal((await c.transmit(CHALLENGE)).sw, 0x9000);
  driver.late.splice(0).forEach((l) => l.resolve(fromHex('3B00')));
  await manager.stop();
});

// R64: a power-up given up by its caller (Cancel) says nothing about the card: it is not marked mute
// (a mute card's connect is SCARD_W_UNPOWERED_CARD to PC/SC clients); a time-out is the card's silence and is.
test('R64: a cancelled power-up does not mark the card mute; a timed-out one does', async () => {
  const { driver, manager, name } = await gateManager({ exchangeTimeoutMs: 200 });
  const ac = new AbortController();
  const c = await manager.connect(name, { signal: ac.signal });
  driver.hang.add('powerOn');
  const p = c.reset('cold');
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(settlesWithin(p, 5000, 'cancelled reset'), isCode('CANCELLED'));
  assert.notEqual(manager.reader(name).card?.mute, true, 'a cancelled power-up is not the card\'s silence');
  c.close();
  const d = await manager.connect(name);
  driver.hang.add('powerOn');
  await assert.rejects(settlesWithin(d.reset('cold'), 5000, 'timed-out reset'), isCode('TIMEOUT'));
  assert.equal(manager.reader(name).card?.mute, true, 'a power-up the card never answered marks it mute');
  await settlesWithin(d.reset('cold'), 5000, 'next reset');
  assert.equal(manager.reader(name).card?.mute, undefined, 'answered again');
  driver.late.splice(0).forEach((l) => l.resolve(fromHex('3B00')));
  await manager.stop();
});

test('item 6: control and beginTransaction have the deadline and hear Cancel', async () => {
  const { driver, manager, name } = await gateManager({ exchangeTimeoutMs: 100 });
  const c = await manager.connect(name);
  driver.hang.add('control');
  await assert.rejects(settlesWithin(c.control(3400, new Uint8Array(0)), 5000, 'control'), isCode('TIMEOUT', /within 100 ms/));
  await settlesWithin(c.control(3400, new Uint8Array(0)), 5000, 'next control');
  driver.hang.add('control');
  await assert.rejects(settlesWithin(manager.controlDirect(name, 3400, new Uint8Array(0)), 5000, 'direct control'), isCode('TIMEOUT'));
  driver.hang.add('begin');
  await assert.rejects(settlesWithin(c.beginTransaction(), 5000, 'begin'), isCode('TIMEOUT'));
  assert.equal(manager.reader(name).inTransaction, false);
  // The late grant of the abandoned begin is handed back to the system at once.
  driver.late.pop()!.resolve();
  await settlesWithin(driver.ended(1), 2000, 'late begin ended');
  await settlesWithin(c.beginTransaction(), 5000, 'next begin');
  await c.endTransaction();
  // Cancel: a control that never answers ends at once when the run is cancelled.
  const ac = new AbortController();
  const d = await manager.connect(name, { signal: ac.signal });
  driver.hang.add('control');
  const p = d.control(3400, new Uint8Array(0));
  await new Promise((r) => setImmediate(r));
  ac.abort();
  await assert.rejects(settlesWithin(p, 1000, 'cancelled control'), isCode('CANCELLED'));
  const ac2 = new AbortController();
  const e = await manager.connect(name, { signal: ac2.signal });
  driver.hang.add('begin');
  const b = e.beginTransaction();
  await new Promise((r) => setImmediate(r));
  ac2.abort();
  await assert.rejects(settlesWithin(b, 1000, 'cancelled begin'), isCode('CANCELLED'));
  assert.equal((await c.transmit(CHALLENGE)).sw, 0x9000, 'the queue is not frozen');
  driver.late.splice(0).forEach((l) => l.resolve(new Uint8Array(0)));
  await manager.stop();
});

// ------------------------------------------------------------ item 7

test('item 7: a reset by one connection is reported once to every other connection of the reader', async () => {
  const { manager, name } = await gateManager();
  const a = await manager.connect(name);
  const b = await manager.connect(name);
  const c = await manager.connect(name);
  await a.reset('warm');
  assert.equal((await a.transmit(CHALLENGE)).sw, 0x9000, 'the connection that reset is not told');
  await assert.rejects(b.transmit(CHALLENGE), isCode('CARD_RESET', /reset/));
  assert.equal((await b.transmit(CHALLENGE)).sw, 0x9000, 'once');
  // c reconnects (script `reset`) before its next command: nothing to report, it goes on.
  await c.reset('warm');
  await assert.rejects(a.transmit(CHALLENGE), isCode('CARD_RESET'));
  assert.equal((await c.transmit(CHALLENGE)).sw, 0x9000);
  // The Readers view's Reset (no connection) is reported to all of them.
  await manager.resetCard(name, 'cold');
  for (const x of [a, b, c]) await assert.rejects(x.transmit(CHALLENGE), isCode('CARD_RESET', /reset/));
  for (const x of [a, b, c]) assert.equal((await x.transmit(CHALLENGE)).sw, 0x9000);
  // So is a power-off by another client, and control and transactions hear it too.
  await a.powerOff();
  await assert.rejects(b.beginTransaction(), isCode('CARD_RESET'));
  await assert.rejects(c.control(3400, new Uint8Array(0)), isCode('CARD_RESET'));
  await manager.stop();
});

test('item 7: an exchange abandoned by one connection (time-out) counts as a reset for the others', async () => {
  const { driver, manager, name } = await gateManager({ exchangeTimeoutMs: 100 });
  const a = await manager.connect(name);
  const b = await manager.connect(name);
  driver.onTransmit = () => new Promise(() => {});
  await assert.rejects(settlesWithin(a.transmit(CHALLENGE), 5000, 'silent card'), isCode('TIMEOUT'));
  driver.onTransmit = null;
  assert.equal((await a.transmit(CHALLENGE)).sw, 0x9000, 'a was told by its TIMEOUT; the card is powered up again');
  await assert.rejects(b.transmit(CHALLENGE), isCode('CARD_RESET'));
  assert.equal((await b.transmit(CHALLENGE)).sw, 0x9000);
  await manager.stop();
});

test('item 7: removal and reinsertion are reported once (REMOVED_CARD); reset reconnects to the new card', async () => {
  const { driver, manager, name } = await gateManager();
  const a = await manager.connect(name);
  const b = await manager.connect(name);
  driver.inner.removeCard('sim:0');
  await assert.rejects(a.transmit(CHALLENGE), isCode('CARD_REMOVED', /removed/));
  driver.inner.insertCard('sim:0');
  await assert.rejects(a.transmit(CHALLENGE), isCode('CARD_REMOVED', /removed/));
  assert.equal((await a.transmit(CHALLENGE)).sw, 0x9000, 'once, then the new card answers');
  await b.reset('warm');
  assert.equal((await b.transmit(CHALLENGE)).sw, 0x9000, 'reset reconnected b without an error');
  await manager.stop();
});

// Review finding 9(b): the connection whose driver call met another program's reset hears it once, the others once too.
test('item 7: a control that meets another program\'s reset (driver CARD_RESET) reports it once to that connection, once to the others', async () => {
  const { driver, manager, name } = await gateManager();
  const a = await manager.connect(name);
  const b = await manager.connect(name);
  assert.equal((await a.transmit(CHALLENGE)).sw, 0x9000);
  driver.controlError = new ScError('CARD_RESET', 'the card was reset by another program');
  await assert.rejects(a.control(3400, new Uint8Array(0)), isCode('CARD_RESET'));
  assert.equal((await a.transmit(CHALLENGE)).sw, 0x9000, 'a heard it from its control: not again');
  await assert.rejects(b.transmit(CHALLENGE), isCode('CARD_RESET'));
  assert.equal((await b.transmit(CHALLENGE)).sw, 0x9000, 'b heard it once');
  await manager.stop();
});

test('item 7: a script that verified its PIN stops when another client resets the card', async () => {
  const sim = new SimulatorDriver();
  const m = new ReaderManager([sim]);
  await m.start();
  const name = m.resolve();
  let resetDone!: () => void;
  const resetHappened = new Promise<void>((r) => { resetDone = r; });
  const script = parseScript('00 20 00 01 04 31 32 33 34 => 90 00\necho "go"\n00 84 00 00 08 => * 90 00');
  const run = runScript(script, { manager: m });
  const off = m.onEntry((e) => {
    if (e.kind === 'echo') { off(); void m.resetCard(name, 'warm').then(resetDone); }
  });
  const r = await settlesWithin(run, 5000, 'run');
  await resetHappened;
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'CARD_RESET');
  assert.match(r.failure!.message, /line 3: .*reset/);
  // A script that resets the card itself first runs through.
  const r2 = await runScript(parseScript('reset\n00 84 00 00 08 => * 90 00'), { manager: m });
  assert.equal(r2.ok, true, r2.failure?.message);
  await m.stop();
});

// ------------------------------------------------------------ item 9

test('item 9: a floor under the time-out (minTimeoutMs, a pinpad VERIFY) outlasts a shorter exchange time-out', async () => {
  const { driver, manager, name } = await gateManager({ exchangeTimeoutMs: 60 });
  const c = await manager.connect(name);
  // The reader answers after 250 ms (a person typing on the keypad): the 60 ms time-out alone gives up ...
  driver.hang.add('control');
  await assert.rejects(settlesWithin(c.control(3400, new Uint8Array(0)), 5000, 'control'), isCode('TIMEOUT', /within 60 ms/));
  driver.late.splice(0).forEach((l) => l.resolve(new Uint8Array(0)));
  // ... and with a 1 s floor the same wait succeeds.
  driver.hang.add('control');
  const answered = c.control(3400, new Uint8Array(0), { minTimeoutMs: 1000 });
  setTimeout(() => driver.late.splice(0).forEach((l) => l.resolve(new Uint8Array([0x90, 0x00]))), 250);
  assert.deepEqual([...await settlesWithin(answered, 5000, 'control')], [0x90, 0x00]);
  await manager.stop();
});

test('item 9: a per-call time-out (timeoutMs) applies to transmit and control', async () => {
  const { driver, manager, name } = await gateManager();
  const c = await manager.connect(name);
  driver.onTransmit = () => new Promise((resolve) => driver.late.push({ resolve: () => resolve(fromHex('9000')), reject: () => {} }));
  await assert.rejects(settlesWithin(c.transmit(CHALLENGE, { timeoutMs: 80 }), 5000, 'transmit'), isCode('TIMEOUT', /within 80 ms/));
  driver.onTransmit = null;
  driver.late.splice(0).forEach((l) => l.resolve());
  driver.hang.add('control');
  await assert.rejects(settlesWithin(c.control(3400, new Uint8Array(0), { timeoutMs: 80 }), 5000, 'control'), isCode('TIMEOUT', /within 80 ms/));
  assert.equal((await c.transmit(CHALLENGE)).sw, 0x9000);
  await manager.stop();
});

test('item 9: time extensions from the reader extend the deadline; without them the call times out', async () => {
  const { driver, manager, name } = await gateManager({ exchangeTimeoutMs: 100 });
  const c = await manager.connect(name);
  /**
   * Answers after 400 ms; when `extend`, asks for 300 ms more at once and then every
   * 50 ms (a reader sending time extensions while the card computes).
   */
  const slow = (extend: boolean) => () => new Promise<Uint8Array>((resolve) => {
    const more = () => driver.sink!.timeExtension?.('sim:0', 300);
    if (extend) setImmediate(more);
    const tick = extend ? setInterval(more, 50) : undefined;
    setTimeout(() => { clearInterval(tick); resolve(fromHex('01 02 90 00')); }, 400);
  });
  driver.onTransmit = slow(true);
  const ok = await settlesWithin(c.transmit(CHALLENGE), 5000, 'extended transmit');
  assert.equal(toHex(ok.response), '01029000');
  driver.onTransmit = slow(false);
  await assert.rejects(settlesWithin(c.transmit(CHALLENGE), 5000, 'transmit without extensions'), isCode('TIMEOUT', /within 100 ms/));
  driver.onTransmit = null;
  await manager.stop();
});

// ------------------------------------------------------------ found in review

test('review: a call longer than the transaction idle time-out keeps the transaction; idle time counts from its end', async () => {
  const { driver, manager, name } = await gateManager({ transactionTimeoutMs: 100, exchangeTimeoutMs: 5000 });
  const a = await manager.connect(name);
  const b = await manager.connect(name);
  await a.beginTransaction();
  // A slow exchange (a key generation) three times the idle time-out, with B waiting behind the transaction.
  driver.onTransmit = () => new Promise((resolve) => setTimeout(() => resolve(fromHex('9000')), 300));
  const slow = a.transmit(CHALLENGE);
  const order: string[] = [];
  const bDone = b.transmit(CHALLENGE).then(() => order.push('B'));
  await settlesWithin(slow, 5000, 'slow transmit');
  driver.onTransmit = null;
  // Right after the slow call, A is still in its transaction: its next command runs before B's, and its end works.
  await a.transmit(CHALLENGE).then(() => order.push('A'));
  assert.ok(!driver.calls.includes('end leave'), `the transaction was not ended under the call: ${driver.calls.join(', ')}`);
  await a.endTransaction();
  await settlesWithin(bDone, 5000, 'B');
  assert.deepEqual(order, ['A', 'B'], 'no command of B ran inside A\'s transaction');
  // And idle it is released after the time-out, counted from the end of the last call.
  await a.beginTransaction();
  await a.transmit(CHALLENGE);
  await settlesWithin(driver.ended(2), 5000, 'idle release');
  await manager.stop();
});

test('review: Cancel is heard while a call waits in the reader\'s queue behind another client\'s transaction', async () => {
  const { manager, name } = await gateManager({ transactionTimeoutMs: 10_000 });
  const a = await manager.connect(name);
  const b = await manager.connect(name);
  await a.beginTransaction();
  for (const [what, call] of [
    ['transmit', (signal: AbortSignal) => b.transmit(CHALLENGE, { signal })],
    ['control', (signal: AbortSignal) => b.control(3400, new Uint8Array(0), { signal })],
    ['begin transaction', (signal: AbortSignal) => b.beginTransaction({ signal })],
    ['connect', (signal: AbortSignal) => manager.connect(name, { signal })],
  ] as const) {
    const ac = new AbortController();
    const waiting = (call as (s: AbortSignal) => Promise<unknown>)(ac.signal);
    setTimeout(() => ac.abort(), 50);
    const t0 = performance.now();
    await assert.rejects(settlesWithin(waiting, 2000, what), isCode('CANCELLED', /nothing more was sent/));
    assert.ok(performance.now() - t0 < 1500, `${what}: Cancel was heard while waiting, not after the transaction`);
  }
  // The queue is intact: A goes on, and after its end B's calls run.
  assert.equal((await a.transmit(CHALLENGE)).sw, 0x9000);
  await a.endTransaction();
  assert.equal((await b.transmit(CHALLENGE)).sw, 0x9000);
  await manager.stop();
});

after(() => {
  // Any late driver failure in this file must have been consumed, not only in the test that looks for it.
  assert.deepEqual(unhandled, [], 'no unhandled rejection while the gate tests ran');
});
