// The PC/SC driver against a fake winscard: plug-and-play from status changes,
// service loss and return, control codes, name splitting, error words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { cardInReader, createPcscDriver, libraryLoadFailure, namesOwnService, pcscdHint, splitReaderName } from '../../../server/src/drivers/pcsc/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { rvOf } from '../../../server/src/service/backend';
import { Disposition, ShareMode } from '../../../server/src/service/wire';
import { PNP_NOTIFICATION, SCARD_STATE, parseFeatureList } from '../../../server/src/drivers/pcsc/constants';
import {
  PcscError,
  SCARD_E_CANCELLED,
  SCARD_E_NO_SERVICE,
  SCARD_E_NO_SMARTCARD,
  SCARD_E_TIMEOUT,
  SCARD_W_RESET_CARD,
  pcscErrorName,
  toScError,
} from '../../../server/src/drivers/pcsc/errors';
import type { CardStatus, Handle, ReaderState, Winscard } from '../../../server/src/drivers/pcsc/transport';
import type { DriverSink, LogLevel, SlotDescriptor } from '../../../server/src/drivers/driver';
import { ScError } from '../../../server/src/util/errors';

const ATR = Uint8Array.of(0x3b, 0x02, 0x14, 0x50);

interface FakeReader {
  present: boolean;
  counter: number;
}

/** A PC/SC service in memory; waiting status-change calls wake on every change. */
class FakeWinscard implements Winscard {
  readonly library = 'fake';
  up = true;
  readers = new Map<string, FakeReader>();
  controlCodes: number[] = [];
  private nextHandle = 1;
  private waiters: { ctx: Handle; check: () => boolean; reject: (e: Error) => void }[] = [];

  get waiting(): number {
    return this.waiters.length;
  }
  change(): void {
    for (const w of [...this.waiters]) if (w.check()) this.waiters.splice(this.waiters.indexOf(w), 1);
  }
  stopService(): void {
    this.up = false;
    for (const w of this.waiters.splice(0)) w.reject(new PcscError(SCARD_E_NO_SERVICE, 'SCardGetStatusChange'));
  }
  /** The waiting calls' timeouts run out now (SCARD_E_TIMEOUT): the driver's PnP watchdog path. */
  expireWaits(): void {
    for (const w of this.waiters.splice(0)) w.reject(new PcscError(SCARD_E_TIMEOUT, 'SCardGetStatusChange'));
  }
  insert(name: string): void {
    const r = this.readers.get(name)!;
    r.present = true;
    r.counter++;
    this.change();
  }
  remove(name: string): void {
    const r = this.readers.get(name)!;
    r.present = false;
    r.counter++;
    // RFSetReaderEventState(SCARD_REMOVED) unlocks the reader: hLockId = 0 (readerfactory.c 1338–1343).
    if (this.lock.delete(name)) for (const w of this.lockWaiters.splice(0)) w();
    this.change();
  }

  ctlCode(fn: number): number {
    return 0x42000000 + fn;
  }
  establishAttempts = 0;
  establishContext(): Handle {
    this.establishAttempts++;
    if (!this.up) throw new PcscError(SCARD_E_NO_SERVICE, 'SCardEstablishContext');
    return this.nextHandle++;
  }
  releaseContext(_ctx?: Handle): void {}
  isValidContext(_ctx?: Handle): boolean {
    return this.up;
  }
  listReaders(_ctx?: Handle): string[] {
    if (!this.up) throw new PcscError(SCARD_E_NO_SERVICE, 'SCardListReaders');
    return [...this.readers.keys()];
  }
  private eventState(name: string): number {
    if (name === PNP_NOTIFICATION) return this.readers.size << 16;
    const r = this.readers.get(name);
    if (!r) return SCARD_STATE.UNKNOWN;
    return ((r.counter << 16) | (r.present ? SCARD_STATE.PRESENT : SCARD_STATE.EMPTY)) >>> 0;
  }
  getStatusChange(ctx: Handle, timeoutMs: number, states: ReaderState[]): Promise<ReaderState[]> {
    return new Promise((resolve, reject) => {
      if (!this.up) return reject(new PcscError(SCARD_E_NO_SERVICE, 'SCardGetStatusChange'));
      const check = () => {
        const out = states.map((s) => {
          const now = this.eventState(s.reader);
          const changed = now !== (s.currentState & ~SCARD_STATE.CHANGED);
          return { ...s, eventState: changed ? now | SCARD_STATE.CHANGED : now, atr: ATR };
        });
        if (!out.some((s) => s.eventState & SCARD_STATE.CHANGED)) return false;
        resolve(out);
        return true;
      };
      if (check()) return;
      if (timeoutMs === 0) return reject(new PcscError(SCARD_E_TIMEOUT, 'SCardGetStatusChange'));
      this.waiters.push({ ctx, check, reject });
    });
  }
  cancel(ctx: Handle): void {
    for (const w of this.waiters.filter((x) => x.ctx === ctx)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.reject(new PcscError(SCARD_E_CANCELLED, 'SCardGetStatusChange'));
    }
  }
  /** Card handles open now (SCardConnect not yet disconnected), with their share mode. */
  open = new Map<Handle, { reader: string; share: number }>();
  connects = 0;
  /** Protocol masks asked for by SCardConnect, in order. */
  connectProtocols: number[] = [];
  /** Set when another application had pcscd negotiate a protocol: a connect without it is refused, as pcscd does. */
  cardProtocol?: number;
  /** Another program holds the card exclusively: every connect is refused, as pcscd refuses it. */
  heldElsewhere = false;
  /** SCARD_SHARE_DIRECT connects refused (the reader's facts cannot be read on a direct connection). */
  directRefused = false;
  /** The next SCardGetAttrib on a card handle meets another program's reset (SCARD_W_RESET_CARD). */
  attribResetOnce = false;
  /**
   * Another program's transaction: pcscd's SCardConnect waits in its hLockId poll loop (winscard.c 287–295) until this
   * resolves, whatever the share mode (the wait comes before the share mode is looked at).
   */
  lockedElsewhere?: Promise<void>;
  /** SCardConnect calls that waited on `lockedElsewhere`. */
  waitedElsewhere = 0;
  /** The system transaction of each reader held by one of our handles (pcscd's hLockId): SCardBeginTransaction sets it. */
  lock = new Map<string, Handle>();
  private lockWaiters: (() => void)[] = [];
  /**
   * SCardConnect calls that met a transaction held by a handle of ours (the driver's work context). pcscd serves one
   * context on one thread and libpcsclite holds the context's mutex for the whole call (winscard_svc.c, winscard_clnt.c):
   * the SCardEndTransaction or SCardDisconnect that would free the lock can never be sent, so pcscd's loop waits for
   * ever and the reader stays locked for every program of the machine (fourth review, F1). The fake waits a bounded
   * moment (a disconnect already on its way may still get in) and then fails the call and records it; tests assert none.
   */
  lockWaits: string[] = [];
  lockWaitMs = 50;
  private unlock(reader: string, handle: Handle): void {
    if (this.lock.get(reader) !== handle) return;
    this.lock.delete(reader);
    for (const w of this.lockWaiters.splice(0)) w();
  }
  /** RFSetReaderEventState(SCARD_RESET) (winscard.c 582, 894, 1156): every handle of the reader hears the reset. */
  private markReset(reader: string): void {
    for (const [h, o] of this.open) if (o.reader === reader) this.resetSeen.add(h);
  }
  async connect(_ctx: Handle, reader: string, share: number, protocols?: number): Promise<{ handle: Handle; protocol: number }> {
    // winscard.c 279–283: a handle holding the reader exclusively refuses every connect first, before the lock wait.
    if ([...this.open.values()].some((o) => o.reader === reader && o.share === 1)) throw new PcscError(0x8010000b, 'SCardConnect');
    if (this.lockedElsewhere) { this.waitedElsewhere++; await this.lockedElsewhere; }
    if (this.lock.has(reader)) {
      const until = Date.now() + this.lockWaitMs;
      while (this.lock.has(reader) && Date.now() < until) {
        await new Promise<void>((r) => { this.lockWaiters.push(r); setTimeout(r, Math.max(1, until - Date.now())); });
      }
      if (this.lock.has(reader)) {
        this.lockWaits.push(`${reader} share ${share}`);
        throw new Error(`connect waited on hLockId: SCardConnect(${reader}, share ${share}) while handle ${this.lock.get(reader)} of the same context holds the reader's transaction (pcscd would wait for ever)`);
      }
    }
    if (this.directRefused && share === 3) throw new PcscError(0x80100017, 'SCardConnect'); // SCARD_E_READER_UNAVAILABLE
    if (this.heldElsewhere) throw new PcscError(0x8010000b, 'SCardConnect');
    if (share !== 3 && !this.readers.get(reader)?.present) throw new PcscError(SCARD_E_NO_SMARTCARD, 'SCardConnect');
    this.connectProtocols.push(protocols ?? -1);
    if (share !== 3 && this.cardProtocol !== undefined && protocols !== undefined && !(protocols & this.cardProtocol)) {
      throw new PcscError(0x8010000f, 'SCardConnect');
    }
    const handle = this.nextHandle++;
    this.open.set(handle, { reader, share });
    this.connects++;
    return { handle, protocol: share === 3 ? 0 : this.cardProtocol ?? 2 };
  }
  /** SCardReconnect's dwInitialization and SCardDisconnect's dwDisposition, in order. */
  dispositions: string[] = [];
  /** Handles another application's reset reached: SCARD_W_RESET_CARD on their calls until SCardReconnect (as pcscd). */
  resetSeen = new Set<Handle>();
  /** Handles whose card was removed: SCARD_W_REMOVED_CARD on their calls (as pcscd). */
  removedSeen = new Set<Handle>();
  /** Another program has its own handle on the card: SCardReconnect to EXCLUSIVE is refused, as pcscd refuses it (winscard.c ~779). */
  otherProgramConnected = false;
  async reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
    this.dispositions.push(`reconnect ${init}`);
    if (share === 1 && this.otherProgramConnected) throw new PcscError(0x8010000b, 'SCardReconnect');
    const h = this.open.get(card);
    if (h) h.share = share;
    if (h && (init === 1 || init === 2)) this.markReset(h.reader); // SCARD_RESET_CARD / SCARD_UNPOWER_CARD
    this.resetSeen.delete(card); // RFClearReaderEventState: the caller's own (winscard.c 813)
    return protocols === 1 ? 1 : 2;
  }
  /** A service that takes its time to answer SCardDisconnect (a macrotask, as a real round trip is). */
  disconnectDelayMs = 0;
  async disconnect(card: Handle, disposition: number): Promise<void> {
    this.dispositions.push(`disconnect ${disposition}`);
    if (this.disconnectDelayMs) await new Promise((r) => setTimeout(r, this.disconnectDelayMs));
    const h = this.open.get(card);
    this.open.delete(card);
    this.resetSeen.delete(card);
    if (!h) return;
    if (disposition === 1 || disposition === 2) this.markReset(h.reader); // winscard.c 894: the others hear it
    this.unlock(h.reader, card); // RFUnlockAllSharing
  }
  async beginTransaction(card: Handle): Promise<void> {
    if (this.resetSeen.has(card)) throw new PcscError(SCARD_W_RESET_CARD, 'SCardBeginTransaction');
    const h = this.open.get(card);
    if (!h) throw new PcscError(0x80100003, 'SCardBeginTransaction'); // SCARD_E_INVALID_HANDLE
    const holder = this.lock.get(h.reader);
    if (holder !== undefined && holder !== card) throw new PcscError(0x8010000b, 'SCardBeginTransaction');
    this.lock.set(h.reader, card);
  }
  async endTransaction(card: Handle, disposition: number): Promise<void> {
    const h = this.open.get(card);
    if (!h) throw new PcscError(0x80100003, 'SCardEndTransaction');
    if (disposition === 1 || disposition === 2) this.markReset(h.reader); // winscard.c 1156: the caller too
    this.unlock(h.reader, card);
  }
  async transmit(card: Handle, _protocol: number, command: Uint8Array): Promise<Uint8Array> {
    if (this.resetSeen.has(card)) throw new PcscError(SCARD_W_RESET_CARD, 'SCardTransmit');
    return Uint8Array.of(command[1], 0x90, 0x00);
  }
  async control(_card: Handle, code: number): Promise<Uint8Array> {
    this.controlCodes.push(code);
    return Uint8Array.of(0x06, 0x04, 0x42, 0x33, 0x00, 0x06, 0x12, 0x04, 0x42, 0x33, 0x00, 0x12);
  }
  /**
   * SCardGetAttrib as pcscd answers it for an ACS ACR39U through libccid (ifdhandler.c): vendor name from
   * iManufacturer, IFD version = bcdDevice 2.16 << 16 as a uint32_t, MAXINPUT = dwMaxCCIDMessageLength 271 − 10;
   * every other tag IFD_ERROR_TAG, which pcscd answers SCARD_E_UNSUPPORTED_FEATURE (0x8010001F in pcsc-lite).
   */
  attribs = new Map<number, Uint8Array>([
    [0x00010100, new TextEncoder().encode('ACS\0')],
    [0x00010102, Uint8Array.of(0x00, 0x00, 0x16, 0x02)],
    [0x0007a007, Uint8Array.of(0x05, 0x01, 0x00, 0x00)],
  ]);
  /** Handles SCardGetAttrib was called on, with their share mode. */
  attribShares: number[] = [];
  async getAttrib(card: Handle, attr: number): Promise<Uint8Array> {
    this.attribShares.push(this.open.get(card)?.share ?? -1);
    // pcscd's SCardGetAttrib checks the handle's card events (RFCheckReaderEventState, winscard.c 1397).
    if (this.attribResetOnce && this.open.get(card)?.share !== 3) { this.attribResetOnce = false; this.resetSeen.add(card); }
    if (this.resetSeen.has(card)) throw new PcscError(SCARD_W_RESET_CARD, 'SCardGetAttrib');
    if (this.removedSeen.has(card)) throw new PcscError(0x80100069, 'SCardGetAttrib');
    const v = this.attribs.get(attr);
    if (!v) throw new PcscError(0x8010001f, 'SCardGetAttrib');
    return v;
  }
  status(card: Handle): CardStatus {
    if (this.resetSeen.has(card)) throw new PcscError(SCARD_W_RESET_CARD, 'SCardStatus');
    return { reader: '', state: 0, protocol: 2, atr: ATR };
  }
  async statusAsync(card: Handle): Promise<CardStatus> {
    return this.status(card);
  }
}

class Sink implements DriverSink {
  slots = new Map<string, SlotDescriptor>();
  events: string[] = [];
  logs: { level: LogLevel; message: string }[] = [];
  private waiters: { what: string; resolve: () => void }[] = [];
  slotAdded(s: SlotDescriptor): void {
    this.slots.set(s.key, s);
    this.fire(`added ${s.key}`);
  }
  slotRemoved(key: string): void {
    this.slots.delete(key);
    this.fire(`removed ${key}`);
  }
  cardInserted(key: string): void {
    this.fire(`inserted ${key}`);
  }
  cardRemoved(key: string): void {
    this.fire(`card removed ${key}`);
  }
  log(level: LogLevel, message: string): void {
    this.logs.push({ level, message });
  }
  next(what: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ what, resolve }));
  }
  private fire(what: string): void {
    this.events.push(what);
    for (const w of this.waiters.filter((x) => x.what === what)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  }
}

const R0 = 'ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] 00 00';
const R1 = 'ACS ACR1252 Dual Reader [ACR1252 Dual Reader SAM] 00 01';

async function started(): Promise<{ fake: FakeWinscard; sink: Sink; driver: ReturnType<typeof createPcscDriver> }> {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const sink = new Sink();
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] });
  await driver.start(sink);
  return { fake, sink, driver };
}

/** Resolves once the driver's watcher is blocked in its status-change call. */
async function watching(fake: FakeWinscard): Promise<void> {
  while (fake.waiting === 0) await new Promise((r) => setImmediate(r));
}

test('start reports every reader with its card state before resolving', async () => {
  const { sink, driver } = await started();
  assert.deepEqual([...sink.slots.keys()], [R0, R1]);
  assert.equal(sink.slots.get(R0)!.cardPresent, true);
  assert.equal(sink.slots.get(R1)!.cardPresent, false);
  assert.equal(sink.slots.get(R0)!.name, 'ACS ACR1252 Dual Reader');
  assert.equal(sink.slots.get(R1)!.interfaceName, 'ACR1252 Dual Reader SAM');
  assert.equal(sink.slots.get(R1)!.slotIndex, 1);
  await driver.stop();
});

test('card insertion, removal and a quick swap become events; stop ends the waiting call', async () => {
  const { fake, sink, driver } = await started();
  await watching(fake);
  let ev = sink.next(`inserted ${R1}`);
  fake.insert(R1);
  await ev;
  ev = sink.next(`card removed ${R0}`);
  fake.remove(R0);
  await ev;
  await watching(fake);
  // Removed and inserted again before the watcher looked: the event counter tells.
  const removed = sink.next(`card removed ${R1}`);
  const inserted = sink.next(`inserted ${R1}`);
  const r = fake.readers.get(R1)!;
  r.counter += 2;
  fake.change();
  await Promise.all([removed, inserted]);
  await driver.stop();
  assert.equal(fake.waiting, 0);
});

test('readers arriving and leaving are slots added and removed', async () => {
  const { fake, sink, driver } = await started();
  await watching(fake);
  const added = sink.next('added Virtual PCD 00 00');
  fake.readers.set('Virtual PCD 00 00', { present: false, counter: 0 });
  fake.change();
  await added;
  const removed = sink.next(`removed ${R1}`);
  fake.readers.delete(R1);
  fake.change();
  await removed;
  assert.deepEqual([...sink.slots.keys()].sort(), [R0, 'Virtual PCD 00 00'].sort());
  await driver.stop();
});

test('the service stopping removes the readers; its return brings them back', async () => {
  const { fake, sink, driver } = await started();
  await driver.powerOn(R0, 'cold');
  await watching(fake);
  const gone = Promise.all([sink.next(`removed ${R0}`), sink.next(`removed ${R1}`)]);
  fake.stopService();
  await gone;
  await assert.rejects(driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1), (e: unknown) => e instanceof ScError && e.code === 'NO_READER');
  const back = Promise.all([sink.next(`added ${R0}`), sink.next(`added ${R1}`)]);
  fake.up = true;
  await back;
  assert.ok(sink.logs.some((l) => l.level === 'warn' && /SCARD_E_NO_SERVICE/.test(l.message)));
  assert.deepEqual([...(await driver.powerOn(R0, 'cold'))], [...ATR]);
  await driver.stop();
});

test('power on, transmit and control; 3400 becomes SCARD_CTL_CODE(3400)', async () => {
  const { fake, driver } = await started();
  // No card: NO_CARD; a card pcscd powered: transmit connects on first use.
  await assert.rejects(driver.transmit(R1, Uint8Array.of(0, 0x84, 0, 0, 8), 1), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD');
  assert.deepEqual([...(await driver.powerOn(R0, 'cold'))], [...ATR]);
  assert.deepEqual([...(await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1))], [0x84, 0x90, 0x00]);
  const features = parseFeatureList(await driver.control(R1, 3400, new Uint8Array(0)));
  assert.deepEqual(features.map((f) => f.name), ['VERIFY_PIN_DIRECT', 'GET_TLV_PROPERTIES']);
  assert.equal(features[0].controlCode, 0x42330006);
  await driver.control(R0, 0x42330012, new Uint8Array(0));
  assert.deepEqual(fake.controlCodes, [0x42000000 + 3400, 0x42330012]);
  await assert.rejects(driver.powerOn(R1, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD' && /insert one/.test(e.message));
  await driver.stop();
});

test('pcsc-lite reader names split into name, interface, serial, device and slot', () => {
  assert.deepEqual(splitReaderName('Virtual PCD 00 01'), { name: 'Virtual PCD', device: 'Virtual PCD 00', slot: 1 });
  assert.deepEqual(splitReaderName('Gemalto PC Twin Reader (5C1B2E7A) 01 00'), { name: 'Gemalto PC Twin Reader', serial: '5C1B2E7A', device: 'Gemalto PC Twin Reader (5C1B2E7A) 01', slot: 0 });
  assert.deepEqual(splitReaderName('Identiv uTrust 3700 F CL Reader 0'), { name: 'Identiv uTrust 3700 F CL Reader 0', device: 'Identiv uTrust 3700 F CL Reader 0', slot: 0 });
});

test('PC/SC return codes become our codes with words that say what to do', () => {
  const cases: [number, string, RegExp][] = [
    [0x8010000b, 'SHARING_VIOLATION', /another program/],
    [0x8010000c, 'NO_CARD', /insert one/],
    [0x80100069, 'CARD_REMOVED', /removed/],
    [0x80100068, 'CARD_RESET', /another program reset the card/],
    [0x8010001d, 'READER_UNAVAILABLE', /not running; start it/],
    [0x80100022, 'NOT_SUPPORTED', /does not support/],
    [0x12345678, 'DRIVER', /0x12345678/],
  ];
  for (const [rv, code, words] of cases) {
    const e = toScError(new PcscError(rv, 'SCardTransmit'), 'Reader 00 00');
    assert.equal(e.code, code);
    assert.match(e.message, words);
    assert.match(e.message, /SCardTransmit on "Reader 00 00"/);
  }
});

test('transmit goes synchronous only after 8 fast answers in a row, and back to the worker thread after a slow one or beside another call', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: true, counter: 1 });
  const paths: string[] = [];
  let slowSync = false;
  // A fake clock: every exchange takes 0.1 ms, a slow one 5 ms (timing-independent on a loaded machine).
  let now = 0;
  const clock = (): number => now;
  let holdControl: (() => void) | undefined;
  const winscard = Object.assign(Object.create(fake) as FakeWinscard, {
    async transmit(card: Handle, protocol: number, command: Uint8Array): Promise<Uint8Array> {
      paths.push('async');
      now += 0.1;
      return fake.transmit(card, protocol, command);
    },
    transmitSync(_card: Handle, _protocol: number, command: Uint8Array): Uint8Array {
      paths.push('sync');
      now += slowSync ? 5 : 0.1;
      return Uint8Array.of(command[1], 0x90, 0x00);
    },
    async control(): Promise<Uint8Array> {
      await new Promise<void>((r) => { holdControl = r; });
      return new Uint8Array(0);
    },
  });
  const driver = createPcscDriver({ winscard, reconnectDelaysMs: [5], clock });
  await driver.start(new Sink());
  await driver.powerOn(R0, 'cold');
  await driver.powerOn(R1, 'cold');
  const apdu = Uint8Array.of(0, 0x84, 0, 0, 8);
  for (let i = 0; i < 10; i++) assert.deepEqual([...(await driver.transmit(R0, apdu, 1))], [0x84, 0x90, 0x00]);
  assert.deepEqual(paths, [...Array(8).fill('async'), 'sync', 'sync']);
  // Another reader's call in flight (same service connection): back on the worker thread.
  paths.length = 0;
  const control = driver.control(R1, 3400, new Uint8Array(0));
  await driver.transmit(R0, apdu, 1);
  holdControl!();
  await control;
  await driver.transmit(R0, apdu, 1);
  assert.deepEqual(paths, ['async', 'sync']);
  // A slow answer: the next exchanges use the worker thread again until 8 fast ones.
  paths.length = 0;
  slowSync = true;
  await driver.transmit(R0, apdu, 1);
  slowSync = false;
  for (let i = 0; i < 9; i++) await driver.transmit(R0, apdu, 1);
  assert.deepEqual(paths, ['sync', ...Array(8).fill('async'), 'sync']);
  // Switched off: always the worker thread.
  const off = createPcscDriver({ winscard, reconnectDelaysMs: [5], syncTransmit: false, clock });
  await off.start(new Sink());
  await off.powerOn(R0, 'cold');
  paths.length = 0;
  for (let i = 0; i < 10; i++) await off.transmit(R0, apdu, 1);
  assert.deepEqual(paths, Array(10).fill('async'));
  await off.stop();
  await driver.stop();
});

test('a card pcscd powered: its ATR from the reader state without connecting; transmit connects; release leaves it', async () => {
  const { fake, driver } = await started();
  assert.deepEqual([...(driver.passiveAtr(R0) ?? [])], [...ATR], 'the ATR of SCardGetStatusChange');
  assert.equal(driver.passiveAtr(R1), undefined, 'no card, no ATR');
  assert.equal(fake.connects, 0, 'nothing connected to report the ATR');
  assert.deepEqual([...(await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1))], [0x84, 0x90, 0x00]);
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 2 }], 'one shared connection while in use');
  await driver.release(R0);
  assert.equal(fake.open.size, 0, 'released: no connection left');
  await driver.release(R0); // twice is harmless
  await driver.beginTransaction(R0); // connects again
  assert.equal(fake.open.size, 1);
  await driver.release(R0);
  assert.equal(fake.open.size, 0);
  await driver.stop();
});

test('after release, a transmit connects offering T=0 and T=1: another application may have had pcscd set the protocol', async () => {
  const { fake, driver } = await started();
  await driver.release(R0);
  // Meanwhile opensc-tool or gpg connected with T0|T1 and pcscd chose T=1 for the card.
  fake.cardProtocol = 2;
  assert.deepEqual([...(await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 0))], [0x84, 0x90, 0x00], 'no SCARD_E_PROTO_MISMATCH');
  assert.equal(fake.connectProtocols.at(-1), 3, 'SCardConnect asked for T=0 | T=1');
  await driver.stop();
});

test('after release, a reset still resets (connect, then SCardReconnect with the initialization) and Power Off still unpowers', async () => {
  const { fake, driver } = await started();
  await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1);
  await driver.release(R0);
  fake.dispositions.length = 0;
  await driver.powerOn(R0, 'warm');
  assert.deepEqual(fake.dispositions, ['reconnect 1'], 'SCARD_RESET_CARD after the fresh connect');
  await driver.release(R0);
  await driver.powerOn(R0, 'cold');
  await driver.release(R0);
  await driver.powerOff(R0);
  assert.deepEqual(fake.dispositions, ['reconnect 1', 'disconnect 0', 'reconnect 2', 'disconnect 0', 'disconnect 2'], 'LEAVE on release, UNPOWER on Power Off');
  assert.equal(fake.open.size, 0);
  await driver.stop();
});

// Issue 15: share modes pass through to the system's readers.
test('hold: exclusive connects (or reconnects) with SCARD_SHARE_EXCLUSIVE; resets and new connections of ours keep it; release goes back to shared', async () => {
  const { fake, driver } = await started();
  await driver.hold!(R0, 'exclusive');
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 1 }], 'SCardConnect exclusive');
  await driver.powerOn(R0, 'warm');
  await driver.setProtocol(R0, 0, ATR);
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 1 }], 'a reset or a protocol change of ours does not make it shared again');
  await driver.powerOff(R0);
  await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1);
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 1 }], 'connected again after Power Off: still exclusive');
  await driver.release(R0);
  assert.equal(fake.open.size, 0);
  await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1);
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 2 }], 'after release: shared');
  fake.dispositions.length = 0;
  await driver.hold!(R0, 'exclusive');
  assert.deepEqual(fake.dispositions, ['reconnect 0'], 'the connection we have is made exclusive, leaving the card as it is');
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 1 }]);
  await driver.hold!(R0, 'shared');
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 2 }], 'and shared again');
  await driver.stop();
});

test('another program reset the card (SCARD_W_RESET_CARD): the manager hears CARD_RESET once; our handle takes the card as it is (LEAVE_CARD, same share mode)', async () => {
  const { fake, driver } = await started();
  await driver.hold!(R0, 'exclusive');
  const [handle] = fake.open.keys();
  fake.resetSeen.add(handle);
  fake.dispositions.length = 0;
  await assert.rejects(driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1), (e: ScError) => e.code === 'CARD_RESET');
  assert.deepEqual(fake.dispositions, ['reconnect 0']);
  assert.deepEqual([...fake.open.values()], [{ reader: R0, share: 1 }]);
  assert.deepEqual([...(await driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1))], [0x84, 0x90, 0x00], 'the next call works');
  await driver.stop();
});

test('manager over PC/SC: the first connection holds the reader shared, an exclusive one exclusively; its disconnect resolves once the driver let go (the card is free for other programs then)', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.disconnectDelayMs = 5;
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] })], {});
  await m.start();
  const name = m.list().readers[0].name;
  const shared = await m.connect(name);
  assert.deepEqual([...fake.open.values()].map((h) => h.share), [2], 'held shared from the connect on (an outside exclusive holder is refused there)');
  await assert.rejects(m.connect(name, { share: 'exclusive' }), (e: ScError) => e.code === 'SHARING_VIOLATION');
  await shared.disconnect();
  assert.equal(fake.open.size, 0, 'let go before the disconnect resolved');
  const exclusive = await m.connect(name, { share: 'exclusive' });
  assert.deepEqual([...fake.open.values()].map((h) => h.share), [1], 'SCARD_SHARE_EXCLUSIVE in the system service');
  await exclusive.disconnect();
  assert.equal(fake.open.size, 0, 'let go before the disconnect resolved');
  // Another program takes the card exclusively, also after our Power Off (the next connect powers up).
  fake.heldElsewhere = true;
  await assert.rejects(m.connect(name), (e: ScError) => e.code === 'SHARING_VIOLATION');
  fake.heldElsewhere = false;
  await m.powerOffCard(name);
  fake.heldElsewhere = true;
  await assert.rejects(m.connect(name, { share: 'exclusive' }), (e: ScError) => e.code === 'SHARING_VIOLATION');
  assert.notEqual(m.reader(name).card?.mute, true, 'the card is not "mute" for being held by another program');
  fake.heldElsewhere = false;
  const after = await m.connect(name, { share: 'exclusive' });
  assert.deepEqual([...fake.open.values()].map((h) => h.share), [1], 'its turn once the other program let go');
  await after.disconnect();
  await m.stop();
});

// Issue 18 item 1: a driver waiting for pcscd says so on its group, once per state change, and retries quietly.
test('pcscd not running: the driver is "waiting" with the reason and the way out, logged once while it retries, "running" when it is back', async () => {
  const fake = new FakeWinscard();
  fake.up = false;
  fake.readers.set(R0, { present: false, counter: 0 });
  const logs: Array<[string, string]> = [];
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [2] })], { log: (l, msg) => logs.push([l, msg]) });
  let changes = 0;
  m.onReadersChanged(() => { changes++; });
  await m.start();
  const [st] = m.driverStates();
  assert.equal(st.state, 'waiting', 'not "running" while the service is not there');
  assert.match(st.message ?? '', /SCARD_E_NO_SERVICE/);
  assert.equal(st.hint, pcscdHint());
  assert.ok(changes >= 1, 'the state change reaches the readers listeners (and so the tree)');
  // Let it retry a good number of times: the log does not grow.
  const before = fake.establishAttempts;
  while (fake.establishAttempts < before + 10) await new Promise((r) => setTimeout(r, 2));
  const pcscLines = logs.filter(([, msg]) => /pcsc/.test(msg) && /NO_SERVICE|waiting/i.test(msg));
  assert.equal(pcscLines.length, 1, `one line for the state change, none per retry: ${JSON.stringify(pcscLines)}`);
  assert.equal(pcscLines[0][0], 'warn');
  const added = new Promise<void>((resolve) => m.onReadersChanged(() => { if (m.list().readers.length) resolve(); }));
  fake.up = true;
  await added;
  assert.equal(m.driverStates()[0].state, 'running');
  assert.ok(logs.some(([l, msg]) => l === 'info' && /driver pcsc is running again \(was waiting\)/.test(msg)));
  await m.stop();
});

test('the way to start the PC/SC service is told per platform', () => {
  assert.match(pcscdHint('linux'), /systemctl start pcscd/);
  assert.match(pcscdHint('win32'), /SCardSvr/);
  assert.match(pcscdHint('darwin'), /plug/);
});

test('loop guard: PCSCLITE_CSOCK_NAME naming the workbench\'s own service is removed before the driver reaches PC/SC; another socket is kept', async () => {
  const home = { XDG_RUNTIME_DIR: '/run/user/1000' };
  const ours = path.join('/run/user/1000', 'smartcard-workbench', 'pcscd.comm');
  assert.equal(namesOwnService(ours, [], home), true);
  assert.equal(namesOwnService('/tmp/smartcard-workbench-1000/pcscd.comm', [], home), true, 'the fallback folder of any user');
  assert.equal(namesOwnService('/srv/lab/wb.sock', ['/srv/lab/wb.sock'], home), true, 'scard serve --socket');
  assert.equal(namesOwnService('/run/pcscd/pcscd.comm', [], home), false);
  assert.equal(namesOwnService('/tmp/other/pcscd.comm', [], home), false);
  assert.equal(namesOwnService(undefined, [], home), false);

  for (const [value, kept] of [[ours, false], ['/run/pcscd/pcscd.comm', true]] as const) {
    const env: NodeJS.ProcessEnv = { ...home, PCSCLITE_CSOCK_NAME: value };
    const fake = new FakeWinscard();
    // What the driver's libpcsclite would read when it first establishes a context.
    const seenAtEstablish: (string | undefined)[] = [];
    const establish = fake.establishContext.bind(fake);
    fake.establishContext = () => { seenAtEstablish.push(env.PCSCLITE_CSOCK_NAME); return establish(); };
    const sink = new Sink();
    const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], env });
    await driver.start(sink);
    await driver.stop();
    assert.ok(seenAtEstablish.length > 0);
    assert.equal(seenAtEstablish[0], kept ? value : undefined, kept ? 'a foreign pcscd socket is used as given' : 'libpcsclite would have reached our own socket');
    assert.equal(sink.logs.some((l) => /own PC\/SC service/.test(l.message)), !kept);
  }
});

// Issue 18 item 14: the reader's facts with SCardGetAttrib, on a direct connection closed after.
test('reader facts: SCardGetAttrib on a direct connection; what libccid answers is decoded, the rest listed as not answered', async () => {
  const { fake, driver } = await started();
  const facts = await driver.readerFacts(R0);
  assert.deepEqual(fake.attribShares, Array(7).fill(3), 'asked on a SCARD_SHARE_DIRECT connection (no card connection of ours yet)');
  assert.equal(fake.open.size, 0, 'the direct connection is closed again');
  assert.equal(facts.source, 'SCardGetAttrib');
  assert.equal(facts.vendorName, 'ACS');
  assert.equal(facts.ifdVersion, 0x02160000);
  assert.equal(facts.maxInput, 261);
  assert.equal(facts.ifdType, undefined);
  assert.deepEqual(facts.unanswered, [
    'VENDOR_IFD_TYPE: SCARD_E_UNSUPPORTED_FEATURE', 'VENDOR_IFD_SERIAL_NO: SCARD_E_UNSUPPORTED_FEATURE',
    'CHANNEL_ID: SCARD_E_UNSUPPORTED_FEATURE', 'MAX_IFSD: SCARD_E_UNSUPPORTED_FEATURE',
  ]);
  await driver.stop();
});

test('review 6: the reader facts keep each answered attribute\'s bytes as SCardGetAttrib gave them (raw, for the PC/SC service); the text is for the view', async () => {
  const { fake, driver } = await started();
  const vendor = Uint8Array.of(0x20, 0x41, 0x43, 0x53, 0x01, 0xe4, 0x20, 0x00); // " ACS\x01ä " in latin1, NUL-terminated
  fake.attribs.set(0x00010100, vendor);
  fake.attribs.set(0x00010102, Uint8Array.of(0x00, 0x00, 0x16, 0x02, 0x00, 0x00, 0x00, 0x00)); // an 8-byte unsigned long
  const facts = await driver.readerFacts(R0);
  assert.equal(facts.ifdVersion, 0x02160000);
  assert.deepEqual(facts.raw, { '00010100': '20414353' + '01e42000', '00010102': '0000160200000000', '0007a007': '05010000' });
  await driver.stop();
});

test('reader facts through the manager: on the reader once it appears, before start() resolves', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: false, counter: 0 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [2] })]);
  await m.start();
  const info = m.list().readers[0];
  assert.equal(info.facts?.vendorName, 'ACS');
  assert.equal(info.facts?.ifdVersion, 0x02160000);
  assert.equal(fake.attribShares.length, 7, 'each attribute asked once');
  await m.stop();
});

// Review finding 2: a hold abandoned at its deadline must not leave pcscd holding the card for nobody.
test('a hold that outlasts its deadline (another program\'s transaction): the late system connection is let go; the client hears SHARING_VIOLATION, not a mute card', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] })], { exchangeTimeoutMs: 100 });
  await m.start();
  const name = m.list().readers[0].name;
  assert.equal(fake.open.size, 0, 'the card pcscd powered is not held by us');
  let unlock!: () => void;
  fake.lockedElsewhere = new Promise<void>((r) => { unlock = r; });
  await assert.rejects(m.connect(name, { share: 'exclusive' }), (e: ScError) => e.code === 'SHARING_VIOLATION' && /100 ms/.test(e.message));
  assert.equal(m.reader(name).card?.mute, undefined, 'the card is not marked mute');
  fake.lockedElsewhere = undefined;
  const connects = fake.connects;
  unlock(); // the other program's transaction ends: the abandoned SCardConnect(EXCLUSIVE) completes
  const until = Date.now() + 2000;
  while (fake.connects === connects && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(fake.connects, connects + 1, 'the late SCardConnect completed');
  while (fake.open.size && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual([...fake.open.values()], [], 'no system-side handle left once the late connect came back');
  const after = await m.connect(name, { share: 'exclusive' });
  assert.deepEqual([...fake.open.values()].map((h) => h.share), [1], 'a later exclusive connect works');
  await after.disconnect();
  assert.equal(fake.open.size, 0);
  await m.stop();
});

// Review finding 8: SCardGetAttrib on our card handle reports the card's events as pcscd does.
test('reader facts on our card handle: SCARD_W_RESET_CARD is a card event (CARD_RESET, handle reconnected), not "unanswered"', async () => {
  const { fake, driver } = await started();
  await driver.hold!(R0, 'shared');
  const [handle] = fake.open.keys();
  fake.resetSeen.add(handle);
  fake.dispositions.length = 0;
  await assert.rejects(driver.readerFacts(R0), (e: ScError) => e.code === 'CARD_RESET');
  assert.deepEqual(fake.dispositions, ['reconnect 0'], 'our handle takes the card as it is (acknowledgeReset)');
  const facts = await driver.readerFacts(R0);
  assert.equal(facts.vendorName, 'ACS', 'read again after the reset');
  assert.equal(facts.note, undefined);
  await driver.stop();
});

test('reader facts on our card handle: SCARD_W_REMOVED_CARD drops the handle (CARD_REMOVED), not "unanswered"', async () => {
  const { fake, driver } = await started();
  await driver.hold!(R0, 'shared');
  const [handle] = fake.open.keys();
  fake.removedSeen.add(handle);
  await assert.rejects(driver.readerFacts(R0), (e: ScError) => e.code === 'CARD_REMOVED');
  const facts = await driver.readerFacts(R0);
  assert.deepEqual(fake.attribShares.slice(-7), Array(7).fill(3), 'the handle was dropped: asked on a direct connection');
  assert.equal(facts.vendorName, 'ACS');
  await driver.stop();
});

test('reader facts through the manager: a card event while they are read at a power-up is not "answers none"; they are read at the next power-up', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.directRefused = true;
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [2] })]);
  await m.start();
  const name = m.list().readers[0].name;
  assert.match(m.list().readers[0].facts?.note ?? '', /could not be read/, 'the first read failed: read again at the next power-up');
  const c = await m.connect(name);
  fake.attribResetOnce = true; // another program resets the card while the facts are read on our handle
  await c.reset('warm');
  assert.equal(m.list().readers[0].facts?.vendorName, undefined);
  assert.doesNotMatch(m.list().readers[0].facts?.note ?? '', /answers none/);
  await c.reset('warm');
  assert.equal(m.list().readers[0].facts?.vendorName, 'ACS', 'read at the power-up after the card event');
  await c.disconnect();
  await m.stop();
});

// Review finding 9(b): the connection that hit another program's reset hears it once.
test('another program reset the card: a beginTransaction that hits it reports CARD_RESET once, the next call works', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] })], {});
  await m.start();
  const name = m.list().readers[0].name;
  const c = await m.connect(name);
  const [handle] = fake.open.keys();
  fake.resetSeen.add(handle);
  await assert.rejects(c.beginTransaction(), (e: ScError) => e.code === 'CARD_RESET');
  await c.beginTransaction();
  await c.endTransaction();
  await c.disconnect();
  await m.stop();
});

// Review finding 1 (R34): a PC/SC client's SCardReconnect from SHARED to EXCLUSIVE is one SCardReconnect of our
// system-side handle (Driver.hold on the handle we have), never SCardDisconnect + SCardConnect, which let any
// other program take the card in between; refused there, the client's handle stays shared and working.
test('R34: a PC/SC client\'s reconnect SHARED → EXCLUSIVE is an SCardReconnect of our handle; refused by the system service, the handle stays shared', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] })], {});
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const name = m.list().readers[0].name;
    const { handle: x, activeProtocol } = await b.connect(name, ShareMode.SCARD_SHARE_SHARED, 3);
    const [system] = fake.open.keys();
    fake.dispositions.length = 0;
    fake.otherProgramConnected = true;
    await assert.rejects(b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, 3, Disposition.SCARD_LEAVE_CARD), (e) => rvOf(e) === 0x8010000b);
    assert.deepEqual([...fake.open.entries()], [[system, { reader: R0, share: 2 }]], 'the same system handle, still shared');
    const pci = { protocol: activeProtocol, pciLength: 8 };
    assert.deepEqual([...(await b.transmit(x, pci, Uint8Array.of(0, 0x84, 0, 0, 8), 258))], [0x84, 0x90, 0x00], 'the handle still transmits');
    fake.otherProgramConnected = false;
    await b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, 3, Disposition.SCARD_LEAVE_CARD);
    assert.deepEqual(fake.dispositions, ['reconnect 0', 'reconnect 0'], 'SCardReconnect only, no SCardDisconnect');
    assert.deepEqual([...fake.open.entries()], [[system, { reader: R0, share: 1 }]], 'the same system handle, now exclusive');
    assert.equal(m.reader(name).exclusive, true);
  } finally {
    b.dispose();
    await m.stop();
  }
});

/**
 * libpcsclite as it is on the client side: SCardReconnect, SCardStatus and SCardTransmit poll pcscd's
 * SCARD_E_SHARING_VIOLATION every 100 ms with no end (winscard_clnt.c 1032, 1508, 2852) unless
 * PCSCLITE_NO_BLOCKING was in the environment when the library first initialised (init_lib, read once at
 * the first SCardEstablishContext, winscard_clnt.c 529). SCardBeginTransaction polls whatever the
 * environment says (winscard_clnt.c 1186–1223). Another program of the machine has its own handle on the
 * card (`foreignHandle`: an exclusive SCardReconnect is refused, winscard.c ~779) or holds a transaction
 * (`foreignTransaction`: every other handle's transmit, status and begin are refused, RFCheckSharing).
 */
class LibpcscliteFake extends FakeWinscard {
  blocking?: boolean;
  foreignHandle = false;
  foreignTransaction = false;
  /** Calls parked in libpcsclite's client-side poll loop right now. */
  polling = 0;
  constructor(private readonly env: NodeJS.ProcessEnv) {
    super();
  }
  override establishContext(): Handle {
    // SCardCheckDaemonAvailability comes before init_lib (winscard_clnt.c 473–478): no service, nothing read.
    if (this.up) this.blocking ??= this.env.PCSCLITE_NO_BLOCKING === undefined;
    return super.establishContext();
  }
  private async refused(fn: string, violated: () => boolean, always = false): Promise<void> {
    if (!violated()) return;
    if (!this.blocking && !always) throw new PcscError(0x8010000b, fn);
    this.polling++;
    try {
      while (violated()) await new Promise((r) => setTimeout(r, 100)); // PCSCLITE_LOCK_POLL_RATE
    } finally {
      this.polling--;
    }
  }
  override async reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
    await this.refused('SCardReconnect', () => (share === 1 && this.foreignHandle) || this.foreignTransaction);
    return super.reconnect(card, share, protocols, init);
  }
  override async transmit(card: Handle, protocol: number, command: Uint8Array): Promise<Uint8Array> {
    await this.refused('SCardTransmit', () => this.foreignTransaction);
    return super.transmit(card, protocol, command);
  }
  override async beginTransaction(card: Handle): Promise<void> {
    await this.refused('SCardBeginTransaction', () => this.foreignTransaction, true);
    return super.beginTransaction(card);
  }
  override status(card: Handle): CardStatus {
    if (this.foreignTransaction) {
      // On the calling thread: the real loop would freeze the helper's event loop for good.
      if (this.blocking) throw new Error('SCardStatus would block the event loop (libpcsclite sharing poll)');
      throw new PcscError(0x8010000b, 'SCardStatus');
    }
    return super.status(card);
  }
}

// Second review finding 1 (R43): libpcsclite's client-side retry loops must not hold the reader's chain.
test('R43: SHARED → EXCLUSIVE while another program has the card: SCARD_E_SHARING_VIOLATION at once (PCSCLITE_NO_BLOCKING), the handle still transmits, the system handle stays shared', async () => {
  const env: NodeJS.ProcessEnv = {};
  const fake = new LibpcscliteFake(env);
  fake.readers.set(R0, { present: true, counter: 1 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, env, reconnectDelaysMs: [5] })], { exchangeTimeoutMs: 1000 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    assert.equal(fake.blocking, false, 'PCSCLITE_NO_BLOCKING was set before the first SCardEstablishContext');
    assert.equal(env.PCSCLITE_NO_BLOCKING, undefined, 'and taken away again once libpcsclite has read it (programs started later do not inherit it)');
    const name = m.list().readers[0].name;
    const { handle: x, activeProtocol } = await b.connect(name, ShareMode.SCARD_SHARE_SHARED, 3);
    const pci = { protocol: activeProtocol, pciLength: 8 };
    fake.foreignHandle = true;
    const t0 = performance.now();
    await assert.rejects(b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, 3, Disposition.SCARD_LEAVE_CARD), (e) => rvOf(e) === 0x8010000b);
    assert.ok(performance.now() - t0 < 500, `refused at once as pcscd refuses it, not at the 1000 ms deadline (${Math.round(performance.now() - t0)} ms)`);
    assert.equal(fake.polling, 0, 'no call left in the client-side poll loop');
    const t1 = performance.now();
    assert.deepEqual([...(await b.transmit(x, pci, Uint8Array.of(0, 0x84, 0, 0, 8), 258))], [0x84, 0x90, 0x00], 'the handle still transmits');
    assert.ok(performance.now() - t1 < 500, 'without waiting behind the refused upgrade');
    fake.foreignHandle = false; // the other program lets go: nothing of ours takes the card exclusively late
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual([...fake.open.values()].map((h) => h.share), [2], 'our system handle is still shared');
    assert.notEqual(m.reader(name).exclusive, true);
  } finally {
    b.dispose();
    await m.stop();
  }
});

test('R43: another program\'s transaction: transmit and begin-transaction answer SCARD_E_SHARING_VIOLATION at once (not a reset, not a mute card, the chain free); they work once it ends', async () => {
  const env: NodeJS.ProcessEnv = {};
  const fake = new LibpcscliteFake(env);
  fake.readers.set(R0, { present: true, counter: 1 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, env, reconnectDelaysMs: [5] })], { exchangeTimeoutMs: 1000 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const name = m.list().readers[0].name;
    const { handle: x, activeProtocol } = await b.connect(name, ShareMode.SCARD_SHARE_SHARED, 3);
    const pci = { protocol: activeProtocol, pciLength: 8 };
    fake.foreignTransaction = true;
    const t0 = performance.now();
    await assert.rejects(b.transmit(x, pci, Uint8Array.of(0, 0x84, 0, 0, 8), 258), (e) => rvOf(e) === 0x8010000b);
    await assert.rejects(b.beginTransaction(x), (e) => rvOf(e) === 0x8010000b);
    assert.ok(performance.now() - t0 < 500, `both refused at once (${Math.round(performance.now() - t0)} ms); the client's own library polls, as with pcscd`);
    assert.equal(fake.polling, 0, 'nothing left in a client-side poll loop');
    assert.notEqual(m.reader(name).card?.mute, true, 'the card is not "mute"');
    fake.foreignTransaction = false;
    // A reset counted for a refusal would reach this handle as SCARD_W_RESET_CARD here.
    assert.deepEqual([...(await b.transmit(x, pci, Uint8Array.of(0, 0x84, 0, 0, 8), 258))], [0x84, 0x90, 0x00], 'no reset heard');
    await b.beginTransaction(x);
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
  } finally {
    b.dispose();
    await m.stop();
  }
});

test('R43: pcscd not running at start: PCSCLITE_NO_BLOCKING stays set until an SCardEstablishContext gets through (libpcsclite reads it only then)', async () => {
  const env: NodeJS.ProcessEnv = {};
  const fake = new LibpcscliteFake(env);
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.up = false;
  const sink = new Sink();
  const driver = createPcscDriver({ winscard: fake, env, reconnectDelaysMs: [5] });
  await driver.start(sink);
  try {
    assert.equal(env.PCSCLITE_NO_BLOCKING, '1', 'still set while the service is away');
    const added = sink.next(`added ${R0}`);
    fake.up = true;
    await added;
    assert.equal(fake.blocking, false, 'the library read it when it first reached the service');
    assert.equal(env.PCSCLITE_NO_BLOCKING, undefined, 'taken away then');
  } finally {
    await driver.stop();
  }
});

// Fourth review (F1, F2, F6) against a fake that follows winscard.c on the two points the first R62/R63 broke:
// SCardConnect waits while any handle holds the reader's transaction, DIRECT too (winscard.c 287–295; on the driver's
// one context that wait never ends, so the fake fails it with "connect waited on hLockId"), and a RESET/UNPOWER
// marks every handle of the reader (RFSetReaderEventState, 582/894/1156), only the caller's cleared (813).
async function systemService(exchangeTimeoutMs = 1500) {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false })], { historySize: 0, exchangeTimeoutMs });
  const resets: string[] = [];
  m.onEntry((e) => { if (e.kind === 'cardReset') resets.push(e.reader); });
  await m.start();
  const b = new ManagerBackend(m);
  const [A, B] = m.list().readers.map((r) => r.name);
  return {
    fake, m, b, A, B, resets,
    async stop() {
      b.dispose();
      await m.stop();
      assert.deepEqual(fake.lockWaits, [], 'no SCardConnect waited on a transaction of ours');
    },
  };
}
const rvAfter = (p: Promise<unknown>) => p.then(() => 0, (e) => rvOf(e) >>> 0);
const T0PCI = { protocol: 1, pciLength: 8 }; // the fake's ATR offers T=0 only
const SELECT_MF = Uint8Array.of(0x00, 0xa4, 0x00, 0x00, 0x02, 0x3f, 0x00);

test('fake pcscd: SCardConnect under a transaction of ours fails with "connect waited on hLockId", DIRECT too; a RESET marks every other handle, the caller\'s cleared', async () => {
  const { fake, driver } = await started();
  await driver.hold!(R0, 'shared');
  await driver.beginTransaction!(R0);
  const [card] = fake.lock.values();
  assert.ok(card !== undefined, 'SCardBeginTransaction took the reader\'s lock');
  await assert.rejects(fake.connect(1, R0, 3, 0), /connect waited on hLockId/);
  await assert.rejects(fake.connect(1, R0, 2, 3), /connect waited on hLockId/);
  assert.equal(fake.lockWaits.length, 2);
  fake.lockWaits.length = 0;
  const other = await fake.connect(1, R1, 3, 0); // another reader is not locked
  await driver.endTransaction!(R0, 'leave');
  assert.equal(fake.lock.size, 0, 'SCardEndTransaction freed it');
  const watch = await fake.connect(1, R0, 3, 0);
  await fake.reconnect(card, 2, 3, 1); // our card handle resets the card
  assert.ok(fake.resetSeen.has(watch.handle), 'the other handle of the reader hears the reset');
  assert.ok(!fake.resetSeen.has(card), 'the caller\'s own event is cleared');
  assert.ok(!fake.resetSeen.has(other.handle), 'a handle of another reader does not');
  await fake.disconnect(watch.handle, 0);
  await fake.disconnect(other.handle, 0);
  await driver.stop();
});

test('F1 (a): Begin on a card handle of a system reader, Reconnect to DIRECT, End: the system transaction ends; no connect waits on our own lock; an outside connect gets in after', async () => {
  const { fake, b, A, stop } = await systemService();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.beginTransaction(s)), 0);
    assert.equal(fake.lock.size, 1, 'the system pcscd\'s transaction is taken on our card handle');
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(s)), 0);
    assert.equal(await rvAfter(b.control(s, 0x42000000 + 3400, new Uint8Array(0))), 0, 'CONTROL on the direct handle');
    assert.equal(await rvAfter(b.endTransaction(s, Disposition.SCARD_LEAVE_CARD)), 0, 'End');
    assert.equal(fake.lock.size, 0, 'the system reader is not left locked');
    assert.deepEqual(fake.lockWaits, []);
    // Another program of the machine (its own context) connects and transmits.
    const outside = await fake.connect(99, R0, ShareMode.SCARD_SHARE_SHARED, 3);
    assert.deepEqual([...(await fake.transmit(outside.handle, 1, SELECT_MF))], [0xa4, 0x90, 0x00]);
    await fake.disconnect(outside.handle, 0);
    await b.disconnect(s, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('F1 (b): a direct handle on an empty system reader and on a card: Begin, Control, GetAttrib, Status, End: answered, nothing waits on our lock, the reader free after', async () => {
  const { fake, b, A, B, stop } = await systemService();
  try {
    for (const name of [B, A]) {
      const d = (await b.connect(name, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
      assert.equal(await rvAfter(b.beginTransaction(d)), 0, `${name}: Begin`);
      assert.equal(await rvAfter(b.control(d, 0x42000000 + 3400, new Uint8Array(0))), 0, `${name}: Control`);
      assert.equal(await rvAfter(b.getAttrib(d, 0x00010100)), 0, `${name}: GetAttrib`);
      assert.equal(await rvAfter(b.status(d)), 0, `${name}: Status`);
      assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0, `${name}: End`);
      assert.equal(fake.lock.size, 0, `${name}: no system transaction left`);
      assert.deepEqual(fake.lockWaits, []);
      await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
    }
  } finally { await stop(); }
});

test('F1 (c): a direct handle\'s transaction, then a card arrives and the handle resets it (Reconnect DIRECT/RESET): no connect under our lock; End frees the reader', async () => {
  const { fake, m, b, B, stop } = await systemService();
  try {
    const d = (await b.connect(B, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    fake.insert(R1);
    const until = Date.now() + 2000;
    while (!m.reader(B).card && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.ok(m.reader(B).card, 'the manager saw the insertion');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD)), 0, 'its reset');
    assert.deepEqual(fake.lockWaits, [], 'the power-up did not connect under our own lock');
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.size, 0);
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('F2 (a): a direct handle\'s own Reconnect(RESET) is not heard back by it as another program\'s reset; one cardReset entry', async () => {
  const { b, A, resets, stop } = await systemService();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    assert.equal(await rvAfter(b.status(d)), 0);
    const before = resets.length;
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD)), 0, 'its own reset');
    assert.equal(await rvAfter(b.status(d)), 0, 'pcscd: its own reconnect cleared its event (winscard.c 813)');
    assert.equal(await rvAfter(b.getAttrib(d, 0x00010100)), 0);
    assert.equal(resets.length - before, 1, 'one reset, one cardReset entry');
  } finally { await stop(); }
});

test('F2 (b): a card handle\'s own Reconnect(RESET) beside a direct handle: the direct handle hears it once, the card handle never', async () => {
  const { b, A, resets, stop } = await systemService();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.status(d)), 0);
    const before = resets.length;
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_RESET_CARD)), 0);
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0, 'S after its own reset');
    assert.equal(await rvAfter(b.status(d)), 0x80100068, 'D: SCARD_W_RESET_CARD (pcscd marks it)');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), 0);
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0, 'S does not hear its own reset back once D looked');
    assert.equal(await rvAfter(b.disconnect(s, Disposition.SCARD_RESET_CARD)), 0, 'S leaves resetting the card');
    assert.equal(await rvAfter(b.status(d)), 0x80100068, 'D hears that one too');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), 0, 'and only once');
    assert.equal(resets.length - before, 2, 'two resets, two cardReset entries');
  } finally { await stop(); }
});

test('F6: a system reader that goes away, and the driver\'s stop, leave no handle of ours in pcscd', async () => {
  const { fake, b, A, B, stop } = await systemService();
  await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0); // a direct handle left open on the reader that goes
  const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
  await b.transmit(s, T0PCI, SELECT_MF, 258);
  await b.status((await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle);
  assert.ok([...fake.open.values()].some((h) => h.reader === R0), 'a card handle of ours on R0');
  fake.readers.delete(R0);
  fake.readers.get(R1)!.counter++; // wakes the watcher, which reads the list again
  fake.change();
  const until = Date.now() + 2000;
  while ([...fake.open.values()].some((h) => h.reader === R0) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual([...fake.open.values()].filter((h) => h.reader === R0), [], 'every handle of the removed reader disconnected');
  const e = (await b.connect(B, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
  await b.beginTransaction(e);
  await b.control(e, 0x42000000 + 3400, new Uint8Array(0));
  await stop();
  assert.deepEqual([...fake.open.values()], [], 'none left after the stop');
});

// R73: a PC/SC client's direct handle's transaction on a system reader is pcscd's transaction (RFLockSharing locks the
// reader for a DIRECT handle too). The driver begins it on its card handle when it has one, else on a DIRECT handle of
// its own made through the connect guard before any lock is ours; every reader call in the transaction uses that
// handle, a power-up turns it into the card handle with SCardReconnect, and End ends and disconnects it.
const ours = (fake: FakeWinscard, reader: string) => [...fake.open.entries()].filter(([, o]) => o.reader === reader);
/**
 * R74: while a client has a direct handle on the reader the driver keeps one DIRECT handle of its own there (the watch,
 * opened at the client's direct connect). `watchOn` takes it right after that connect (asserting it is the only one);
 * `besides` is every other handle of ours on the reader.
 */
function watchOn(fake: FakeWinscard, reader: string): Handle {
  const open = ours(fake, reader);
  assert.equal(open.length, 1, `one handle of ours on ${reader} after the client's direct connect: the watch`);
  assert.equal(open[0][1].share, 3, 'the watch is a SCARD_SHARE_DIRECT handle');
  return open[0][0];
}
const besides = (fake: FakeWinscard, reader: string, watch: Handle | undefined) => ours(fake, reader).filter(([h]) => h !== watch);
async function untilHolds(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what} (within ${ms} ms)`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('R73: Begin on a direct handle of a system reader (with a card, and empty) takes pcscd\'s transaction on a DIRECT handle of the driver\'s; Control, GetAttrib and Status in it use that handle; End ends it and disconnects it', async () => {
  const { fake, b, A, B, stop } = await systemService();
  try {
    for (const [name, reader] of [[A, R0], [B, R1]] as const) {
      const d = (await b.connect(name, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
      const watch = watchOn(fake, reader); // R74: no other handle of ours before the Begin
      assert.equal(await rvAfter(b.beginTransaction(d)), 0, `${name}: Begin`);
      const holder = fake.lock.get(reader);
      assert.notEqual(holder, watch, `${name}: the transaction is not begun on the watch`);
      assert.ok(holder !== undefined, `${name}: SCardBeginTransaction in the system pcscd`);
      assert.equal(fake.open.get(holder)!.share, 3, `${name}: on a DIRECT handle (nothing powered, no card needed)`);
      assert.equal(await rvAfter(b.beginTransaction(d)), 0, `${name}: nested Begin`);
      const connects = fake.connects;
      const attribs = fake.attribShares.length;
      assert.equal(await rvAfter(b.control(d, 0x42000000 + 3400, new Uint8Array(0))), 0, `${name}: Control`);
      assert.equal(await rvAfter(b.getAttrib(d, 0x00010100)), 0, `${name}: GetAttrib`);
      assert.equal(await rvAfter(b.status(d)), 0, `${name}: Status`);
      assert.equal(fake.connects, connects, `${name}: no SCardConnect inside our transaction (the holder answered)`);
      assert.ok(fake.attribShares.length === attribs || fake.attribShares.slice(attribs).every((x) => x === 3), `${name}: facts on the DIRECT holder`);
      assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0, `${name}: End, one level`);
      assert.equal(fake.lock.get(reader), holder, `${name}: still held after one End of two`);
      assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0, `${name}: End`);
      assert.equal(fake.lock.size, 0, `${name}: the reader free for the machine`);
      assert.deepEqual(besides(fake, reader, watch), [], `${name}: the DIRECT holder disconnected at End`);
      // The holder's disconnect without End ends it too (pcscd's RFUnlockAllSharing).
      assert.equal(await rvAfter(b.beginTransaction(d)), 0);
      assert.equal(fake.lock.size, 1);
      await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
      await untilHolds(() => fake.lock.size === 0 && ours(fake, reader).length === 0, `${name}: the disconnect ended it and the DIRECT holder went, the watch with the last direct handle`);
    }
  } finally { await stop(); }
});

test('R73: a card handle of ours already open: the direct handle\'s Begin is taken on it (no connect); End ends it there', async () => {
  const { fake, b, A, stop } = await systemService();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0);
    const [[card]] = ours(fake, R0);
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const connects = fake.connects;
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    assert.equal(fake.lock.get(R0), card, 'begun on our card handle');
    assert.equal(fake.connects, connects, 'no connect');
    assert.equal(await rvAfter(b.control(d, 0x42000000 + 3400, new Uint8Array(0))), 0);
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.size, 0);
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
    await b.disconnect(s, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R73: in a direct handle\'s transaction its Reconnect(DIRECT, RESET) and a transmit power the card up on the DIRECT holder (SCardReconnect, never a new SCardConnect); End ends there and the card is let go', async () => {
  const { fake, b, A, resets, stop } = await systemService();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const watch = watchOn(fake, R0);
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    const holder = fake.lock.get(R0)!;
    const connects = fake.connects;
    const before = resets.length;
    fake.dispositions.length = 0;
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD)), 0, 'its reset');
    // (A LEAVE reconnect may follow: the manager sets the protocol the ATR offers, on the same handle.)
    assert.deepEqual(fake.dispositions.filter((x) => x !== 'reconnect 0'), ['reconnect 1'], 'one SCardReconnect(RESET) on the holder, nothing disconnected');
    assert.equal(fake.connects, connects, 'no SCardConnect under our own lock');
    assert.equal(fake.lock.get(R0), holder, 'the transaction stays on the same handle');
    assert.equal(fake.open.get(holder)!.share, 2, 'now our card handle (SHARED)');
    assert.equal(resets.length - before, 1, 'one cardReset entry');
    // After a reset pcscd's cardProtocol is UNDEFINED for a direct handle: a RAW PCI goes through (R59).
    assert.equal(await rvAfter(b.transmit(d, { protocol: 4, pciLength: 8 }, SELECT_MF, 258)), 0, 'a direct transmit in the transaction');
    assert.equal(fake.connects, connects, 'still no SCardConnect');
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.size, 0);
    await untilHolds(() => besides(fake, R0, watch).length === 0, 'no connection of the manager uses the card: the driver let go of it');
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R73: a cold reset in a direct handle\'s transaction (Reconnect DIRECT/UNPOWER, End(UNPOWER)) keeps the system transaction on the holder: no connect, no disconnect, the reader locked until the End', async () => {
  const { fake, b, A, stop } = await systemService();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    const holder = fake.lock.get(R0)!;
    const connects = fake.connects;
    fake.dispositions.length = 0;
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_UNPOWER_CARD)), 0, 'its cold reset');
    assert.equal(fake.lock.get(R0), holder, 'still held on the same handle');
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_UNPOWER_CARD)), 0, 'End(UNPOWER) of the inner level');
    assert.equal(fake.lock.get(R0), holder, 'the outer level still holds it');
    assert.equal(fake.connects, connects, 'no SCardConnect');
    assert.deepEqual(fake.dispositions.filter((x) => x.startsWith('disconnect')), [], 'no SCardDisconnect (it would end the transaction for every program)');
    // pcscd's End(UNPOWER) marks the caller too (winscard.c 1156): its next call hears the reset until it reconnects.
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0x80100068, 'W_RESET_CARD, as pcscd');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.get(R0), holder, 'the reconnect keeps it');
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.size, 0);
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R73: a client that dies holding a direct handle\'s transaction (empty reader and with a card): the card is reset on the holder, the system lock freed, no handle of ours left', async () => {
  const { fake, m, b, A, B, stop } = await systemService();
  try {
    for (const [name, reader] of [[B, R1], [A, R0]] as const) {
      const d = (await b.connect(name, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
      assert.equal(await rvAfter(b.beginTransaction(d)), 0);
      assert.equal(fake.lock.size, 1, `${name}: held`);
      fake.dispositions.length = 0;
      await b.abandon(d);
      assert.equal(m.transactionOwner(name), null, `${name}: the reader's queue released`);
      await untilHolds(() => fake.lock.size === 0, 'lock'); await untilHolds(() => ours(fake, reader).length === 0, `${name}: nothing of ours left`);
      if (reader === R0) assert.ok(fake.dispositions.includes('reconnect 1'), 'pcscd resets the lock holder\'s card: on the holder, by SCardReconnect');
    }
  } finally { await stop(); }
});

test('R73: another program holds the transaction: the driver\'s DIRECT connect waits in pcscd (the client\'s Begin waits, as with pcscd); past the deadline SCARD_E_SHARING_VIOLATION, which libpcsclite asks again; the late grant is ended and disconnected at once; the next Begin gets it', async () => {
  const { fake, m, b, A, stop } = await systemService(300);
  let free!: () => void;
  fake.lockedElsewhere = new Promise<void>((r) => { free = r; });
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const connects = fake.connects;
    const t0 = Date.now();
    assert.equal(await rvAfter(b.beginTransaction(d)), 0x8010000b, 'SCARD_E_SHARING_VIOLATION after the deadline');
    assert.ok(Date.now() - t0 >= 250, 'it waited for the deadline');
    assert.equal(m.transactionOwner(A), null, 'the reader\'s queue is not held by it');
    fake.lockedElsewhere = undefined;
    free();
    // The watch's connect (R74, from the client's direct connect) waited in pcscd too, ahead of the Begin's.
    await untilHolds(() => fake.connects === connects + 2 && fake.lock.size === 0 && ours(fake, R0).length === 1, 'the late grant was ended and its handle disconnected');
    const watch = watchOn(fake, R0);
    assert.equal(await rvAfter(b.beginTransaction(d)), 0, 'asked again: granted');
    assert.equal(fake.lock.size, 1);
    assert.notEqual(fake.lock.get(R0), watch);
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.size, 0);
    assert.deepEqual(besides(fake, R0, watch), []);
  } finally { free(); await stop(); }
});

test('R73 (F6): the card removed, the reader removed, and the driver stopped while a direct handle\'s transaction is held on the DIRECT holder: no handle of ours left in pcscd', async () => {
  const { fake, m, b, A, B, stop } = await systemService();
  const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
  const watchA = watchOn(fake, R0);
  assert.equal(await rvAfter(b.beginTransaction(d)), 0);
  fake.remove(R0); // pcscd clears hLockId at a removal
  await untilHolds(() => m.transactionOwner(A) === null && besides(fake, R0, watchA).length === 0, 'the removal ended the transaction and the DIRECT holder went');
  const e = (await b.connect(B, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
  const watchB = watchOn(fake, R1);
  assert.equal(await rvAfter(b.beginTransaction(e)), 0);
  assert.equal(besides(fake, R1, watchB).length, 1);
  fake.readers.delete(R1);
  fake.readers.get(R0)!.counter++; // wakes the watcher, which reads the list again
  fake.change();
  await untilHolds(() => ours(fake, R1).length === 0, 'the removed reader\'s DIRECT holder disconnected');
  const f = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle; // A is empty now
  assert.equal(await rvAfter(b.beginTransaction(f)), 0);
  assert.equal(fake.lock.size, 1, 'held when the driver stops');
  await stop();
  assert.deepEqual([...fake.open.values()], [], 'none left after the stop');
});

test('R73: a DIRECT holder whose transaction a removal ended, not yet let go, is disconnected by the next direct Begin, never overwritten (white box)', async () => {
  const { fake, driver } = await started();
  try {
    await driver.beginTransaction!(R1, { direct: true });
    const r = (driver as unknown as { readers: Map<string, { txHandle: Handle | null; inTransaction: boolean }> }).readers.get(R1)!;
    const first = r.txHandle!;
    assert.equal(fake.lock.get(R1), first);
    fake.lock.delete(R1); // RFSetReaderEventState(SCARD_REMOVED): hLockId = 0; the driver's flag follows (dropHandle)
    r.inTransaction = false;
    await driver.beginTransaction!(R1, { direct: true });
    assert.ok(!fake.open.has(first), 'the old holder disconnected');
    assert.notEqual(r.txHandle, first);
    await driver.endTransaction!(R1, 'leave');
    assert.deepEqual(ours(fake, R1), [], 'nothing of ours left on the reader');
    assert.equal(fake.lock.size, 0);
  } finally { await driver.stop(); }
});

/**
 * libpcsclite's two locks as winscard_clnt.c 2.5.1 takes them (fifth review F3):
 * - every call takes the process-wide `clientMutex` (SCardLockThread) to find its context;
 * - the calls that lock a context (SCardGetAndLockContext 3414–3425: SCardConnect, SCardListReaders,
 *   SCardGetStatusChange, SCardReleaseContext; SCardGetContextChannelAndLockFromHandle 3572–3583: every handle call,
 *   SCardReconnect/Disconnect/Begin/End/Status/Transmit/Control/GetAttrib) then wait for the context's `mMutex`
 *   STILL HOLDING `clientMutex`, and keep `mMutex` for their whole round trip (an SCardControl for a PIN pad: until the
 *   person has typed);
 * - SCardEstablishContext, SCardIsValidContext (SCardGetContextValidity 414–421) and SCardCancel (3229–3240) take
 *   `clientMutex` only, for a moment.
 * So a call waiting for a busy context stalls every other call of the process, on any context. A synchronous call on
 * the event loop that would wait (for `clientMutex` or for its context) is recorded in `freezes` and fails; an
 * asynchronous one that waits for `clientMutex` behind another call's wait is recorded in `stalls` and waits.
 */
class ClientMutexFake extends FakeWinscard {
  /** The context each card handle was connected on. */
  readonly ctxOf = new Map<Handle, Handle>();
  /** Contexts whose mMutex a call holds now, with that call. */
  readonly ctxBusy = new Map<Handle, string>();
  private ctxWaiters: (() => void)[] = [];
  /** The call that waits for a context's mMutex while holding clientMutex. */
  clientHolder: string | null = null;
  private clientWaiters: (() => void)[] = [];
  freezes: string[] = [];
  stalls: string[] = [];
  /** SCardControl answers once this resolves (a person at the PIN pad). */
  controlGate?: Promise<void>;
  /** The next SCardTransmit fails with this (the card went during the exchange). */
  transmitFailsOnce?: number;

  private wake(list: (() => void)[]): void {
    for (const w of list.splice(0)) w();
  }
  private async lockContext(ctx: Handle, name: string): Promise<() => void> {
    while (this.clientHolder !== null) {
      this.stalls.push(`${name} waited for clientMutex behind ${this.clientHolder}`);
      await new Promise<void>((r) => this.clientWaiters.push(r));
    }
    if (this.ctxBusy.has(ctx)) {
      this.clientHolder = `${name} (waiting for context ${String(ctx)}, busy with ${this.ctxBusy.get(ctx)})`;
      while (this.ctxBusy.has(ctx)) await new Promise<void>((r) => this.ctxWaiters.push(r));
      this.clientHolder = null;
      this.wake(this.clientWaiters);
    }
    this.ctxBusy.set(ctx, name);
    return () => {
      this.ctxBusy.delete(ctx);
      this.wake(this.ctxWaiters);
    };
  }
  private async locked<T>(ctx: Handle, name: string, call: () => Promise<T>): Promise<T> {
    const unlock = await this.lockContext(ctx, name);
    try {
      return await call();
    } finally {
      unlock();
    }
  }
  private onEventLoop(ctx: Handle | null, name: string): void {
    const why = this.clientHolder !== null ? `clientMutex, held by ${this.clientHolder}` : ctx !== null && this.ctxBusy.has(ctx) ? `context ${String(ctx)}'s mutex, held by ${this.ctxBusy.get(ctx)}` : null;
    if (why === null) return;
    this.freezes.push(`${name} on the event loop waits for ${why}`);
    throw new Error(`${name} would block the helper's event loop: it waits for ${why}`);
  }
  private handleCtx(card: Handle): Handle {
    return this.ctxOf.get(card) ?? -1;
  }

  override establishContext(): Handle {
    this.onEventLoop(null, 'SCardEstablishContext');
    return super.establishContext();
  }
  override releaseContext(ctx: Handle): void {
    this.onEventLoop(ctx, 'SCardReleaseContext');
  }
  override isValidContext(ctx: Handle): boolean {
    this.onEventLoop(null, 'SCardIsValidContext');
    return super.isValidContext(ctx);
  }
  override cancel(ctx: Handle): void {
    this.onEventLoop(null, 'SCardCancel');
    super.cancel(ctx);
  }
  override listReaders(ctx: Handle): string[] {
    this.onEventLoop(ctx, 'SCardListReaders');
    return super.listReaders();
  }
  override getStatusChange(ctx: Handle, timeoutMs: number, states: ReaderState[]): Promise<ReaderState[]> {
    return this.locked(ctx, 'SCardGetStatusChange', () => super.getStatusChange(ctx, timeoutMs, states));
  }
  override connect(ctx: Handle, reader: string, share: number, protocols?: number): Promise<{ handle: Handle; protocol: number }> {
    return this.locked(ctx, `SCardConnect(${reader.slice(-5)})`, async () => {
      const c = await super.connect(ctx, reader, share, protocols);
      this.ctxOf.set(c.handle, ctx);
      return c;
    });
  }
  override reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
    return this.locked(this.handleCtx(card), 'SCardReconnect', () => super.reconnect(card, share, protocols, init));
  }
  override disconnect(card: Handle, disposition: number): Promise<void> {
    return this.locked(this.handleCtx(card), 'SCardDisconnect', () => super.disconnect(card, disposition));
  }
  override beginTransaction(card: Handle): Promise<void> {
    return this.locked(this.handleCtx(card), 'SCardBeginTransaction', () => super.beginTransaction(card));
  }
  override endTransaction(card: Handle, disposition: number): Promise<void> {
    return this.locked(this.handleCtx(card), 'SCardEndTransaction', () => super.endTransaction(card, disposition));
  }
  override transmit(card: Handle, protocol: number, command: Uint8Array): Promise<Uint8Array> {
    return this.locked(this.handleCtx(card), 'SCardTransmit', async () => {
      const rv = this.transmitFailsOnce;
      this.transmitFailsOnce = undefined;
      if (rv !== undefined) throw new PcscError(rv, 'SCardTransmit');
      return super.transmit(card, protocol, command);
    });
  }
  override control(card: Handle, code: number): Promise<Uint8Array> {
    return this.locked(this.handleCtx(card), 'SCardControl (PIN pad)', async () => {
      if (this.controlGate) await this.controlGate;
      return super.control(card, code);
    });
  }
  override getAttrib(card: Handle, attr: number): Promise<Uint8Array> {
    return this.locked(this.handleCtx(card), 'SCardGetAttrib', () => super.getAttrib(card, attr));
  }
  override status(card: Handle): CardStatus {
    this.onEventLoop(this.handleCtx(card), 'SCardStatus');
    return this.cardStatus(card);
  }
  override statusAsync(card: Handle): Promise<CardStatus> {
    return this.locked(this.handleCtx(card), 'SCardStatus', async () => this.cardStatus(card));
  }
  /** pcscd's answer: the card's presence from the reader (a card gone reads as not present). */
  private cardStatus(card: Handle): CardStatus {
    const st = super.status(card);
    const reader = this.open.get(card)?.reader;
    const present = reader !== undefined && this.readers.get(reader)?.present === true;
    return { ...st, reader: reader ?? '', state: present ? 0x34 : 0x02 };
  }
}

const R2 = 'Gemalto PC Twin Reader 00 00';

/** A driver over ClientMutexFake with R0 (a PIN pad), R1 (held shared) and R2 (empty); `pin` starts a PIN entry on R0 that waits for `typed()`. */
async function pinPadScene() {
  const fake = new ClientMutexFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: true, counter: 1 });
  fake.readers.set(R2, { present: false, counter: 0 });
  const sink = new Sink();
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] });
  await driver.start(sink);
  await watching(fake);
  let typed!: () => void;
  fake.controlGate = new Promise<void>((r) => { typed = r; });
  await driver.hold!(R0, 'shared');
  await driver.hold!(R1, 'shared'); // R1's card connection, made before the person starts typing on R0
  const pin = driver.control(R0, 0x42330006, Uint8Array.of(0x00)); // FEATURE_VERIFY_PIN_DIRECT's ioctl
  await until(() => [...fake.ctxBusy.values()].some((c) => c.startsWith('SCardControl')));
  return { fake, sink, driver, pin, typed };
}

/** Waits (bounded) until `cond` holds; false if it never did. */
async function until(cond: () => boolean, ms = 1000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
  return true;
}

/** Settles within `ms`, or says it is still waiting (bounded: the PIN entry never ends by itself). */
function within<T>(p: Promise<T>, ms = 1000): Promise<T | 'still waiting'> {
  return Promise.race([p, new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), ms))]);
}

test('R69 (fifth review F3): a PIN-pad SCardControl in flight on R0: Begin, a power-up and transmits on R1 go through at once, and no call of the process waits behind them for libpcsclite\'s clientMutex', async () => {
  const { fake, driver, pin, typed } = await pinPadScene();
  try {
    assert.equal(await within(driver.beginTransaction!(R1)), undefined, 'the Begin on R1 while a person types on R0');
    assert.deepEqual([...((await within(driver.powerOn(R1, 'warm'))) as Uint8Array)], [...ATR], 'a power-up on R1');
    assert.deepEqual([...((await within(driver.transmit(R1, SELECT_MF, 0))) as Uint8Array)], [0xa4, 0x90, 0x00]);
    assert.equal(await within(driver.endTransaction!(R1, 'leave')), undefined);
    assert.deepEqual(fake.stalls, [], 'no call waited for clientMutex behind a wait for a busy context');
    assert.deepEqual(fake.freezes, []);
    typed();
    await pin;
  } finally { typed(); await driver.stop(); }
});

test('R69: a PIN entry on R0 and the PnP watchdog: SCardListReaders does not freeze the event loop; a card put in R2 meanwhile is reported', async () => {
  const { fake, sink, driver, pin, typed } = await pinPadScene();
  try {
    const begin = driver.beginTransaction!(R1); // a PC/SC client's Begin on R1 while the person types
    fake.expireWaits(); // the watcher's SCardGetStatusChange times out (PNP_WATCHDOG_MS): the list is read again
    await new Promise((r) => setTimeout(r, 1));
    assert.ok(await until(() => fake.waiting > 0), 'the watcher waits for events again');
    const inserted = sink.next(`inserted ${R2}`);
    fake.insert(R2);
    assert.equal(await within(inserted), undefined, 'the insertion in R2 is reported during the PIN entry');
    const removed = sink.next(`card removed ${R2}`);
    fake.remove(R2);
    assert.equal(await within(removed), undefined, 'and the removal after it (a second SCardGetStatusChange)');
    await within(begin);
    assert.deepEqual(fake.freezes, [], 'no synchronous call waited on the event loop');
    assert.deepEqual(fake.stalls, []);
    assert.ok(!sink.logs.some((l) => /would block/.test(l.message)), sink.logs.map((l) => l.message).join('\n'));
    typed();
    await pin;
    await driver.endTransaction!(R1, 'leave');
  } finally { typed(); await driver.stop(); }
});

test('R69: a PIN entry on R0, and the card leaves R1 during an exchange: the failed transmit is explained (CARD_REMOVED) without freezing the event loop', async () => {
  const { fake, driver, pin, typed } = await pinPadScene();
  try {
    fake.readers.get(R1)!.present = false; // pcscd has not told the watcher yet
    fake.transmitFailsOnce = 0x80100016; // SCARD_E_NOT_TRANSACTED: what libccid's failed exchange comes back as
    const out = await within(driver.transmit(R1, SELECT_MF, 0).then(() => 'answered', (e: ScError) => e.code));
    assert.equal(out, 'CARD_REMOVED');
    assert.deepEqual(fake.freezes, [], 'explainLoss\'s SCardIsValidContext and SCardStatus did not wait on the event loop');
    assert.deepEqual(fake.stalls, []);
    typed();
    await pin;
  } finally { typed(); await driver.stop(); }
});

test('R69: stop during a PIN entry on R0 with a Begin on R1: SCardCancel and the contexts\' release do not freeze the event loop; the stop ends once the entry does', async () => {
  const { fake, driver, pin, typed } = await pinPadScene();
  let stopped: Promise<void> | undefined;
  try {
    const begin = driver.beginTransaction!(R1);
    await within(begin, 200);
    stopped = driver.stop();
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(fake.freezes, [], 'SCardCancel at stop');
    typed();
    await pin.catch(() => undefined);
    assert.equal(await within(stopped, 3000), undefined, 'stopped');
    assert.deepEqual(fake.freezes, []);
    assert.deepEqual(fake.stalls, []);
    assert.deepEqual([...fake.open.keys()], [], 'no handle left');
  } finally { typed(); await (stopped ?? driver.stop()); }
});

test('F1 guard: should our transaction ever be held on anything but the card handle, a call that needs a connection is refused instead of connecting (white box)', async () => {
  const { fake, driver } = await started();
  try {
    await driver.hold!(R0, 'shared');
    await driver.beginTransaction!(R0);
    // Break the invariant on purpose: the transaction held, the card handle forgotten.
    const r = (driver as unknown as { readers: Map<string, { handle: Handle | null }> }).readers.get(R0)!;
    const held = r.handle!;
    r.handle = null;
    await assert.rejects(driver.control(R0, 3400, new Uint8Array(0)), (e: ScError) => e.code === 'SHARING_VIOLATION' && /for ever/.test(e.message));
    await assert.rejects(driver.powerOn(R0, 'warm'), (e: ScError) => e.code === 'SHARING_VIOLATION');
    assert.deepEqual(fake.lockWaits, [], 'no SCardConnect reached pcscd');
    r.handle = held;
    await driver.endTransaction!(R0, 'leave');
    assert.equal(fake.lock.size, 0);
  } finally { await driver.stop(); }
});

test('R68 (fifth review F2): a PC/SC client\'s nested Begin, End(EJECT) on a system reader: the handle keeps working (transmit, End) as with pcscd, the reader is not left locked', async () => {
  const { fake, b, A, stop } = await systemService();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.beginTransaction(s)), 0);
    assert.equal(await rvAfter(b.beginTransaction(s)), 0);
    assert.equal(await rvAfter(b.endTransaction(s, Disposition.SCARD_EJECT_CARD)), 0, 'End(EJECT) of the nested transaction');
    assert.equal(fake.lock.size, 0, 'the eject disconnected our system handle: pcscd\'s lock went with it (RFUnlockAllSharing)');
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0, 'transmit after the eject');
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0, 'and again');
    assert.equal(await rvAfter(b.endTransaction(s, Disposition.SCARD_LEAVE_CARD)), 0, 'the outer End');
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0, 'transmit after the End');
    assert.equal(fake.lock.size, 0, 'no system transaction left');
  } finally { await stop(); }
});

test('R68: driver level: hold, Begin, eject, then a power-up and a control connect again (the eject ended our transaction); a removal with the handle already gone clears it too', async () => {
  const { fake, sink, driver } = await started();
  try {
    await driver.hold!(R0, 'shared');
    await driver.beginTransaction!(R0);
    await driver.eject!(R0);
    assert.equal(fake.lock.size, 0);
    assert.deepEqual([...(await driver.powerOn(R0, 'warm'))], [...ATR], 'power-up after the eject');
    await driver.control(R0, 3400, new Uint8Array(0));
    await driver.beginTransaction!(R0);
    const r = (driver as unknown as { readers: Map<string, { handle: Handle | null; inTransaction: boolean }> }).readers.get(R0)!;
    // The handle already gone (a failed reset acknowledgement dropped it), then the card leaves: the flag goes too.
    const held = r.handle!;
    r.handle = null;
    const gone = sink.next(`card removed ${R0}`);
    fake.remove(R0);
    await gone;
    await fake.disconnect(held, 0);
    assert.equal(r.inTransaction, false, 'the removal cleared our transaction flag with no handle to drop');
  } finally { await driver.stop(); }
});

test('R69: stop while nobody types on R0\'s PIN pad: the stop ends after its bounded wait, saying so; R0\'s handle and context go when the entry ends', async () => {
  const { fake, sink, driver, pin, typed } = await pinPadScene();
  const released: Handle[] = [];
  const release = fake.releaseContext.bind(fake);
  fake.releaseContext = (ctx: Handle) => { released.push(ctx); release(ctx); };
  const t0 = Date.now();
  try {
    assert.equal(await within(driver.stop(), 5000), undefined, 'the stop ends although the PIN entry does not');
    assert.ok(Date.now() - t0 < 4000, `stopped after ${Date.now() - t0} ms`);
    assert.ok(sink.logs.some((l) => l.level === 'warn' && /still in the PC\/SC service/.test(l.message)), 'the wait is told');
    assert.deepEqual(fake.freezes, []);
    assert.deepEqual(fake.stalls, []);
    const r0Handles = () => [...fake.open.values()].filter((h) => h.reader === R0);
    assert.equal(r0Handles().length, 1, 'R0\'s handle stays while its call runs');
    const before = released.length;
    typed();
    await pin.catch(() => undefined);
    assert.ok(await until(() => r0Handles().length === 0 && released.length === before + 1), 'R0\'s handle disconnected and its context released when the entry ended');
    assert.deepEqual(fake.freezes, []);
  } finally { typed(); }
});

/**
 * A card pulled while one of our calls is at pcscd (seventh review, third pass, F1): the handle's calls wait for `gate`
 * and then answer SCARD_W_REMOVED_CARD, as pcscd does for a handle whose card left.
 */
class GatedFake extends FakeWinscard {
  gate: Promise<void> | null = null;
  override async reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
    if (this.gate) await this.gate;
    if (this.removedSeen.has(card)) throw new PcscError(0x80100069, 'SCardReconnect');
    return super.reconnect(card, share, protocols, init);
  }
  override async transmit(card: Handle, p: number, c: Uint8Array): Promise<Uint8Array> {
    if (this.gate) await this.gate;
    if (this.removedSeen.has(card)) throw new PcscError(0x80100069, 'SCardTransmit');
    return super.transmit(card, p, c);
  }
  override status(card: Handle): CardStatus {
    if (this.removedSeen.has(card)) throw new PcscError(0x80100069, 'SCardStatus');
    return super.status(card);
  }
}

async function gatedScene(): Promise<{ fake: GatedFake; sink: Sink; driver: ReturnType<typeof createPcscDriver> }> {
  const fake = new GatedFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  const sink = new Sink();
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] });
  await driver.start(sink);
  await watching(fake);
  return { fake, sink, driver };
}

/** The card leaves (and another comes) while a call of ours is at pcscd; the watcher reports the removal first. */
async function pullCard(fake: GatedFake, sink: Sink, handle: Handle): Promise<void> {
  const removed = sink.next(`card removed ${R0}`);
  fake.removedSeen.add(handle);
  fake.remove(R0);
  await removed;
  const inserted = sink.next(`inserted ${R0}`);
  fake.insert(R0);
  await inserted;
}

function gate(fake: GatedFake): () => void {
  let open!: () => void;
  fake.gate = new Promise((r) => (open = r));
  return () => { fake.gate = null; open(); };
}

test('R70 (F1): the card pulled during a warm reset inside our transaction, the watcher first: the stale handle is disconnected before the new connect, which never waits on our own hLockId', async () => {
  const { fake, sink, driver } = await gatedScene();
  try {
    await driver.beginTransaction(R0);
    const h = fake.lock.get(R0)!;
    assert.ok(h !== undefined, 'our transaction holds R0');
    const openGate = gate(fake);
    const p = driver.powerOn(R0, 'warm').then(() => 'ok', (e: Error) => e.message);
    await new Promise((r) => setImmediate(r));
    await pullCard(fake, sink, h);
    openGate();
    assert.equal(await p, 'ok', 'the power-up connects to the new card');
    assert.deepEqual(fake.lockWaits, [], 'no SCardConnect while our own stale handle held hLockId');
    assert.ok(!fake.open.has(h), 'the stale handle is disconnected');
    assert.equal(fake.lock.has(R0), false, 'the reader is not left locked for other programs');
  } finally { await driver.stop(); }
});

test('R70 (F1): a transmit in flight and one queued inside our transaction, the card pulled, the watcher first: the first hears CARD_REMOVED, the second connects without waiting on our lock', async () => {
  const { fake, sink, driver } = await gatedScene();
  try {
    await driver.beginTransaction(R0);
    const h = fake.lock.get(R0)!;
    const openGate = gate(fake);
    const t1 = driver.transmit(R0, Uint8Array.of(0, 0xb0, 0, 0, 0), 0).then(() => 'ok', (e: ScError) => e.code);
    const t2 = driver.transmit(R0, Uint8Array.of(0, 0xb0, 0, 0, 0), 0).then(() => 'ok', (e: ScError) => `${e.code} ${e.message}`);
    await new Promise((r) => setImmediate(r));
    await pullCard(fake, sink, h);
    openGate();
    assert.equal(await t1, 'CARD_REMOVED');
    assert.equal(await t2, 'ok', 'the queued transmit reaches the new card');
    assert.deepEqual(fake.lockWaits, [], 'no SCardConnect while our own stale handle held hLockId');
    assert.ok(!fake.open.has(h));
    assert.equal(fake.lock.has(R0), false);
  } finally { await driver.stop(); }
});

test('R70 (F1, exclusive): a card swapped under our exclusive handle while a call is in flight: the queued call connects (exclusive again) without a SHARING_VIOLATION caused by our own stale handle', async () => {
  const { fake, sink, driver } = await gatedScene();
  try {
    await driver.hold(R0, 'exclusive');
    const h = [...fake.open.keys()][0];
    assert.equal(fake.open.get(h)?.share, 1, 'held exclusively');
    const openGate = gate(fake);
    const t1 = driver.transmit(R0, Uint8Array.of(0, 0xb0, 0, 0, 0), 0).then(() => 'ok', (e: ScError) => e.code);
    const t2 = driver.transmit(R0, Uint8Array.of(0, 0xb0, 0, 0, 0), 0).then(() => 'ok', (e: ScError) => `${e.code} ${e.message}`);
    await new Promise((r) => setImmediate(r));
    await pullCard(fake, sink, h);
    openGate();
    assert.equal(await t1, 'CARD_REMOVED');
    assert.equal(await t2, 'ok', 'the queued transmit connects to the new card');
    assert.ok(!fake.open.has(h), 'the stale handle is disconnected');
    assert.deepEqual([...fake.open.values()].map((o) => o.share), [1], 'one handle of ours, exclusive as held');
  } finally { await driver.stop(); }
});

test('R70 (F1): a stale handle the watcher dropped with no call queued is disconnected at once (the reader not left locked for other programs)', async () => {
  const { fake, sink, driver } = await gatedScene();
  try {
    await driver.beginTransaction(R0);
    const h = fake.lock.get(R0)!;
    await pullCard(fake, sink, h);
    assert.ok(await until(() => !fake.open.has(h) && !fake.lock.has(R0)), 'the stale handle is disconnected, the lock gone');
  } finally { await driver.stop(); }
});

test('R71 (F2): stop during a long call (a PIN entry) with calls queued behind it: the queued calls are refused (nothing reaches the card after stop), the handle and context go when the entry ends', async () => {
  class PinFake extends FakeWinscard {
    pin: Promise<void> | null = null;
    sent: string[] = [];
    released: Handle[] = [];
    override async control(card: Handle, code: number): Promise<Uint8Array> {
      if (this.pin) await this.pin;
      return super.control(card, code);
    }
    override async transmit(card: Handle, p: number, c: Uint8Array): Promise<Uint8Array> {
      this.sent.push(Buffer.from(c).toString('hex'));
      return super.transmit(card, p, c);
    }
    override async reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
      this.sent.push(`reconnect ${init}`);
      return super.reconnect(card, share, protocols, init);
    }
    override async beginTransaction(card: Handle): Promise<void> {
      this.sent.push('begin');
      return super.beginTransaction(card);
    }
    override releaseContext(ctx?: Handle): void { this.released.push(ctx!); }
  }
  const fake = new PinFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  const sink = new Sink();
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] });
  await driver.start(sink);
  await watching(fake);
  await driver.transmit(R0, Uint8Array.of(0, 0xa4, 4, 0), 0);
  let typed!: () => void;
  fake.pin = new Promise((r) => (typed = r));
  try {
    const pin = driver.control(R0, 3400, new Uint8Array(0)).then(() => 'ok', (e: ScError) => e.code);
    const q1 = driver.transmit(R0, Uint8Array.of(0x00, 0x20, 0x00, 0x81, 0x00), 0).then(() => 'ok', (e: ScError) => e.code);
    const q2 = driver.powerOn(R0, 'cold').then(() => 'ok', (e: ScError) => e.code);
    const q3 = driver.beginTransaction(R0).then(() => 'ok', (e: ScError) => e.code);
    await driver.stop();
    const before = fake.sent.length;
    typed();
    assert.equal(await pin, 'ok', 'the call in flight finishes');
    assert.deepEqual([await q1, await q2, await q3], ['READER_UNAVAILABLE', 'READER_UNAVAILABLE', 'READER_UNAVAILABLE'], 'the calls queued behind it are refused');
    assert.ok(await until(() => fake.open.size === 0 && fake.released.length === 3), 'R0\'s handle disconnected and every context released');
    assert.deepEqual(fake.sent.slice(before), [], 'nothing reached the card after stop');
  } finally { typed(); }
});

test('R72 (F3): stop while start is between its reader list and its status query, then start again: the new sink hears every reader; the stopped start reports nothing and starts no watcher', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] });
  const s1 = new Sink();
  const p = driver.start(s1);
  await driver.stop();
  await p;
  assert.deepEqual(s1.events, [], 'nothing reported after stop');
  assert.equal(fake.waiting, 0, 'no watcher left waiting by the stopped start');
  const s2 = new Sink();
  await driver.start(s2);
  try {
    assert.deepEqual(s2.events, [`added ${R0}`], 'R0 reported to the restarted driver\'s sink');
    assert.deepEqual(await driver.transmit(R0, Uint8Array.of(0, 0xb0, 0, 0, 0), 0), Uint8Array.of(0xb0, 0x90, 0x00));
  } finally { await driver.stop(); }
  assert.equal(fake.open.size, 0, 'no handle of ours left');
});

/** A winscard that gives a released context's value to the next SCardEstablishContext (pcsc-lite's are random; a platform may reuse them). */
class ReusingContextsFake extends FakeWinscard {
  private live = new Set<number>();
  override establishContext(): Handle {
    super.establishContext(); // the attempt counted, NO_SERVICE when down
    let v = 1000;
    while (this.live.has(v)) v++;
    this.live.add(v);
    return v;
  }
  override releaseContext(ctx?: Handle): void {
    this.live.delete(Number(ctx));
  }
  /** The first zero-timeout status query (a start's reader list) waits until `release()`. */
  release: () => void = () => {};
  private held: Promise<void> | null = new Promise<void>((r) => { this.release = r; }); // after `release`'s own initializer
  override async getStatusChange(ctx: Handle, timeoutMs: number, states: ReaderState[]): Promise<ReaderState[]> {
    if (timeoutMs === 0 && this.held) { const h = this.held; this.held = null; await h; }
    return super.getStatusChange(ctx, timeoutMs, states);
  }
}

test('R72: the same, on a platform that reuses a released context\'s value: the stopped start still knows it was overtaken (a count of the work context\'s lives, not its value)', async () => {
  const fake = new ReusingContextsFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5] });
  const s1 = new Sink();
  const p = driver.start(s1);
  await driver.stop(); // the first start waits in its status query
  const s2 = new Sink();
  await driver.start(s2); // its contexts get the first start's values again
  fake.release();
  await p;
  try {
    assert.deepEqual(s1.events, [], 'nothing reported to the stopped start\'s sink');
    assert.deepEqual(s2.events, [`added ${R0}`], 'R0 reported once, to the restarted driver\'s sink');
    assert.equal(fake.waiting, 1, 'one watcher: the restarted driver\'s');
  } finally { await driver.stop(); }
  assert.equal(fake.waiting, 0);
});

// Ninth review (R82–R85): a direct handle's transaction on a system reader (R73), the lock counted as readerfactory.c does.
/** LockCount as readerfactory.c keeps it: RFLockSharing += 1, RFUnlockSharing -= 1 (hLockId cleared at 0), RFUnlockAllSharing = 0. */
class CountingFake extends FakeWinscard {
  count = new Map<string, number>();
  override async beginTransaction(card: Handle): Promise<void> {
    await super.beginTransaction(card);
    const r = this.open.get(card)!.reader;
    this.count.set(r, (this.count.get(r) ?? 0) + 1);
  }
  override async endTransaction(card: Handle, disposition: number): Promise<void> {
    const h = this.open.get(card);
    if (!h) throw new PcscError(0x80100003, 'SCardEndTransaction');
    const n = (this.count.get(h.reader) ?? 0) - 1;
    if (n > 0) { this.count.set(h.reader, n); return; } // still held: LockCount > 0
    this.count.delete(h.reader);
    await super.endTransaction(card, disposition);
  }
  override async disconnect(card: Handle, disposition: number): Promise<void> {
    const h = this.open.get(card);
    if (h && this.lock.get(h.reader) === card) this.count.delete(h.reader);
    await super.disconnect(card, disposition);
  }
}

test('R82 (review 9 F1): the client dies while its direct Begin waits behind another program; the grant comes within the deadline', async () => {
  const { fake, m, b, A, stop } = await systemService(1500);
  let free!: () => void;
  fake.lockedElsewhere = new Promise<void>((r) => { free = r; });
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const begin = rvAfter(b.beginTransaction(d));
    await untilHolds(() => fake.waitedElsewhere === 1, 'the driver\'s DIRECT connect waits in pcscd behind the other program');
    await b.abandon(d); // the session's cleanup: the client died
    fake.lockedElsewhere = undefined;
    free(); // the other program ends its transaction, within the gate's deadline
    assert.notEqual(await begin, 0, 'the Begin of a handle that is gone is not granted');
    await b.abandon(d); // the session's finally: "release it again"
    // pcscd: a client that died while its Begin was pending holds nothing. Before R82: the dead entry owned the reader's
    // queue and our DIRECT handle held pcscd's lock until the idle-transaction timer (30 s) released it.
    await untilHolds(() => m.transactionOwner(A) === null && fake.lock.size === 0 && ours(fake, R0).length === 0,
      'nobody owns the reader, the machine\'s pcscd is not locked, the DIRECT holder went', 2000);
    assert.equal(m.transactionOwner(A), null);
    // Another program gets in at once.
    const other = await fake.connect(0, R0, ShareMode.SCARD_SHARE_SHARED, 3);
    await fake.disconnect(other.handle, 0);
  } finally { free(); fake.lockWaits.length = 0; await stop(); }
});

/**
 * R83's and R86's ground: S1 and S2 share the card, S1 leaves it unpowered (the driver keeps no handle), another
 * program holds pcscd's lock; a direct handle D's Begin gives up at the deadline while the driver's DIRECT connect
 * still waits, and S2's Begin queues behind it in the driver. `grant()` lets the other program go: S2's Begin is
 * answered on the late grant.
 */
async function lateDirectGrant() {
  const fake = new CountingFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false });
  let begins = 0;
  const begin = driver.beginTransaction!.bind(driver);
  driver.beginTransaction = (key, opts) => { begins++; return begin(key, opts); };
  const m = new ReaderManager([driver], { historySize: 0, exchangeTimeoutMs: 300 });
  await m.start();
  const b = new ManagerBackend(m);
  const [A] = m.list().readers.map((r) => r.name);
  let free: (() => void) | undefined;
  const stop = async () => { free?.(); b.dispose(); await m.stop(); };
  try {
    const s1 = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    const s2 = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.transmit(s2, T0PCI, SELECT_MF, 258)), 0);
    await b.disconnect(s1, Disposition.SCARD_UNPOWER_CARD); // another program sharing the card leaves it unpowered
    assert.deepEqual(ours(fake, R0), [], 'S1\'s Disconnect(UNPOWER) left the driver no handle; S2 still open');
    assert.equal(await rvAfter(b.reconnect(s2, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_LEAVE_CARD)), 0);
    fake.lockedElsewhere = new Promise<void>((r) => { free = r; });
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    assert.equal(await rvAfter(b.beginTransaction(d)), 0x8010000b, 'D\'s Begin: SHARING_VIOLATION at the deadline, its DIRECT connect still waiting');
    const s2begin = rvAfter(b.beginTransaction(s2));
    await untilHolds(() => begins === 2, 'S2\'s Begin is in the driver\'s chain behind D\'s');
    const grant = () => { fake.lockedElsewhere = undefined; free?.(); return s2begin; };
    return { fake, m, b, A, s2, d, grant, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

test('R83 (review 9 F2): a late direct grant, and a card connection\'s Begin queued behind it in the driver stacks on it: one LockCount is left in pcscd', async () => {
  const { fake, m, b, A, s2, d, grant, stop } = await lateDirectGrant();
  try {
    assert.equal(await grant(), 0, 'S2\'s Begin: granted');
    assert.equal(fake.count.get(R0), 1, 'one LockCount in pcscd (before R83: 2, stacked on the late grant)');
    assert.equal(await rvAfter(b.endTransaction(s2, Disposition.SCARD_LEAVE_CARD)), 0);
    await untilHolds(() => m.transactionOwner(A) === null && fake.lock.size === 0, 'nobody holds a transaction: pcscd is free (before R83: held until S2 disconnects)', 1000);
    assert.equal(fake.count.get(R0), undefined);
    await b.disconnect(s2, Disposition.SCARD_LEAVE_CARD);
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R86 (review 10 G1): a card connection that took a late direct grant over holds a card handle\'s transaction: its Disconnect(UNPOWER) powers the card off, no power cycle', async () => {
  const { fake, m, b, A, s2, d, grant, stop } = await lateDirectGrant();
  try {
    assert.equal(await grant(), 0, 'S2\'s Begin: granted on the late grant');
    assert.equal(await rvAfter(b.reconnect(s2, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_RESET_CARD)), 0, 'S2 resets the card: powered');
    assert.equal(m.reader(A).card?.powered, true);
    fake.dispositions.length = 0;
    await b.disconnect(s2, Disposition.SCARD_UNPOWER_CARD);
    assert.ok(fake.dispositions.includes('disconnect 2'), `SCardDisconnect(UNPOWER), as pcscd powers the card off: ${fake.dispositions.join(', ')}`);
    assert.ok(!fake.dispositions.includes('reconnect 2'), `no power cycle taken for a direct handle's cold reset: ${fake.dispositions.join(', ')}`);
    await untilHolds(() => fake.lock.size === 0, 'pcscd is free once S2 went', 1000);
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R87 (review 10 G2): a card handle\'s SCardEndTransaction(UNPOWER) powers the card down and up and keeps the lock while a level is left, as pcscd (winscard.c ~1134–1160)', async () => {
  const { fake, m, b, A, stop } = await systemService();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.beginTransaction(s)), 0);
    assert.equal(await rvAfter(b.beginTransaction(s)), 0);
    const holder = fake.lock.get(R0);
    assert.ok(holder !== undefined);
    const owner = m.transactionOwner(A);
    fake.dispositions.length = 0;
    assert.equal(await rvAfter(b.endTransaction(s, Disposition.SCARD_UNPOWER_CARD)), 0, 'the inner End');
    assert.ok(!fake.dispositions.some((x) => x.startsWith('disconnect')), `no SCardDisconnect, which would end the lock for every program: ${fake.dispositions.join(', ')}`);
    assert.ok(fake.dispositions.includes('reconnect 2'), `the card power-cycled on the lock holder: ${fake.dispositions.join(', ')}`);
    assert.equal(fake.lock.get(R0), holder, 'pcscd keeps the lock: one level is left');
    assert.equal(m.transactionOwner(A), owner);
    assert.equal(m.reader(A).card?.powered, true, 'pcscd powers the card up again after the power-down');
    // The caller's own handle is marked reset too (RFSetReaderEventState marks every handle, winscard.c ~1156).
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0x80100068, 'SCARD_W_RESET_CARD');
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.endTransaction(s, Disposition.SCARD_UNPOWER_CARD)), 0, 'the outer End');
    assert.equal(fake.lock.size, 0, 'the last level ended: pcscd is free');
    assert.equal(m.reader(A).card?.powered, true, 'powered down and up again, not left unpowered');
    await b.disconnect(s, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R84 (review 9 F3): a card handle\'s transaction handed over to the direct entry (Reconnect to DIRECT), then its cold reset: the system lock must stay', async () => {
  const { fake, m, b, A, stop } = await systemService();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.beginTransaction(s)), 0);
    const holder = fake.lock.get(R0);
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0, 'to DIRECT, transaction kept');
    const owner = m.transactionOwner(A);
    assert.notEqual(owner, null);
    assert.equal(fake.lock.get(R0), holder, 'the swap kept the system transaction on the same handle');
    fake.dispositions.length = 0;
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_UNPOWER_CARD)), 0);
    assert.ok(!fake.dispositions.some((x) => x.startsWith('disconnect')), `no SCardDisconnect in the cold reset: ${fake.dispositions.join(', ')}`);
    assert.equal(m.transactionOwner(A), owner, 'the direct handle still owns the reader');
    assert.equal(fake.lock.get(R0), holder, 'pcscd keeps hLockId across the holder\'s SCardReconnect(UNPOWER); the direct handle still holds its transaction');
    assert.equal(await rvAfter(b.endTransaction(s, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(fake.lock.size, 0, 'its End ended it');
    await b.disconnect(s, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('R85 (review 9 F4): pcscd\'s UNKNOWN → PRESENT re-insertion moves the counter but keeps hLockId on our DIRECT holder; a cold reset in flight then never connects under our own lock (white box)', async () => {
  const { fake, sink, driver } = await started();
  try {
    await watching(fake);
    await driver.beginTransaction!(R0, { direct: true });
    const holder = fake.lock.get(R0)!;
    assert.ok(holder !== undefined, 'the direct Begin took pcscd\'s lock on a DIRECT holder');
    // A reader error and back (eventhandler.c 330–345, 392–417): the counter moves, the card stays, no SCARD_REMOVED
    // event, so hLockId stays on our holder. The watcher takes it for a swap and clears the driver's transaction.
    const removed = sink.next(`card removed ${R0}`);
    const inserted = sink.next(`inserted ${R0}`);
    fake.readers.get(R0)!.counter++;
    fake.change();
    await Promise.all([removed, inserted]);
    assert.equal(fake.lock.get(R0), holder, 'pcscd still holds the lock on our holder');
    // The cold reset that was queued in the reader's chain at that moment (a direct handle's Reconnect(UNPOWER)).
    await driver.powerOff(R0, { coldReset: true });
    await driver.powerOn(R0, 'cold');
    assert.deepEqual(fake.lockWaits, [], 'no SCardConnect waited on a transaction of ours');
    assert.ok(!fake.open.has(holder), 'the holder was let go before the connect (pcscd unlocked the reader)');
    assert.equal(fake.lock.size, 0, 'the machine\'s pcscd is not locked');
    // The manager's end of the transaction the swap took: nothing left to end in pcscd.
    await driver.endTransaction!(R0, 'leave');
    await driver.release!(R0);
    assert.deepEqual(ours(fake, R0), [], 'nothing of ours left on the reader');
  } finally { await driver.stop(); }
});

// R74: another program's reset through the system pcscd marks every handle of the reader (RFSetReaderEventState, winscard.c
// 582), a SCARD_SHARE_DIRECT one too; SCardStatus, SCardGetAttrib, SCardTransmit and Begin/End look (RFCheckReaderEventState,
// 1290, 1397, 1535, 1073) and answer SCARD_W_RESET_CARD until the handle's SCardReconnect (813). The outside program here is
// a handle of another context on the fake pcscd, which marks our handles as pcscd does.
const W_RESET_CARD = 0x80100068;
async function outsideReset(fake: FakeWinscard, reader: string): Promise<void> {
  const outside = await fake.connect(99, reader, ShareMode.SCARD_SHARE_SHARED, 3);
  await fake.reconnect(outside.handle, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_RESET_CARD);
  await fake.disconnect(outside.handle, Disposition.SCARD_LEAVE_CARD);
}

test('R74: another program resets the card: a client\'s direct handle (no card handle of ours) answers SCardStatus / SCardGetAttrib / SCardBeginTransaction SCARD_W_RESET_CARD until its SCardReconnect, as pcscd; the watch goes with the last direct handle', async () => {
  const { fake, b, A, stop } = await systemService();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    assert.equal(await rvAfter(b.status(d)), 0);
    assert.equal(await rvAfter(b.getAttrib(d, 0x00010100)), 0);
    assert.ok(ours(fake, R0).every(([, o]) => o.share === ShareMode.SCARD_SHARE_DIRECT), 'no card handle of ours to hear the reset');
    await outsideReset(fake, R0);
    assert.equal(await rvAfter(b.status(d)), W_RESET_CARD, 'SCardStatus after the outside reset');
    assert.equal(await rvAfter(b.getAttrib(d, 0x00010100)), W_RESET_CARD, 'SCardGetAttrib');
    assert.equal(await rvAfter(b.status(d)), W_RESET_CARD, 'again, until its SCardReconnect');
    assert.equal(await rvAfter(b.control(d, 0x42000000 + 3400, new Uint8Array(0))), 0, 'SCardControl does not look (R51)');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), 0, 'cleared by its reconnect');
    assert.equal(await rvAfter(b.getAttrib(d, 0x00010100)), 0);
    await outsideReset(fake, R0);
    assert.equal(await rvAfter(b.beginTransaction(d)), W_RESET_CARD, 'a second outside reset: SCardBeginTransaction looks too');
    assert.equal(fake.lock.size, 0, 'no transaction begun');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), 0, 'told once: the watch was cleared when the reset was counted');
    assert.equal(await rvAfter(b.disconnect(d, Disposition.SCARD_LEAVE_CARD)), 0);
    await untilHolds(() => ours(fake, R0).length === 0, 'the watch disconnected with the last direct handle');
  } finally { await stop(); }
});

test('R74: another program resets the card: a client\'s shared card handle answers SCardStatus / SCardGetAttrib SCARD_W_RESET_CARD before any transmit, until its SCardReconnect', async () => {
  const { fake, b, A, stop } = await systemService();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0);
    assert.equal(await rvAfter(b.status(s)), 0);
    await outsideReset(fake, R0);
    assert.equal(await rvAfter(b.status(s)), W_RESET_CARD, 'SCardStatus');
    assert.equal(await rvAfter(b.getAttrib(s, 0x00010100)), W_RESET_CARD, 'SCardGetAttrib');
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), W_RESET_CARD, 'SCardTransmit');
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(s)), 0);
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0);
    assert.equal(await rvAfter(b.disconnect(s, Disposition.SCARD_LEAVE_CARD)), 0);
  } finally { await stop(); }
});

test('R74: one outside reset heard by both the watch and our card handle is told once to each client handle; our own resets (a card handle\'s, a direct handle\'s inside its transaction) are never taken for another program\'s', async () => {
  const { fake, b, A, resets, stop } = await systemService();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0);
    await outsideReset(fake, R0);
    assert.equal(await rvAfter(b.status(d)), W_RESET_CARD, 'D');
    assert.equal(await rvAfter(b.status(s)), W_RESET_CARD, 'S');
    assert.equal(ours(fake, R0).length, 2, 'the watch and our card handle heard it; counted once (below)');
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.transmit(s, T0PCI, SELECT_MF, 258)), 0, 'S: once');
    assert.equal(await rvAfter(b.status(d)), 0, 'D: once');
    assert.equal(await rvAfter(b.status(s)), 0, 'S: once');
    // Our own reset: S's Reconnect(RESET) marks the watch in pcscd; D hears it once (a cardReset entry), as F2 (b).
    const before = resets.length;
    assert.equal(await rvAfter(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, 3, Disposition.SCARD_RESET_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), W_RESET_CARD);
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), 0, 'not told again as another program\'s');
    assert.equal(await rvAfter(b.status(s)), 0);
    assert.equal(resets.length - before, 1);
    assert.equal(await rvAfter(b.disconnect(s, Disposition.SCARD_LEAVE_CARD)), 0);
    // D's own reset inside its transaction: the watch cannot be cleared under the lock (pcscd's RFCheckSharing); after End.
    assert.equal(await rvAfter(b.beginTransaction(d)), 0);
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD)), 0);
    assert.equal(await rvAfter(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.status(d)), 0, 'its own reset, cleared by its own reconnect');
    assert.equal(await rvAfter(b.status(d)), 0);
    await outsideReset(fake, R0);
    assert.equal(await rvAfter(b.status(d)), W_RESET_CARD, 'another program\'s after that: heard');
    assert.deepEqual(fake.lockWaits, []);
  } finally { await stop(); }
});

/**
 * pcscd's exclusive share (winscard.c 463–468, 748–801; readerfactory.c 1061–1107): an EXCLUSIVE connect or reconnect
 * takes hLockId (RFLockSharing); going back to SHARED or DIRECT by SCardReconnect calls RFUnlockSharing while the
 * reader is still exclusive, which refuses the last level: hLockId stays on the handle, now shared, and every other
 * SCardConnect on the reader waits for ever (winscard.c 287–295) until that handle's End or Disconnect.
 */
class ExclusiveLockFake extends FakeWinscard {
  override async connect(ctx: Handle, reader: string, share: number, protocols?: number) {
    const c = await super.connect(ctx, reader, share, protocols);
    if (share === 1) this.lock.set(reader, c.handle);
    return c;
  }
  override async reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
    const h = this.open.get(card);
    const was = h?.share;
    const rv = await super.reconnect(card, share, protocols, init);
    if (h && share === 1 && was !== 1) this.lock.set(h.reader, card);
    return rv; // EXCLUSIVE → SHARED / DIRECT: the lock stays (RFUnlockSharing refused the last level)
  }
}

test('R89 (review 11, A1): a late exclusive hold given up to another program, then a shared connection: our now-shared handle does not keep pcscd\'s lock, and a client\'s direct connect (the watch) never waits on it', async () => {
  const fake = new ExclusiveLockFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false })], { historySize: 0, exchangeTimeoutMs: 300 });
  await m.start();
  const b = new ManagerBackend(m);
  const [A] = m.list().readers.map((r) => r.name);
  try {
    let endOther!: () => void;
    fake.lockedElsewhere = new Promise<void>((r) => { endOther = r; }); // another program's transaction
    assert.equal(await rvAfter(b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, 3)), 0x8010000b, 'the exclusive hold is given up at the deadline');
    const shared = b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3); // hold('shared'), queued behind it
    await new Promise((r) => setTimeout(r, 420));
    fake.lockedElsewhere = undefined;
    endOther(); // the late exclusive grant, then hold('shared') reconnects it SHARED
    assert.equal(await rvAfter(shared), 0, 'the shared connection');
    assert.equal(fake.lock.get(R0), undefined, 'no lock of ours is left in pcscd once our handle is shared');
    assert.equal(await rvAfter(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)), 0, 'a client\'s direct connect');
    await b.status((await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle as never).catch(() => undefined); // a look: opens the watch
    assert.deepEqual(fake.lockWaits, [], 'no SCardConnect of ours waited on a lock of ours');
  } finally {
    b.dispose();
    await m.stop();
  }
});

/** A PIN entry on the reader: SCardControl takes `slowMs`; SCardStatus calls counted. */
class SlowControlFake extends FakeWinscard {
  slowMs = 0;
  statusCalls = 0;
  override async control(card: Handle, code: number) {
    if (this.slowMs) await new Promise((r) => setTimeout(r, this.slowMs));
    return super.control(card, code);
  }
  override status(card: Handle): CardStatus {
    this.statusCalls++;
    return super.status(card);
  }
}

test('R89 (review 11, A2/A3): during a 3 s PIN entry on the reader, a client\'s direct connect and its SCardStatus polls answer within the look\'s 2 s, the looks are shared, and nobody is told to pull the card', async () => {
  const fake = new SlowControlFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const logs: Array<[string, string]> = [];
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false })], { historySize: 0, exchangeTimeoutMs: 60_000, log: (l, msg) => logs.push([l, msg]) });
  await m.start();
  const b = new ManagerBackend(m);
  const [A] = m.list().readers.map((r) => r.name);
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    const p = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    fake.slowMs = 3000;
    const pin = b.control(s, 0x42000000 + 3400, new Uint8Array(0)).catch(() => undefined); // the PIN entry, in the reader's chain
    await new Promise((r) => setTimeout(r, 100));
    const before = fake.statusCalls;
    const t0 = performance.now();
    const [direct, ...polls] = await Promise.all([
      rvAfter(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)),
      ...[0, 1, 2, 3, 4].map(() => rvAfter(b.status(p))),
    ]);
    const ms = performance.now() - t0;
    assert.equal(direct, 0, 'the direct connect');
    assert.deepEqual(polls, [0, 0, 0, 0, 0], 'the polls');
    assert.ok(ms < 2600, `answered within the look's 2 s, not after the PIN entry (${ms.toFixed(0)} ms)`);
    await pin;
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(fake.statusCalls - before <= 4, `one shared look, not one per poll: ${fake.statusCalls - before} SCardStatus calls`);
    const warned = logs.filter(([l, msg]) => l === 'warn' && /remove and reinsert|powered up again/.test(msg));
    assert.deepEqual(warned, [], 'no advice to pull the card for a look given up behind a PIN entry');
  } finally {
    b.dispose();
    await m.stop();
  }
});

// R92 (review 12, LOW 5): a direct handle's SCardReconnect during a long call of ours waited for the watch (2 s) and
// then for its own look (2 s more): the look now gets what is left of the call's 2 s (R89's bound).
test('R92: during a 6 s PIN entry on the reader, a direct handle\'s SCardReconnect(DIRECT, LEAVE) answers within the look\'s 2 s, not after the watch\'s 2 s and its own look\'s 2 s', async () => {
  const fake = new SlowControlFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false })], { historySize: 0, exchangeTimeoutMs: 60_000 });
  await m.start();
  const b = new ManagerBackend(m);
  const [A] = m.list().readers.map((r) => r.name);
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    fake.slowMs = 6000;
    const pin = b.control(s, 0x42000000 + 3400, new Uint8Array(0)).catch(() => undefined); // the PIN entry, in the reader's chain
    await new Promise((r) => setTimeout(r, 100));
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle; // its watch could not open: still queued
    const t0 = performance.now();
    assert.equal(await rvAfter(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    const ms = performance.now() - t0;
    assert.ok(ms < 2600, `the reconnect answered within the look's 2 s (${ms.toFixed(0)} ms)`);
    await pin;
  } finally {
    b.dispose();
    await m.stop();
  }
});

// R92 (review 12, LOW 6): a card handle reconnected to DIRECT lets the driver's card handle go and opens the watch in
// its place; another program that took the reader exclusively in between refuses the watch. pcscd's handle would have
// stayed (its SCardReconnect answers 0, and the other program's connect is the one refused): answered 0, said at debug.
test('R92: a card handle reconnected to DIRECT whose watch is refused (another program took the reader exclusively meanwhile) answers 0 and says so at debug', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false })], { historySize: 0, exchangeTimeoutMs: 1500 });
  await m.start();
  const logs: Array<[string, string]> = [];
  const b = new ManagerBackend(m, { log: (l, msg) => logs.push([l, msg]) });
  const [A] = m.list().readers.map((r) => r.name);
  try {
    const c = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    fake.heldElsewhere = true; // reaches pcscd once our card handle is let go
    assert.equal(await rvAfter(b.reconnect(c, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.ok(logs.some(([l, msg]) => l === 'debug' && /no watch on the reader after a reconnect to SCARD_SHARE_DIRECT/.test(msg)), `logged: ${JSON.stringify(logs)}`);
    assert.equal(await rvAfter(b.reconnect(c, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0x8010000b, 'its next reconnect: RFCheckSharing\'s refusal');
    fake.heldElsewhere = false;
    assert.equal(await rvAfter(b.disconnect(c, Disposition.SCARD_LEAVE_CARD)), 0);
  } finally {
    b.dispose();
    await m.stop();
  }
});

// R90: pcscd refuses every SCardConnect, SCARD_SHARE_DIRECT included, while another handle holds the reader exclusively
// (winscard.c 279–283: `rContext->contexts == PCSCLITE_SHARING_EXCLUSIVE_CONTEXT`, before the lock wait and the card).
// The fake's `heldElsewhere` is such a program of the machine: every connect, the watch's DIRECT one too, is refused.
test('R90: another program holds the system reader exclusively: a client\'s direct connect answers SCARD_E_SHARING_VIOLATION, as pcscd, and leaves nothing behind; once it lets go the next one connects; our own exclusive client refuses it too', async () => {
  const { fake, m, b, A, stop } = await systemService();
  try {
    fake.heldElsewhere = true;
    assert.equal(await rvAfter(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)), 0x8010000b, 'a direct connect beside another program\'s exclusive hold');
    assert.equal(await rvAfter(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 4)), 0x8010000b, 'a direct connect asking for RAW (winscard.c ~357 comes after the refusal)');
    assert.deepEqual(m.reader(A).clients ?? [], [], 'the refused handles are not listed on the reader');
    assert.deepEqual(ours(fake, R0), [], 'no handle of ours left in pcscd');
    fake.heldElsewhere = false; // the other program lets go
    const s = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3);
    assert.equal(s.activeProtocol, 1, 'the refused RAW connect did not set the reader\'s protocol to RAW');
    assert.equal(await rvAfter(b.disconnect(s.handle, Disposition.SCARD_LEAVE_CARD)), 0);
    await untilHolds(() => ours(fake, R0).length === 0, 'the driver let go of the card');
    const d = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    watchOn(fake, R0);
    assert.equal(await rvAfter(b.status(d.handle)), 0);
    assert.equal(await rvAfter(b.disconnect(d.handle, Disposition.SCARD_LEAVE_CARD)), 0);
    await untilHolds(() => ours(fake, R0).length === 0, 'the watch went with the direct handle');
    // Our own client holds it exclusively: pcscd's same check; no watch is tried (the service's own books refuse it).
    const e = await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, 3);
    const connects = fake.connects;
    assert.equal(await rvAfter(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)), 0x8010000b, 'a direct connect beside our own client\'s exclusive handle');
    assert.equal(fake.connects, connects, 'no connect of ours tried in pcscd');
    assert.equal(await rvAfter(b.disconnect(e.handle, Disposition.SCARD_LEAVE_CARD)), 0);
  } finally { await stop(); }
});

test('R90: a direct connect that could not try the watch within the look\'s time (a PIN entry of ours) answers 0; when the watch is then refused (another program took the reader exclusively), that handle\'s SCardReconnect and the next direct connect answer SCARD_E_SHARING_VIOLATION, as pcscd\'s RFCheckSharing and SCardConnect would', async () => {
  const fake = new SlowControlFake();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const logs: Array<[string, string]> = [];
  const m = new ReaderManager([createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], syncTransmit: false })], { historySize: 0, exchangeTimeoutMs: 300, log: (l, msg) => logs.push([l, msg]) });
  await m.start();
  const b = new ManagerBackend(m);
  const [A] = m.list().readers.map((r) => r.name);
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, 3)).handle;
    fake.slowMs = 700;
    const pin = b.control(s, 0x42000000 + 3400, new Uint8Array(0)).catch(() => undefined); // in the reader's chain
    await new Promise((r) => setTimeout(r, 20));
    fake.heldElsewhere = true; // by the time the watch's connect reaches pcscd
    // The watch could not be tried within the look's time: answered 0 (resolved), as before R90.
    const d = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    await pin;
    await untilHolds(() => logs.some(([l, msg]) => l === 'debug' && /no watch on/.test(msg)), 'the late watch refused, logged at debug');
    assert.equal(await rvAfter(b.disconnect(s, Disposition.SCARD_LEAVE_CARD)), 0);
    assert.equal(await rvAfter(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)), 0x8010000b, 'the next direct connect: the watch is tried, refused');
    assert.equal(await rvAfter(b.reconnect(d.handle, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0x8010000b, 'SCardReconnect(LEAVE) of the handle answered 0');
    const resets = fake.dispositions.length;
    assert.equal(await rvAfter(b.reconnect(d.handle, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD)), 0x8010000b, 'SCardReconnect(RESET)');
    assert.equal(fake.dispositions.length, resets, 'refused before any reset');
    assert.equal(await rvAfter(b.status(d.handle)), 0, 'not marked reset by the refused reconnect');
    fake.heldElsewhere = false; // the other program lets go
    assert.equal(await rvAfter(b.reconnect(d.handle, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD)), 0, 'after it let go');
    assert.equal(ours(fake, R0).filter(([, o]) => o.share === ShareMode.SCARD_SHARE_DIRECT).length, 1, 'the watch is open again');
  } finally {
    b.dispose();
    await m.stop();
  }
});

// ---- review 11 (the system driver on Windows and macOS): R94–R96 ------------------------------------------------

/** Apple's PC/SC: SCARD_SHARE_DIRECT with dwPreferredProtocols 0 is SCARD_E_INVALID_VALUE (libnfc #762, macOS 15.7). */
class AppleWinscard extends FakeWinscard {
  override async connect(ctx: Handle, reader: string, share: number, protocols?: number): Promise<{ handle: Handle; protocol: number }> {
    if (share === 3 && !protocols) throw new PcscError(0x80100011, 'SCardConnect');
    return super.connect(ctx, reader, share, protocols);
  }
  override async reconnect(card: Handle, share: number, protocols: number, init: number): Promise<number> {
    if (share === 3 && !protocols) throw new PcscError(0x80100011, 'SCardReconnect');
    return super.reconnect(card, share, protocols, init);
  }
}

test('R94: on macOS a direct connection names T=0|T=1 (Apple refuses 0): the facts of an empty reader and a control command without a card work; elsewhere it stays 0', async () => {
  for (const platform of ['darwin', 'linux', 'win32'] as const) {
    const fake = platform === 'darwin' ? new AppleWinscard() : new FakeWinscard();
    fake.readers.set(R1, { present: false, counter: 0 });
    const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], platform });
    await driver.start(new Sink());
    const facts = await driver.readerFacts(R1);
    assert.equal(facts.vendorName, 'ACS', `${platform}: the facts of an empty reader`);
    const features = parseFeatureList(await driver.control(R1, 3400, new Uint8Array(0)));
    assert.ok(features.length > 0, `${platform}: CM_IOCTL_GET_FEATURE_REQUEST without a card`);
    assert.deepEqual(fake.connectProtocols, platform === 'darwin' ? [3, 3] : [0, 0], `${platform}: dwPreferredProtocols of the direct connects`);
    await driver.stop();
  }
});

test('R95: on Windows a reader with a card is never opened SCARD_SHARE_DIRECT for our own calls (Windows gives that handle the reader alone): its facts at arrival and its features at the power-up come over a shared connection; an empty reader\'s over a direct one', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.readers.set(R1, { present: false, counter: 0 });
  const connects: string[] = [];
  const winscard = Object.assign(Object.create(fake) as FakeWinscard, {
    connect(ctx: Handle, reader: string, share: number, protocols?: number) {
      connects.push(`${reader === R0 ? 'R0' : 'R1'} ${share === 3 ? 'direct' : share === 2 ? 'shared' : 'exclusive'}`);
      return fake.connect(ctx, reader, share, protocols);
    },
  });
  const m = new ReaderManager([createPcscDriver({ winscard, reconnectDelaysMs: [5], platform: 'win32' })]);
  await m.start();
  try {
    const facts = new Map(m.list().readers.map((r) => [r.name.includes('PICC') ? 'R0' : 'R1', r.facts]));
    assert.equal(facts.get('R0')?.vendorName, 'ACS', 'the facts of the reader with a card, at arrival');
    assert.equal(facts.get('R1')?.vendorName, 'ACS', 'the facts of the empty reader, at arrival');
    assert.equal(fake.open.size, 0, 'the connections of the moment are closed again');
    const withCard = m.list().readers.find((r) => r.name.includes('PICC'))!.name;
    const c = await m.connect(withCard);
    await c.disconnect();
    assert.ok(connects.includes('R0 shared'), `the reader with a card was connected shared: ${connects.join(', ')}`);
    assert.ok(connects.includes('R1 direct'), 'the empty reader direct');
    assert.deepEqual(connects.filter((x) => x === 'R0 direct'), [], `no direct connection on the reader with a card: ${connects.join(', ')}`);
  } finally {
    await m.stop();
  }
  // pcsc-lite shares a direct handle: there the facts are read on one, card or not.
  const linux = new FakeWinscard();
  linux.readers.set(R0, { present: true, counter: 1 });
  const ml = new ReaderManager([createPcscDriver({ winscard: linux, reconnectDelaysMs: [5], platform: 'linux' })]);
  await ml.start();
  assert.equal(ml.list().readers[0].facts?.vendorName, 'ACS');
  assert.deepEqual(linux.attribShares, Array(7).fill(3), 'on a SCARD_SHARE_DIRECT connection');
  await ml.stop();
});

test('R95 (review 11b): on Windows a card a shared connect cannot take (mute, a memory card before its set-card-type escape, just pulled) still gets the reader call, on a direct connection', async () => {
  for (const refusal of [0x80100066, 0x8010000f, 0x8010000c]) { // UNRESPONSIVE_CARD, PROTO_MISMATCH, NO_SMARTCARD
    const fake = new FakeWinscard();
    fake.readers.set(R0, { present: true, counter: 1 });
    const shares: number[] = [];
    const winscard = Object.assign(Object.create(fake) as FakeWinscard, {
      connect(ctx: Handle, reader: string, share: number, protocols?: number) {
        shares.push(share);
        if (share === 2) return Promise.reject(new PcscError(refusal, 'SCardConnect'));
        return fake.connect(ctx, reader, share, protocols);
      },
    });
    const driver = createPcscDriver({ winscard, reconnectDelaysMs: [5], platform: 'win32' });
    await driver.start(new Sink());
    const facts = await driver.readerFacts(R0);
    assert.equal(facts.vendorName, 'ACS', `0x${refusal.toString(16)}: the facts`);
    await driver.control(R0, 3500, Uint8Array.of(0xff, 0x00, 0x00, 0x00, 0x00));
    assert.deepEqual(shares, [2, 3, 2, 3], `0x${refusal.toString(16)}: shared tried, then direct`);
    assert.equal(fake.open.size, 0, 'nothing left open');
    await driver.stop();
  }
  // Another program holds the card exclusively: that is not about the card, and is not worked around.
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  fake.heldElsewhere = true;
  const driver = createPcscDriver({ winscard: fake, reconnectDelaysMs: [5], platform: 'win32' });
  await driver.start(new Sink());
  await assert.rejects(driver.control(R0, 3400, new Uint8Array(0)), (e: ScError) => e.code === 'SHARING_VIOLATION');
  await driver.stop();
});

test('R96: SCardStatus\'s card state per platform: Windows\' values (SCARD_PRESENT 2, SCARD_SWALLOWED 3 … SCARD_SPECIFIC 6) and pcsc-lite\'s bit flags (SCARD_PRESENT 0x0004)', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((s) => cardInReader(s, 'win32')), [false, false, true, true, true, true, true]);
  // pcsc-lite: SCARD_ABSENT 0x0002, SCARD_PRESENT 0x0004, SCARD_SWALLOWED 0x0008, SCARD_POWERED 0x0010, SCARD_SPECIFIC 0x0040.
  assert.deepEqual([0x0002, 0x0004, 0x0004 | 0x0008, 0x0004 | 0x0010 | 0x0040].map((s) => cardInReader(s, 'linux')), [false, true, true, true]);
  assert.equal(cardInReader(0x0004 | 0x0010, 'darwin'), true);
});

test('R96: on Windows a failed exchange with the card still in the reader, unpowered by another program (SCardStatus: SCARD_PRESENT 2), is not called a removal', async () => {
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: true, counter: 1 });
  let fail = false;
  const winscard = Object.assign(Object.create(fake) as FakeWinscard, {
    async transmit(card: Handle, protocol: number, command: Uint8Array): Promise<Uint8Array> {
      if (fail) throw new PcscError(0x80100013, 'SCardTransmit'); // SCARD_F_COMM_ERROR
      return fake.transmit(card, protocol, command);
    },
    async statusAsync(): Promise<CardStatus> {
      return { reader: R0, state: 2, protocol: 2, atr: ATR };
    },
  });
  const driver = createPcscDriver({ winscard, reconnectDelaysMs: [5], platform: 'win32', syncTransmit: false });
  await driver.start(new Sink());
  await driver.powerOn(R0, 'cold');
  fail = true;
  await assert.rejects(driver.transmit(R0, Uint8Array.of(0, 0x84, 0, 0, 8), 1), (e: ScError) => e.code !== 'CARD_REMOVED' && !/removed/.test(e.message));
  await driver.stop();
});

test('R96: 0x8010001F is SCARD_E_UNSUPPORTED_FEATURE on pcsc-lite and macOS (pcsc-lite never returns SCARD_E_UNEXPECTED), SCARD_E_UNEXPECTED on Windows; Windows\' Win32 codes read as words', async () => {
  for (const platform of ['linux', 'darwin'] as const) {
    const e = toScError(new PcscError(0x8010001f, 'SCardControl'), 'Reader 00 00', platform);
    assert.equal(e.code, 'NOT_SUPPORTED', platform);
    assert.match(e.message, /does not support this .*\(SCARD_E_UNSUPPORTED_FEATURE\)/);
    assert.equal(pcscErrorName(0x8010001f, platform), 'SCARD_E_UNSUPPORTED_FEATURE');
  }
  const w = toScError(new PcscError(0x8010001f, 'SCardControl'), 'Reader 0', 'win32');
  assert.equal(w.code, 'DRIVER');
  assert.match(w.message, /SCARD_E_UNEXPECTED/);
  // Microsoft's usbccid answers an escape control code it was not allowed ERROR_INVALID_FUNCTION.
  const esc = toScError(new PcscError(0x1, 'SCardControl'), 'ACS ACR122 0', 'win32');
  assert.equal(esc.code, 'NOT_SUPPORTED');
  assert.match(esc.message, /EscapeCommandEnable .*\(ERROR_INVALID_FUNCTION\)/);
  assert.match(toScError(new PcscError(0x79, 'SCardTransmit'), 'R 0', 'win32').message, /did not answer in time \(ERROR_SEM_TIMEOUT\)/);
  // libpcsclite's own 0x8010001F outside a reader call (a reader list of another size than pcscd's): not "the reader".
  const list = toScError(new PcscError(0x8010001f, 'SCardListReaders'), undefined, 'linux');
  assert.equal(list.code, 'DRIVER');
  assert.doesNotMatch(list.message, /the reader/);
  assert.match(list.message, /SCARD_E_UNSUPPORTED_FEATURE/);
  // Through the driver: a control code the IFD handler does not know.
  const fake = new FakeWinscard();
  fake.readers.set(R0, { present: false, counter: 0 });
  const winscard = Object.assign(Object.create(fake) as FakeWinscard, {
    async control(): Promise<Uint8Array> { throw new PcscError(0x8010001f, 'SCardControl'); },
  });
  const driver = createPcscDriver({ winscard, reconnectDelaysMs: [5], platform: 'linux' });
  await driver.start(new Sink());
  await assert.rejects(driver.control(R0, 3500, Uint8Array.of(0xff, 0x00, 0x48, 0x00, 0x00)), (e: ScError) => e.code === 'NOT_SUPPORTED' && /SCARD_E_UNSUPPORTED_FEATURE/.test(e.message));
  await driver.stop();
});

test('R96: a PC/SC driver that cannot load says which: koffi built for another machine (install that machine\'s package) or the PC/SC library (per platform), never an npm command alone', async () => {
  const koffi = libraryLoadFailure('Cannot find the native Koffi module; did you bundle it correctly?', 'win32', 'arm64');
  assert.match(koffi, /package built for win32-arm64/);
  assert.match(koffi, /simulator and the other drivers work without it/);
  assert.doesNotMatch(koffi, /npm run/);
  assert.match(libraryLoadFailure('libpcsclite.so.1: cannot open shared object file', 'linux', 'x64'), /sudo apt install pcscd libpcsclite1/);
  assert.match(libraryLoadFailure('The specified module could not be found.', 'win32', 'x64'), /SCardSvr/);
  assert.doesNotMatch(libraryLoadFailure('dlopen failed', 'darwin', 'arm64'), /npm run|apt/);
  // koffi's module found but not loadable for another reason (a C library too old): not a wrong package.
  assert.doesNotMatch(libraryLoadFailure('/x/node_modules/koffi/build/koffi/linux_x64/koffi.node: version `GLIBC_2.34\' not found', 'linux', 'x64'), /package built for/);
  assert.match(libraryLoadFailure('Mismatched native Koffi modules', 'darwin', 'x64'), /package built for darwin-x64/);
  // The driver's start: the message reaches the caller as READER_UNAVAILABLE.
  const driver = createPcscDriver({ library: '/nonexistent/libpcsclite-none.so.1', reconnectDelaysMs: [5], platform: 'linux' });
  await assert.rejects(driver.start(new Sink()), (e: ScError) => e.code === 'READER_UNAVAILABLE' && /libpcsclite-none\.so\.1 could not be loaded/.test(e.message) && /apt install pcscd/.test(e.message));
});
