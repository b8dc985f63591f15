// Faults with the simulator behind a fault injector: the card or the reader
// goes away mid-run, the driver hangs or throws, the user cancels. Each must end
// with a clear, typed error (no hang, no lost response, no unhandled rejection),
// leave no connection or transaction open, and the next script must work.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseScript } from '../../../server/src/script/parser';
import { runScript } from '../../../server/src/script/engine';
import { ScError } from '../../../server/src/util/errors';
import { faultyManager, prng, settlesWithin, simulatorManager } from './support';

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => { unhandled.push(e); };
before(() => process.on('unhandledRejection', onUnhandled));
after(() => {
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled, [], 'no unhandled promise rejection during the fault tests');
});

const LONG = parseScript('repeat 100000\n  00 84 00 00 08 => * 90 00\nend\n');
const SHORT = parseScript('00 A4 04 00 07 F0574244454D4F => * 90 00\n00 84 00 00 08 => * 90 00\n');
const IN_TX = parseScript('transaction begin\nrepeat 100000\n  00 84 00 00 08 => * 90 00\nend\ntransaction end\n');
/** A hang bound: a run that should end at once and has not after this is reported as a hang. */
const HANG_MS = 5000;

test('card removed mid-run (50 times): CARD_REMOVED with the line, nothing left open, the next script works', async (t) => {
  const { manager, name, sim } = await simulatorManager();
  t.after(() => manager.stop());
  const stoppedAt: number[] = [];
  for (let i = 0; i < 50; i++) {
    const at = 10 + ((i * 37) % 200);
    const r = await settlesWithin(runScript(i % 2 ? IN_TX : LONG, {
      manager, reader: name,
      onProgress: (done) => { if (done === at) sim.removeCard('sim:0'); },
    }), HANG_MS, 'run with the card removed');
    assert.equal(r.ok, false);
    assert.equal(r.failure?.code, 'CARD_REMOVED', r.failure?.message);
    assert.match(r.failure!.message, /^line \d+: .*removed/);
    assert.equal(r.commands, at, 'no command counted after the removal, none lost before it');
    stoppedAt.push(r.commands);
    assert.equal(manager.reader(name).connections, 0);
    assert.equal(manager.reader(name).inTransaction, false);
    sim.insertCard('sim:0');
    const next = await runScript(SHORT, { manager, reader: name });
    assert.equal(next.ok, true, next.failure?.message);
  }
  t.diagnostic(`50 removals, runs stopped after ${Math.min(...stoppedAt)}..${Math.max(...stoppedAt)} APDUs as planned`);
});

test('card removed while a transmit is in flight: that APDU fails with CARD_REMOVED or completes, never hangs', async (t) => {
  const { manager, name, driver } = await faultyManager();
  t.after(() => manager.stop());
  let release!: () => void;
  driver.onTransmit = (_c, n) => (n === 5 ? new Promise((resolve, reject) => {
    release = () => reject(new ScError('CARD_REMOVED', 'The card was removed during the exchange.'));
  }) : undefined);
  const run = runScript(LONG, { manager, reader: name() });
  for (;;) { await driver.nextTransmit(); if (driver.transmits === 5) break; }
  driver.inner.removeCard('sim:0');
  release();
  const r = await settlesWithin(run, HANG_MS, 'run with the card removed in flight');
  assert.equal(r.failure?.code, 'CARD_REMOVED');
  assert.equal(r.commands, 4);
  assert.equal(manager.reader(name()).connections, 0);
  driver.onTransmit = null;
  driver.inner.insertCard('sim:0');
  assert.equal((await runScript(SHORT, { manager, reader: name() })).ok, true);
});

test('reader removed mid-transaction: the run and a client queued behind the transaction both fail with READER_UNAVAILABLE; the reader works when it comes back', async (t) => {
  const { manager, name, driver } = await faultyManager();
  t.after(() => manager.stop());
  for (let i = 0; i < 20; i++) {
    const reader = name();
    const other = await manager.connect(reader);
    let queued: Promise<unknown> | undefined;
    const run = runScript(IN_TX, {
      manager, reader,
      onProgress: (done) => {
        // Another client asks while the run holds the transaction: it must wait, then fail cleanly.
        if (done === 3) queued = other.transmit(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08)).then(() => 'answered', (e: ScError) => e.code);
        if (done === 20 + i) driver.removeReader();
      },
    });
    const r = await settlesWithin(run, HANG_MS, 'run with the reader removed');
    assert.equal(r.ok, false);
    assert.equal(r.failure?.code, 'READER_UNAVAILABLE', r.failure?.message);
    assert.equal(r.commands, 20 + i);
    assert.equal(await settlesWithin(queued!, HANG_MS, 'client queued behind the transaction'), 'READER_UNAVAILABLE');
    await other.disconnect();
    assert.deepEqual(manager.list().readers, []);
    driver.addReader();
    const next = await runScript(SHORT, { manager, reader: name() });
    assert.equal(next.ok, true, next.failure?.message);
    assert.equal(manager.reader(name()).connections, 0);
  }
});

test('a driver that throws at random (500 runs, seeded): every run ends with a typed error or passes, no response lost, the reader works after', async (t) => {
  const { manager, name, driver } = await faultyManager();
  t.after(() => manager.stop());
  const rnd = prng(9);
  const faults = [
    () => Promise.reject(new ScError('DRIVER', 'The reader stopped answering (injected).')),
    () => Promise.reject(new Error('EPIPE (injected)')),
    () => Promise.reject('a bare string (injected)'),
    () => { throw new TypeError('synchronous throw (injected)'); },
    () => Promise.resolve(Uint8Array.of(0x90)), // one byte: no status word
    () => Promise.resolve(new Uint8Array(0)),
  ];
  const injected = new Map<number, number>();
  driver.onTransmit = () => {
    if (rnd() >= 0.05) return undefined;
    const k = Math.floor(rnd() * faults.length);
    injected.set(k, (injected.get(k) ?? 0) + 1);
    return faults[k]();
  };
  driver.onPowerOn = () => (rnd() < 0.05 ? Promise.reject(new ScError('DRIVER', 'Power-up failed (injected).')) : undefined);
  const script = parseScript('repeat 20\n  00 84 00 00 08 => * 90 00\nend\n');
  const codes = new Map<string, number>();
  let passed = 0, commands = 0;
  for (let i = 0; i < 500; i++) {
    const r = await settlesWithin(runScript(script, { manager, reader: name() }), HANG_MS, `run ${i}`);
    commands += r.commands;
    if (r.ok) { passed++; assert.equal(r.commands, 20); continue; }
    const f = r.failure!;
    codes.set(f.code, (codes.get(f.code) ?? 0) + 1);
    assert.ok(['DRIVER', 'INTERNAL', 'PROTOCOL'].includes(f.code), `unexpected code ${f.code}: ${f.message}`);
    assert.ok(f.message.length > 8 && !/undefined|\[object/.test(f.message), `unclear message: ${f.message}`);
    // Every command that got an answer is counted once in its line's result.
    const answered = r.lines.reduce((n, l) => n + l.count, 0);
    assert.equal(answered, r.commands, 'every counted command has its result');
    assert.equal(manager.reader(name()).connections, 0);
  }
  t.diagnostic(`500 runs: ${passed} passed, failures by code ${JSON.stringify(Object.fromEntries(codes))}, faults injected ${JSON.stringify(Object.fromEntries(injected))}, ${commands} commands answered`);
  assert.ok(passed > 0 && passed < 500, 'some runs hit a fault, some did not');
  driver.onTransmit = null;
  driver.onPowerOn = null;
  assert.equal(driver.inFlight, 0);
  assert.equal((await runScript(SHORT, { manager, reader: name() })).ok, true);
});

test('cancel mid-run (100 times, half inside a transaction): CANCELLED, no connection or transaction left open', async (t) => {
  const { manager, name } = await simulatorManager();
  t.after(() => manager.stop());
  for (let i = 0; i < 100; i++) {
    const ac = new AbortController();
    const at = 5 + i;
    const r = await settlesWithin(runScript(i % 2 ? IN_TX : LONG, {
      manager, reader: name, signal: ac.signal, onProgress: (done) => { if (done === at) ac.abort(); },
    }), HANG_MS, 'cancelled run');
    assert.equal(r.failure?.code, 'CANCELLED');
    assert.equal(r.commands, at);
    const info = manager.reader(name);
    assert.equal(info.connections, 0);
    assert.equal(info.inTransaction, false);
  }
  assert.equal((await runScript(SHORT, { manager, reader: name })).ok, true);
});

test('cancel during `wait card` and `delay` ends the run at once', async (t) => {
  const { manager, name, sim } = await simulatorManager();
  t.after(() => manager.stop());
  sim.removeCard('sim:0');
  for (const text of ['wait card\n00 84 00 00 08\n', 'delay 600000\n']) {
    const ac = new AbortController();
    const run = runScript(parseScript(text), { manager, reader: name, signal: ac.signal });
    setImmediate(() => ac.abort());
    const r = await settlesWithin(run, HANG_MS, `cancelled '${text.split('\n')[0]}'`);
    assert.equal(r.failure?.code, 'CANCELLED');
  }
});

// A transmit that never returns (a reader that stopped answering, a socket
// with no time-out). The manager has no time-out of its own; the user's way out
// is Cancel, which must end the run even with the exchange still in flight.
test('a driver whose transmit hangs: Cancel ends the run, and the reader is usable again', async (t) => {
  const { manager, name, driver } = await faultyManager();
  t.after(() => manager.stop());
  driver.onTransmit = (_c, n) => (n === 3 ? new Promise<Uint8Array>(() => { /* never answers */ }) : undefined);
  const ac = new AbortController();
  const run = runScript(LONG, { manager, reader: name(), signal: ac.signal });
  for (;;) { await driver.nextTransmit(); if (driver.transmits === 3) break; }
  ac.abort();
  const r = await settlesWithin(run, HANG_MS, 'cancelled run with a hung transmit');
  assert.equal(r.failure?.code, 'CANCELLED');
  assert.equal(manager.reader(name()).connections, 0);
  // The hung exchange may still hold the reader; the next run must then fail with
  // a typed error that says so, or work, but never wait forever.
  driver.onTransmit = null;
  const next = await settlesWithin(runScript(SHORT, { manager, reader: name() }), HANG_MS, 'next run after a hung transmit');
  assert.ok(next.ok || ['TIMEOUT', 'READER_UNAVAILABLE', 'CARD_REMOVED', 'DRIVER'].includes(next.failure!.code), next.failure?.message);
});

test('card removed while an idle client holds a transaction: the next script on the new card does not wait for the 30 s idle release', async (t) => {
  const { manager, name, sim } = await simulatorManager();
  t.after(() => manager.stop());
  const holder = await manager.connect(name);
  await holder.beginTransaction();
  sim.removeCard('sim:0');
  sim.insertCard('sim:0');
  const r = await settlesWithin(runScript(SHORT, { manager, reader: name }), HANG_MS, 'script after the card was swapped under a transaction');
  assert.equal(r.ok, true, r.failure?.message);
  await holder.disconnect();
});

test('a silent card: the exchange time-out ends the run with TIMEOUT, a late answer is dropped, the next script works (10 times)', async (t) => {
  const { manager, name, driver } = await faultyManager({ exchangeTimeoutMs: 200 });
  t.after(() => manager.stop());
  for (let i = 0; i < 10; i++) {
    let answerLate!: () => void;
    const silentAt = driver.transmits + 3 + i;
    driver.onTransmit = (_c, n) => (n === silentAt ? new Promise<Uint8Array>((resolve) => { answerLate = () => resolve(Uint8Array.of(0x6f, 0x00)); }) : undefined);
    const r = await settlesWithin(runScript(LONG, { manager, reader: name() }), HANG_MS, 'run with a silent card');
    assert.equal(r.failure?.code, 'TIMEOUT', r.failure?.message);
    assert.match(r.failure!.message, /did not answer within 200 ms/);
    assert.equal(r.commands, 2 + i);
    assert.equal(manager.reader(name()).connections, 0);
    // The card wakes up with a stale answer while the next script runs: it must not
    // be taken as the answer to one of the new commands (every one expects 90 00).
    driver.onTransmit = null;
    const next = runScript(SHORT, { manager, reader: name() });
    answerLate();
    const n = await settlesWithin(next, HANG_MS, 'next run after a time-out');
    assert.equal(n.ok, true, n.failure?.message);
  }
  assert.equal(driver.inFlight, 0);
});
