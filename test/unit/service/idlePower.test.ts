// The PC/SC service around pcscd's on-demand power (R77) and a DIRECT connect asking for RAW (R78):
// what the reader state table and the clients' handles show, as winscard.c / eventhandler.c set it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { EventEntry, LogEntry } from '../../../server/src/protocol';
import { rvOf } from '../../../server/src/service/backend';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { entryFor } from '../../../server/src/service/readerState';
import { Disposition, ProtocolBits, ReaderStateBits as B, Rv, ShareMode } from '../../../server/src/service/wire';
import { fromHex } from '../../../server/src/util/hex';
import { ScError } from '../../../server/src/util/errors';

const A = 'Workbench Simulator 00 00';
const T1 = { protocol: ProtocolBits.SCARD_PROTOCOL_T1, pciLength: 8 };
const RAW = { protocol: ProtocolBits.SCARD_PROTOCOL_RAW, pciLength: 8 };
const ANY = ProtocolBits.SCARD_PROTOCOL_T0 | ProtocolBits.SCARD_PROTOCOL_T1;
const VERIFY_1234 = fromHex('0020000104 31323334');
const VERIFY_QUERY = fromHex('00200001');
const GRACE = 150;

async function setup(powerOffGraceMs = GRACE) {
  const sim = new SimulatorDriver({ readers: 1 });
  const m = new ReaderManager([sim], { historySize: 0, powerOffGraceMs });
  await m.start();
  const b = new ManagerBackend(m);
  return { sim, m, b, async stop() { b.dispose(); await m.stop(); } };
}

function nextEntry(m: ReaderManager, pred: (e: LogEntry) => boolean, what: string, ms = 5000): Promise<LogEntry> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`${what}: not within ${ms} ms`)); }, ms);
    const off = m.onEntry((e) => { if (pred(e)) { clearTimeout(timer); off(); resolve(e); } });
  });
}
const idleOff = (e: LogEntry) => e.kind === 'cardUnpowered' && (e as EventEntry).idle === true;

async function rejectsWith(p: Promise<unknown>, rv: number, what: string): Promise<void> {
  await assert.rejects(p, (e) => { assert.equal(rvOf(e), rv >>> 0, `${what}: 0x${rvOf(e).toString(16)}`); return true; });
}

test('R77: after the grace period the table keeps the bits and the ATR, cardProtocol UNDEFINED; a direct handle hears nothing; the next connect gets a reset card', async () => {
  const { m, b, stop } = await setup();
  try {
    const { handle } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    assert.equal(await b.transmit(handle, T1, VERIFY_1234, 258).then((r) => r.at(-2)), 0x90);
    const before = entryFor(b.readers().find((r) => r.name === A)!);
    assert.equal(before.cardProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    const { handle: direct } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    await b.disconnect(direct, Disposition.SCARD_LEAVE_CARD);
    const down = nextEntry(m, idleOff, 'the idle power-down');
    await b.disconnect(handle, Disposition.SCARD_LEAVE_CARD);
    // A direct handle opened after the last card handle went does not keep the card powered.
    const { handle: watcher } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    await down;
    const after = entryFor(b.readers().find((r) => r.name === A)!);
    assert.equal(after.readerState, B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE, 'the bits stay (eventhandler.c ~470–480)');
    assert.deepEqual(after.cardAtr, before.cardAtr);
    assert.equal(after.cardAtrLength, before.cardAtrLength);
    assert.equal(after.cardProtocol, ProtocolBits.SCARD_PROTOCOL_UNDEFINED);
    // pcscd's power-down marks no handle: the direct handle's status answers.
    await b.status(watcher);
    const { activeProtocol: directProtocol } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    assert.equal(directProtocol, ProtocolBits.SCARD_PROTOCOL_UNDEFINED, 'a DIRECT connect answers the table\'s cardProtocol');
    assert.equal(m.reader(A).card!.powered, false, 'a DIRECT connect does not power the card up');
    const { handle: again, activeProtocol } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    assert.equal(activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    const sw = await b.transmit(again, T1, VERIFY_QUERY, 258);
    assert.deepEqual([...sw], [0x63, 0xc3], 'the card was reset: the PIN is no longer verified');
    assert.equal(entryFor(b.readers().find((r) => r.name === A)!).cardProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    await b.status(watcher); // the connect's power-up tells no direct handle either (winscard.c ~312–336)
  } finally { await stop(); }
});

test('R77: a client\'s SCARD_UNPOWER_CARD is still what it was: SCARD_PRESENT alone, and direct handles hear a reset', async () => {
  const { b, stop } = await setup(60_000);
  try {
    const { handle } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    const { handle: direct } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    await b.disconnect(handle, Disposition.SCARD_UNPOWER_CARD);
    assert.equal(entryFor(b.readers().find((r) => r.name === A)!).readerState, B.SCARD_PRESENT);
    await rejectsWith(b.status(direct), Rv.SCARD_W_RESET_CARD, 'the direct handle hears the client\'s unpower');
  } finally { await stop(); }
});

test('R78: a DIRECT connect asking for RAW sets the table\'s cardProtocol to RAW for every client, with pcscd\'s consequences', async () => {
  const { b, stop } = await setup(60_000);
  try {
    const { handle: s } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    const { activeProtocol } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, ProtocolBits.SCARD_PROTOCOL_RAW);
    assert.equal(activeProtocol, ProtocolBits.SCARD_PROTOCOL_RAW, 'winscard.c ~357: cardProtocol = RAW, answered as the active protocol');
    assert.equal(entryFor(b.readers().find((r) => r.name === A)!).cardProtocol, ProtocolBits.SCARD_PROTOCOL_RAW);
    // SCardTransmit compares the PCI with the reader's cardProtocol (winscard.c ~1551–1560).
    await rejectsWith(b.transmit(s, T1, VERIFY_QUERY, 258), Rv.SCARD_E_PROTO_MISMATCH, 'a T=1 PCI now');
    assert.equal((await b.transmit(s, RAW, VERIFY_QUERY, 258)).length, 2, 'a RAW PCI still goes');
    // A shared connect finds a protocol set that it did not ask for (~408–414).
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_E_PROTO_MISMATCH, 'a T0|T1 connect');
    const { activeProtocol: rawShared } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_RAW);
    assert.equal(rawShared, ProtocolBits.SCARD_PROTOCOL_RAW);
    // A direct connect without RAW reports it too.
    assert.equal((await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_RAW);
    // A reconnect with a reset unsets it (~596) and negotiates again.
    const { activeProtocol: renegotiated } = await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    assert.equal(renegotiated, ProtocolBits.SCARD_PROTOCOL_T1);
    assert.equal(entryFor(b.readers().find((r) => r.name === A)!).cardProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
  } finally { await stop(); }
});

test('R78: a reconnect to DIRECT asking for RAW sets RAW too', async () => {
  const { b, stop } = await setup(60_000);
  try {
    const { handle: s } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    const { handle: d } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    const { activeProtocol } = await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, ProtocolBits.SCARD_PROTOCOL_RAW, Disposition.SCARD_LEAVE_CARD);
    assert.equal(activeProtocol, ProtocolBits.SCARD_PROTOCOL_RAW);
    assert.equal(entryFor(b.readers().find((r) => r.name === A)!).cardProtocol, ProtocolBits.SCARD_PROTOCOL_RAW);
    await rejectsWith(b.transmit(s, T1, VERIFY_QUERY, 258), Rv.SCARD_E_PROTO_MISMATCH, 'a T=1 PCI after it');
  } finally { await stop(); }
});

test('R80: a card handle\'s Reconnect(LEAVE) without RAW while the reader\'s protocol is RAW is SCARD_E_PROTO_MISMATCH, as pcscd; RAW, DIRECT or a reset are accepted', async () => {
  const { b, stop } = await setup(60_000);
  try {
    const { handle: s } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    const { handle: d } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, ProtocolBits.SCARD_PROTOCOL_RAW);
    const table = () => entryFor(b.readers().find((r) => r.name === A)!).cardProtocol;
    assert.equal(table(), ProtocolBits.SCARD_PROTOCOL_RAW);
    // winscard.c SCardReconnect ~707–714: cardProtocol is set (RAW), so the preferred ones must contain it.
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'LEAVE, T0|T1');
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_T1, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'LEAVE, T1');
    // ANY_OLD is not expanded there (only when the protocol is UNDEFINED, ~676–678).
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_ANY_OLD, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'LEAVE, ANY_OLD');
    // Before the share mode changes (~748): the handle is still shared, the reader not held.
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'LEAVE, T0|T1, to EXCLUSIVE');
    // A direct handle asking to become a card handle with LEAVE, T0|T1: the same check (~707–714).
    await rejectsWith(b.reconnect(d, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'DIRECT → SHARED, LEAVE, T0|T1');
    assert.equal(table(), ProtocolBits.SCARD_PROTOCOL_RAW, 'nothing changed');
    // The handle still works with a RAW PCI, and a RAW reconnect or a DIRECT one is accepted.
    assert.equal((await b.transmit(s, RAW, VERIFY_QUERY, 258)).length, 2);
    assert.equal((await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY | ProtocolBits.SCARD_PROTOCOL_RAW, Disposition.SCARD_LEAVE_CARD)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_RAW);
    assert.equal((await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, ANY, Disposition.SCARD_LEAVE_CARD)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_RAW, 'DIRECT skips the check (~660)');
    // A reset unsets the protocol first (~596) and negotiates again from the preferred ones.
    assert.equal((await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    assert.equal(table(), ProtocolBits.SCARD_PROTOCOL_T1);
    assert.equal((await b.transmit(s, T1, VERIFY_QUERY, 258)).length, 2, 'T=1 again after the reset');
  } finally { await stop(); }
});

test('R64 + R77: a card swallowed by a failed reset stays SCARD_W_UNPOWERED_CARD through the grace period after its last handle went, then a connect powers it up again', async () => {
  const { sim, m, b, stop } = await setup();
  try {
    let mute = false;
    const on = sim.powerOn.bind(sim);
    sim.powerOn = async (key, mode) => { if (mute) throw new ScError('PROTOCOL', 'no answer to reset'); return on(key, mode); };
    const { handle } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    mute = true;
    await rejectsWith(b.reconnect(handle, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'the reset');
    mute = false; // the card would answer again
    await b.disconnect(handle, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.inGracePeriod(A), true);
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_W_UNPOWERED_CARD, 'within the grace period (pcscd: powerState not UNPOWERED yet)');
    await until(() => !m.inGracePeriod(A), 'the end of the grace period');
    const c = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    assert.equal(c.activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1, 'powered up again at the connect');
    await b.disconnect(c.handle, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

/** A bounded wait for a state no event announces (the end of the grace period of a card with nothing to power down). */
async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
