// Everything that needs the system's pcscd lives in this one file, so these tests
// never run concurrently (pcscd's vpcd uses the fixed ports 35963/35964).
//  - our PC/SC driver through pcscd + vpcd + vicc: readers, card events, transmit,
//    control, a transaction, and pcscd stopped and started again;
//  - scriptor through pcscd vs our vpcd driver, both with vicc: same responses.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { requireCommands } from '../support/system';
import { createPcscDriver, type PcscDriver } from '../../server/src/drivers/pcsc/driver';
import { parseFeatureList } from '../../server/src/drivers/pcsc/constants';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import { runScript } from '../../server/src/script/engine';
import { parseScript } from '../../server/src/script/parser';
import { ScError } from '../../server/src/util/errors';
import { fromHex, toSpacedHex } from '../../server/src/util/hex';
import { freePort, loadRefStack, RecordingSink, unlessExited, type RefStack, type StackProcess } from './stack';

const skip = requireCommands('pcscd', 'vicc', 'scriptor');
/** A python with pyscard (Debian's python3-pyscard, installed by setup:system, is under /usr/bin). */
const PYSCARD = ['/usr/bin/python3', 'python3'].find((py) => {
  try { return execFileSync(py, ['-c', 'import smartcard.scard'], { stdio: 'ignore' }) !== undefined; } catch { return false; }
});
const READER0 = 'Virtual PCD 00 00';
const READER1 = 'Virtual PCD 00 01';

let stack: RefStack;
let pcscd: StackProcess | null = null;
let vicc: StackProcess | null = null;
let driver: PcscDriver;
let sink: RecordingSink;

before(async () => {
  if (skip) return;
  stack = await loadRefStack();
  pcscd = await stack.startPcscd();
  sink = new RecordingSink();
  driver = createPcscDriver({ reconnectDelaysMs: [100, 200, 400] });
  await driver.start(sink);
});

after(async () => {
  await driver?.stop();
  await vicc?.stop();
  await pcscd?.stop();
});

async function insertCard(): Promise<StackProcess> {
  const inserted = sink.next('cardInserted', READER0);
  const v = stack.startVicc({ port: stack.VPCD_PORTS[0] });
  await unlessExited(inserted, v, 'vicc connecting to pcscd');
  return v;
}

test('PC/SC driver lists pcscd\'s vpcd readers, split into name and slot', { skip }, () => {
  const s0 = sink.slots.get(READER0);
  const s1 = sink.slots.get(READER1);
  assert.ok(s0 && s1, `slots: ${[...sink.slots.keys()].join(', ')}`);
  assert.equal(s0.name, 'Virtual PCD');
  assert.equal(s0.deviceKey, s1.deviceKey);
  assert.deepEqual([s0.slotIndex, s1.slotIndex], [0, 1]);
  assert.equal(s0.details?.['system reader name'], READER0);
  assert.equal(s0.cardPresent, false);
});

test('PC/SC driver: vicc connecting is a card insertion; power on, transmit, control, transaction', { skip }, async () => {
  vicc = await insertCard();
  const atr = await driver.powerOn(READER0, 'cold');
  assert.equal(toSpacedHex(atr), stack.VICC_ATR);
  await driver.setProtocol(READER0, 1, atr);
  assert.equal(toSpacedHex(await driver.transmit(READER0, fromHex('00A40000023F00'), 1)), '61 0C');
  const fci = await driver.transmit(READER0, fromHex('00C000000C'), 1);
  assert.equal(toSpacedHex(fci.subarray(12)), '90 00');

  // CM_IOCTL_GET_FEATURE_REQUEST: readers with features answer a TLV list; vpcd has no IFDHControl and
  // pcscd answers 0x8010001F, pcsc-lite's SCARD_E_UNSUPPORTED_FEATURE (ifdwrapper.c IFDControl; R96), which
  // must arrive as a clear error saying the reader does not support it.
  const features = await driver.control(READER0, 3400, new Uint8Array(0)).then(
    (r) => parseFeatureList(r).map((f) => f.name).join(','),
    (e: unknown) => e,
  );
  if (typeof features !== 'string') {
    assert.ok(features instanceof ScError, String(features));
    assert.match(features.message, /SCardControl on "Virtual PCD 00 00": the reader does not support this .*\(SCARD_E_UNSUPPORTED_FEATURE\)/);
    assert.equal(features.code, 'NOT_SUPPORTED');
  }

  await driver.beginTransaction(READER0);
  const challenge = await driver.transmit(READER0, fromHex('0084000008'), 1);
  assert.equal(challenge.length, 10);
  await driver.endTransaction(READER0);
  await assert.rejects(driver.endTransaction(READER0), (e: unknown) => e instanceof ScError && e.code === 'BAD_REQUEST');

  const warm = await driver.powerOn(READER0, 'warm');
  assert.equal(toSpacedHex(warm), stack.VICC_ATR);
});

// Issue 18 item 14: what pcscd answers SCardGetAttrib with for vpcd's IFD handler, recorded. pcscd passes the
// tag to IFDHGetCapabilities (winscard.c): IFD_ERROR_TAG becomes SCARD_E_UNSUPPORTED_FEATURE, which pcsc-lite
// numbers 0x8010001F (Windows' SCARD_E_UNEXPECTED); any other failure SCARD_E_NOT_TRANSACTED. Measured here
// (Debian 12: pcscd 1.9.9, vsmartcard-vpcd 3.3): rv 0x8010001F for every one of these tags, with a card in the
// reader and without — ifd-vpcd answers only the ATR and pcscd's own TAG_IFD_* capabilities.
test('PC/SC driver: reader facts with SCardGetAttrib through pcscd — vpcd\'s IFD handler answers none of the attributes', { skip }, async () => {
  for (const reader of [READER1, READER0]) {
    const facts = await driver.readerFacts(reader);
    assert.equal(facts.source, 'SCardGetAttrib');
    const names = ['VENDOR_NAME', 'VENDOR_IFD_TYPE', 'VENDOR_IFD_VERSION', 'VENDOR_IFD_SERIAL_NO', 'CHANNEL_ID', 'MAX_IFSD', 'MAXINPUT'];
    assert.deepEqual(facts.unanswered?.map((u) => u.split(':')[0]), names, reader);
    for (const u of facts.unanswered ?? []) assert.match(u, /: SCARD_E_UNSUPPORTED_FEATURE$/, `${reader}: ${u}`);
    assert.deepEqual(Object.keys(facts).sort(), ['note', 'source', 'unanswered'], 'nothing made up');
    assert.match(facts.note ?? '', /answers none of these attributes/);
  }
});

test('PC/SC driver: no card in the second reader gives NO_CARD with the PC/SC name', { skip }, async () => {
  await assert.rejects(driver.powerOn(READER1, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD' && /SCARD_E_NO_SMARTCARD/.test(e.message));
});

test('scriptor through pcscd and our vpcd driver give the same responses to the same script', { skip }, async () => {
  if (!vicc) vicc = await insertCard();
  const commands = [
    '00 A4 00 00 02 3F 00', // SELECT MF, FCI waiting (61 0C)
    '00 C0 00 00 0C', // GET RESPONSE
    '00 A4 00 0C 02 3F 00', // SELECT MF, no FCI
    '00 B0 00 00 04', // READ BINARY with no current EF
    '00 20 01 00 04 31 32 33 34', // VERIFY with a bad P1 (6A 86)
    '00 84 00 00 08', // GET CHALLENGE (random data: compare SW and length)
    '00 CA 01 00 00', // GET DATA
    '80 CA 9F 7F 00', // a proprietary class
  ];
  const random = new Set(['00 84 00 00 08']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'refstack-scriptor-'));
  const file = path.join(dir, 'script.txt');
  fs.writeFileSync(file, commands.join('\n') + '\n');
  try {
    const { stdout } = await promisify(execFile)('scriptor', ['-r', READER0, file], { timeout: 20_000 });
    const viaPcscd = stdout
      .split('\n')
      .filter((l) => l.startsWith('< '))
      .map((l) => l.slice(2).split(' : ')[0].trim());
    assert.equal(viaPcscd.length, commands.length, 'one response per command from scriptor');

    const port = await freePort();
    const vpcd = createVpcdDriver({ ports: [port] });
    const vsink = new RecordingSink();
    await vpcd.start(vsink);
    const key = `vpcd:${port}`;
    const inserted = vsink.next('cardInserted', key);
    const ownVicc = stack.startVicc({ port, host: '127.0.0.1' });
    try {
      await unlessExited(inserted, ownVicc, 'vicc connecting to our vpcd');
      await vpcd.powerOn(key, 'cold');
      const viaOurs: string[] = [];
      for (const c of commands) viaOurs.push(toSpacedHex(await vpcd.transmit(key, fromHex(c), 1)));
      const shape = (r: string, i: number) => (random.has(commands[i]) ? `${r.split(' ').length} bytes, SW ${r.slice(-5)}` : r);
      assert.deepEqual(viaOurs.map(shape), viaPcscd.map(shape));
    } finally {
      await ownVicc.stop();
      await vpcd.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('PC/SC driver: killing vicc is a card removal; commands then fail clearly', { skip }, async () => {
  if (!vicc) vicc = await insertCard();
  await driver.powerOn(READER0, 'cold');
  const removed = sink.next('cardRemoved', READER0);
  await vicc.stop();
  vicc = null;
  await removed;
  await assert.rejects(driver.transmit(READER0, fromHex('0084000008'), 1), (e: unknown) => e instanceof ScError && ['NO_CARD', 'CARD_REMOVED'].includes(e.code));
});

test('PC/SC driver survives pcscd stopping and starting again', { skip }, async () => {
  const gone = Promise.all([sink.next('slotRemoved', READER0), sink.next('slotRemoved', READER1)]);
  await pcscd!.stop();
  pcscd = null;
  await gone;
  assert.equal(sink.slots.size, 0);
  assert.ok(sink.logs.some((l) => l.level === 'warn' && /SCARD_E_NO_SERVICE|SCARD_F_COMM_ERROR|SCARD_E_SERVICE_STOPPED/.test(l.message)));
  await assert.rejects(driver.transmit(READER0, fromHex('0084000008'), 1), (e: unknown) => e instanceof ScError && e.code === 'NO_READER');

  const back = Promise.all([sink.next('slotAdded', READER0), sink.next('slotAdded', READER1)]);
  pcscd = await stack.startPcscd();
  await back;
  vicc = await insertCard();
  const atr = await driver.powerOn(READER0, 'cold');
  assert.equal(toSpacedHex(atr), stack.VICC_ATR);
  assert.equal((await driver.transmit(READER0, fromHex('0084000008'), 1)).length, 10);
});

/**
 * SCardConnect(SCARD_SHARE_EXCLUSIVE) from pyscard, as GnuPG's scdaemon or
 * GlobalPlatformPro would: 'ok', or the PC/SC error it got.
 */
async function exclusiveConnectFromPyscard(reader: string): Promise<string> {
  const py = [
    'import sys',
    'from smartcard.scard import *',
    'rv, ctx = SCardEstablishContext(SCARD_SCOPE_USER)',
    'rv, card, proto = SCardConnect(ctx, sys.argv[1], SCARD_SHARE_EXCLUSIVE, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)',
    'print("ok" if rv == 0 else SCardGetErrorMessage(rv).strip() + " (0x%08X)" % (rv & 0xFFFFFFFF))',
    'if rv == 0: SCardDisconnect(card, SCARD_LEAVE_CARD)',
    'SCardReleaseContext(ctx)',
  ].join('\n');
  const { stdout } = await promisify(execFile)(PYSCARD!, ['-c', py, reader], { timeout: 20_000 });
  return stdout.trim();
}

test('PC/SC driver holds no connection to a card none of our clients uses: pyscard connects exclusively; the ATR still shows; after a script, again', { skip: skip || (!PYSCARD && 'no python with pyscard (apt-get install python3-pyscard)') }, async () => {
  if (!pcscd) pcscd = await stack.startPcscd();
  if (!vicc) vicc = await insertCard();
  // The driver of the tests above powered the card: it lets go of it first.
  await driver.release?.(READER0);
  // pcscd's socket is the machine's: another PC/SC client (a VS Code e2e run of an older build with the
  // PC/SC driver on, run beside this tier) holding the card would fail this check, not the workbench.
  assert.equal(await exclusiveConnectFromPyscard(READER0), 'ok', 'nobody holds the card before the workbench starts (is another PC/SC client running on this machine?)');

  const manager = new ReaderManager([createPcscDriver({ reconnectDelaysMs: [100, 200, 400] })], { historySize: 0 });
  await manager.start();
  try {
    const reader = manager.list().readers.find((r) => r.details?.['system reader name'] === READER0);
    assert.ok(reader?.card, `the workbench lists ${READER0} with its card`);
    assert.equal(reader.card.atr, stack.VICC_ATR.replace(/ /g, ''), 'the ATR pcscd reported, without connecting');
    assert.equal(await exclusiveConnectFromPyscard(READER0), 'ok', 'the workbench running, with the card shown');
    assert.equal(manager.reader(reader.name).card?.atr, stack.VICC_ATR.replace(/ /g, ''));

    const result = await runScript(parseScript('00 84 00 00 08\n00 A4 00 0C 02 3F 00\n'), { manager, uri: 'release.apdu', reader: reader.name, askPin: () => Promise.reject(new Error('no PIN')) });
    assert.ok(result.ok, JSON.stringify(result.failure));
    assert.equal(result.commands, 2);
    assert.equal(await exclusiveConnectFromPyscard(READER0), 'ok', 'after the script ended, the workbench left the card');

    // While one of our connections is open the card is in use (shared), as PC/SC says; after it ends, free again.
    const conn = await manager.connect(reader.name);
    assert.equal((await conn.transmit(fromHex('0084000008'))).response.length, 10);
    assert.match(await exclusiveConnectFromPyscard(READER0), /0x8010000B/, 'SCARD_E_SHARING_VIOLATION while our connection is open');
    await conn.disconnect('leave');
    assert.equal(await exclusiveConnectFromPyscard(READER0), 'ok', 'after our last connection ended');
  } finally {
    await manager.stop();
  }
});
