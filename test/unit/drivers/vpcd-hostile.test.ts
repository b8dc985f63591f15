// The vpcd driver against hostile card emulators (plain sockets on loopback):
// after each misbehaviour the reader logs it, drops the peer and a well-behaved
// peer works again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createVpcdDriver } from '../../../server/src/drivers/vpcd/driver';
import { encodeFrame, FrameDecoder } from '../../../server/src/drivers/vpcd/framing';
import type { Driver, DriverSink, LogLevel, SlotDescriptor } from '../../../server/src/drivers/driver';
import { ScError } from '../../../server/src/util/errors';
import { toSpacedHex } from '../../../server/src/util/hex';
import { freePort } from '../../support/net';

const ATR = Uint8Array.from([0x3b, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xff, 0x01, 0x00, 0x0b]);

/** Records driver events; `next(kind)` resolves on the next event of that kind. */
class RecordingSink implements DriverSink {
  readonly slots: SlotDescriptor[] = [];
  readonly logs: { level: LogLevel; message: string }[] = [];
  present = false;
  inserted = 0;
  removed = 0;
  private waiters: { kind: string; resolve: () => void }[] = [];
  slotAdded(slot: SlotDescriptor): void { this.slots.push(slot); }
  slotRemoved(): void { this.fire('slotRemoved'); }
  cardInserted(): void { this.present = true; this.inserted++; this.fire('inserted'); }
  cardRemoved(): void { this.present = false; this.removed++; this.fire('removed'); }
  log(level: LogLevel, message: string): void { this.logs.push({ level, message }); this.fire('log'); }
  next(kind: 'inserted' | 'removed' | 'log'): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }
  /** Resolves once `cond` holds, re-checked on every event. */
  async until(cond: () => boolean): Promise<void> {
    while (!cond()) await new Promise<void>((resolve) => this.waiters.push({ kind: '*', resolve }));
  }
  private fire(kind: string): void {
    const ready = this.waiters.filter((w) => w.kind === kind || w.kind === '*');
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}


/** A well-behaved card emulator: answers GET ATR with the ATR and every APDU with its INS + 90 00. */
async function goodPeer(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const decoder = new FrameDecoder();
  socket.on('data', (d) => {
    for (const f of decoder.push(d)) {
      if (f.length === 1 && f[0] === 0x04) socket.write(encodeFrame(ATR));
      else if (f.length > 1) socket.write(encodeFrame(Uint8Array.of(f[1], 0x90, 0x00)));
    }
  });
  socket.on('error', () => undefined);
  return socket;
}

async function closePeer(socket: net.Socket): Promise<void> {
  if (socket.destroyed) return;
  socket.end();
  socket.destroy();
  await once(socket, 'close');
}

let driver: Driver;
let sink: RecordingSink;
let port: number;
let key: string;

before(async () => {
  port = await freePort();
  key = `vpcd:${port}`;
  sink = new RecordingSink();
  driver = createVpcdDriver({ ports: [port], responseTimeoutMs: 300 });
  await driver.start(sink);
});
after(async () => {
  await driver.stop();
});

/** The reader works with a good peer, then the peer leaves and the card is removed. */
async function assertReaderWorks(): Promise<void> {
  await sink.until(() => !sink.present);
  const inserted = sink.next('inserted');
  const peer = await goodPeer(port);
  await inserted;
  const atr = await driver.powerOn(key, 'cold');
  assert.equal(toSpacedHex(atr), toSpacedHex(ATR));
  const r = await driver.transmit(key, Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08), 1);
  assert.deepEqual([...r], [0x84, 0x90, 0x00]);
  const removed = sink.next('removed');
  await closePeer(peer);
  await removed;
}

test('reports one slot on loopback with a free port', () => {
  assert.equal(sink.slots.length, 1);
  assert.equal(sink.slots[0].key, key);
  assert.equal(sink.slots[0].name, 'Virtual PCD');
  assert.equal(sink.slots[0].cardPresent, false);
  assert.equal(sink.slots[0].unavailable, undefined);
});

test('a well-behaved peer works: insert, power on, transmit, remove', async () => {
  await assertReaderWorks();
});

test('no card: power on fails with NO_CARD', async () => {
  await assert.rejects(driver.powerOn(key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD');
});

test('a second peer while one is connected is refused with a log line', async () => {
  const inserted = sink.next('inserted');
  const first = await goodPeer(port);
  await inserted;
  const second = net.connect(port, '127.0.0.1');
  second.on('error', () => undefined);
  await once(second, 'close');
  assert.ok(sink.logs.some((l) => l.level === 'warn' && /refused/.test(l.message)));
  assert.equal(sink.present, true);
  const atr = await driver.powerOn(key, 'cold');
  assert.equal(atr.length, ATR.length);
  const removed = sink.next('removed');
  await closePeer(first);
  await removed;
  await assertReaderWorks();
});

test('length 65535 with no body: TIMEOUT, peer dropped, reader usable', async () => {
  const inserted = sink.next('inserted');
  const peer = net.connect(port, '127.0.0.1');
  peer.on('error', () => undefined);
  peer.on('data', () => peer.write(Buffer.from([0xff, 0xff])));
  await inserted;
  const removed = sink.next('removed');
  await assert.rejects(driver.powerOn(key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'TIMEOUT' && /partial reply/.test(e.message));
  await removed;
  assert.ok(sink.logs.some((l) => l.level === 'warn' && /partial reply \(2 of 65537 bytes\)/.test(l.message)));
  await once(peer, 'close');
  await assertReaderWorks();
});

test('a peer answering one byte a second times out and is dropped', async () => {
  const inserted = sink.next('inserted');
  const peer = net.connect(port, '127.0.0.1');
  peer.on('error', () => undefined);
  const reply = encodeFrame(ATR);
  let timer: NodeJS.Timeout | undefined;
  peer.once('data', () => {
    let i = 0;
    const drip = () => {
      if (peer.destroyed || i >= reply.length) return;
      peer.write(reply.subarray(i, i + 1));
      i++;
      timer = setTimeout(drip, 1000);
    };
    drip();
  });
  await inserted;
  const removed = sink.next('removed');
  await assert.rejects(driver.powerOn(key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'TIMEOUT');
  await removed;
  clearTimeout(timer);
  peer.destroy();
  await assertReaderWorks();
});

test('garbage nobody asked for is logged and the peer dropped', async () => {
  const inserted = sink.next('inserted');
  const peer = net.connect(port, '127.0.0.1');
  peer.on('error', () => undefined);
  await inserted;
  const removed = sink.next('removed');
  peer.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await removed;
  assert.ok(sink.logs.some((l) => /nobody asked for \(47 45 54/.test(l.message)));
  await assertReaderWorks();
});

test('garbage as a reply: a frame plus trailing bytes drops the peer', async () => {
  const inserted = sink.next('inserted');
  const peer = net.connect(port, '127.0.0.1');
  peer.on('error', () => undefined);
  peer.on('data', () => peer.write(Buffer.concat([encodeFrame(ATR), Buffer.from([1, 2, 3])])));
  await inserted;
  const removed = sink.next('removed');
  await assert.rejects(driver.powerOn(key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'CARD_REMOVED');
  await removed;
  assert.ok(sink.logs.some((l) => /more than one reply/.test(l.message)));
  await assertReaderWorks();
});

test('an empty ATR is a PROTOCOL error', async () => {
  const inserted = sink.next('inserted');
  const peer = net.connect(port, '127.0.0.1');
  peer.on('error', () => undefined);
  peer.on('data', () => peer.write(encodeFrame(new Uint8Array(0))));
  await inserted;
  await assert.rejects(driver.powerOn(key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'PROTOCOL');
  await sink.until(() => !sink.present);
  await assertReaderWorks();
});

test('the peer leaving mid-command gives CARD_REMOVED', async () => {
  const inserted = sink.next('inserted');
  const peer = net.connect(port, '127.0.0.1');
  peer.on('error', () => undefined);
  const decoder = new FrameDecoder();
  peer.on('data', (d) => {
    for (const f of decoder.push(d)) {
      if (f.length === 1 && f[0] === 0x04) peer.write(encodeFrame(ATR));
      else if (f.length > 1) peer.destroy(); // vanish instead of answering
    }
  });
  await inserted;
  await driver.powerOn(key, 'cold');
  await assert.rejects(driver.transmit(key, Uint8Array.of(0, 0xb0, 0, 0, 0), 1), (e: unknown) => e instanceof ScError && e.code === 'CARD_REMOVED');
  await sink.until(() => !sink.present);
  await assertReaderWorks();
});

test('200 rapid connect/disconnect cycles leave the reader usable', async () => {
  const before = { inserted: sink.inserted, removed: sink.removed };
  for (let i = 0; i < 200; i++) {
    const inserted = sink.next('inserted');
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    await inserted;
    const removed = sink.next('removed');
    s.destroy();
    await removed;
  }
  assert.equal(sink.inserted - before.inserted, 200);
  assert.equal(sink.removed - before.removed, 200);
  await assertReaderWorks();
});

test('a burst of overlapping connections: extra ones refused, reader usable after', async () => {
  const sockets = Array.from({ length: 30 }, () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    return s;
  });
  await Promise.all(sockets.map((s) => once(s, 'connect')));
  // FIFO accept: once a sentinel is really served, every earlier connection was handled.
  for (const s of sockets) s.destroy();
  for (;;) {
    await sink.until(() => !sink.present);
    const inserted = sink.next('inserted');
    const peer = await goodPeer(port);
    const refused = once(peer, 'close').then(() => 'closed' as const);
    if ((await Promise.race([inserted.then(() => 'inserted' as const), refused])) === 'closed') continue;
    const ok = await driver.powerOn(key, 'cold').then(() => true, () => false);
    const removed = sink.next('removed');
    await closePeer(peer);
    if (ok) {
      await removed;
      break;
    }
  }
  assert.equal(sink.inserted, sink.removed);
  await assertReaderWorks();
});

test('commands shorter than an APDU header are refused before reaching the peer', async () => {
  await assert.rejects(driver.transmit(key, Uint8Array.of(0x00), 1), (e: unknown) => e instanceof ScError && e.code === 'BAD_REQUEST');
});

test('control: the feature request answers an empty list, other codes are not supported', async () => {
  assert.equal((await driver.control(key, 3400, new Uint8Array(0))).length, 0);
  assert.equal((await driver.control(key, 0x42000000 + 3400, new Uint8Array(0))).length, 0);
  await assert.rejects(driver.control(key, 1, new Uint8Array(0)), (e: unknown) => e instanceof ScError && e.code === 'NOT_SUPPORTED');
});

test('a port already in use gives an unavailable slot that says what to do', async () => {
  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const busy = (blocker.address() as net.AddressInfo).port;
  const other = new RecordingSink();
  const d = createVpcdDriver({ ports: [busy] });
  try {
    await d.start(other);
    assert.equal(other.slots.length, 1);
    assert.match(other.slots[0].unavailable ?? '', new RegExp(`Port ${busy} is in use.*smartcard\\.vpcd\\.ports`));
    await assert.rejects(d.powerOn(`vpcd:${busy}`, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'READER_UNAVAILABLE');
  } finally {
    await d.stop();
    await new Promise((r) => blocker.close(r));
  }
});

test('commands sent together go one at a time, in order; a peer lost mid-command fails the waiting ones too', async () => {
  await sink.until(() => !sink.present);
  const inserted = sink.next('inserted');
  const peer = await goodPeer(port);
  await inserted;
  await driver.powerOn(key, 'cold');
  // Five at once: each frame reaches the peer only after the answer to the one before.
  const answers = await Promise.all([1, 2, 3, 4, 5].map((ins) => driver.transmit(key, Uint8Array.of(0x00, ins, 0x00, 0x00), 1)));
  assert.deepEqual(answers.map((a) => a[0]), [1, 2, 3, 4, 5]);
  // A peer that reads a command and leaves: the one sent fails CARD_REMOVED, the one waiting NO_CARD; nothing hangs.
  peer.removeAllListeners('data');
  peer.once('data', () => peer.destroy());
  const removed = sink.next('removed');
  const sent = driver.transmit(key, Uint8Array.of(0x00, 0x10, 0x00, 0x00), 1);
  const waiting = driver.transmit(key, Uint8Array.of(0x00, 0x11, 0x00, 0x00), 1);
  await assert.rejects(sent, (e: unknown) => e instanceof ScError && e.code === 'CARD_REMOVED');
  await assert.rejects(waiting, (e: unknown) => e instanceof ScError && e.code === 'NO_CARD');
  await removed;
  // The slot is free again: a new peer works.
  await assertReaderWorks();
});
