// Property-based fuzzing of what the PC/SC service runs on untrusted bytes from
// any local program: the wire decoder (any bytes, any chunking) and the session
// state machine (random mixes of valid, mangled and foreign requests from several
// clients at once, clients dying anywhere). The decoder must never throw, must
// finish, and must hold at most one message; a session must never throw, never
// send after closing, and leave no trace (context, wait, handle) once gone, while
// a well-behaved client alongside keeps getting right answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PcscService } from '../../../server/src/service/session';
import {
  Command, encodeRequest, encodeStruct, MAX_BUFFER_SIZE_EXTENDED, MAX_MESSAGE_SIZE, RequestDecoder, Rv, STRUCTS, type StructName,
} from '../../../server/src/service/wire';
import { MemoryTransport, WireClient } from '../../support/pcscWireClient';
import { SimPcscBackend } from '../../support/simPcscBackend';
import { bounded, bytes, fuzzParams } from './support';

const commands = Object.values(Command);
const structFor: Partial<Record<number, StructName>> = {
  [Command.CMD_VERSION]: 'version_struct', [Command.SCARD_ESTABLISH_CONTEXT]: 'establish_struct', [Command.SCARD_RELEASE_CONTEXT]: 'release_struct',
  [Command.SCARD_CONNECT]: 'connect_struct', [Command.SCARD_RECONNECT]: 'reconnect_struct', [Command.SCARD_DISCONNECT]: 'disconnect_struct',
  [Command.SCARD_BEGIN_TRANSACTION]: 'begin_struct', [Command.SCARD_END_TRANSACTION]: 'end_struct', [Command.SCARD_CANCEL]: 'cancel_struct',
  [Command.SCARD_STATUS]: 'status_struct', [Command.SCARD_TRANSMIT]: 'transmit_struct', [Command.SCARD_CONTROL]: 'control_struct',
  [Command.SCARD_GET_ATTRIB]: 'getset_struct', [Command.SCARD_SET_ATTRIB]: 'getset_struct',
};

/** A request that is right, or right but for one thing (size, command, a field, a cut). */
const requestLike: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.constantFrom(...commands, 0, 0x18, 0xffffffff),
  fc.uint8Array({ maxLength: 300 }),
  fc.integer({ min: 0, max: 5 }),
  fc.uint8Array({ maxLength: 40 }),
  fc.nat(),
).map(([command, raw, mangle, data, n]) => {
  const s = structFor[command];
  let body: Uint8Array = s ? new Uint8Array(STRUCTS[s].size) : new Uint8Array(0);
  body.set(raw.subarray(0, body.length));
  if ((command === Command.SCARD_TRANSMIT || command === Command.SCARD_CONTROL) && mangle !== 3) {
    new DataView(body.buffer).setUint32(command === Command.SCARD_TRANSMIT ? 12 : 8, data.length, true);
  }
  if (command === Command.CMD_VERSION && mangle < 3) body = encodeStruct('version_struct', { major: 4, minor: 4 + (n % 3) });
  if (mangle === 1) body = body.subarray(0, n % (body.length + 1)); // wrong size
  const msg = encodeRequest(command, body, command === Command.SCARD_TRANSMIT || command === Command.SCARD_CONTROL ? data : undefined);
  return mangle === 2 ? msg.subarray(0, n % (msg.length + 1)) : msg; // cut
});

test('RequestDecoder: any bytes in any chunks never throw, finish, and buffer at most one message plus a chunk', () => {
  fc.assert(fc.property(
    fc.array(fc.oneof(requestLike, bytes(200)), { maxLength: 8 }),
    fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
    (parts, cuts) => {
      const all = Uint8Array.from(parts.flatMap((p) => [...p]));
      const d = new RequestDecoder();
      let at = 0;
      let i = 0;
      let failed = false;
      bounded('RequestDecoder', () => {
        while (at < all.length) {
          const n = cuts[i++ % cuts.length];
          d.push(all.subarray(at, at + n));
          at += n;
          for (let r = d.next(); r; r = failed ? null : d.next()) {
            if ('error' in r) {
              failed = true;
              assert.ok(['unknown-command', 'wrong-size', 'buffer-overflow'].includes(r.error.kind));
              assert.equal(d.bufferedBytes, 0);
            } else {
              assert.ok(r.request.raw.length <= STRUCTS.getset_struct.size);
              assert.ok((r.request.data?.length ?? 0) <= MAX_BUFFER_SIZE_EXTENDED);
            }
          }
          assert.ok(d.bufferedBytes <= MAX_MESSAGE_SIZE + 64, `${d.bufferedBytes} bytes buffered`);
        }
        const end = d.end();
        if (end) assert.ok(['truncated', 'unknown-command', 'wrong-size', 'buffer-overflow'].includes(end.kind));
      });
    },
  ), fuzzParams(3000));
});

test('RequestDecoder: a cbSendLength of up to 4 GB never makes it buffer or allocate more than the limit', () => {
  fc.assert(fc.property(fc.constantFrom(Command.SCARD_TRANSMIT, Command.SCARD_CONTROL), fc.nat({ max: 0xffffffff }), (command, len) => {
    const s = command === Command.SCARD_TRANSMIT ? 'transmit_struct' : 'control_struct';
    const d = new RequestDecoder();
    d.push(encodeRequest(command, encodeStruct(s, { cbSendLength: len })));
    const r = d.next();
    if (len > MAX_BUFFER_SIZE_EXTENDED) assert.ok(r && 'error' in r && r.error.kind === 'buffer-overflow');
    else assert.ok(len === 0 ? r && 'request' in r : r === null);
  }), fuzzParams(500));
});

test('sessions: random requests from several clients, some dying, never break the service or a good client', async () => {
  const reached = { abandon: 0, transmit: 0, waits: 0 };
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.option(fc.oneof(requestLike, bytes(64)), { freq: 2 }),
      fc.integer({ min: 0, max: 9 }).map((n) => n < 2), // dies after this step, 1 in 5
      fc.integer({ min: 0, max: 7 }),
    ), { minLength: 1, maxLength: 25 }),
    async (steps) => {
      const backend = await SimPcscBackend.create();
      const service = new PcscService(backend);
      try {
        const good = new WireClient(new MemoryTransport(service, 'good'));
        const h = await good.open(6);
        // Two of them read as the server reads a socket: views of one buffer, written over after each read.
        const clients = Array.from({ length: 4 }, (_, i) => new WireClient(new MemoryTransport(service, `fuzz${i}`, i % 2 === 0)));
        for (const [who, msg, die, event] of steps) {
          const c = clients[who];
          const t = c.transport as MemoryTransport;
          if (c.isClosed) continue;
          // Valid openings now and then, so contexts, handles and waits exist to be broken.
          if (event === 2) c.send(Command.CMD_VERSION, encodeStruct('version_struct', { major: 4, minor: 4 + (who % 3) }));
          if (event === 3) c.send(Command.SCARD_ESTABLISH_CONTEXT, encodeStruct('establish_struct', { dwScope: 2 }));
          if (event === 4) {
            if (!t.session.hContext) c.send(Command.SCARD_ESTABLISH_CONTEXT, encodeStruct('establish_struct', { dwScope: 2 }));
            c.send(Command.SCARD_CONNECT, encodeStruct('connect_struct', {
              hContext: t.session.hContext, szReader: 'Workbench Simulator 00 00', dwShareMode: 1 + (who % 2), dwPreferredProtocols: 3,
            }));
          }
          if (event === 5) c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
          if (msg) c.transport.write(msg);
          if (event === 0) { try { backend.removeCard(); } catch { /* already out */ } }
          if (event === 1) { try { backend.insertCard(); } catch { /* already in */ } }
          if (die) c.transport.end();
          await new Promise((r) => setImmediate(r));
        }
        if (service.waitingCount > 0) reached.waits++;
        for (const c of clients) if (!c.isClosed) c.transport.end();
        await new Promise((r) => setImmediate(r));
        for (const c of clients) assert.equal((c.transport as MemoryTransport).sentAfterClose, 0, 'bytes sent after the connection closed');
        // Only the good client is left: nothing registered, its context still cancellable.
        assert.equal(service.sessions.size, 1);
        assert.equal(service.waitingCount, 0);
        const probe = new WireClient(new MemoryTransport(service, 'probe'));
        assert.equal((await probe.simple(Command.SCARD_CANCEL, 'cancel_struct', { hContext: h })).rv, Rv.SCARD_S_SUCCESS);
        const t = await good.readersState6();
        assert.equal(t[0].readerName, 'Workbench Simulator 00 00');
        // Every handle of a dead client was released: the table counts no one on the reader.
        assert.equal(t[0].readerSharing, 0, 'sharing count after every fuzz client left');
        if (backend.calls.includes('abandon')) reached.abandon++;
        if (backend.calls.includes('transmit')) reached.transmit++;
      } finally {
        service.dispose();
      }
    },
  ), fuzzParams(300));
  // The generator must reach the paths worth breaking, or the property proves little.
  assert.ok(reached.abandon > 10 && reached.waits > 10, `runs reaching abandon/waits: ${JSON.stringify(reached)}`);
});
