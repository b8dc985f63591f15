// Hostile card emulators seen from the helper (language server + reader
// manager over in-memory streams, as the extension drives it) with a vpcd
// reader: the manager's side of what test/unit/drivers/vpcd-hostile.test.ts
// checks at the driver. Event counters must count every insertion and removal
// exactly once, runs must end with a clear error, memory and handles must stay
// flat over 1,000 connect/disconnect cycles, and the reader must work after.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createConnection } from 'vscode-languageserver/node';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import { createHelper } from '../../../server/src/lsp/server';
import { createVpcdDriver } from '../../../server/src/drivers/vpcd/driver';
import { encodeFrame, FrameDecoder } from '../../../server/src/drivers/vpcd/framing';
import {
  EventsNotification, type EventEntry, type LogEntry, type ReaderList, ReadersRequest, type RunScriptResult, RunScriptRequest, StartedNotification,
} from '../../../server/src/protocol';
import { settlesWithin } from './support';
import { freePort } from '../../support/net';

v8.setFlagsFromString('--expose-gc');
const gc = (globalThis as { gc?: () => void }).gc ?? (vm.runInNewContext('gc') as () => void);

const ATR = Uint8Array.of(0x3b, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xff, 0x01, 0x00, 0x0b);
const RESPONSE_TIMEOUT_MS = 300;
const HANG_MS = 10_000;
const SCRIPT = '00 A4 04 00 07 A0000000031010 => * 90 00\n00 84 00 00 08 => * 90 00\n';

let client: MessageConnection;
let port: number;
let reader: string;
const events: EventEntry[] = [];
const waiters: Array<() => void> = [];
const sockets = new Set<net.Socket>();

function until(check: () => boolean, what = "condition"): Promise<void> {
  const p = untilRaw(check);
  return settlesWithin(p, HANG_MS, `waiting for ${what}`);
}
function untilRaw(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => { if (check()) resolve(); else waiters.push(poll); };
    poll();
  });
}


/** A card emulator; `answer` decides what to do with each frame (default: a good card). */
async function peer(answer?: (frame: Uint8Array, socket: net.Socket) => void): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const decoder = new FrameDecoder();
  socket.on('data', (d) => {
    for (const f of decoder.push(d)) {
      if (answer) answer(f, socket);
      else if (f.length === 1 && f[0] === 0x04) socket.write(encodeFrame(ATR));
      else if (f.length > 1) socket.write(encodeFrame(Uint8Array.of(0x90, 0x00)));
    }
  });
  return socket;
}

/** Answers only frames that expect an answer (GET ATR, APDUs), as vicc does; power on/off/reset get none. */
const asked = (fn: (f: Uint8Array, s: net.Socket) => void) => (f: Uint8Array, s: net.Socket) => {
  if (f.length === 1 && f[0] !== 0x04) return;
  fn(f, s);
};

const count = (kind: EventEntry['kind']) => events.filter((e) => e.kind === kind && e.reader === reader).length;
const lastCount = () => events.filter((e) => e.reader === reader).at(-1)?.eventCount ?? 0;

async function run(text = SCRIPT): Promise<RunScriptResult> {
  return settlesWithin(client.sendRequest(RunScriptRequest.method, { text, reader }) as Promise<RunScriptResult>, HANG_MS, 'runScript');
}

/** The driver closed the emulator's socket (it may have done so already). */
async function closed(s: net.Socket): Promise<void> {
  if (!s.closed) await settlesWithin(once(s, 'close'), HANG_MS, 'the driver closing the emulator socket');
}

async function drop(socket: net.Socket): Promise<void> {
  const removed = count('cardRemoved') + 1;
  if (!socket.destroyed) { socket.destroy(); }
  await until(() => count('cardRemoved') >= removed, 'the removal event');
}

/** The reader works with a well-behaved emulator, then the emulator leaves. */
async function assertReaderWorks(): Promise<void> {
  const inserted = count('cardInserted') + 1;
  const s = await peer();
  await until(() => count('cardInserted') >= inserted);
  const r = await run();
  assert.equal(r.ok, true, r.failure?.message);
  await drop(s);
}

before(async () => {
  port = await freePort();
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  // These tests aim each misbehaviour at a script's exchange; reader initialization (on by
  // default, tested in test/unit/manager/initialization.test.ts) would meet it first at insertion.
  createHelper(createConnection(toServer, toClient), { drivers: [createVpcdDriver({ ports: [port], responseTimeoutMs: RESPONSE_TIMEOUT_MS })], initializeCards: false });
  client = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
  const started = new Promise<ReaderList>((resolve) => client.onNotification(StartedNotification.method, resolve));
  client.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => {
    for (const e of p.entries) if ('eventCount' in e) events.push(e as EventEntry);
    for (const w of waiters.splice(0)) w();
  });
  client.onNotification('window/logMessage', () => undefined);
  client.listen();
  await client.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, initializationOptions: {} });
  client.sendNotification('initialized', {});
  const list = await started;
  assert.equal(list.readers.length, 1);
  reader = list.readers[0].name;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await client.sendRequest('shutdown');
  client.dispose();
});

test('the vpcd reader works through the helper, and its event counter counts insert and remove', async () => {
  const before = lastCount();
  await assertReaderWorks();
  assert.equal(lastCount(), before + 2);
});

test('an emulator announcing 65535 bytes and sending none: the run fails with TIMEOUT, the card is removed, the reader works after', async () => {
  const removedBefore = count('cardRemoved');
  const s = await peer((_f, sock) => sock.write(Buffer.from([0xff, 0xff])));
  await until(() => count('cardInserted') > count('cardRemoved'));
  const r = await run();
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'TIMEOUT', r.failure?.message);
  assert.match(r.failure!.message, /did not answer .* within 300 ms .*partial reply/);
  await until(() => count('cardRemoved') === removedBefore + 1);
  await closed(s);
  const list = await client.sendRequest(ReadersRequest.method, {}) as ReaderList;
  assert.equal(list.readers[0].card, null);
  assert.equal(list.readers[0].connections, 0);
  await assertReaderWorks();
});

test('an emulator answering one byte a second (time-out 300 ms): TIMEOUT, one removal event, reader works after', async () => {
  const timers = new Set<NodeJS.Timeout>();
  const removedBefore = count('cardRemoved');
  const s = await peer(asked((f, sock) => {
    const reply = encodeFrame(f.length === 1 ? ATR : Uint8Array.of(0x90, 0x00));
    let i = 0;
    const drip = () => {
      if (sock.destroyed || i >= reply.length) return;
      sock.write(reply.subarray(i, ++i));
      const t = setTimeout(drip, 1000);
      timers.add(t);
    };
    drip();
  }));
  await until(() => count('cardInserted') > count('cardRemoved'));
  const r = await run();
  for (const t of timers) clearTimeout(t);
  assert.equal(r.failure?.code, 'TIMEOUT', r.failure?.message);
  await until(() => count('cardRemoved') === removedBefore + 1);
  await closed(s);
  await assertReaderWorks();
});

test('garbage from an emulator (unasked, as a reply, an empty ATR): clear errors, no lost event, reader works after', async () => {
  const behaviours: Array<[string, (f: Uint8Array, s: net.Socket) => void, string[]]> = [
    ['HTTP request as a reply', (_f, s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), ['CARD_REMOVED', 'TIMEOUT', 'PROTOCOL']],
    ['a frame plus trailing bytes', asked((_f, s) => s.write(Buffer.concat([encodeFrame(ATR), Buffer.from([1, 2, 3])]))), ['CARD_REMOVED']],
    ['an empty ATR', asked((_f, s) => s.write(encodeFrame(new Uint8Array(0)))), ['PROTOCOL']],
    ['an ATR then a 1-byte response', asked((f, s) => s.write(encodeFrame(f.length === 1 ? ATR : Uint8Array.of(0x90)))), ['PROTOCOL']],
    ['an ATR that is not an ATR', asked((f, s) => s.write(encodeFrame(f.length === 1 ? Uint8Array.of(0x00, 0x00, 0x00) : Uint8Array.of(0x90, 0x00)))), ['PROTOCOL']],
    ['answering power on/off too (a stray frame)', (f, s) => s.write(encodeFrame(f.length === 1 ? ATR : Uint8Array.of(0x90, 0x00))), ['CARD_REMOVED', 'PROTOCOL']],
  ];
  for (const [what, answer, codes] of behaviours) {
    const before = lastCount();
    const s = await peer(answer);
    await until(() => lastCount() > before);
    const r = await run();
    if (!r.ok) assert.ok(codes.includes(r.failure!.code), `${what}: ${r.failure!.code} ${r.failure!.message}`);
    s.destroy();
    await until(() => count('cardInserted') === count('cardRemoved'));
    assert.equal(lastCount() % 2, 0, `${what}: event counter odd after insert+remove (${lastCount()})`);
    const list = await client.sendRequest(ReadersRequest.method, {}) as ReaderList;
    assert.equal(list.readers[0].connections, 0, what);
  }
  await assertReaderWorks();
});

test('1,000 connect/disconnect cycles in a row: every event counted once, memory and handles flat, reader works after', async (t) => {
  await until(() => count('cardInserted') === count('cardRemoved'));
  const countBefore = lastCount();
  const insertedBefore = count('cardInserted');
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const handles0 = process.getActiveResourcesInfo().length;
  for (let i = 0; i < 1000; i++) {
    const s = await peer();
    await until(() => count('cardInserted') === insertedBefore + i + 1);
    await drop(s);
  }
  await until(() => count('cardRemoved') === count('cardInserted'));
  const mine = events.filter((e) => e.reader === reader && (e.kind === 'cardInserted' || e.kind === 'cardRemoved'));
  const cycle = mine.slice(-2000);
  // Alternating insert/remove, the counter rising by exactly one each time.
  cycle.forEach((e, i) => {
    assert.equal(e.kind, i % 2 ? 'cardRemoved' : 'cardInserted', `event ${i}`);
    assert.equal(e.eventCount, countBefore + i + 1, `event ${i} counter`);
  });
  const list = await client.sendRequest(ReadersRequest.method, {}) as ReaderList;
  assert.equal(list.readers[0].eventCount, countBefore + 2000);
  assert.equal(list.readers[0].card, null);
  await new Promise((r) => setImmediate(r));
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const handles1 = process.getActiveResourcesInfo().length;
  t.diagnostic(`heap ${(heap0 / 2 ** 20).toFixed(1)} MB → ${(heap1 / 2 ** 20).toFixed(1)} MB, active resources ${handles0} → ${handles1}, event counter ${countBefore} → ${list.readers[0].eventCount}`);
  assert.ok(heap1 - heap0 < 8 * 2 ** 20, `heap grew by ${((heap1 - heap0) / 2 ** 20).toFixed(1)} MB over 1,000 cycles`);
  assert.ok(handles1 <= handles0 + 1, `active resources ${handles0} → ${handles1}`);
  await assertReaderWorks();
});
