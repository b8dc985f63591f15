// pcscd's on-demand power (R77): a powered card nobody uses is powered down after
// PCSCLITE_POWER_OFF_GRACE_PERIOD (eventhandler.c ~440-495, winscard.c ~1005-1025), so its
// state (a verified PIN, a selected application) does not outlive its last user; the next
// connection powers it up again, i.e. gets a freshly reset card. Short grace through the option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { POWER_OFF_GRACE_MS, ReaderManager } from '../../../server/src/manager/manager';
import type { EventEntry, LogEntry } from '../../../server/src/protocol';
import { fromHex } from '../../../server/src/util/hex';

const A = 'Workbench Simulator 00 00';
const VERIFY_1234 = fromHex('0020000104 31323334');
const VERIFY_QUERY = fromHex('00200001');
const GRACE = 150;

async function setup(powerOffGraceMs: number | undefined = GRACE) {
  const sim = new SimulatorDriver({ readers: 1 });
  let powerOffs = 0;
  const off = sim.powerOff.bind(sim);
  sim.powerOff = async (key: string) => { powerOffs++; return off(key); };
  const m = new ReaderManager([sim], { historySize: 0, ...(powerOffGraceMs !== undefined ? { powerOffGraceMs } : {}) });
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  return { sim, m, entries, powerOffs: () => powerOffs };
}

/** The next entry `pred` accepts, within `ms` (bounded). */
function nextEntry(m: ReaderManager, pred: (e: LogEntry) => boolean, what: string, ms = 5000): Promise<LogEntry> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`${what}: not within ${ms} ms`)); }, ms);
    const off = m.onEntry((e) => { if (pred(e)) { clearTimeout(timer); off(); resolve(e); } });
  });
}

const idleOff = (e: LogEntry) => e.kind === 'cardUnpowered' && (e as EventEntry).idle === true;

test('pcscd\'s grace period is 5 s (pcscd.h PCSCLITE_POWER_OFF_GRACE_PERIOD), the default', () => {
  assert.equal(POWER_OFF_GRACE_MS, 5000);
});

test('a verified PIN does not outlive the last connection: the card is powered down after the grace period, the next connection gets it reset', async () => {
  const { m, entries } = await setup();
  try {
    const c = await m.connect(A);
    assert.equal((await c.transmit(VERIFY_1234)).sw, 0x9000);
    const down = nextEntry(m, idleOff, 'the idle power-down');
    await c.disconnect('leave');
    const downEntry = (await down) as EventEntry;
    assert.equal(downEntry.idleMs, GRACE, 'the entry says how long the card was unused (the APDU Log\'s "unused for N s")');
    const info = m.reader(A).card!;
    assert.equal(info.powered, false);
    assert.equal(info.idle, true, 'the Readers view can tell an idle power-down from a client\'s');
    assert.ok(info.atr, 'the ATR is kept (pcscd keeps it in its table)');
    const again = await m.connect(A);
    assert.equal(m.reader(A).card!.powered, true);
    assert.equal(m.reader(A).card!.idle, undefined);
    assert.equal((await again.transmit(VERIFY_QUERY)).sw, 0x63c3, 'the PIN is no longer verified: the card was reset');
    await again.disconnect('leave');
    assert.ok(entries.some((e) => e.kind === 'cardPowered' && e.seq > entries.find(idleOff)!.seq), 'the power-up is logged');
  } finally { await m.stop(); }
});

test('a connection within the grace period keeps the card as it was; while any connection is open nothing is powered down', async () => {
  const { m, powerOffs } = await setup();
  try {
    const c = await m.connect(A);
    assert.equal((await c.transmit(VERIFY_1234)).sw, 0x9000);
    await c.disconnect('leave');
    const d = await m.connect(A);
    assert.equal((await d.transmit(VERIFY_QUERY)).sw, 0x9000, 'reconnected within the grace period: still verified');
    // Held for three grace periods: no power-down (a negative can only be waited for).
    await new Promise((r) => setTimeout(r, 3 * GRACE));
    assert.equal(powerOffs(), 0);
    assert.equal((await d.transmit(VERIFY_QUERY)).sw, 0x9000);
    const down = nextEntry(m, idleOff, 'the idle power-down after the last disconnect');
    await d.disconnect('leave');
    await down;
    assert.equal(powerOffs(), 1);
  } finally { await m.stop(); }
});

test('a card inserted and left alone is powered down after the grace period (reader initialization powered it)', async () => {
  const { sim, m } = await setup();
  try {
    await nextEntry(m, idleOff, 'the first idle power-down (the card present at start)');
    sim.removeCard('sim:0');
    const powered = nextEntry(m, (e) => e.kind === 'cardPowered', 'reader initialization');
    const down = nextEntry(m, idleOff, 'the idle power-down of the new card');
    sim.insertCard('sim:0');
    const p = await powered;
    const d = await down;
    assert.ok(d.seq > p.seq);
    assert.equal(m.reader(A).card!.idle, true);
  } finally { await m.stop(); }
});

test('a PC/SC direct handle alone does not keep a card powered; one still open when the last connection goes does (pcscd\'s contexts)', async () => {
  const { m, powerOffs } = await setup();
  try {
    // Inserted at start, nobody connected: the direct handle does not count (pcscd's powerState stays POWERED).
    const early = nextEntry(m, idleOff, 'the idle power-down beside a direct handle');
    const drop = m.addDirectUser(A, 'pcsc_scan (pid 1)');
    await early;
    const c = await m.connect(A);
    assert.equal(m.reader(A).card!.powered, true);
    await c.disconnect('leave');
    // The direct handle keeps the reader in use (pcscd: contexts > 0, powerState IN_USE).
    await new Promise((r) => setTimeout(r, 3 * GRACE));
    assert.equal(powerOffs(), 1);
    assert.equal(m.reader(A).card!.powered, true);
    const late = nextEntry(m, idleOff, 'the idle power-down after the direct handle went');
    drop();
    await late;
    assert.equal(powerOffs(), 2);
  } finally { await m.stop(); }
});

test('stop() cancels the timer: nothing is powered down after it; grace 0 keeps idle cards powered', async () => {
  const { m, powerOffs } = await setup();
  const c = await m.connect(A);
  await c.disconnect('leave');
  await m.stop();
  await new Promise((r) => setTimeout(r, 3 * GRACE));
  assert.equal(powerOffs(), 0);

  const never = await setup(0);
  try {
    const d = await never.m.connect(A);
    await d.disconnect('leave');
    await new Promise((r) => setTimeout(r, 3 * GRACE));
    assert.equal(never.powerOffs(), 0);
    assert.equal(never.m.reader(A).card!.powered, true);
  } finally { await never.m.stop(); }
});

test('the timer holds no process open (unref): no ref\'d timer more while it waits', async () => {
  const { m } = await setup(60_000);
  try {
    const timers = () => process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
    const c = await m.connect(A);
    const before = timers();
    await c.disconnect('leave');
    assert.ok(timers() <= before, `ref'd timers: ${before} -> ${timers()}`);
  } finally { await m.stop(); }
});
