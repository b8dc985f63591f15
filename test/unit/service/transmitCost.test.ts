// What one TRANSMIT costs the service, in memory (issue 15, "Measured"): a PC/SC client's
// transmit loop through a ClientSession, the real backend on the reader manager (simulator
// driver) and the trace `scard serve` prints, as one process serves it. The number checked
// is the heap allocated per APDU (V8's collector statistics over 20,000 APDUs after a
// warm-up): it is what each APDU makes the collector pay, and unlike CPU time it does not
// swing with the machine's load. The replies are checked as they come, so a cheaper path
// that answers wrongly fails here too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import { BufferedOutput, entryPrinter } from '../../../server/src/script/trace';
import type { BackendHandle, CardBackend } from '../../../server/src/service/backend';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { PcscService } from '../../../server/src/service/session';
import { Command, encodeRequest, encodeStruct, HOST_LITTLE_ENDIAN, MAX_BUFFER_SIZE_EXTENDED, ProtocolBits, Rv, STRUCTS } from '../../../server/src/service/wire';

const READER = 'Workbench Simulator 00 00';
const SELECT_MF = Uint8Array.of(0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00); // the bench's APDU: 90 00, no data
const WARM_UP = 10_000;
const MEASURED = 20_000;
/**
 * Bytes of heap per APDU, measured under the test runner (its async hooks make every promise
 * dearer than in `scard serve`). Main at b6ade75: 11.8–11.9 KB; with the session's TRANSMIT
 * path, the backend's per-handle options and the trace's spaced hex: 8.0 KB. The rest is the
 * reader manager's (its promises, the log entry) and the test's own turn per APDU.
 */
const BUDGET_BYTES = 9_500;

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.length).getUint32(at, HOST_LITTLE_ENDIAN);

/** A 4:6 client's first calls through `ask` (version, a context, a shared T=1 connection to READER): its card handle. */
async function connectT1(ask: (bytes: Uint8Array) => Promise<Uint8Array>): Promise<number> {
  await ask(encodeRequest(Command.CMD_VERSION, encodeStruct('version_struct', { major: 4, minor: 6 })));
  const hContext = u32(await ask(encodeRequest(Command.SCARD_ESTABLISH_CONTEXT, encodeStruct('establish_struct', { dwScope: 2 }))), 4);
  const connected = await ask(encodeRequest(Command.SCARD_CONNECT, encodeStruct('connect_struct', {
    hContext, szReader: READER, dwShareMode: 2, dwPreferredProtocols: ProtocolBits.SCARD_PROTOCOL_T1,
  })));
  return u32(connected, STRUCTS.connect_struct.fields.hCard.offset);
}

test(`a TRANSMIT through the session, the manager and the trace allocates under ${BUDGET_BYTES} bytes of heap`, async () => {
  const sim = new SimulatorDriver({ readers: 1 });
  const m = new ReaderManager([sim], { historySize: 0 });
  await m.start();
  let traced = 0;
  const out = new BufferedOutput((text) => { traced += text.length; });
  const offTrace = m.onEntry(entryPrinter(out, false));
  const backend = new ManagerBackend(m);
  const service = new PcscService(backend);
  // The client: its replies are checked and the next request sent one event-loop turn later,
  // as a socket client's would be.
  let pending: (bytes: Uint8Array) => void = () => {};
  const session = service.newSession({
    send: (bytes) => { pending(bytes); return true; },
    close: (reason) => assert.fail(`the session closed the connection: ${reason}`),
  }, 'cost');
  const ask = (command: number, name: keyof typeof STRUCTS, value: Record<string, number | string>): Promise<Uint8Array> =>
    new Promise((resolve) => { pending = (b) => resolve(b.slice()); session.receive(encodeRequest(command, encodeStruct(name, value))); });

  await ask(Command.CMD_VERSION, 'version_struct', { major: 4, minor: 6 });
  const hContext = u32(await ask(Command.SCARD_ESTABLISH_CONTEXT, 'establish_struct', { dwScope: 2 }), 4);
  const connected = await ask(Command.SCARD_CONNECT, 'connect_struct', {
    hContext, szReader: READER, dwShareMode: 2, dwPreferredProtocols: ProtocolBits.SCARD_PROTOCOL_T1,
  });
  assert.equal(u32(connected, STRUCTS.connect_struct.fields.rv.offset), 0, 'connected');
  const hCard = u32(connected, STRUCTS.connect_struct.fields.hCard.offset);
  const request = encodeRequest(Command.SCARD_TRANSMIT, encodeStruct('transmit_struct', {
    hCard, ioSendPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioSendPciLength: 8, cbSendLength: SELECT_MF.length,
    ioRecvPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioRecvPciLength: 8, pcbRecvLength: 258,
  }), SELECT_MF);
  const F = STRUCTS.transmit_struct.fields;

  const loop = (n: number): Promise<void> => new Promise((resolve, reject) => {
    let left = n;
    const next = (): void => session.receive(request);
    pending = (b) => {
      // One write: the struct and the answer (90 00).
      if (b.length !== STRUCTS.transmit_struct.size + 2 || u32(b, F.rv.offset) !== 0 || u32(b, F.pcbRecvLength.offset) !== 2
        || b[b.length - 2] !== 0x90 || b[b.length - 1] !== 0x00 || u32(b, F.hCard.offset) !== hCard) {
        reject(new Error(`wrong TRANSMIT reply: ${Buffer.from(b).toString('hex')}`));
        return;
      }
      if (--left === 0) resolve();
      else setImmediate(next);
    };
    next();
  });

  try {
    await loop(WARM_UP);
    const profiler = new v8.GCProfiler();
    profiler.start();
    const before = v8.getHeapStatistics().used_heap_size;
    await loop(MEASURED);
    const after = v8.getHeapStatistics().used_heap_size;
    const stats = profiler.stop();
    let freed = 0;
    for (const s of stats.statistics) freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    const perApdu = (freed + after - before) / MEASURED;
    out.flush();
    assert.ok(traced > 0, 'the trace was printed');
    console.log(`# heap allocated per TRANSMIT: ${Math.round(perApdu)} bytes (${stats.statistics.length} collections over ${MEASURED} APDUs)`);
    assert.ok(perApdu < BUDGET_BYTES, `${Math.round(perApdu)} bytes of heap per TRANSMIT, budget ${BUDGET_BYTES}`);
  } finally {
    offTrace();
    service.dispose();
    backend.dispose();
    await m.stop();
  }
});

test('a TRANSMIT answer the transport still holds is never written over by the next one', async () => {
  const sim = new SimulatorDriver({ readers: 1 });
  const m = new ReaderManager([sim], { historySize: 0 });
  await m.start();
  const backend = new ManagerBackend(m);
  const service = new PcscService(backend);
  // A transport whose writes stay queued (a client that reads slowly): it keeps the very bytes
  // it was given and says it is not done with them.
  const held: Uint8Array[] = [];
  let arrived: () => void = () => {};
  const session = service.newSession({
    send: (bytes) => { held.push(bytes); arrived(); return false; },
    close: (reason) => assert.fail(`the session closed the connection: ${reason}`),
  }, 'slow');
  const ask = (bytes: Uint8Array): Promise<Uint8Array> => new Promise((resolve) => {
    const at = held.length;
    arrived = () => resolve(held[at]);
    session.receive(bytes);
  });
  try {
    const hCard = await connectT1(ask);
    const challenge = encodeRequest(Command.SCARD_TRANSMIT, encodeStruct('transmit_struct', {
      hCard, ioSendPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioSendPciLength: 8, cbSendLength: 5, pcbRecvLength: 258,
    }), Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08)); // GET CHALLENGE: 8 random bytes each time
    const replies: Uint8Array[] = [];
    const copies: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await ask(challenge);
      replies.push(r);
      copies.push(Buffer.from(r).toString('hex'));
    }
    assert.equal(new Set(copies.map((c) => c.slice(-20))).size, 20, 'twenty different challenges');
    replies.forEach((r, i) => assert.equal(Buffer.from(r).toString('hex'), copies[i], `reply ${i} unchanged after the later ones`));
  } finally {
    service.dispose();
    backend.dispose();
    await m.stop();
  }
});

test('answers of every size through the reused reply buffer: short, an extended one, short again, one too long for the client', async () => {
  // A card that answers each APDU with as many bytes as its P1 P2 ask (then 90 00): no simulator card answers 65,536 bytes.
  const backend: CardBackend = {
    readers: () => [{ name: READER, card: 'powered', eventCounter: 1, handles: 0, exclusive: false, atr: Uint8Array.of(0x3b, 0x00), protocol: ProtocolBits.SCARD_PROTOCOL_T1 }],
    onChange: () => () => {},
    connect: async () => ({ handle: {} as BackendHandle, activeProtocol: ProtocolBits.SCARD_PROTOCOL_T1 }),
    transmit: async (_h, _pci, apdu) => {
      const n = (apdu[2] << 8) | apdu[3];
      const out = new Uint8Array(n + 2);
      for (let i = 0; i < n; i++) out[i] = (i * 7 + n) & 0xff;
      out.set([0x90, 0x00], n);
      return out;
    },
    reconnect: async () => ({ activeProtocol: ProtocolBits.SCARD_PROTOCOL_T1 }),
    disconnect: async () => {}, beginTransaction: async () => {}, endTransaction: async () => {},
    control: async () => new Uint8Array(0), status: async () => {}, getAttrib: async () => new Uint8Array(0), setAttrib: async () => {},
    cancel: () => {}, abandon: async () => {},
  };
  const service = new PcscService(backend);
  const got: Uint8Array[] = [];
  let arrived: () => void = () => {};
  // Says it is done with every reply, as the socket does when nothing stays queued; keeps the bytes to check them later.
  const session = service.newSession({ send: (b) => { got.push(b.slice()); arrived(); return true; }, close: (r) => assert.fail(r) }, 'sizes');
  const ask = (bytes: Uint8Array): Promise<Uint8Array> => new Promise((resolve) => {
    const at = got.length;
    arrived = () => resolve(got[at]);
    session.receive(bytes);
  });
  try {
    const hCard = await connectT1(ask);
    const F = STRUCTS.transmit_struct.fields;
    const size = STRUCTS.transmit_struct.size;
    const transmit = (n: number, recv: number) => ask(encodeRequest(Command.SCARD_TRANSMIT, encodeStruct('transmit_struct', {
      hCard, ioSendPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioSendPciLength: 8, cbSendLength: 4, pcbRecvLength: recv,
    }), Uint8Array.of(0x00, 0xb0, n >> 8, n & 0xff)));
    const check = (r: Uint8Array, n: number, what: string) => {
      assert.equal(u32(r, F.rv.offset), 0, what);
      assert.equal(u32(r, F.pcbRecvLength.offset), n + 2, what);
      assert.equal(r.length, size + n + 2, `${what}: the struct and the answer, nothing more`);
      for (let i = 0; i < n; i++) if (r[size + i] !== ((i * 7 + n) & 0xff)) assert.fail(`${what}: byte ${i}`);
      assert.deepEqual([...r.subarray(-2)], [0x90, 0x00], what);
    };
    check(await transmit(2, 258), 2, 'short');
    const longest = MAX_BUFFER_SIZE_EXTENDED - 12; // 65,536 bytes of data + SW, as an extended Le asks
    check(await transmit(longest - 2, MAX_BUFFER_SIZE_EXTENDED), longest - 2, 'extended');
    check(await transmit(0xff, 258), 0xff, 'short again, after the large buffer');
    check(await transmit(3, 258), 3, 'shorter still');
    const tooLong = await transmit(300, 258);
    assert.equal(u32(tooLong, F.rv.offset), Rv.SCARD_E_INSUFFICIENT_BUFFER, 'longer than the client\'s buffer');
    assert.equal(u32(tooLong, F.pcbRecvLength.offset), 302, 'the length it would need');
    assert.equal(tooLong.length, size, 'no answer bytes after the struct');
    check(await transmit(1, 258), 1, 'and on');
  } finally {
    service.dispose();
  }
});
