// The PC/SC service's real backend on the reader manager (simulator driver), in memory:
// pcscd's answers for sharing, transactions, RESET/REMOVED, and what is logged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { LogEntry } from '../../../server/src/protocol';
import { rvOf } from '../../../server/src/service/backend';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { secretRanges } from '../../../server/src/codecs/apdu';
import { Disposition, ProtocolBits, Rv, ShareMode } from '../../../server/src/service/wire';
import { ScError } from '../../../server/src/util/errors';
import type { PowerMode, ReaderFacts } from '../../../server/src/drivers/driver';

const A = 'Workbench Simulator 00 00';
const B = 'Workbench Simulator 01 00';
const SELECT = Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x07, 0xf0, 0x57, 0x42, 0x44, 0x45, 0x4d, 0x4f);
const T1 = { protocol: ProtocolBits.SCARD_PROTOCOL_T1, pciLength: 8 };
const ANY = ProtocolBits.SCARD_PROTOCOL_T0 | ProtocolBits.SCARD_PROTOCOL_T1;
const SCARD_ATTR_VENDOR_NAME = 0x00010100;

async function setup(transactionTimeoutMs?: number, exchangeTimeoutMs?: number) {
  const sim = new SimulatorDriver({ readers: 2 });
  const m = new ReaderManager([sim], { historySize: 0, ...(transactionTimeoutMs ? { transactionTimeoutMs } : {}), ...(exchangeTimeoutMs ? { exchangeTimeoutMs } : {}) });
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  const b = new ManagerBackend(m);
  return { sim, m, b, entries, async stop() { b.dispose(); await m.stop(); } };
}

async function rejectsWith(p: Promise<unknown>, rv: number, what: string): Promise<void> {
  await assert.rejects(p, (e) => { assert.equal(rvOf(e), rv >>> 0, `${what}: 0x${rvOf(e).toString(16)}`); return true; });
}

test('secretRanges: the data of VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER (short and extended), nothing else', () => {
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x20, 0, 1, 4, 0x31, 0x32, 0x33, 0x34)), [[5, 9]]);
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x21, 0, 1, 2, 0x31, 0x32)), [[5, 7]]);
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x24, 0, 1, 0, 0, 2, 0x31, 0x32)), [[5, 9]], 'extended: the length bytes with the data');
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x2c, 0, 1, 2, 0x31, 0x32)), [[5, 7]]);
  assert.equal(secretRanges(Uint8Array.of(0, 0x20, 0, 1)), undefined, 'a VERIFY without data (retry counter query) has nothing to hide');
  assert.equal(secretRanges(SELECT), undefined);
  // The odd INS (BER-TLV data) too, and an Lc that says less than is sent hides the whole tail.
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x2d, 0, 1, 2, 0x31, 0x32)), [[5, 7]]);
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x20, 0, 1, 2, 0x31, 0x32, 0x33, 0x34)), [[5, 9]], 'Lc 02 with four bytes after it');
  // A wrong short Lc of 00 followed by the PIN: nothing after the header shows.
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x20, 0, 1, 0, 0x31, 0x32, 0x33, 0x34)), [[5, 9]]);
  // SIM / UICC: DISABLE and ENABLE VERIFICATION REQUIREMENT carry CHV1 / the PIN.
  assert.deepEqual(secretRanges(Uint8Array.of(0xa0, 0x26, 0, 1, 8, 0x31, 0x32, 0x33, 0x34, 0xff, 0xff, 0xff, 0xff)), [[5, 13]]);
  assert.deepEqual(secretRanges(Uint8Array.of(0, 0x28, 0, 1, 8, 0x31, 0x32, 0x33, 0x34, 0xff, 0xff, 0xff, 0xff)), [[5, 13]]);
});

test('a client VERIFY is logged with its data as **; a SELECT as sent', async () => {
  const { b, entries, stop } = await setup();
  try {
    const { handle } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    await b.transmit(handle, T1, Uint8Array.of(0, 0x20, 0, 1, 6, 0x39, 0x31, 0x38, 0x32, 0x37, 0x33), 258);
    await b.transmit(handle, T1, SELECT, 258);
    const commands = entries.filter((e) => e.kind === 'exchange').map((e) => (e as { command: string }).command);
    assert.deepEqual(commands, ['0020000106************', '00A4040007F0574244454D4F']);
    assert.ok(!JSON.stringify(entries).includes('393138323733'));
  } finally { await stop(); }
});

test('BEGIN and TRANSMIT during another handle\'s transaction: SCARD_E_SHARING_VIOLATION at once; after END they go through', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(one);
    await b.beginTransaction(one); // nested
    await rejectsWith(b.beginTransaction(two), Rv.SCARD_E_SHARING_VIOLATION, 'begin');
    await rejectsWith(b.transmit(two, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'transmit');
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.beginTransaction(two), Rv.SCARD_E_SHARING_VIOLATION, 'still held once');
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.endTransaction(one, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NOT_TRANSACTED, 'no transaction left');
    await b.beginTransaction(two);
    assert.equal((await b.transmit(two, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('exclusive: a second client is refused at once; a disconnect with RESET is SCARD_W_RESET_CARD to the others until they reconnect', async () => {
  const { b, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_E_SHARING_VIOLATION, 'connect beside exclusive');
    assert.equal(b.readers().find((r) => r.name === A)?.exclusive, true);
    await b.disconnect(x, Disposition.SCARD_LEAVE_CARD);
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.disconnect(one, Disposition.SCARD_RESET_CARD);
    await rejectsWith(b.status(two), Rv.SCARD_W_RESET_CARD, 'status after the reset');
    await rejectsWith(b.status(two), Rv.SCARD_W_RESET_CARD, 'again: pcscd clears it only in SCardReconnect');
    await b.reconnect(two, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(two, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('a removed card: SCARD_W_REMOVED_CARD on every call until a reconnect; the table shows the reader empty', async () => {
  const { sim, b, m, stop } = await setup();
  try {
    const h = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    sim.removeCard('sim:0');
    await rejectsWith(b.transmit(h, T1, SELECT, 258), Rv.SCARD_W_REMOVED_CARD, 'first');
    await rejectsWith(b.status(h), Rv.SCARD_W_REMOVED_CARD, 'again');
    assert.equal(b.readers().find((r) => r.name === A)?.card, 'absent');
    sim.insertCard('sim:0');
    await new Promise<void>((resolve) => { const off = m.onReadersChanged(() => { if (m.reader(A).card?.powered && !m.cardInitializing(A)) { off(); resolve(); } }); });
    await rejectsWith(b.transmit(h, T1, SELECT, 258), Rv.SCARD_W_REMOVED_CARD, 'a new card does not make the old handle valid');
    await b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(h, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('a client\'s transaction is not released for being idle (a script\'s is, after the manager\'s time-out)', async () => {
  const { b, m, stop } = await setup(50);
  try {
    const h = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(h);
    const script = await m.connect(B);
    await script.beginTransaction();
    assert.equal(m.reader(B).inTransaction, true);
    // The script's transaction, begun after the client's, is released by the idle timer: wait for that.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the script\'s idle transaction was never released')), 5000);
      const off = m.onReadersChanged(() => { if (!m.reader(B).inTransaction) { clearTimeout(timer); off(); resolve(); } });
    });
    assert.equal(m.reader(A).inTransaction, true, 'the client still holds its transaction');
    await b.endTransaction(h, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.reader(A).inTransaction, false);
  } finally { await stop(); }
});

test('abandon (a client that died) ends its transaction with a reset; the next handle hears it until it reconnects', async () => {
  const { b, m, stop } = await setup();
  try {
    const dead = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const next = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(dead);
    await b.abandon(dead);
    await b.abandon(dead); // idempotent
    assert.equal(m.reader(A).inTransaction, false);
    assert.equal(m.reader(A).connections, 1);
    await rejectsWith(b.beginTransaction(next), Rv.SCARD_W_RESET_CARD, 'the reset of the dead client\'s card');
    await rejectsWith(b.beginTransaction(next), Rv.SCARD_W_RESET_CARD, 'still, until SCardReconnect');
    await b.reconnect(next, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.beginTransaction(next);
  } finally { await stop(); }
});

/** The promise's outcome, or 'still waiting' after `ms` (a bound, not a sleep: the answer must come at once). */
async function within(p: Promise<unknown>, ms = 2000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`still waiting after ${ms} ms`), ms); });
  try {
    return await Promise.race([p.then(() => 'ok', (e) => `rejected: 0x${(rvOf(e) >>> 0).toString(16)} ${(e as Error).message}`), late]);
  } finally { clearTimeout(timer); }
}

test('a PC/SC client\'s exclusive connection: the editor\'s connect, Reset, Power Off and control are refused at once; a script waits', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    assert.match(await within(m.connect(A, { share: 'shared', client: 'editor' })), /rejected: .*held exclusively/, 'editor connect');
    assert.match(await within(m.resetCard(A, 'warm')), /rejected: .*held exclusively/, 'Readers view reset');
    assert.match(await within(m.powerOffCard(A)), /rejected: .*held exclusively/, 'Readers view power off');
    assert.match(await within(m.controlDirect(A, 3400, new Uint8Array(0))), /rejected: .*held exclusively/, 'control command');
    // A script run (cancellable) waits behind the client, as designed, and gets in once it disconnects.
    const script = m.connect(A, { signal: new AbortController().signal, waitBehindExclusive: true });
    assert.equal(await within(script, 300), 'still waiting after 300 ms');
    await b.disconnect(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(await within(script), 'ok');
    await (await script).disconnect('leave');
  } finally { await stop(); }
});

test('abandon of an exclusive client (no transaction of its own): the card is reset, as pcscd resets the lock holder\'s card', async () => {
  const { b, entries, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    await b.transmit(x, T1, SELECT, 258);
    const mark = entries.length;
    await b.abandon(x);
    assert.ok(entries.slice(mark).some((e) => e.kind === 'cardReset'), `entries after abandon: ${entries.slice(mark).map((e) => e.kind).join(', ')}`);
    const next = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    assert.equal((await b.transmit(next, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('SCARD_W_RESET_CARD on every call of the other handles until their SCardReconnect; the own EndTransaction(RESET) marks the caller too', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.reconnect(one, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    assert.equal((await b.transmit(one, T1, SELECT, 258)).at(-2), 0x90, 'SCardReconnect clears the caller\'s own event');
    await rejectsWith(b.transmit(two, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'two, first');
    await rejectsWith(b.transmit(two, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'two, second');
    await rejectsWith(b.status(two), Rv.SCARD_W_RESET_CARD, 'two, status');
    await b.reconnect(two, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(two, T1, SELECT, 258)).at(-2), 0x90);
    // winscard.c SCardEndTransaction: RFSetReaderEventState(SCARD_RESET) sets every handle, the caller's included.
    await b.beginTransaction(one);
    await b.endTransaction(one, Disposition.SCARD_RESET_CARD);
    await rejectsWith(b.transmit(one, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'one after its own EndTransaction(RESET)');
    await rejectsWith(b.transmit(two, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'two after one\'s EndTransaction(RESET)');
    await b.reconnect(one, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(one, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('SCardSetAttrib as pcscd with libccid: SCARD_E_UNSUPPORTED_FEATURE (its IFD_ERROR_TAG), after the handle\'s SCARD_W_RESET_CARD and SCARD_W_REMOVED_CARD', async () => {
  const { sim, m, b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const value = Uint8Array.of(1, 2, 3);
    await rejectsWith(b.setAttrib(one, SCARD_ATTR_VENDOR_NAME, value), Rv.SCARD_E_UNSUPPORTED_FEATURE, 'winscard.c 1478–1483: libccid\'s IFD_ERROR_TAG');
    await b.reconnect(two, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    // RFCheckReaderEventState before IFDSetCapabilities (winscard.c 1472).
    await rejectsWith(b.setAttrib(one, SCARD_ATTR_VENDOR_NAME, value), Rv.SCARD_W_RESET_CARD, 'the other handle\'s reset');
    await b.reconnect(one, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.setAttrib(one, SCARD_ATTR_VENDOR_NAME, value), Rv.SCARD_E_UNSUPPORTED_FEATURE, 'after its reconnect');
    sim.removeCard('sim:0');
    await rejectsWith(b.setAttrib(one, SCARD_ATTR_VENDOR_NAME, value), Rv.SCARD_W_REMOVED_CARD, 'the card removed');
    assert.ok(!m.reader(A).card, 'the reader is empty');
  } finally { await stop(); }
});

test('a reconnect to EXCLUSIVE beside another handle: SCARD_E_SHARING_VIOLATION and the handle is left as it was', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    await rejectsWith(b.reconnect(one, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_SHARING_VIOLATION, 'reconnect exclusive');
    assert.equal((await b.transmit(one, T1, SELECT, 258)).at(-2), 0x90, 'the handle still works');
    assert.equal(b.readers().find((r) => r.name === A)?.handles, 2);
    assert.equal(b.readers().find((r) => r.name === A)?.exclusive, false);
  } finally { await stop(); }
});

test('CONTROL, RECONNECT and STATUS during another handle\'s transaction: SCARD_E_SHARING_VIOLATION at once', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const direct = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(one);
    const violation = /^rejected: 0x8010000b /;
    assert.match(await within(b.control(two, 0x42000000 + 3400, new Uint8Array(0))), violation, 'control');
    assert.match(await within(b.control(direct, 0x42000000 + 3400, new Uint8Array(0))), violation, 'control on a direct handle');
    assert.match(await within(b.reconnect(two, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD)), violation, 'reconnect RESET');
    assert.match(await within(b.reconnect(two, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_UNPOWER_CARD)), violation, 'reconnect UNPOWER');
    assert.match(await within(b.status(two)), violation, 'status');
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    assert.equal(await within(b.status(two)), 'ok');
    assert.equal(await within(b.control(two, 0x42000000 + 3400, new Uint8Array(0))), 'ok');
  } finally { await stop(); }
});

test('behind a PC/SC client\'s transaction, the editor\'s and the API\'s calls give up after the exchange time-out, nothing sent', async () => {
  const { b, m, entries, stop } = await setup(undefined, 300);
  try {
    const editor = await m.connect(A); // before the client's transaction
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(one);
    const mark = entries.length;
    const timedOut = /^rejected: .*transaction for 300 ms; nothing was sent/;
    assert.match(await within(editor.transmit(SELECT)), timedOut, 'the editor\'s transmit');
    assert.match(await within(editor.beginTransaction()), timedOut, 'the editor\'s begin');
    assert.match(await within(editor.control(3400, new Uint8Array(0))), timedOut, 'the editor\'s control');
    assert.match(await within(m.connect(A, { client: 'x.y' })), timedOut, 'an API connect');
    assert.match(await within(m.resetCard(B, 'warm')), /^ok$/, 'the other reader is free');
    assert.match(await within(m.resetCard(A, 'warm')), timedOut, 'the Readers view\'s Reset');
    assert.match(await within(m.controlDirect(A, 3400, new Uint8Array(0))), timedOut, 'a control command without a connection');
    assert.deepEqual(entries.slice(mark).filter((e) => e.kind === 'exchange' && e.reader === A), [], 'nothing was sent');
    assert.equal((await b.transmit(one, T1, SELECT, 258)).at(-2), 0x90, 'the client\'s transaction goes on');
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await editor.transmit(SELECT)).response.at(-2), 0x90, 'after the end the editor goes through');
    await editor.disconnect('leave');
  } finally { await stop(); }
});

test('PIN-pad control calls of a client are logged as `**`: a feature the reader lists at its own code, libccid\'s PIN codes on any reader; other control data stays readable', async () => {
  // A reader that lists VERIFY_PIN_DIRECT at a code outside libccid's numbering (as other drivers do).
  const OWN_CODE = 0x00313540;
  class PinpadSim extends SimulatorDriver {
    override async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
      if (code === 3400) return Uint8Array.of(0x06, 4, 0x00, 0x31, 0x35, 0x40);
      if (code === OWN_CODE || code === 0x4233000a) return Uint8Array.of(0x90, 0x00);
      return super.control(key, code, data);
    }
  }
  const m = new ReaderManager([new PinpadSim()], { historySize: 0 });
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const reader = m.list().readers[0].name;
    const { handle } = await b.connect(reader, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_T1);
    const withPin = Uint8Array.of(0, 0, 0x82, 0, 0, 6, 6, 2, 1, 9, 4, 0, 0, 0, 0, 11, 0, 0, 0, 0x00, 0x20, 0x00, 0x01, 0x06, 0x35, 0x38, 0x32, 0x39, 0x34, 0x37);
    await b.control(handle, OWN_CODE, withPin);
    await b.control(handle, 0x42330007, withPin).catch(() => undefined); // MODIFY_PIN_DIRECT: not listed, refused, still masked
    await b.control(handle, 0x4233000a, Uint8Array.of(0xde, 0xad)); // IFD_PIN_PROPERTIES (libccid's numbering): no secret
    const controls = entries.filter((e) => e.kind === 'control' && e.code !== 3400).map((e) => (e as { command: string }).command);
    assert.deepEqual(controls, ['**'.repeat(withPin.length), '**'.repeat(withPin.length), 'DEAD']);
  } finally {
    b.dispose();
    await m.stop();
  }
});

test('the negotiated protocol reaches the reader state table with a change notification (SCardStatus reads it there; smartcardio\'s Card.getProtocol too)', async () => {
  const { b, stop } = await setup();
  try {
    const published: (number | undefined)[] = [];
    const off = b.onChange(() => published.push(b.readers().find((r) => r.name === A)!.protocol));
    const { activeProtocol } = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    assert.equal(activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    assert.equal(published.at(-1), ProtocolBits.SCARD_PROTOCOL_T1, `what the table's listeners were last told: ${JSON.stringify(published)}`);
    off();
  } finally { await stop(); }
});

// The next five follow pcsc-lite's UnitaryTests (test/refstack/unitaryTests.test.ts), where each
// was a difference from pcscd.
test('SCardBeginTransaction_ExclusiceMode.py / _SharedMode.py: a disconnect (LEAVE) during another handle\'s transaction does not wait for it', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(one);
    assert.equal(await within(b.disconnect(two, Disposition.SCARD_LEAVE_CARD)), 'ok', 'one client with two handles would deadlock itself');
    assert.equal(b.readers().find((r) => r.name === A)?.handles, 1);
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    await b.disconnect(one, Disposition.SCARD_LEAVE_CARD);
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    await b.disconnect(x, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

test('SCardBeginTransaction_Reset.py: EndTransaction of a handle without one, during another\'s transaction: SCARD_E_SHARING_VIOLATION, the card not reset', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(one);
    await rejectsWith(b.endTransaction(two, Disposition.SCARD_UNPOWER_CARD), Rv.SCARD_E_SHARING_VIOLATION, 'end UNPOWER');
    await rejectsWith(b.endTransaction(two, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_SHARING_VIOLATION, 'end LEAVE');
    await b.status(one); // not SCARD_W_RESET_CARD
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.endTransaction(two, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NOT_TRANSACTED, 'nobody\'s transaction');
  } finally { await stop(); }
});

test('SCardBlockingBehaviourTest.py: GetAttrib during another handle\'s transaction is SCARD_E_SHARING_VIOLATION at once', async () => {
  const { b, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(one);
    assert.match(await within(b.getAttrib(two, 0x00090303)), /^rejected: 0x8010000b /);
    await b.endTransaction(one, Disposition.SCARD_LEAVE_CARD);
    assert.equal(await within(b.getAttrib(two, 0x00090303)), 'ok');
  } finally { await stop(); }
});

test('SCardBlockingBehaviourTest.py: a reconnect asking only for T=0 on the card\'s T=1 is SCARD_E_PROTO_MISMATCH', async () => {
  const { b, stop } = await setup();
  try {
    const h = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_T0, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'reconnect T=0');
    assert.equal((await b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
  } finally { await stop(); }
});

test('SCardConnect_DIRECT.py: a direct connection reports the protocol negotiated since the power-up, else UNDEFINED', async () => {
  const { b, m, stop } = await setup();
  try {
    await m.resetCard(A, 'cold');
    const first = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, ANY);
    assert.equal(first.activeProtocol, ProtocolBits.SCARD_PROTOCOL_UNDEFINED, 'nothing negotiated since the power-up');
    const shared = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    assert.equal(shared.activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    assert.equal((await b.reconnect(shared.handle, ShareMode.SCARD_SHARE_DIRECT, ANY, Disposition.SCARD_LEAVE_CARD)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1, 'like before');
    assert.equal((await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, ANY)).activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
  } finally { await stop(); }
});

test('review 5: MCT_READER_DIRECT, MCT_UNIVERSAL and CCID_ESC_COMMAND inputs are logged as `**`; GET_KEY\'s answer (the keys pressed) and the answers of these calls too', async () => {
  // A cyberJack-like reader: MCT_UNIVERSAL and GET_KEY listed at its own codes; libccid's escape
  // (FEATURE_CCID_ESC_COMMAND = IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE, SCARD_CTL_CODE(1)) and MCT_READER_DIRECT
  // in libccid's numbering, listed or not.
  const MCT_UNIVERSAL = 0x00313509;
  const GET_KEY = 0x00313510;
  const PIN_ASCII = [0x35, 0x38, 0x32, 0x39, 0x34, 0x37];
  class Reader extends SimulatorDriver {
    override async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
      if (code === 3400) return Uint8Array.of(0x09, 4, 0x00, 0x31, 0x35, 0x09, 0x10, 4, 0x00, 0x31, 0x35, 0x10);
      if (code === GET_KEY) return Uint8Array.of(...PIN_ASCII); // the digits typed on the keypad
      if (code === MCT_UNIVERSAL || code === 0x42000001 || code === 0x42330008) return Uint8Array.of(0x01, 0x02, ...PIN_ASCII, 0x90, 0x00);
      return super.control(key, code, data);
    }
  }
  const m = new ReaderManager([new Reader()], { historySize: 0 });
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const reader = m.list().readers[0].name;
    const { handle } = await b.connect(reader, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_T1);
    const verify = Uint8Array.of(0x00, 0x20, 0x00, 0x01, 0x06, ...PIN_ASCII);
    // MCT_UNIVERSAL's CT-BCS frame (SAD, DAD, then the APDU): a VERIFY to the card.
    const mct = Uint8Array.of(0x02, 0x00, ...verify);
    await b.control(handle, MCT_UNIVERSAL, mct);
    await b.control(handle, 0x42330008, verify); // MCT_READER_DIRECT, libccid's numbering
    await b.control(handle, 0x42000001, Uint8Array.of(0xff, 0x00, 0x00, 0x00, verify.length, ...verify)); // an escape wrapping a VERIFY
    await b.control(handle, GET_KEY, new Uint8Array(0));
    const controls = entries.filter((e) => e.kind === 'control' && e.code !== 3400) as Array<{ code: number; command: string; response?: string }>;
    assert.deepEqual(controls.map((e) => [e.code, e.command]), [
      [MCT_UNIVERSAL, '**'.repeat(mct.length)], [0x42330008, '**'.repeat(verify.length)], [0x42000001, '**'.repeat(verify.length + 5)], [GET_KEY, ''],
    ]);
    assert.deepEqual(controls.map((e) => e.response), ['**'.repeat(10), '**'.repeat(10), '**'.repeat(10), '**'.repeat(6)]);
    assert.ok(!JSON.stringify(entries).includes('353832393437'), 'the PIN in no form of hex');
  } finally {
    b.dispose();
    await m.stop();
  }
});

test('review 6: GetAttrib reports a reset or removed card as pcscd\'s RFCheckReaderEventState does (W_RESET_CARD / W_REMOVED_CARD), until a reconnect; a direct handle too (R47)', async () => {
  const { sim, b, m, stop } = await setup();
  try {
    const one = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const two = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const direct = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.reconnect(one, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    await rejectsWith(b.getAttrib(two, 0x00090303), Rv.SCARD_W_RESET_CARD, 'ATR after another handle\'s reset');
    await rejectsWith(b.getAttrib(two, 0x00010100), Rv.SCARD_W_RESET_CARD, 'VENDOR_NAME after another handle\'s reset');
    assert.equal(await within(b.getAttrib(one, 0x00090303)), 'ok', 'the resetting handle itself');
    await b.reconnect(two, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal(await within(b.getAttrib(two, 0x00010100)), 'ok', 'after its SCardReconnect');
    sim.removeCard('sim:0');
    await rejectsWith(b.getAttrib(two, 0x00010100), Rv.SCARD_W_REMOVED_CARD, 'VENDOR_NAME after the removal');
    await rejectsWith(b.getAttrib(two, 0x00010100), Rv.SCARD_W_REMOVED_CARD, 'and again');
    // The direct handle is in pcscd's handle list too (RFSetReaderEventState marks it): R47.
    await rejectsWith(b.getAttrib(direct, 0x00010100), Rv.SCARD_W_REMOVED_CARD, 'the direct handle hears the removal');
    await rejectsWith(b.reconnect(direct, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NO_SMARTCARD, 'its reconnect with no card');
    void m;
  } finally { await stop(); }
});

test('review 6: GetAttrib answers the reader\'s own bytes (the facts\' raw map), not the text cleaned for the Readers view', async () => {
  const vendor = Uint8Array.of(0x20, 0x41, 0x43, 0x4d, 0x45, 0x01, 0xe4, 0x20, 0x20, 0x00); // " ACME\x01ä  " latin1, NUL
  const version = Uint8Array.of(0x00, 0x00, 0x16, 0x02, 0x00, 0x00, 0x00, 0x00); // an 8-byte unsigned long
  class Reader extends SimulatorDriver {
    override async readerFacts(key: string) {
      const f = await super.readerFacts(key);
      return { ...f, vendorName: ' ACME\u0001ä  ', ifdVersion: 0x02160000, raw: { '00010100': Buffer.from(vendor).toString('hex'), '00010102': Buffer.from(version).toString('hex') } };
    }
  }
  const m = new ReaderManager([new Reader()], { historySize: 0 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const reader = m.list().readers[0].name;
    assert.equal(m.reader(reader).facts?.vendorName, 'ACME ä', 'the view\'s text is cleaned');
    const { handle } = await b.connect(reader, ShareMode.SCARD_SHARE_DIRECT, 0);
    assert.deepEqual([...await b.getAttrib(handle, 0x00010100)], [...vendor]);
    assert.deepEqual([...await b.getAttrib(handle, 0x00010102)], [...version]);
    // R100: the driver gave the IFD handler's bytes, so a fact tag without them is one the handler does not answer
    // (IFD_ERROR_TAG → SCARD_E_UNSUPPORTED_FEATURE, winscard.c 1407–1426), not the view's text.
    await rejectsWith(b.getAttrib(handle, 0x00010101), Rv.SCARD_E_UNSUPPORTED_FEATURE, 'VENDOR_IFD_TYPE: not among the raw bytes');
  } finally {
    b.dispose();
    await m.stop();
  }
  // A driver that gives no raw bytes at all (the simulator): the facts' text, as before.
  const plain = new ReaderManager([new SimulatorDriver()], { historySize: 0 });
  await plain.start();
  const pb = new ManagerBackend(plain);
  try {
    const { handle } = await pb.connect(plain.list().readers[0].name, ShareMode.SCARD_SHARE_DIRECT, 0);
    assert.deepEqual([...await pb.getAttrib(handle, 0x00010101)], [...new TextEncoder().encode('Simulator\0')], 'no raw bytes: the text as before');
  } finally {
    pb.dispose();
    await plain.stop();
  }
});

// Review finding 1 (R34): SCardReconnect that changes the share mode is atomic, as pcscd's under the
// reader lock (winscard.c ~748–818: the share mode changes only at the end, on success).
test('R34: a reconnect to EXCLUSIVE racing another client\'s shared connect: the reconnect wins (it came first), the other is refused, the handle transmits', async () => {
  const { b, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const reconnect = b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD).then(() => 'ok', (e) => `0x${rvOf(e).toString(16)}`);
    const y = b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY).then(() => 'ok', (e) => `0x${rvOf(e).toString(16)}`);
    assert.deepEqual([await reconnect, await y], ['ok', '0x8010000b'], 'X exclusive, Y refused');
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90, 'X transmits');
    const facts = b.readers().find((r) => r.name === A)!;
    assert.deepEqual([facts.handles, facts.exclusive], [1, true]);
  } finally { await stop(); }
});

test('R34: a reconnect to EXCLUSIVE that fails (another connect got in first) leaves the handle shared and working', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    // Y's connect waits in the reader's queue (behind a control call) when X's reconnect checks the sharing:
    // X's check passes, and Y is in before X's open.
    const busy = m.controlDirect(A, 3400, new Uint8Array(0));
    const y = b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    await rejectsWith(b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_SHARING_VIOLATION, 'reconnect exclusive');
    await Promise.all([busy, y]);
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90, 'X still transmits in its old mode');
    await b.status(x);
    const facts = b.readers().find((r) => r.name === A)!;
    assert.deepEqual([facts.handles, facts.exclusive, m.reader(A).clients?.length], [2, false, 2], 'both listed, nobody exclusive');
  } finally { await stop(); }
});

test('R34: reconnects between SHARED, EXCLUSIVE and DIRECT keep the handle counted once; EXCLUSIVE → SHARED lets another client in', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.deepEqual([b.readers().find((r) => r.name === A)!.handles, m.reader(A).exclusive], [1, false]);
    await b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.deepEqual([b.readers().find((r) => r.name === A)!.handles, m.reader(A).exclusive], [1, true], 'its own direct handle does not refuse it');
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.reader(A).inTransaction, false, 'the exclusive hold ended with the exclusive mode');
    const y = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    assert.equal((await b.transmit(y, T1, SELECT, 258)).at(-2), 0x90);
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90);
    assert.equal(b.readers().find((r) => r.name === A)!.handles, 2);
  } finally { await stop(); }
});

// Review finding 3 (R35): winscard.c ~279 refuses every SCardConnect while the reader is EXCLUSIVE (DIRECT too);
// an exclusive SCardConnect needs contexts == PCSCLITE_SHARING_NO_CONTEXT (~462), and a DIRECT handle is a context.
test('R35: DIRECT and EXCLUSIVE refuse each other at SCardConnect', async () => {
  const { b, stop } = await setup();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY), Rv.SCARD_E_SHARING_VIOLATION, 'exclusive beside a direct handle');
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
    await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY);
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0), Rv.SCARD_E_SHARING_VIOLATION, 'direct beside an exclusive handle');
    const facts = b.readers().find((r) => r.name === A)!;
    assert.deepEqual([facts.handles, facts.exclusive], [1, true]);
  } finally { await stop(); }
});

// Review finding 4 (R36): pcscd checks the protocol before it changes the sharing and clears the handle's
// event state only on success (winscard.c ~700–716, ~804); its own RESET marks the caller (~582).
test('R36: SCardReconnect(RESET, T=0 only) on a T=1 card: PROTO_MISMATCH, and the next call is SCARD_W_RESET_CARD', async () => {
  const { b, stop } = await setup();
  try {
    const h = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_T0, Disposition.SCARD_RESET_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'reconnect RESET T=0');
    await rejectsWith(b.status(h), Rv.SCARD_W_RESET_CARD, 'status after the failed reconnect');
    await b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(h, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('R36: SCardReconnect(EXCLUSIVE, T=0 only, LEAVE) on a T=1 card: PROTO_MISMATCH with the handle still shared; ANY_OLD alone is refused too', async () => {
  const { b, m, stop } = await setup();
  try {
    const h = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_EXCLUSIVE, ProtocolBits.SCARD_PROTOCOL_T0, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'reconnect exclusive T=0');
    assert.equal(m.reader(A).exclusive, false, 'still shared');
    await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_ANY_OLD, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_PROTO_MISMATCH, 'ANY_OLD against a set protocol (winscard.c ~711)');
    assert.equal((await b.transmit(h, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

// Second review, finding 2 (R44): pcscd keeps hLockId and LockCount across an SCardReconnect that changes the
// share mode (readerfactory.c RFLockSharing/RFUnlockSharing ~1061–1107; winscard.c ~748–801: EXCLUSIVE adds one
// lock level, EXCLUSIVE → SHARED/DIRECT takes that one away), so the client's EndTransaction still succeeds.
/** A client's own transaction, as the Readers view shows it (an exclusive hold alone is not one). */
const clientTransaction = (m: ReaderManager): boolean => (m.reader(A).clients ?? []).some((c) => c.transaction);

test('R44: Begin, Reconnect SHARED → EXCLUSIVE, End: the transaction survives the share change', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(x);
    await b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.deepEqual([m.reader(A).exclusive, clientTransaction(m)], [true, true], 'exclusive, still in the client\'s transaction');
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90);
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.deepEqual([m.reader(A).exclusive, clientTransaction(m)], [true, false], 'the exclusive hold stays after the end');
    await rejectsWith(b.endTransaction(x, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NOT_TRANSACTED, 'only one level was begun');
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_E_SHARING_VIOLATION, 'still exclusive');
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.transactionOwner(A), null, 'nothing held once shared with no transaction');
  } finally { await stop(); }
});

test('R44: Begin, Reconnect EXCLUSIVE → SHARED: nobody gets the reader mid-transaction; End succeeds and lets them in', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    await b.beginTransaction(x);
    await b.beginTransaction(x); // nested: two levels over the exclusive hold
    // A script waits behind the exclusive client (waitBehindExclusive), in the reader's queue.
    let scriptIn = false;
    const script = m.connect(A, { waitBehindExclusive: true, label: 'script' }).then((c) => { scriptIn = true; return c; });
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.deepEqual([m.reader(A).exclusive, clientTransaction(m)], [false, true], 'shared, still in the client\'s transaction');
    // Another client's SCardConnect waits while hLockId is set (winscard.c ~289), now that the reader is shared.
    let yIn = false;
    const y = b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY).then((c) => { yIn = true; return c.handle; });
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90, 'the owner transmits');
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90, 'one level left: the owner goes on');
    assert.deepEqual([scriptIn, yIn, clientTransaction(m)], [false, false, true], 'the script and the other client still wait');
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.endTransaction(x, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NOT_TRANSACTED, 'both levels ended');
    const script1 = await script;
    const y1 = await y;
    assert.equal((await b.transmit(y1, T1, SELECT, 258)).at(-2), 0x90, 'then the other client goes through');
    await script1.disconnect('leave');
  } finally { await stop(); }
});

// ---------------------------------------------------------------- issue 15, round 5: R45–R49

/** Resolves once reader A's card is powered and initialization is done (an event, bounded by the test's own time-out). */
function cardReady(m: ReaderManager, reader = A): Promise<void> {
  return new Promise<void>((resolve) => {
    const ready = () => m.reader(reader).card?.powered === true && !m.cardInitializing(reader);
    if (ready()) { resolve(); return; }
    const off = m.onReadersChanged(() => { if (ready()) { off(); resolve(); } });
  });
}

const ATTR_CHANNEL_ID = 0x00020110;

test('R45: SCARD_ATTR_CHANNEL_ID is SCARD_E_UNSUPPORTED_FEATURE for a reader that gave none (pcscd + vpcd: 0x8010001F); a reader\'s own value is answered', async () => {
  const { b, stop } = await setup();
  try {
    const { handle } = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    await rejectsWith(b.getAttrib(handle, ATTR_CHANNEL_ID), Rv.SCARD_E_UNSUPPORTED_FEATURE, 'the simulator tells no channel id');
  } finally { await stop(); }
  class Reader extends SimulatorDriver {
    override async readerFacts(key: string) {
      return { ...await super.readerFacts(key), channelId: 0x00200305 };
    }
  }
  const m2 = new ReaderManager([new Reader()], { historySize: 0 });
  await m2.start();
  const b2 = new ManagerBackend(m2);
  try {
    const { handle } = await b2.connect(m2.list().readers[0].name, ShareMode.SCARD_SHARE_DIRECT, 0);
    assert.deepEqual([...await b2.getAttrib(handle, ATTR_CHANNEL_ID)], [0x05, 0x03, 0x20, 0x00], 'the reader\'s own, a DWORD little-endian');
  } finally {
    b2.dispose();
    await m2.stop();
  }
});

// winscard.c SCardReconnect ~606–640: LEAVE_CARD with SCARD_ABSENT is SCARD_E_NO_SMARTCARD (any share
// mode), RESET/UNPOWER whose power-up finds no card too; the handle keeps its event (no
// RFClearReaderEventState on failure), so its next call is still SCARD_W_REMOVED_CARD.
test('R46: Reconnect after the card was removed: SCARD_E_NO_SMARTCARD (LEAVE, RESET, DIRECT too); the handle still hears the removal; with a card back it succeeds', async () => {
  const { sim, b, m, stop } = await setup();
  try {
    const h = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    sim.removeCard('sim:0');
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NO_SMARTCARD, 'LEAVE with no card');
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NO_SMARTCARD, 'LEAVE to EXCLUSIVE with no card');
    await rejectsWith(b.transmit(h, T1, SELECT, 258), Rv.SCARD_W_REMOVED_CARD, 'the failed reconnects cleared nothing');
    await rejectsWith(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NO_SMARTCARD, 'a direct handle too');
    await rejectsWith(b.status(d), Rv.SCARD_W_REMOVED_CARD, 'the direct handle still hears the removal');
    // RESET with no card: SCARD_E_NO_SMARTCARD, but pcscd marked every handle SCARD_RESET before the power-up
    // (winscard.c ~580), which replaces the removal (readerfactory.c 1334) and is not cleared on failure.
    await rejectsWith(b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD), Rv.SCARD_E_NO_SMARTCARD, 'RESET with no card');
    await rejectsWith(b.transmit(h, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the failed RESET left the reset mark');
    await rejectsWith(b.status(d), Rv.SCARD_W_RESET_CARD, 'on the other handles too');
    sim.insertCard('sim:0');
    await cardReady(m);
    await b.reconnect(h, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(h, T1, SELECT, 258)).at(-2), 0x90, 'the new card, after the reconnect');
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    await b.status(d);
  } finally { await stop(); }
});

// pcscd's handle list holds direct handles too: RFSetReaderEventState (readerfactory.c 1315) marks every
// handle of the reader, and SCardStatus (~1290), SCardGetAttrib (~1397), SCardTransmit (~1535) answer
// RFCheckReaderEventState; SCardControl (~1307–1362) checks the sharing only.
test('R47: a direct handle hears a removal and a reset on Status, GetAttrib and Transmit until its reconnect; Control still reaches the reader; an insertion is no event', async () => {
  const { sim, b, m, stop } = await setup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    sim.removeCard('sim:0');
    for (const round of ['first', 'again']) {
      await rejectsWith(b.status(d), Rv.SCARD_W_REMOVED_CARD, `status, ${round}`);
      await rejectsWith(b.getAttrib(d, 0x00010100), Rv.SCARD_W_REMOVED_CARD, `getAttrib, ${round}`);
      await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_W_REMOVED_CARD, `transmit, ${round}`);
    }
    assert.ok((await b.control(d, 0x42000000 + 3400, new Uint8Array(0))) instanceof Uint8Array, 'control: no event check in pcscd');
    sim.insertCard('sim:0');
    await cardReady(m);
    await rejectsWith(b.status(d), Rv.SCARD_W_REMOVED_CARD, 'a new card does not clear it');
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    await b.status(d);
    // Another handle's reset.
    await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    await rejectsWith(b.status(d), Rv.SCARD_W_RESET_CARD, 'status after another handle\'s reset');
    await rejectsWith(b.getAttrib(d, 0x00010100), Rv.SCARD_W_RESET_CARD, 'getAttrib after it');
    await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'transmit after it');
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    await b.status(d);
    // A direct handle opened on an empty reader: the insertion is not an event (eventhandler.c sets none).
    sim.removeCard('sim:1');
    const e = (await b.connect(B, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    sim.insertCard('sim:1');
    await cardReady(m, B);
    await b.status(e);
  } finally { await stop(); }
});

// winscard.c SCardReconnect ~573–610: the reset comes right after RFCheckSharing, whatever the share modes,
// before the protocol and the share mode; a direct handle's SCARD_RESET_CARD resets the card too.
test('R48: Reconnect DIRECT → DIRECT with SCARD_RESET_CARD resets the card (the other handles hear it); DIRECT → SHARED resets before the share change', async () => {
  const { b, entries, stop } = await setup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const mark = entries.length;
    const r = await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD);
    assert.ok(entries.slice(mark).some((e) => e.kind === 'cardReset'), 'the card was reset');
    assert.equal(r.activeProtocol, ProtocolBits.SCARD_PROTOCOL_UNDEFINED, 'no protocol after the reset (cardProtocol = UNDEFINED, ~593)');
    await rejectsWith(b.transmit(s, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the shared handle hears the direct handle\'s reset');
    await b.status(d); // its own reset is cleared by its successful reconnect
    await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    // UNPOWER: a cold reset.
    const mark2 = entries.length;
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_UNPOWER_CARD);
    assert.deepEqual(entries.slice(mark2).filter((e) => e.kind === 'cardUnpowered' || e.kind === 'cardPowered').map((e) => e.kind), ['cardUnpowered', 'cardPowered']);
    await rejectsWith(b.status(s), Rv.SCARD_W_RESET_CARD, 'the shared handle hears the cold reset');
    // DIRECT → SHARED with RESET: one reset, before the new connection (which then negotiates T=1).
    const mark3 = entries.length;
    const up = await b.reconnect(d, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    assert.equal(up.activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    const kinds = entries.slice(mark3).filter((e) => e.kind === 'cardReset' || e.kind === 'cardPowered').map((e) => e.kind);
    assert.deepEqual(kinds, ['cardReset'], 'one reset');
    assert.equal((await b.transmit(d, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

// winscard.c SCardConnect ~280–289: "wait until a possible transaction is finished" comes before the share
// mode is looked at, so a DIRECT connect waits for another handle's transaction like a SHARED one.
test('R49: SCardConnect(DIRECT) while another handle holds a transaction waits for its end, as a SHARED one does', async () => {
  const { b, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(x);
    let directIn = false;
    let sharedIn = false;
    const d = b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0).then((c) => { directIn = true; return c.handle; });
    const y = b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY).then((c) => { sharedIn = true; return c.handle; });
    // Several round trips of the owner (each through the reader's queue): the others still wait.
    for (let i = 0; i < 3; i++) assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90);
    assert.deepEqual([directIn, sharedIn], [false, false], 'both wait for the transaction');
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(await within(d), 'ok', 'the direct connect, once the transaction ended');
    assert.equal(await within(y), 'ok', 'the shared connect, once the transaction ended');
    await b.status(await d);
  } finally { await stop(); }
});

// pcscd's SCardBeginTransaction takes hLockId for any handle, a direct one too (RFLockSharing, readerfactory.c
// 1061), and SCardReconnect keeps hLockId and LockCount whatever the share mode (R44 for SHARED ↔ EXCLUSIVE).
test('R50: BEGIN on a direct handle holds the reader (others refused, a connect waits), its own CONTROL goes on; END lets them in', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(d);
    await b.beginTransaction(d); // nested
    assert.deepEqual(m.reader(A).clients?.map((c) => [c.share, c.transaction]), [['shared', false], ['direct', true]], 'the Readers view shows the direct handle\'s transaction');
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'another handle\'s transmit');
    await rejectsWith(b.beginTransaction(x), Rv.SCARD_E_SHARING_VIOLATION, 'another handle\'s begin');
    let yIn = false;
    const y = b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY).then((c) => { yIn = true; return c.handle; });
    assert.equal(await within(b.control(d, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'its own control, in its transaction');
    await b.status(d);
    await b.endTransaction(d, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'one level left');
    assert.equal(yIn, false, 'the connect still waits');
    await b.endTransaction(d, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.endTransaction(d, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NOT_TRANSACTED, 'both levels ended');
    assert.equal(await within(y), 'ok', 'the waiting connect gets in');
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90);
  } finally { await stop(); }
});

test('R50: Begin, Reconnect SHARED → DIRECT → SHARED: the transaction survives both changes; End succeeds and lets the others in', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const y = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(x);
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.transmit(y, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'still held, now by the direct handle');
    assert.equal(await within(b.control(x, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'the direct handle\'s control');
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.transmit(y, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'still held, shared again');
    assert.equal((await b.transmit(x, T1, SELECT, 258)).at(-2), 0x90, 'the owner transmits');
    // EXCLUSIVE → DIRECT keeps it too (the exclusive hold, one level more, goes).
    await b.disconnect(y, Disposition.SCARD_LEAVE_CARD);
    await b.reconnect(x, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.reader(A).exclusive, false);
    let zIn = false;
    const z = b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0).then((c) => { zIn = true; return c.handle; });
    assert.equal(await within(b.control(x, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'the owner\'s control round trip');
    assert.equal(zIn, false, 'a new connect waits: the client\'s transaction is still held');
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.endTransaction(x, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_E_NOT_TRANSACTED, 'one level only');
    assert.equal(await within(z), 'ok', 'then it gets in');
  } finally { await stop(); }
});

test('R50: a direct handle that dies holding the transaction: the card is reset (pcscd resets the lock holder\'s card), the reader free', async () => {
  const { b, m, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(d);
    await b.abandon(d);
    assert.equal(m.transactionOwner(A), null, 'released');
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the other handle hears the reset');
  } finally { await stop(); }
});

// winscard.c SCardControl (~1307–1362) checks the sharing and the reader, not the handle's event state:
// after a removal or another handle's reset a card handle's CONTROL still reaches the reader, and the
// event is still there for the next call that looks (Status, Transmit, …).
test('R51: CONTROL on a card handle after a removal or another handle\'s reset reaches the reader; the event stays for the next call', async () => {
  const { sim, b, m, stop } = await setup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const other = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.reconnect(other, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    assert.equal(await within(b.control(s, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'control after another handle\'s reset');
    await rejectsWith(b.transmit(s, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the reset is still reported');
    await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.disconnect(other, Disposition.SCARD_LEAVE_CARD);
    sim.removeCard('sim:0');
    assert.equal(await within(b.control(s, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'control after the removal');
    await rejectsWith(b.status(s), Rv.SCARD_W_REMOVED_CARD, 'the removal is still reported');
    assert.equal(await within(b.control(s, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'and control again');
    // An exclusive handle's own control is not refused for its own exclusivity.
    sim.insertCard('sim:0');
    await cardReady(m);
    const x = (await b.connect(B, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY)).handle;
    sim.removeCard('sim:1');
    assert.equal(await within(b.control(x, 0x42000000 + 3400, new Uint8Array(0))), 'ok', 'an exclusive handle after the removal');
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_W_REMOVED_CARD, 'its transmit hears it');
  } finally { await stop(); }
});

/**
 * A simulator with the PC/SC driver's system-side transaction and handle (counted), and a card that can go mute. It
 * follows winscard.c on the two points the fourth review found the first R62/R63 broke (F1, F2):
 * - the driver's connections in the system pcscd: its card handle (`connected`, made by the first call that needs the
 *   card, gone at release / Power Off / eject, whose SCardDisconnect ends a transaction it held) and the direct
 *   connection a control or readerFacts call makes without one. SCardConnect waits while hLockId is set whatever the
 *   share mode (winscard.c 287–295), and on the driver's one context nothing can end our own lock meanwhile: such a
 *   connect fails with "connect waited on hLockId" and is recorded (`lockWaits`, asserted empty by systemSetup's stop);
 * - a RESET / UNPOWER of the driver's (SCardReconnect, SCardDisconnect, SCardEndTransaction) marks every other handle
 *   of the reader (RFSetReaderEventState): another program's handle on the machine's pcscd (`outside`) hears
 *   SCARD_W_RESET_CARD; the driver's own handle is cleared (RFClearReaderEventState, winscard.c 813).
 */
class SystemSim extends SimulatorDriver {
  held = 0;
  holds = 0;
  releases = 0;
  connected = false;
  /** The driver's DIRECT handle holding a direct handle's transaction (R73): no card connection of ours then. */
  tx = false;
  /** Begins for a direct handle that took the system transaction on such a DIRECT handle. */
  directBegins = 0;
  lockWaits: string[] = [];
  /** Another program's handle on the machine's pcscd: the resets it heard (until it looks). */
  outside = { resets: 0 };
  /** Power-ups of sim:0 after this many fail as a card that does not answer (IFDPowerICC's failure). */
  muteAfter = Infinity;
  private powerUps = 0;
  private readonly waiters = new Set<() => void>();
  private systemConnect(key: string, share: string): void {
    if (this.held === 0) return;
    this.lockWaits.push(`${key} ${share}`);
    throw new Error(`connect waited on hLockId: SCardConnect(${key}, ${share}) while a handle of the driver's context holds the reader's transaction`);
  }
  private card(key: string): void {
    if (this.connected) return;
    // R73: the DIRECT holder becomes the card connection with SCardReconnect, no SCardConnect under our lock.
    if (this.tx) { this.tx = false; this.connected = true; return; }
    this.systemConnect(key, 'SHARED');
    this.connected = true;
  }
  private wake(): void { for (const w of [...this.waiters]) w(); }
  /** Another program's transaction in the machine's pcscd: the driver's Begin (its connect or its Begin) waits until it ends. */
  elsewhere?: Promise<void>;
  waitedElsewhere = 0;
  async beginTransaction(key: string, opts?: { direct?: boolean }): Promise<void> {
    if (this.elsewhere) { this.waitedElsewhere++; this.wake(); await this.elsewhere; }
    if (opts?.direct && !this.connected) {
      this.systemConnect(key, 'DIRECT'); // made before the lock is ours (the guard refuses it under our own)
      this.tx = true;
      this.directBegins++;
    } else this.card(key);
    this.held++;
  }
  async endTransaction(_key: string, disposition: 'leave' | 'reset' | 'unpower' = 'leave'): Promise<void> {
    this.held--;
    this.tx = false; // the DIRECT holder is disconnected at End
    if (disposition !== 'leave') this.outside.resets++;
    this.wake();
  }
  /** Resolves once `cond` holds, looked at after each system-side end and release, and when a Begin starts waiting elsewhere. */
  when(cond: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      if (cond()) { resolve(); return; }
      const w = () => { if (cond()) { this.waiters.delete(w); resolve(); } };
      this.waiters.add(w);
    });
  }
  async hold(key: string): Promise<void> { this.card(key); this.holds++; }
  async release(_key: string): Promise<void> {
    this.releases++;
    if (this.connected) { this.connected = false; this.held = 0; } // SCardDisconnect: RFUnlockAllSharing
    this.wake();
  }
  override async powerOn(key: string, mode: PowerMode): Promise<Uint8Array> {
    this.card(key);
    this.outside.resets++; // SCardReconnect(RESET / UNPOWER): RFSetReaderEventState
    if (key === 'sim:0' && ++this.powerUps > this.muteAfter) throw new ScError('TIMEOUT', 'The card did not answer the reset.');
    return super.powerOn(key, mode);
  }
  override async powerOff(key: string): Promise<void> {
    this.card(key);
    this.connected = false; // SCardDisconnect(UNPOWER): ends a transaction it held, the others hear a reset
    this.held = 0;
    this.outside.resets++;
    return super.powerOff(key);
  }
  override async transmit(key: string, command: Uint8Array): Promise<Uint8Array> {
    this.card(key);
    return super.transmit(key, command);
  }
  override async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    if (!this.connected && !this.tx) this.systemConnect(key, 'DIRECT');
    return super.control(key, code, data);
  }
  override async readerFacts(key: string): Promise<ReaderFacts> {
    if (!this.connected && !this.tx) this.systemConnect(key, 'DIRECT');
    return super.readerFacts(key);
  }
}

async function systemSetup() {
  const sim = new SystemSim({ readers: 2 });
  const m = new ReaderManager([sim], { historySize: 0 });
  await m.start();
  const b = new ManagerBackend(m);
  return { sim, m, b, async stop() { b.dispose(); await m.stop(); assert.deepEqual(sim.lockWaits, [], 'no SCardConnect waited on a transaction of ours'); } };
}

// winscard.c SCardEndTransaction (~1170) unlocks hLockId whatever the handle's share mode; the PC/SC driver's
// system-side transaction taken by the card handle's Begin must end with it (third review, F1).
test('R55: Begin on a card handle, Reconnect to DIRECT, End: the system-side transaction ends, and the driver lets go of the card after the disconnect', async () => {
  const { sim, m, b, stop } = await systemSetup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(x);
    assert.equal(sim.held, 1, 'the system-side transaction is taken');
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 1, 'kept across the share change');
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.transactionOwner(A), null);
    assert.equal(sim.held, 0, 'the client\'s End ended the system-side transaction');
    assert.ok(sim.releases >= 1, 'no card connection is left: the driver let go of its system handle');
    await b.disconnect(x, Disposition.SCARD_LEAVE_CARD);
    // The next Begin takes the system-side transaction again (no stale "held" flag in the gate).
    const y = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(y);
    assert.equal(sim.held, 1, 'a later Begin takes it again');
    await b.endTransaction(y, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 0);
  } finally { await stop(); }
});

test('R55: the direct handle that took a card handle\'s transaction disconnects without End: the system-side transaction ends too', async () => {
  const { sim, m, b, stop } = await systemSetup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(x);
    await b.beginTransaction(x);
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 1, 'one level left');
    await b.disconnect(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.transactionOwner(A), null);
    assert.equal(await within(sim.when(() => sim.held === 0)), 'ok', 'the system-side transaction ended with the holder');
    assert.equal(await within(sim.when(() => sim.releases >= 1)), 'ok', 'and the driver let go of the card');
  } finally { await stop(); }
});

// readerfactory.c RFSetReaderEventState (1338–1343): a removal sets hLockId = 0 and LockCount = 0 (third review, F2).
test('R56: a transaction lost to a removal is not counted again: Begin after the reconnect, a share change and one End free the reader', async () => {
  const { sim, m, b, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(x);
    sim.removeCard('sim:0');
    await rejectsWith(b.endTransaction(x, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_W_REMOVED_CARD, 'End after the removal (winscard.c 1118)');
    sim.insertCard('sim:0');
    await cardReady(m);
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    await b.beginTransaction(x);
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.transactionOwner(A), null, 'one Begin, one End');
    assert.equal(await within(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)), 'ok', 'another client\'s connect gets in');
    // A card handle that reconnects after a removal without End, then changes SHARED → EXCLUSIVE.
    const c = (await b.connect(B, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(c);
    sim.removeCard('sim:1');
    await rejectsWith(b.status(c), Rv.SCARD_W_REMOVED_CARD, 'the card handle hears the removal');
    sim.insertCard('sim:1');
    await cardReady(m, B);
    await b.reconnect(c, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.beginTransaction(c);
    await b.reconnect(c, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.reconnect(c, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.endTransaction(c, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.transactionOwner(B), null, 'the card handle\'s one End frees the reader');
    assert.equal(await within(b.connect(B, ShareMode.SCARD_SHARE_SHARED, ANY)), 'ok');
    // A card handle's End after a removal answers the removal (winscard.c 1118), then nothing is left to end.
    await b.beginTransaction(c);
    sim.removeCard('sim:1');
    await rejectsWith(b.endTransaction(c, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_W_REMOVED_CARD, 'a card handle\'s End after the removal');
    await rejectsWith(b.endTransaction(c, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_W_REMOVED_CARD, 'until its reconnect');
  } finally { await stop(); }
});

// winscard.c SCardTransmit: RFCheckSharing (1521) before RFCheckReaderEventState (1535) (third review, F3).
test('R57: Transmit on a handle with a pending reset while another handle holds the transaction: SHARING_VIOLATION first, then W_RESET_CARD', async () => {
  const { b, stop } = await setup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const y = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.reconnect(y, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    await b.beginTransaction(y);
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'during the other\'s transaction');
    await b.endTransaction(y, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'after it');
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.reconnect(y, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    await b.beginTransaction(y);
    await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'a direct handle too');
    await b.endTransaction(y, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the direct handle, after it');
  } finally { await stop(); }
});

// winscard.c SCardReconnect 616–628: an IFDPowerICC failure other than "no card" is SCARD_W_UNRESPONSIVE_CARD (third review, F4).
test('R58: Reconnect(RESET) on a card that does not answer the reset: SCARD_W_UNRESPONSIVE_CARD, on a shared handle and on a direct one', async () => {
  const { sim, b, stop } = await systemSetup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    sim.muteAfter = 0;
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'shared, RESET');
    await rejectsWith(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_UNPOWER_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'direct, UNPOWER');
    await rejectsWith(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'direct, RESET');
  } finally { await stop(); }
});

// ---------------------------------------------------------------- issue 15, round 6: R59–

const RAW = { protocol: ProtocolBits.SCARD_PROTOCOL_RAW, pciLength: 8 };
const T0 = { protocol: ProtocolBits.SCARD_PROTOCOL_T0, pciLength: 8 };
const UNDEFINED = { protocol: ProtocolBits.SCARD_PROTOCOL_UNDEFINED, pciLength: 8 };

// winscard.c SCardTransmit ~1491–1640 never looks at the share mode: RFCheckSharing, the handle's event, then
// "no card" for a PCI other than RAW, the PCI against the reader's cardProtocol (RAW and ANY_OLD pass), IFDTransmit.
test('R59: Transmit on a direct handle goes to the card when the PCI names the reader\'s protocol (or RAW); else PROTO_MISMATCH; no card: NO_SMARTCARD', async () => {
  const { sim, b, m, entries, stop } = await setup();
  try {
    await m.resetCard(A, 'cold');
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    // Nothing negotiated since the power-up: cardProtocol UNDEFINED; only RAW (or an UNDEFINED PCI) matches.
    await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_E_PROTO_MISMATCH, 'T=1 PCI with cardProtocol UNDEFINED');
    assert.equal((await b.transmit(d, RAW, SELECT, 258)).at(-2), 0x90, 'RAW goes to the card');
    assert.equal((await b.transmit(d, UNDEFINED, SELECT, 258)).at(-2), 0x90, 'a PCI equal to cardProtocol (UNDEFINED) too');
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle; // negotiates T=1
    const mark = entries.length;
    const r = await b.transmit(d, T1, SELECT, 258);
    assert.equal(r.at(-2), 0x90, 'T=1 PCI once a connect negotiated T=1');
    const logged = entries.slice(mark).filter((e) => e.kind === 'exchange');
    assert.equal(logged.length, 1, 'the exchange is in the APDU Log');
    await rejectsWith(b.transmit(d, T0, SELECT, 258), Rv.SCARD_E_PROTO_MISMATCH, 'T=0 PCI on the T=1 card');
    assert.equal((await b.transmit(s, RAW, SELECT, 258)).at(-2), 0x90, 'a card handle takes a RAW PCI as pcscd does');
    const e = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, ANY)).handle;
    assert.equal((await b.transmit(e, T1, SELECT, 258)).at(-2), 0x90, 'a direct handle connected with T0|T1 alike');
    // Its own DIRECT/RESET: cardProtocol UNDEFINED again.
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD);
    await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_E_PROTO_MISMATCH, 'after its reset');
    assert.equal((await b.transmit(d, RAW, SELECT, 258)).at(-2), 0x90, 'RAW after its reset');
    // The card removed: a new direct handle (no event to hear) gets NO_SMARTCARD for T=0/T=1 PCIs, and RAW reaches
    // no card either (the IFD handler's IFD_ICC_NOT_PRESENT).
    sim.removeCard('sim:0');
    const f = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await rejectsWith(b.transmit(f, T1, SELECT, 258), Rv.SCARD_E_NO_SMARTCARD, 'T=1 with no card');
    await rejectsWith(b.transmit(f, RAW, SELECT, 258), Rv.SCARD_E_NO_SMARTCARD, 'RAW with no card');
    await b.status(f); // nothing recorded on the handle by it
  } finally { await stop(); }
});

test('R59: a direct handle\'s transmit runs in its own transaction; another handle\'s transaction refuses it at once; a VERIFY is masked', async () => {
  const { b, entries, stop } = await setup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(d);
    assert.equal((await b.transmit(d, T1, SELECT, 258)).at(-2), 0x90, 'in its own transaction');
    await rejectsWith(b.transmit(s, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'the other handle meanwhile');
    await b.endTransaction(d, Disposition.SCARD_LEAVE_CARD);
    await b.beginTransaction(s);
    await rejectsWith(b.transmit(d, T1, SELECT, 258), Rv.SCARD_E_SHARING_VIOLATION, 'the direct handle during the other\'s');
    await b.endTransaction(s, Disposition.SCARD_LEAVE_CARD);
    const mark = entries.length;
    await b.transmit(d, T1, Uint8Array.of(0x00, 0x20, 0x00, 0x81, 0x04, 0x31, 0x32, 0x33, 0x34), 258).catch(() => {});
    const text = JSON.stringify(entries.slice(mark));
    assert.ok(!text.includes('31323334') && !text.includes('31 32 33 34'), 'the PIN is masked');
    assert.ok(entries.slice(mark).some((e) => e.kind === 'exchange' && e.command.includes('**')), text);
  } finally { await stop(); }
});

// winscard.c SCardReconnect ~575–628: RFSetReaderEventState(SCARD_RESET) first (every handle), cardProtocol UNDEFINED,
// and on an IFDPowerICC failure readerState = SCARD_PRESENT | SCARD_SWALLOWED with cardAtrLength 0 (the eventCounter
// untouched: only the eventhandler counts insertions and removals). Then SCardConnect finds the card not POWERED
// (~336: SCARD_W_UNPOWERED_CARD; powerState is still IN_USE, so no new power-up), a direct connect works, and
// SCardReconnect(LEAVE) answers SCARD_W_UNRESPONSIVE_CARD (~640). A later RESET that the card answers clears it.
test('R60: after a reset the card does not answer: the table shows SWALLOWED (no ATR, same event counter), every handle hears the reset, connect is W_UNPOWERED_CARD, LEAVE is W_UNRESPONSIVE_CARD', async () => {
  const { sim, b, stop } = await systemSetup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const t = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const fact = () => b.readers().find((r) => r.name === A)!;
    const before = fact();
    assert.equal(before.card, 'powered');
    let changes = 0;
    const off = b.onChange(() => { changes++; });
    sim.muteAfter = 0;
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'the reset');
    off();
    const after = fact();
    assert.equal(after.card, 'mute', 'SCARD_PRESENT | SCARD_SWALLOWED');
    assert.equal(after.atr, undefined, 'cardAtrLength 0');
    assert.equal(after.protocol, 0, 'cardProtocol UNDEFINED');
    assert.equal(after.eventCounter, before.eventCounter, 'no insertion or removal counted');
    assert.ok(changes > 0, 'the table was published again (a client\'s next read sees it)');
    for (const [h, who] of [[s, 'the caller'], [t, 'the other card handle'], [d, 'the direct handle']] as const) {
      await rejectsWith(b.status(h), Rv.SCARD_W_RESET_CARD, `${who}: status`);
    }
    await rejectsWith(b.transmit(t, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the other handle: transmit');
    await rejectsWith(b.reconnect(t, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'reconnect LEAVE on the swallowed card');
    await rejectsWith(b.status(t), Rv.SCARD_W_RESET_CARD, 'still reset (the failed reconnect cleared nothing)');
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_W_UNPOWERED_CARD, 'a new shared connect');
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_EXCLUSIVE, ANY), Rv.SCARD_W_UNPOWERED_CARD, 'exclusive beside the others: the power check (~336) comes before the share mode (~462)');
    const e = await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0);
    assert.equal(e.activeProtocol, ProtocolBits.SCARD_PROTOCOL_UNDEFINED, 'a direct connect works, no protocol');
    await rejectsWith(b.transmit(e.handle, T1, SELECT, 258), Rv.SCARD_E_PROTO_MISMATCH, 'cardProtocol UNDEFINED');
    await rejectsWith(b.transmit(e.handle, RAW, SELECT, 258), Rv.SCARD_E_NOT_TRANSACTED, 'RAW to a card that did not answer its reset');
    // The card answers again: a RESET brings it back for everyone.
    sim.muteAfter = Infinity;
    const r = await b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    assert.equal(r.activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1);
    assert.equal(fact().card, 'powered');
    assert.ok(fact().atr && fact().atr!.length > 0);
    assert.equal((await b.transmit(s, T1, SELECT, 258)).at(-2), 0x90);
    await b.reconnect(t, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    assert.equal((await b.transmit(t, T1, SELECT, 258)).at(-2), 0x90);
    await b.disconnect((await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

// pcscd powers a swallowed card down when its last handle goes (SCardDisconnect: GRACE_PERIOD, winscard.c
// ~1014–1019; the event handler then UNPOWERED, eventhandler.c ~470–490) and up again at the next SCardConnect
// (~312–336): the card is not lost for good (review of round 6, F5).
test('R64: a swallowed card comes back at the next connect once no handle is left on the reader; while one is, connect stays W_UNPOWERED_CARD', async () => {
  const { sim, b, stop } = await systemSetup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    sim.muteAfter = 0;
    await rejectsWith(b.reconnect(s, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'the reset');
    sim.muteAfter = Infinity; // the card would answer again
    await b.disconnect(s, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_W_UNPOWERED_CARD, 'the direct handle is still open');
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
    const c = await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY);
    assert.equal(c.activeProtocol, ProtocolBits.SCARD_PROTOCOL_T1, 'powered up again at the connect');
    assert.equal(b.readers().find((r) => r.name === A)!.card, 'powered');
    assert.equal((await b.transmit(c.handle, T1, SELECT, 258)).at(-2), 0x90);
    await b.disconnect(c.handle, Disposition.SCARD_LEAVE_CARD);
    // Still mute at that connect: W_UNPOWERED_CARD, as pcscd's failed power-up (~322–341).
    sim.muteAfter = 0;
    const t = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await rejectsWith(b.reconnect(t, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'mute again');
    await b.disconnect(t, Disposition.SCARD_LEAVE_CARD);
    await rejectsWith(b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY), Rv.SCARD_W_UNPOWERED_CARD, 'the power-up at the connect failed too');
    assert.equal(b.readers().find((r) => r.name === A)!.card, 'mute');
  } finally { await stop(); }
});

test('R60: a direct handle\'s failed DIRECT/RESET leaves the card swallowed as well; the Readers view\'s facts show it mute', async () => {
  const { sim, b, m, stop } = await systemSetup();
  try {
    const s = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    sim.muteAfter = 0;
    await rejectsWith(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'direct, RESET');
    assert.equal(b.readers().find((r) => r.name === A)!.card, 'mute');
    assert.equal(m.reader(A).card?.mute, true);
    assert.equal(m.reader(A).card?.powered, false, 'the manager does not take the card for powered');
    await rejectsWith(b.status(s), Rv.SCARD_W_RESET_CARD, 'the shared handle hears it');
    await rejectsWith(b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD), Rv.SCARD_W_UNRESPONSIVE_CARD, 'direct LEAVE');
  } finally { await stop(); }
});

// Fourth review F1 against SystemSim's hLockId rule: a direct handle's transaction and its reader calls never make the
// driver connect while a handle of ours holds the reader's system transaction.
test('F1: Begin on a card handle, Reconnect to DIRECT, Control and Status in the transaction, End: no connect under our own lock, the system transaction ended', async () => {
  const { sim, m, b, stop } = await systemSetup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(x);
    assert.equal(sim.held, 1);
    await b.reconnect(x, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_LEAVE_CARD);
    await b.control(x, 0x42000000 + 3400, new Uint8Array(0));
    await b.status(x);
    await b.getAttrib(x, 0x00010100);
    await b.endTransaction(x, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 0);
    assert.equal(m.transactionOwner(A), null);
    assert.deepEqual(sim.lockWaits, []);
    await b.disconnect(x, Disposition.SCARD_LEAVE_CARD);
    // A direct handle's own transaction on a reader, then its reader calls.
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(d);
    await b.control(d, 0x42000000 + 3400, new Uint8Array(0));
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD);
    await b.endTransaction(d, Disposition.SCARD_LEAVE_CARD);
    assert.equal(m.transactionOwner(A), null);
    assert.equal(await within(sim.when(() => sim.held === 0)), 'ok', 'no system transaction left');
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
  } finally { await stop(); }
});

// Fourth review F2: one reset of the card is one RFSetReaderEventState in the system pcscd: another program hears it
// once, and the handle that made it does not hear it back.
test('F2: a client\'s Reconnect(RESET) on a system reader is one reset for another program of the machine; the client\'s own handle does not hear it back', async () => {
  const { sim, b, stop } = await systemSetup();
  try {
    const x = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.transmit(x, T1, SELECT, 258);
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    const before = sim.outside.resets;
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_RESET_CARD);
    assert.equal(sim.outside.resets - before, 1, 'one reset in the system pcscd');
    await b.transmit(x, T1, SELECT, 258);
    await rejectsWith(b.status(d), Rv.SCARD_W_RESET_CARD, 'the direct handle beside it hears it');
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD);
    assert.equal(sim.outside.resets - before, 2, 'the direct handle\'s reset is the second');
    await b.status(d);
    await rejectsWith(b.transmit(x, T1, SELECT, 258), Rv.SCARD_W_RESET_CARD, 'the card handle hears the direct handle\'s reset once');
    await b.reconnect(x, ShareMode.SCARD_SHARE_SHARED, ANY, Disposition.SCARD_LEAVE_CARD);
    await b.transmit(x, T1, SELECT, 258);
    await b.status(d);
    assert.equal(sim.outside.resets - before, 2, 'taking a reset as seen is no reset');
  } finally { await stop(); }
});

// pcscd's SCardBeginTransaction locks the reader for any handle (RFLockSharing, readerfactory.c 1061), a direct
// one too: on a system reader the machine's other programs are held off as by a card handle's transaction (R73;
// the first attempt, R62, was reverted for the fourth review's F1: SystemSim now fails any connect under our lock).
test('R73: Begin on a direct handle of a system reader takes the system-side transaction (a DIRECT holder, no card connection); reader calls and a reset in it connect nothing; the last End ends it; a holder that disconnects ends it too; an empty reader too', async () => {
  const { sim, m, b, stop } = await systemSetup();
  try {
    const d = (await b.connect(A, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(d);
    assert.equal(sim.held, 1, 'SCardBeginTransaction in the system service');
    assert.equal(sim.directBegins, 1, 'on a DIRECT handle of the driver\'s');
    await b.beginTransaction(d);
    assert.equal(sim.held, 1, 'nested: once');
    await b.control(d, 0x42000000 + 3400, new Uint8Array(0));
    await b.getAttrib(d, 0x00010100);
    await b.endTransaction(d, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 1, 'one level left');
    await b.reconnect(d, ShareMode.SCARD_SHARE_DIRECT, 0, Disposition.SCARD_RESET_CARD);
    const releases = sim.releases;
    await b.endTransaction(d, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 0, 'the last End ends it');
    assert.equal(m.transactionOwner(A), null);
    assert.ok(sim.releases > releases, 'no connection of ours uses the card: the driver let go of it');
    await b.beginTransaction(d);
    assert.equal(sim.held, 1);
    await b.disconnect(d, Disposition.SCARD_LEAVE_CARD);
    assert.equal(await within(sim.when(() => sim.held === 0)), 'ok', 'the holder\'s disconnect ends it');
    // With no card in the reader (pcscd's Begin does not look for one).
    sim.removeCard('sim:1');
    const e = (await b.connect(B, ShareMode.SCARD_SHARE_DIRECT, 0)).handle;
    await b.beginTransaction(e);
    assert.equal(sim.held, 1, 'no card: the system-side transaction all the same');
    await b.control(e, 0x42000000 + 3400, new Uint8Array(0));
    await b.endTransaction(e, Disposition.SCARD_LEAVE_CARD);
    assert.equal(sim.held, 0);
  } finally { await stop(); }
});

// Ninth review F1 (R82): pcscd: a client that dies while its Begin waits behind another program holds nothing (each of
// its SCardBeginTransaction messages returns after one poll, winscard.c 1077–1082, and nobody asks again).
test('R82: a client dies while its Begin (direct handle, card handle) waits in the driver behind another program; the grant comes within the deadline: nobody owns the reader, the system-side transaction is ended', async () => {
  const { sim, m, b, stop } = await systemSetup();
  try {
    for (const share of [ShareMode.SCARD_SHARE_DIRECT, ShareMode.SCARD_SHARE_SHARED]) {
      const what = share === ShareMode.SCARD_SHARE_DIRECT ? 'direct handle' : 'card handle';
      let free!: () => void;
      sim.elsewhere = new Promise<void>((r) => { free = r; });
      const waited = sim.waitedElsewhere;
      const h = (await b.connect(A, share, share === ShareMode.SCARD_SHARE_DIRECT ? 0 : ANY)).handle;
      const begin = b.beginTransaction(h).then(() => 0, (e) => rvOf(e) >>> 0);
      assert.equal(await within(sim.when(() => sim.waitedElsewhere === waited + 1)), 'ok', `${what}: the driver's Begin waits`);
      const abandoned = b.abandon(h); // the session's cleanup: the client died
      sim.elsewhere = undefined;
      free(); // the other program ends its transaction, well within the deadline
      await abandoned;
      await begin;
      await b.abandon(h); // the session's "release it again"
      assert.equal(await within(sim.when(() => sim.held === 0 && m.transactionOwner(A) === null)), 'ok', `${what}: nobody owns the reader, no system-side transaction (owner ${m.transactionOwner(A)}, held ${sim.held})`);
      assert.equal(sim.tx, false, `${what}: no DIRECT holder left`);
    }
  } finally { await stop(); }
});
