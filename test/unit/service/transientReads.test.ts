// The session fed from a read buffer the transport reuses (issue 15, "Measured": the server
// reads every connection into one buffer of its own, server/src/service/socketRead.ts). The
// bytes a read hands over are good only during the call: whatever the session keeps past it
// (half a message, the messages behind a request that waits on the card) must be its own
// copy. Here every read is a view of one buffer that is written over with 0xEE as soon as
// the session returns, and the replies must still be exact: several messages in one read,
// half messages, a 65,548-byte TRANSMIT split over reads, a client that sends 1 byte at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { BackendHandle, CardBackend } from '../../../server/src/service/backend';
import { startPcscServer } from '../../../server/src/service/server';
import { startReading } from '../../../server/src/service/socketRead';
import { PcscService } from '../../../server/src/service/session';
import {
  Command, RequestDecoder, encodeRequest, encodeStruct, HOST_LITTLE_ENDIAN, MAX_BUFFER_SIZE_EXTENDED, ProtocolBits, STRUCTS,
} from '../../../server/src/service/wire';

const READER = 'Workbench Simulator 00 00';
const READ_BUFFER = 64 * 1024;
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.length).getUint32(at, HOST_LITTLE_ENDIAN);

/** The card's answer to any APDU: its length and the sum of its bytes (4 bytes each), then 90 00. */
function digest(apdu: Uint8Array): Uint8Array {
  let sum = 0;
  for (const b of apdu) sum = (sum + b) >>> 0;
  const out = new Uint8Array(10);
  const v = new DataView(out.buffer);
  v.setUint32(0, apdu.length);
  v.setUint32(4, sum);
  out.set([0x90, 0x00], 8);
  return out;
}

/** A backend whose card answers every APDU with its digest, one microtask later (as a driver would). */
function digestBackend(): CardBackend {
  return {
    readers: () => [{ name: READER, card: 'powered', eventCounter: 1, handles: 0, exclusive: false, atr: Uint8Array.of(0x3b, 0x00), protocol: ProtocolBits.SCARD_PROTOCOL_T1 }],
    onChange: () => () => {},
    connect: async () => ({ handle: {} as BackendHandle, activeProtocol: ProtocolBits.SCARD_PROTOCOL_T1 }),
    transmit: async (_h, _pci, apdu) => digest(apdu),
    reconnect: async () => ({ activeProtocol: ProtocolBits.SCARD_PROTOCOL_T1 }),
    disconnect: async () => {}, beginTransaction: async () => {}, endTransaction: async () => {},
    control: async () => new Uint8Array(0), status: async () => {}, getAttrib: async () => new Uint8Array(0), setAttrib: async () => {},
    cancel: () => {}, abandon: async () => {},
  };
}

function harness() {
  const service = new PcscService(digestBackend());
  const replies: Uint8Array[] = [];
  let arrived: () => void = () => {};
  let closed: string | null = null;
  let paused = false;
  const session = service.newSession({
    send: (b) => { replies.push(new Uint8Array(b)); arrived(); return true; }, // a copy (a Buffer's slice() is a view)
    close: (reason) => { closed = reason; },
    pause: () => { paused = true; },
    resume: () => { paused = false; },
  }, 'transient');
  // One buffer for every read, as the server's; scribbled over once the session returns.
  const shared = Buffer.allocUnsafeSlow(READ_BUFFER);
  let reads = 0;
  /** `bytes` as reads of the given sizes (the last size repeats), each a view of the shared buffer. */
  const feed = (bytes: Uint8Array, sizes: number[]): void => {
    let at = 0;
    let i = 0;
    while (at < bytes.length) {
      const n = Math.min(sizes[Math.min(i++, sizes.length - 1)], bytes.length - at, READ_BUFFER);
      // Not always at offset 0: a read lands where the buffer starts, but a stale view may point anywhere.
      shared.set(bytes.subarray(at, at + n), 0);
      session.receive(shared.subarray(0, n), true);
      shared.fill(0xee);
      reads++;
      at += n;
    }
  };
  /** Resolves when `n` replies in all have come. */
  const replied = (n: number): Promise<void> => new Promise((resolve, reject) => {
    const check = () => {
      if (closed !== null) reject(new Error(`the session closed the connection: ${closed}`));
      else if (replies.length >= n) resolve();
      else arrived = check;
    };
    check();
  });
  return { service, session, replies, feed, replied, get reads() { return reads; }, get paused() { return paused; }, get closed() { return closed; } };
}

const transmitRequest = (hCard: number, apdu: Uint8Array, recv = 258) => encodeRequest(Command.SCARD_TRANSMIT, encodeStruct('transmit_struct', {
  hCard, ioSendPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioSendPciLength: 8, cbSendLength: apdu.length,
  ioRecvPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioRecvPciLength: 8, pcbRecvLength: recv,
}), apdu);

function apduOf(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  a.set([0x00, 0xb0, seed & 0xff, 0x00]);
  return a;
}

function checkTransmitReply(r: Uint8Array, apdu: Uint8Array, what: string): void {
  const F = STRUCTS.transmit_struct.fields;
  const size = STRUCTS.transmit_struct.size;
  assert.equal(u32(r, F.rv.offset), 0, `${what}: rv`);
  assert.equal(r.length, size + 10, `${what}: the struct and the answer`);
  assert.deepEqual([...r.subarray(size)], [...digest(apdu)], `${what}: the card got the APDU as sent (length and sum)`);
}

test('reads from one reused buffer: several messages in one read, half messages, 1 byte at a time, a 65,548-byte TRANSMIT over reads', async () => {
  const h = harness();
  try {
    // VERSION and ESTABLISH_CONTEXT in one read (both answered at once).
    const version = encodeRequest(Command.CMD_VERSION, encodeStruct('version_struct', { major: 4, minor: 4 }));
    const establish = encodeRequest(Command.SCARD_ESTABLISH_CONTEXT, encodeStruct('establish_struct', { dwScope: 2 }));
    h.feed(Uint8Array.from([...version, ...establish]), [version.length + establish.length]);
    await h.replied(2);
    assert.equal(u32(h.replies[0], 8), 0, 'version accepted');
    const hContext = u32(h.replies[1], 4);
    assert.notEqual(hContext, 0);

    // CONNECT one byte at a time: every read but the last leaves half a message behind.
    const connect = encodeRequest(Command.SCARD_CONNECT, encodeStruct('connect_struct', {
      hContext, szReader: READER, dwShareMode: 2, dwPreferredProtocols: ProtocolBits.SCARD_PROTOCOL_T1,
    }));
    h.feed(connect, [1]);
    await h.replied(3);
    const C = STRUCTS.connect_struct.fields;
    assert.equal(u32(h.replies[2], C.rv.offset), 0, 'connected');
    const hCard = u32(h.replies[2], C.hCard.offset) | 0;

    // Three TRANSMITs and half of a fourth in one read: the first goes to the card, the rest wait
    // in the session (kept past the read) while it is busy; then the fourth's rest, 1 byte at a time.
    const apdus = [apduOf(7, 1), apduOf(300, 2), apduOf(12, 3), apduOf(200, 4)];
    const reqs = apdus.map((a) => transmitRequest(hCard, a));
    const half = Math.floor(reqs[3].length / 2);
    h.feed(Uint8Array.from([...reqs[0], ...reqs[1], ...reqs[2], ...reqs[3].subarray(0, half)]), [READ_BUFFER]);
    h.feed(reqs[3].subarray(half), [1]);
    await h.replied(7);
    apdus.forEach((a, i) => checkTransmitReply(h.replies[3 + i], a, `TRANSMIT ${i + 1}`));

    // libpcsclite's three writes (header, struct, data) as three reads; then the longest TRANSMIT
    // (65,548 bytes of data) over reads of 8, 32, 30,000 and the rest.
    const short = apduOf(5, 5);
    const r5 = transmitRequest(hCard, short);
    h.feed(r5, [8, STRUCTS.transmit_struct.size, 5]);
    const longest = apduOf(MAX_BUFFER_SIZE_EXTENDED, 6);
    const r6 = transmitRequest(hCard, longest, MAX_BUFFER_SIZE_EXTENDED);
    h.feed(r6, [8, STRUCTS.transmit_struct.size, 30_000, READ_BUFFER]);
    // And one more behind it in the same reads' tail: a whole short TRANSMIT in a read of its own.
    const last = apduOf(9, 7);
    h.feed(transmitRequest(hCard, last), [READ_BUFFER]);
    await h.replied(10);
    checkTransmitReply(h.replies[7], short, 'TRANSMIT in three reads');
    checkTransmitReply(h.replies[8], longest, 'the 65,548-byte TRANSMIT');
    checkTransmitReply(h.replies[9], last, 'the TRANSMIT after it');
    assert.equal(h.replies.length, 10, 'one reply per request, nothing more');
    assert.equal(h.closed, null);
    await new Promise((resolve) => setImmediate(resolve)); // the session's continuations after the last reply
    assert.equal(h.paused, false, 'reading again once every request is answered');
  } finally {
    h.service.dispose();
  }
});

test('a client that leaves after half a message: the session\'s note on it reads its own copy, not the reused buffer', async () => {
  const logs: string[] = [];
  const service = new PcscService(digestBackend(), (_l, m) => logs.push(m));
  const session = service.newSession({ send: () => true, close: () => {} }, 'half');
  const shared = Buffer.allocUnsafeSlow(READ_BUFFER);
  const version = encodeRequest(Command.CMD_VERSION, encodeStruct('version_struct', { major: 4, minor: 4 }));
  shared.set(version.subarray(0, 11), 0);
  session.receive(shared.subarray(0, 11), true);
  shared.fill(0xee);
  session.ended();
  assert.ok(logs.some((l) => /left after 11 bytes of CMD_VERSION/.test(l)), logs.join('\n'));
  service.dispose();
});

// ---- over a real socket, both ways of reading ----------------------------------------------

/** A raw client: writes bytes as told, reads replies of known sizes. */
class RawClient {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (b: Buffer) => { this.buf = Buffer.concat([this.buf, b]); this.wake?.(); });
    socket.on('close', () => { this.closed = true; this.wake?.(); });
    socket.on('error', () => {});
  }
  static connect(p: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(p);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  /** Writes `bytes` in pieces of the given sizes (the last repeats), each once the previous is in the kernel and the loop has turned. */
  async write(bytes: Uint8Array, sizes: number[] = [bytes.length]): Promise<void> {
    let at = 0;
    let i = 0;
    while (at < bytes.length) {
      const n = Math.min(sizes[Math.min(i++, sizes.length - 1)], bytes.length - at);
      await new Promise<void>((resolve, reject) => this.socket.write(bytes.subarray(at, at + n), (e) => (e ? reject(e) : resolve())));
      await new Promise((resolve) => setImmediate(resolve)); // the service's poll phase reads it on its own
      at += n;
    }
  }
  /** The next `n` bytes (bounded wait). */
  async read(n: number, what: string): Promise<Uint8Array> {
    const deadline = Date.now() + 5000;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`${what}: connection closed after ${this.buf.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: ${this.buf.length} of ${n} bytes after 5 s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
      });
    }
    const out = new Uint8Array(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    return out;
  }
}

for (const mode of ['own-buffer', 'stream'] as const) {
  test(`over the socket, read ${mode === 'own-buffer' ? 'into the one reused buffer (what this Node does)' : 'through Node\'s streams (the fallback)'}: the same exact framing`, async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-reads-'));
    const service = new PcscService(digestBackend());
    const server = await startPcscServer(service, { socketPath: path.join(tmp, 'sock', 'pcscd.comm'), streamReads: mode === 'stream' });
    try {
      const c = await RawClient.connect(server.socketPath);
      const version = encodeRequest(Command.CMD_VERSION, encodeStruct('version_struct', { major: 4, minor: 4 }));
      const establish = encodeRequest(Command.SCARD_ESTABLISH_CONTEXT, encodeStruct('establish_struct', { dwScope: 2 }));
      await c.write(Uint8Array.from([...version, ...establish]));
      await c.read(STRUCTS.version_struct.size, 'version');
      const hContext = u32(await c.read(STRUCTS.establish_struct.size, 'establish'), 4);
      assert.equal(server.readMode, mode, 'how the service reads this client');

      await c.write(encodeRequest(Command.SCARD_CONNECT, encodeStruct('connect_struct', {
        hContext, szReader: READER, dwShareMode: 2, dwPreferredProtocols: ProtocolBits.SCARD_PROTOCOL_T1,
      })), [1]);
      const connected = await c.read(STRUCTS.connect_struct.size, 'connect');
      assert.equal(u32(connected, STRUCTS.connect_struct.fields.rv.offset), 0, 'connected');
      const hCard = u32(connected, STRUCTS.connect_struct.fields.hCard.offset) | 0;
      const size = STRUCTS.transmit_struct.size;

      // Three and a half TRANSMITs in one write, the rest of the fourth 1 byte at a time.
      const apdus = [apduOf(7, 1), apduOf(300, 2), apduOf(12, 3), apduOf(200, 4)];
      const reqs = apdus.map((a) => transmitRequest(hCard, a));
      const half = Math.floor(reqs[3].length / 2);
      await c.write(Uint8Array.from([...reqs[0], ...reqs[1], ...reqs[2], ...reqs[3].subarray(0, half)]));
      await c.write(reqs[3].subarray(half), [1]);
      for (const [i, a] of apdus.entries()) checkTransmitReply(await c.read(size + 10, `TRANSMIT ${i + 1}`), a, `TRANSMIT ${i + 1}`);

      // The longest TRANSMIT as libpcsclite writes it (header, struct, data), the data over two writes.
      const longest = apduOf(MAX_BUFFER_SIZE_EXTENDED, 6);
      await c.write(transmitRequest(hCard, longest, MAX_BUFFER_SIZE_EXTENDED), [8, size, 30_000, 65_536]);
      checkTransmitReply(await c.read(size + 10, 'the 65,548-byte TRANSMIT'), longest, 'the 65,548-byte TRANSMIT');

      // 300 TRANSMITs in one write, without reading between: the service pauses its reads and goes on.
      const many = Array.from({ length: 300 }, (_, i) => apduOf(5 + (i % 40), i));
      const all = Buffer.concat(many.map((a) => transmitRequest(hCard, a)));
      await c.write(all);
      for (const [i, a] of many.entries()) checkTransmitReply(await c.read(size + 10, `pipelined ${i}`), a, `pipelined ${i}`);

      // The client leaves: its connection ends on the service's side too.
      const gone = new Promise<void>((resolve) => { const off = server.onConnections((n) => { if (n === 0) { off(); resolve(); } }); });
      c.socket.end();
      await gone;
      assert.equal(service.sessions.size, 0, 'the session ended');
    } finally {
      await server.close();
      service.dispose();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test('a message dripped 1 byte per read stays linear: the decoder keeps a bounded number of pieces (outside review 6, F1)', () => {
  const decoder = new RequestDecoder();
  const message = transmitRequest(1, apduOf(4000, 9), 4000);
  const shared = new Uint8Array(16);
  let most = 0;
  for (let i = 0; i < message.length - 1; i++) {
    shared[0] = message[i];
    decoder.push(shared.subarray(0, 1));
    assert.equal(decoder.next(), null, `byte ${i}: not a whole message yet`);
    decoder.retain(shared.buffer);
    shared[0] = 0xee;
    most = Math.max(most, (decoder as unknown as { chunks: unknown[] }).chunks.length);
  }
  assert.ok(most <= 128, `pieces held at once: ${most} (each read a piece of its own made every later read cost more)`);
  shared[0] = message[message.length - 1];
  decoder.push(shared.subarray(0, 1));
  const d = decoder.next();
  assert.ok(d && !('error' in d), 'the whole TRANSMIT decoded');
  const data = (d as { request: { data: Uint8Array } }).request.data;
  assert.deepEqual(digest(data), digest(apduOf(4000, 9)), 'every byte as sent');
});

/** A client socket and the server's side of it, accepted paused (as the service's server accepts) and not read yet. */
async function acceptedPair(): Promise<{ c: net.Socket; s: net.Socket; done: () => void }> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-accept-'));
  const server = net.createServer({ pauseOnConnect: true });
  const sock = path.join(tmp, 's');
  await new Promise<void>((r) => server.listen(sock, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const c = net.connect(sock);
  const s = await accepted;
  return { c, s, done: () => { c.destroy(); s.destroy(); server.close(); fs.rmSync(tmp, { recursive: true, force: true }); } };
}

test('a read\'s bytes are wiped from the one reused buffer once the session has them: a VERIFY\'s PIN does not stay there (outside review 6, F3)', async () => {
  const { c, s, done } = await acceptedPair();
  const views: Uint8Array[] = [];
  try {
    const got = new Promise<void>((resolve) => {
      const mode = startReading(s, (bytes, transient) => {
        assert.equal(transient, true);
        views.push(bytes);
        if (views.length === 1) resolve();
      });
      assert.equal(mode, 'own-buffer');
    });
    // A VERIFY's PIN as a client sends it.
    c.write(Uint8Array.of(0x00, 0x20, 0x00, 0x81, 0x08, 0x31, 0x32, 0x33, 0x34, 0xff, 0xff, 0xff, 0xff));
    await got;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([...views[0]], new Array(13).fill(0), 'the shared buffer no longer holds the bytes of the read');
  } finally {
    done();
  }
});

test('a handle that refuses the buffer (useUserBuffer answers an error code) is read through Node\'s streams (outside review 6, F2)', async () => {
  const { c, s, done } = await acceptedPair();
  try {
    const handle = (s as unknown as { _handle: { useUserBuffer: (b: Uint8Array) => number } })._handle;
    handle.useUserBuffer = () => -22; // EINVAL, as another runtime might answer
    const got = new Promise<Uint8Array>((resolve) => {
      const mode = startReading(s, (bytes) => resolve(Uint8Array.from(bytes)));
      assert.equal(mode, 'stream', 'refused: the normal reads');
    });
    c.write(Uint8Array.of(1, 2, 3, 4, 5));
    assert.deepEqual([...(await got)], [1, 2, 3, 4, 5]);
  } finally {
    done();
  }
});
