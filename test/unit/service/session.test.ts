// The service's state machine in memory, message by message as pcsc-lite's
// clients send them, over the simulator TEST DOUBLE backend (the real backend on
// the manager's gate is not written yet). Each test says which pcscd behaviour
// (winscard_svc.c / eventhandler.c of 2.3.3 and 2.5.1) it checks.
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_HANDLES_PER_CLIENT, PcscService } from '../../../server/src/service/session';
import { Command, ReaderStateBits as B, Rv, STRUCTS } from '../../../server/src/service/wire';
import { MemoryTransport, WireClient } from '../../support/pcscWireClient';
import { SimPcscBackend } from '../../support/simPcscBackend';

const READER = 'Workbench Simulator 00 00';
const SELECT_DEMO = Uint8Array.from([0x00, 0xa4, 0x04, 0x00, 0x07, 0xf0, 0x57, 0x42, 0x44, 0x45, 0x4d, 0x4f]);
const hex = (b: Uint8Array | null) => (b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ') : 'null');

let backend: SimPcscBackend;
let service: PcscService;
const logs: string[] = [];

beforeEach(async () => {
  backend = await SimPcscBackend.create();
  logs.length = 0;
  service = new PcscService(backend, (level, m) => logs.push(`${level} ${m}`));
});
afterEach(() => service.dispose());

function client(): WireClient {
  return new WireClient(new MemoryTransport(service));
}

describe('CMD_VERSION', () => {
  for (const minor of [4, 5, 6]) {
    test(`4:${minor} is answered with the client's own version and success`, async () => {
      const c = client();
      assert.deepEqual(await c.version(minor), { major: 4, minor, rv: 0 });
    });
  }
  for (const [major, minor] of [[4, 3], [4, 7], [3, 4], [5, 6]]) {
    test(`${major}:${minor} gets the server's 4:6 and SCARD_E_SERVICE_STOPPED, and may try again on the same connection`, async () => {
      const c = client();
      assert.deepEqual(await c.version(minor, major), { major: 4, minor: 6, rv: Rv.SCARD_E_SERVICE_STOPPED });
      // winscard_clnt.c 2.5.1: "try again with the protocol version proposed by the server"
      assert.deepEqual(await c.version(6), { major: 4, minor: 6, rv: 0 });
    });
  }
});

describe('contexts', () => {
  test('ESTABLISH gives distinct non-zero contexts; RELEASE checks the context like MSGRemoveContext', async () => {
    const a = client();
    const b = client();
    const ha = await a.open(6);
    const hb = await b.open(6);
    assert.ok(ha && hb && ha !== hb);
    assert.equal((await a.simple(Command.SCARD_RELEASE_CONTEXT, 'release_struct', { hContext: hb })).rv, Rv.SCARD_E_INVALID_VALUE);
    assert.equal((await a.simple(Command.SCARD_RELEASE_CONTEXT, 'release_struct', { hContext: ha })).rv, 0);
    assert.equal((await a.simple(Command.SCARD_RELEASE_CONTEXT, 'release_struct', { hContext: ha })).rv, Rv.SCARD_E_INVALID_HANDLE);
  });

  test('a scope other than USER/TERMINAL/SYSTEM/GLOBAL is SCARD_E_INVALID_VALUE (winscard.c)', async () => {
    const c = client();
    await c.version(6);
    assert.equal((await c.establish(4)).rv, Rv.SCARD_E_INVALID_VALUE);
  });
});

describe('reader state table per version', () => {
  test('4:4 and 4:5: CMD_GET_READERS_STATE is 16 entries; the simulator reader is in slot 0, powered, with its ATR', async () => {
    for (const minor of [4, 5]) {
      const c = client();
      await c.open(minor);
      const t = await c.readersState16();
      assert.equal(t[0].readerName, READER);
      assert.equal(t[0].readerState, B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE);
      assert.equal(hex((t[0].cardAtr as Uint8Array).subarray(0, t[0].cardAtrLength as number)), '3b 8b 81 31 fe 45 80 31 e0 f7 f0 57 42 44 45 4d 4f c0');
      assert.equal(t[1].readerName, '');
      assert.equal(c.unread, 0, 'nothing more than 16 entries');
    }
  });

  test('4:6: GET_READERS_STATE_SIZE is pcscd 2.5\'s initial 2, GET_READERS_STATE_ARRAY that many entries', async () => {
    const c = client();
    await c.open(6);
    const t = await c.readersState6();
    assert.equal(t.length, 2);
    assert.equal(t[0].readerName, READER);
    assert.equal(c.unread, 0);
  });

  test('GET_READER_EVENTS (4:5+) counts readers added: 1 + one simulator reader', async () => {
    const c = client();
    await c.open(5);
    assert.deepEqual(await c.readerEvents(), { readerEvents: 2, rv: 0 });
  });

  test('a 4:4 client asking GET_READER_EVENTS, or a 4:5 one GET_READERS_STATE_SIZE, loses its connection only', async () => {
    const old = client();
    await old.open(4);
    const bystander = client();
    await bystander.open(5);
    old.send(Command.CMD_GET_READER_EVENTS);
    assert.match(await old.whenClosed(), /does not exist in protocol 4:4/);
    const v5 = client();
    await v5.open(5);
    v5.send(Command.CMD_GET_READERS_STATE_SIZE);
    assert.match(await v5.whenClosed(), /4:5/);
    assert.equal((await bystander.readerEvents()).rv, 0, 'the other client goes on');
  });
});

describe('waiting for a reader state change', () => {
  test('4:4/4:5: WAIT answers the 16 entries at once; a removal then signals success; STOP after a signal gets no reply', async () => {
    const c = client();
    await c.open(5);
    c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    const before = await c.readTable(16, 'WAIT reply (2.3.3 sends the table at registration)');
    assert.equal(before[0].eventCounter, 0);
    assert.equal(service.waitingCount, 1);
    backend.removeCard();
    assert.deepEqual(await c.readStruct('wait_reader_state_change', 'signal'), { timeOut: 0, rv: 0 });
    assert.equal(service.waitingCount, 0, 'EHSignalEventToClients empties the list');
    c.send(Command.CMD_STOP_WAITING_READER_STATE_CHANGE);
    // No reply to STOP: the next bytes are the answer to the next command.
    assert.deepEqual(await c.readerEvents(), { readerEvents: 2, rv: 0 });
    const after = await c.readersState16();
    assert.equal(after[0].readerState, B.SCARD_ABSENT);
    assert.equal(after[0].eventCounter, 1);
  });

  test('STOP while still waiting is answered {0, success} and leaves the list', async () => {
    const c = client();
    await c.open(4);
    c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    await c.readTable(16, 'WAIT reply');
    c.send(Command.CMD_STOP_WAITING_READER_STATE_CHANGE);
    assert.deepEqual(await c.readStruct('wait_reader_state_change'), { timeOut: 0, rv: 0 });
    assert.equal(service.waitingCount, 0);
    backend.removeCard();
    assert.equal(c.unread, 0, 'no signal after STOP');
  });

  test('4:6: WAIT only registers; a change before the array is in the array and is not signalled (pcscd would put the signal where the size is read)', async () => {
    const c = client();
    await c.open(6);
    c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    assert.equal(service.waitingCount, 1);
    assert.equal(c.unread, 0, '2.5.1 sends nothing at registration for a 4:6 client');
    backend.removeCard(); // an event before the client has read the array
    assert.equal(c.unread, 0, 'no signal inside the SIZE/ARRAY replies');
    const t = await c.readersState6();
    assert.equal(t[0].readerState, B.SCARD_ABSENT, 'the array shows the removal');
    assert.deepEqual(await c.readerEvents(), { readerEvents: 2, rv: 0 }, 'GET_READER_EVENTS answered as such, not by a signal');
    assert.equal(service.waitingCount, 1, 'still registered for the next change');
    backend.insertCard();
    assert.deepEqual(await c.readStruct('wait_reader_state_change', 'signal of the next change'), { timeOut: 0, rv: 0 });
  });

  test('4:6: a cancel before the array arrives after it', async () => {
    const c = client();
    const h = await c.open(6);
    c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    const canceller = client();
    assert.equal((await canceller.simple(Command.SCARD_CANCEL, 'cancel_struct', { hContext: h })).rv, 0);
    assert.equal(c.unread, 0);
    await c.readersState6();
    assert.deepEqual(await c.readStruct('wait_reader_state_change', 'cancel after the array'), { timeOut: 0, rv: Rv.SCARD_E_CANCELLED });
  });

  test('4:6: a reader added between SIZE and ARRAY that grows the array: the array keeps the size told, the change is signalled after it', async () => {
    const b3 = await SimPcscBackend.create({ readers: 3 });
    b3.setPlugged(false, 'sim:2');
    const svc = new PcscService(b3);
    try {
      const c = new WireClient(new MemoryTransport(svc));
      await c.open(6);
      c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
      assert.equal(await c.stateSize(), 2, 'two readers, full');
      b3.setPlugged(true, 'sim:2'); // the third reader: the array grows to 4
      assert.equal(svc.readerStates.length, 4);
      c.send(Command.CMD_GET_READERS_STATE_ARRAY);
      const t = await c.readTable(2, 'ARRAY of the size told');
      assert.deepEqual(t.map((e) => e.readerName), ['Workbench Simulator 00 00', 'Workbench Simulator 01 00']);
      assert.deepEqual(await c.readStruct('wait_reader_state_change', 'signal after the array'), { timeOut: 0, rv: 0 });
      assert.equal(svc.waitingCount, 0);
      assert.equal((await c.readersState6()).length, 4, 'the next round sees the new size');
    } finally {
      svc.dispose();
    }
  });

  test('insertion after removal: signal, and the event counter went up twice', async () => {
    const c = client();
    await c.open(6);
    backend.removeCard();
    c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    await c.readersState6();
    backend.insertCard();
    assert.deepEqual(await c.readStruct('wait_reader_state_change', 'insertion signal'), { timeOut: 0, rv: 0 });
    const t = await c.readersState6();
    assert.equal(t[0].eventCounter, 2);
    assert.equal(t[0].readerState, B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE);
  });
});

describe('SCARD_CANCEL on its own connection, without CMD_VERSION', () => {
  test('a waiting context is signalled SCARD_E_CANCELLED and the canceller gets success', async () => {
    const waiter = client();
    const h = await waiter.open(5);
    waiter.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    await waiter.readTable(16, 'WAIT reply');
    const canceller = client();
    assert.equal((await canceller.simple(Command.SCARD_CANCEL, 'cancel_struct', { hContext: h })).rv, 0);
    assert.deepEqual(await waiter.readStruct('wait_reader_state_change', 'cancel signal'), { timeOut: 0, rv: Rv.SCARD_E_CANCELLED });
    assert.equal(service.waitingCount, 0);
  });

  test('a context not waiting: success (2.0.1 on), nothing sent to it; an unknown context: SCARD_E_INVALID_HANDLE', async () => {
    const idle = client();
    const h = await idle.open(6);
    const canceller = client();
    assert.equal((await canceller.simple(Command.SCARD_CANCEL, 'cancel_struct', { hContext: h })).rv, 0);
    assert.equal(idle.unread, 0);
    assert.equal((await canceller.simple(Command.SCARD_CANCEL, 'cancel_struct', { hContext: (h ^ 1) || 1 })).rv, Rv.SCARD_E_INVALID_HANDLE);
  });
});

describe('card calls through the backend', () => {
  test('CONNECT shared T=1, TRANSMIT SELECT of the demo application → 90 00, STATUS, DISCONNECT', async () => {
    const c = client();
    const h = await c.open(6);
    const co = await c.connect(h, READER);
    assert.equal(co.rv, 0);
    assert.equal(co.dwActiveProtocol, 2);
    const { s, response } = await c.transmit(co.hCard as number, SELECT_DEMO);
    assert.equal(s.rv, 0);
    assert.equal(hex(response!.subarray(-2)), '90 00');
    assert.equal((await c.simple(Command.SCARD_STATUS, 'status_struct', { hCard: co.hCard })).rv, 0);
    const t = await c.readersState6();
    assert.equal(t[0].readerSharing, 1);
    assert.equal(t[0].cardProtocol, 2);
    assert.equal((await c.simple(Command.SCARD_DISCONNECT, 'disconnect_struct', { hCard: co.hCard, dwDisposition: 0 })).rv, 0);
    assert.equal((await c.readersState6())[0].readerSharing, 0);
  });

  test('CONNECT argument checks in winscard.c order; an unknown reader is SCARD_E_UNKNOWN_READER', async () => {
    const c = client();
    const h = await c.open(6);
    assert.equal((await c.connect(h, READER, 2, 0)).rv, Rv.SCARD_E_PROTO_MISMATCH);
    assert.equal((await c.connect(h, READER, 9, 3)).rv, Rv.SCARD_E_INVALID_VALUE);
    assert.equal((await c.connect(h, 'No Such Reader 00 00')).rv, Rv.SCARD_E_UNKNOWN_READER);
    assert.equal((await c.connect((h ^ 1) || 1, READER)).rv, Rv.SCARD_E_INVALID_VALUE);
  });

  test('RECONNECT, DISCONNECT and END_TRANSACTION argument checks in winscard.c order, before the backend: EJECT or an unknown initialization, an unknown share mode, no protocol, an unknown disposition', async () => {
    const c = client();
    const hCard = (await c.connect(await c.open(6), READER)).hCard;
    const reconnect = async (dwShareMode: number, dwPreferredProtocols: number, dwInitialization: number) =>
      (await c.simple(Command.SCARD_RECONNECT, 'reconnect_struct', { hCard, dwShareMode, dwPreferredProtocols, dwInitialization })).rv;
    backend.calls.length = 0;
    // winscard.c SCardReconnect 538–553 (2.3.3 and 2.5.1): the initialization, then the share mode, then the protocols.
    assert.equal(await reconnect(2, 3, 3), Rv.SCARD_E_INVALID_VALUE, 'SCARD_EJECT_CARD is no initialization of SCardReconnect');
    // pcscd answers a failed SCardReconnect with SCARD_PROTOCOL_UNDEFINED (winscard_svc.c 608), not the client's own value.
    const refused = await c.simple(Command.SCARD_RECONNECT, 'reconnect_struct', { hCard, dwShareMode: 2, dwPreferredProtocols: 3, dwInitialization: 3, dwActiveProtocol: 2 });
    assert.deepEqual([refused.rv, refused.dwActiveProtocol], [Rv.SCARD_E_INVALID_VALUE, 0]);
    assert.equal(await reconnect(2, 3, 7), Rv.SCARD_E_INVALID_VALUE, 'an unknown initialization');
    assert.equal(await reconnect(0, 3, 0), Rv.SCARD_E_INVALID_VALUE, 'share mode 0');
    assert.equal(await reconnect(9, 0, 0), Rv.SCARD_E_INVALID_VALUE, 'an unknown share mode is looked at before the protocols');
    assert.equal(await reconnect(2, 0, 0), Rv.SCARD_E_PROTO_MISMATCH, 'no protocol for a shared reconnect');
    // SCardDisconnect 836–840, SCardEndTransaction 1104–1108: LEAVE, RESET, UNPOWER or EJECT.
    assert.equal((await c.simple(Command.SCARD_DISCONNECT, 'disconnect_struct', { hCard, dwDisposition: 7 })).rv, Rv.SCARD_E_INVALID_VALUE);
    assert.equal((await c.simple(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard })).rv, 0);
    assert.equal((await c.simple(Command.SCARD_END_TRANSACTION, 'end_struct', { hCard, dwDisposition: 7 })).rv, Rv.SCARD_E_INVALID_VALUE);
    assert.deepEqual(backend.calls, ['begin'], 'none of the refused calls reached the backend (no reset, no eject, no release)');
    assert.equal((await c.simple(Command.SCARD_END_TRANSACTION, 'end_struct', { hCard, dwDisposition: 0 })).rv, 0, 'the transaction was still held');
    assert.equal((await c.transmit(hCard as number, SELECT_DEMO)).s.rv, 0, 'the handle is still there after the refused DISCONNECT');
    assert.equal((await c.simple(Command.SCARD_DISCONNECT, 'disconnect_struct', { hCard, dwDisposition: 0 })).rv, 0);
  });

  test('exclusive: readerSharing -1 and a second CONNECT is SCARD_E_SHARING_VIOLATION', async () => {
    const a = client();
    const b = client();
    const co = await a.connect(await a.open(6), READER, 1);
    assert.equal(co.rv, 0);
    assert.equal((await a.readersState6())[0].readerSharing, -1);
    assert.equal((await b.connect(await b.open(6), READER)).rv, Rv.SCARD_E_SHARING_VIOLATION);
  });

  test('a reply too large for the client\'s buffer is SCARD_E_INSUFFICIENT_BUFFER with the needed length and no data', async () => {
    const c = client();
    const co = await c.connect(await c.open(6), READER);
    const { s, response } = await c.transmit(co.hCard as number, SELECT_DEMO, 2, 1);
    assert.equal(s.rv, Rv.SCARD_E_INSUFFICIENT_BUFFER);
    assert.ok((s.pcbRecvLength as number) >= 2);
    assert.equal(response, null);
    assert.equal(c.unread, 0, 'no response bytes follow');
  });

  test('another client\'s hCard closes this connection (MSGCheckHandleAssociation); the owner goes on', async () => {
    const owner = client();
    const co = await owner.connect(await owner.open(6), READER);
    const thief = client();
    await thief.open(6);
    thief.sendStruct(Command.SCARD_TRANSMIT, 'transmit_struct', { hCard: co.hCard, ioSendPciProtocol: 2, ioSendPciLength: 8, cbSendLength: SELECT_DEMO.length, pcbRecvLength: 258 }, SELECT_DEMO);
    assert.match(await thief.whenClosed(), /does not own/);
    assert.equal((await owner.transmit(co.hCard as number, SELECT_DEMO)).s.rv, 0);
  });

  test('removal: the handle gets SCARD_W_REMOVED_CARD', async () => {
    const c = client();
    const co = await c.connect(await c.open(6), READER);
    backend.removeCard();
    assert.equal((await c.transmit(co.hCard as number, SELECT_DEMO)).s.rv, Rv.SCARD_W_REMOVED_CARD);
  });

  test('a transaction: the other client gets SCARD_E_SHARING_VIOLATION (its library retries); the holder dying releases it', async () => {
    const a = client();
    const b = client();
    const ca = await a.connect(await a.open(6), READER);
    const cb = await b.connect(await b.open(6), READER);
    assert.equal((await a.simple(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard: ca.hCard })).rv, 0);
    assert.equal((await b.simple(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard: cb.hCard })).rv, Rv.SCARD_E_SHARING_VIOLATION);
    assert.equal((await b.transmit(cb.hCard as number, SELECT_DEMO)).s.rv, Rv.SCARD_E_SHARING_VIOLATION);
    a.transport.end(); // the holder dies mid-transaction
    assert.equal((await b.simple(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard: cb.hCard })).rv, Rv.SCARD_W_RESET_CARD,
      'MSGRemoveContext reset the card the dead holder had locked: reported once');
    assert.equal((await b.simple(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard: cb.hCard })).rv, 0);
    assert.equal((await b.readersState6())[0].readerSharing, 1, 'the dead client\'s handle is gone');
  });

  test('SCardReconnect with SCARD_RESET_CARD: the other client\'s handle sees SCARD_W_RESET_CARD once, then works', async () => {
    const a = client();
    const b = client();
    const ca = await a.connect(await a.open(6), READER);
    const cb = await b.connect(await b.open(4), READER);
    const r = await a.simple(Command.SCARD_RECONNECT, 'reconnect_struct', { hCard: ca.hCard, dwShareMode: 2, dwPreferredProtocols: 3, dwInitialization: 1 });
    assert.equal(r.rv, 0);
    assert.equal(r.dwActiveProtocol, 2);
    assert.equal((await b.transmit(cb.hCard as number, SELECT_DEMO)).s.rv, Rv.SCARD_W_RESET_CARD);
    assert.equal((await b.transmit(cb.hCard as number, SELECT_DEMO)).s.rv, 0);
  });

  test('replies are the request\'s own struct bytes with the answer written in (pcscd WRITE_BODY)', async () => {
    const c = client();
    const co = await c.connect(await c.open(6), READER);
    const attr = new Uint8Array(264).fill(0xa5);
    const r = await c.simple(Command.SCARD_SET_ATTRIB, 'getset_struct', { hCard: co.hCard, dwAttrId: 0x7a007, pbAttr: attr, cbAttrLen: 3 });
    assert.equal(r.rv, Rv.SCARD_E_UNSUPPORTED_FEATURE);
    assert.deepEqual([...(r.pbAttr as Uint8Array)], [...attr], 'pbAttr echoed as sent');
    assert.equal(r.dwAttrId, 0x7a007);
  });

  test('a client dying while its BEGIN is still in the backend: the transaction it gets afterwards is released', async () => {
    const c = client();
    const co = await c.connect(await c.open(6), READER);
    let grant!: () => void;
    const realBegin = backend.beginTransaction.bind(backend);
    backend.beginTransaction = async (h) => {
      await new Promise<void>((r) => { grant = r; });
      return realBegin(h);
    };
    c.sendStruct(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard: co.hCard });
    await new Promise((r) => setImmediate(r));
    c.transport.end(); // dies with the BEGIN pending: cleanup abandons the handle now
    backend.beginTransaction = realBegin;
    const abandonsBefore = backend.calls.filter((x) => x === 'abandon').length;
    grant();
    const other = client();
    const co2 = await other.connect(await other.open(6), READER);
    assert.equal((await other.simple(Command.SCARD_BEGIN_TRANSACTION, 'begin_struct', { hCard: co2.hCard })).rv, 0, 'no transaction left to a dead client');
    assert.ok(backend.calls.filter((x) => x === 'abandon').length > abandonsBefore, 'abandoned again after the late BEGIN');
    assert.equal(c.unread, 0, 'nothing sent to the dead client');
  });

  test('handles per client are bounded like pcscd\'s (200, then SCARD_E_NO_MEMORY); releasing the context releases them all', async () => {
    const c = client();
    const h = await c.open(6);
    for (let i = 0; i < MAX_HANDLES_PER_CLIENT; i++) assert.equal((await c.connect(h, READER)).rv, 0);
    assert.equal((await c.connect(h, READER)).rv, Rv.SCARD_E_NO_MEMORY);
    assert.equal((await c.readersState6())[0].readerSharing, MAX_HANDLES_PER_CLIENT);
    assert.equal((await c.simple(Command.SCARD_RELEASE_CONTEXT, 'release_struct', { hContext: h })).rv, 0);
    assert.equal((await c.readersState6())[0].readerSharing, 0);
  });

  test('GET_ATTRIB SCARD_ATTR_ATR_STRING gives the ATR; an oversize cbAttrLen closes the connection', async () => {
    const c = client();
    const co = await c.connect(await c.open(6), READER);
    const g = await c.simple(Command.SCARD_GET_ATTRIB, 'getset_struct', { hCard: co.hCard, dwAttrId: 0x00090303, cbAttrLen: 264 });
    assert.equal(g.rv, 0);
    assert.equal(hex((g.pbAttr as Uint8Array).subarray(0, g.cbAttrLen as number)), '3b 8b 81 31 fe 45 80 31 e0 f7 f0 57 42 44 45 4d 4f c0');
    c.sendStruct(Command.SCARD_GET_ATTRIB, 'getset_struct', { hCard: co.hCard, dwAttrId: 0x00090303, cbAttrLen: 265 });
    assert.match(await c.whenClosed(), /over 264/);
  });
});

describe('bad clients lose only their own connection', () => {
  test('garbage, a wrong size and an unknown command each close that connection; the others go on', async () => {
    const good = client();
    const h = await good.open(6);
    const co = await good.connect(h, READER);
    for (const bytes of [
      Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]),
      Uint8Array.from([...new Uint8Array(new Uint32Array([5, Command.SCARD_ESTABLISH_CONTEXT]).buffer), 0, 0, 0, 0, 0]),
      Uint8Array.from(new Uint8Array(new Uint32Array([0, 0x42]).buffer)),
    ]) {
      const bad = client();
      bad.transport.write(bytes);
      await bad.whenClosed();
    }
    assert.equal((await good.transmit(co.hCard as number, SELECT_DEMO)).s.rv, 0);
    assert.ok(logs.some((l) => /unknown command 0x42/.test(l)));
  });

  test('a client that dies halfway through a message is cleaned up: no context, no wait registration, no handle', async () => {
    const c = client();
    const h = await c.open(5);
    await c.connect(h, READER);
    c.send(Command.CMD_WAIT_READER_STATE_CHANGE);
    await c.readTable(16, 'WAIT reply');
    c.transport.write(new Uint8Array(new Uint32Array([STRUCTS.transmit_struct.size, Command.SCARD_TRANSMIT]).buffer).subarray(0, 6));
    c.transport.end();
    assert.equal(service.waitingCount, 0);
    const other = client();
    assert.equal((await other.simple(Command.SCARD_CANCEL, 'cancel_struct', { hContext: h })).rv, Rv.SCARD_E_INVALID_HANDLE, 'context gone');
    assert.ok(backend.calls.includes('abandon'));
    assert.ok(logs.some((l) => /left after 6 bytes/.test(l)));
  });

  test('the service never logs command data (a VERIFY PIN through TRANSMIT)', async () => {
    const c = client();
    const co = await c.connect(await c.open(6), READER);
    const verify = Uint8Array.from([0x00, 0x20, 0x00, 0x01, 0x06, 0x39, 0x38, 0x37, 0x36, 0x35, 0x34]);
    await c.transmit(co.hCard as number, verify);
    await c.transmit(co.hCard as number, verify, 1); // wrong protocol: a failure path that logs
    const all = logs.join('\n');
    assert.ok(!all.includes('987654') && !/39 ?38 ?37 ?36/i.test(all), 'a log line carries the PIN (not shown here)');
  });
});
