// Reader initialization (design): an inserted card is powered up, its ATR read and
// its protocol chosen by the manager, before any client connects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import type { Driver, DriverSink, PowerMode, Protocol } from '../../../server/src/drivers/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { EventEntry, LogEntry } from '../../../server/src/protocol';
import { ScError } from '../../../server/src/util/errors';
import { fromHex } from '../../../server/src/util/hex';

function until(pred: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => (pred() ? resolve() : Date.now() - t0 > 5000 ? reject(new Error(`timed out waiting for ${what}`)) : setImmediate(tick));
    tick();
  });
}

/** One slot; the card answers with `atr`, or is mute (powerOn fails); records protocol changes. */
class OneSlot implements Driver {
  readonly id = 'one';
  sink!: DriverSink;
  atr: Uint8Array | null = fromHex('3B80800101'); // offers T=0 (first) and T=1
  protocols: Protocol[] = [];
  powerOns: PowerMode[] = [];
  async start(sink: DriverSink) {
    this.sink = sink;
    sink.slotAdded({ key: 'k', name: 'One', deviceKey: 'd', slotIndex: 0, cardPresent: false });
  }
  async stop() {}
  async powerOn(_k: string, mode: PowerMode) {
    this.powerOns.push(mode);
    if (!this.atr) throw new ScError('PROTOCOL', 'The card did not answer to reset.');
    return this.atr;
  }
  async powerOff() {}
  async setProtocol(_k: string, p: Protocol) { this.protocols.push(p); }
  async transmit() { return fromHex('9000'); }
  async control(): Promise<Uint8Array> { throw new ScError('NOT_SUPPORTED', 'no control'); }
}

test('an inserted card is powered and its ATR cached without a client; events in order', async () => {
  const sim = new SimulatorDriver({ card: 'T=1', readers: 1 });
  const m = new ReaderManager([sim]);
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  const name = 'Workbench Simulator 00 00';
  await until(() => m.reader(name).card?.powered === true, 'the first power-up');
  const card = m.reader(name).card!;
  assert.match(card.atr ?? '', /^3B/);
  assert.equal(card.protocol, 1);
  assert.equal(m.reader(name).connections, 0, 'initialization holds no connection');
  sim.removeCard('sim:0');
  sim.insertCard('sim:0', 'T=0');
  await until(() => entries.filter((e) => e.kind === 'cardPowered').length === 2, 'the second power-up');
  const kinds = entries.map((e) => e.kind);
  assert.deepEqual(kinds, ['readerAdded', 'cardInserted', 'cardPowered', 'cardRemoved', 'cardInserted', 'cardPowered']);
  const powered = entries[5] as EventEntry;
  assert.equal(powered.protocol, 0, 'the T=0 card runs T=0');
  assert.equal(powered.eventCount, 2);
  await m.stop();
});

test('a card that does not answer shows as mute; initialization can be turned off', async () => {
  const d = new OneSlot();
  d.atr = null;
  const m = new ReaderManager([d]);
  await m.start();
  d.sink.cardInserted('k');
  await until(() => m.reader('One 00 00').card?.mute === true, 'mute');
  assert.equal(m.reader('One 00 00').card?.powered, false);
  assert.equal(m.reader('One 00 00').card?.atr, undefined);

  const off = new OneSlot();
  const m2 = new ReaderManager([off], { initializeCards: false });
  await m2.start();
  off.sink.cardInserted('k');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(off.powerOns, []);
  assert.equal(m2.reader('One 00 00').card?.powered, false);
});

test('the protocol picked at initialization gives way to a connect asking for the other one', async () => {
  const d = new OneSlot();
  const m = new ReaderManager([d]);
  await m.start();
  d.sink.cardInserted('k');
  await until(() => m.reader('One 00 00').card?.powered === true, 'power-up');
  assert.equal(m.reader('One 00 00').card?.protocol, 0, 'the first offered protocol');
  const c = await m.connect('One 00 00', { protocol: 1 });
  assert.equal(m.reader('One 00 00').card?.protocol, 1);
  assert.deepEqual(d.protocols, [0, 1]);
  // With a connection open, another client cannot switch the protocol under it.
  await assert.rejects(m.connect('One 00 00', { protocol: 0 }), /already running T=1/);
  await c.disconnect();
});

/** A driver whose platform powers cards itself (pcscd): an ATR without powerOn, and release when unused. */
class PassiveSlot extends OneSlot {
  releases = 0;
  passiveAtr() { return this.atr ?? undefined; }
  async release() { this.releases++; }
}

test('a driver that has the ATR already (passiveAtr): initialization shows it without powering; the last connection ending releases the card', async () => {
  const d = new PassiveSlot();
  const m = new ReaderManager([d]);
  await m.start();
  d.sink.cardInserted('k');
  const name = 'One 00 00';
  await until(() => m.reader(name).card?.powered === true, 'the initialization');
  assert.equal(m.reader(name).card?.atr, '3B80800101');
  assert.equal(m.reader(name).card?.protocol, 1, "the ATR offers T=0 and T=1: pcscd's rule for a card nobody set a protocol on is T=1 first");
  assert.deepEqual(d.powerOns, [], 'no power-up: the platform did it');
  const a = await m.connect(name);
  const b = await m.connect(name);
  await a.transmit(fromHex('00840000 08'));
  const released = d.releases;
  await a.disconnect();
  assert.equal(d.releases, released, 'one connection still open: no release');
  await b.disconnect();
  await until(() => d.releases === released + 1, 'the release after the last connection');
  await m.resetCard(name, 'warm');
  assert.equal(d.releases, released + 2, 'a Readers-view reset with no connection releases too');
  await m.stop();
});
