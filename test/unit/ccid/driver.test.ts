// The USB CCID driver against simulated readers built from real reader profiles:
// the same APDU script must give the same card responses as SimulatedCard
// directly; broken devices must end in clear errors, never hang.

import { test, after } from 'node:test';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import assert from 'node:assert/strict';
import { createUsbCcidDriver, usbOpenRefusedHint } from '../../../server/src/drivers/usb-ccid/driver';
import { loadSystemWebUsb, usbLoadFailure } from '../../../server/src/drivers/usb-ccid/transport';
import type { WebUsbLike } from '../../../server/src/drivers/usb-ccid/webusb';
import type { Driver, DriverSink, LogLevel, SlotDescriptor } from '../../../server/src/drivers/driver';
import { SimulatedCard } from '../../../server/src/drivers/simulator/card';
import { ScError } from '../../../server/src/util/errors';
import { fromHex, toHex } from '../../../server/src/util/hex';
import * as M from '../../../server/src/ccid/messages';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb, type CcidDeviceProfile, type CcidFaults } from '../../support/ccid-device/device';

class Sink implements DriverSink {
  readonly slots = new Map<string, SlotDescriptor>();
  readonly events: string[] = [];
  readonly logs: Array<[LogLevel, string]> = [];
  private waiters: Array<{ match: (e: string) => boolean; resolve: () => void }> = [];
  private emit(e: string) {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => (w.match(e) ? (w.resolve(), false) : true));
  }
  slotAdded(s: SlotDescriptor) { this.slots.set(s.key, s); this.emit(`added ${s.key}`); }
  slotRemoved(k: string) { this.slots.delete(k); this.emit(`removed ${k}`); }
  cardInserted(k: string) { this.emit(`inserted ${k}`); }
  cardRemoved(k: string) { this.emit(`cardRemoved ${k}`); }
  log(level: LogLevel, message: string) { this.logs.push([level, message]); this.emit(`log ${message}`); }
  /** Resolves when a log line matching `re` has been written (now or later). */
  waitForLog(re: RegExp): Promise<void> {
    if (this.logs.some(([, m]) => re.test(m))) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ match: (e) => e.startsWith('log ') && re.test(e.slice(4)), resolve }));
  }
  /** Resolves when an event matching `prefix` has happened (now or later). */
  waitFor(event: string): Promise<void> {
    if (this.events.includes(event)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ match: (e) => e === event, resolve }));
  }
}

const drivers: Driver[] = [];
after(async () => { for (const d of drivers) await d.stop(); });

async function startWith(devices: SimulatedCcidDevice[], opts: { rawTrace?: (dir: 'out' | 'in', b: Uint8Array) => void } = {}) {
  const webusb = new SimulatedWebUsb(devices);
  const sink = new Sink();
  const driver = createUsbCcidDriver({ webusb, readTimeoutMs: 2000, ...opts });
  drivers.push(driver);
  await driver.start(sink);
  return { webusb, sink, driver };
}

const AID = 'F0574244454D4F';
/** The script: SELECT the demo application, SELECT an EF, READ BINARY, GET CHALLENGE, VERIFY wrong then right. */
const SCRIPT_T1 = [`00A40400 07 ${AID}`, '00A4000C 02 5001', '00B00000 00', '0084000008', '00200001 04 31313131', '00200001 04 31323334'];
/** The same for a T=0 card at TPDU level: case 3 SELECTs, READ BINARY with P3 = 0x2E (the file's length). */
const SCRIPT_T0 = [`00A40400 07 ${AID}`, '00A4000C 02 5001', '00B00000 2E', '0084000008', '00200001 04 31313131', '00200001 04 31323334'];

function expected(kind: 'T=0' | 'T=1', script: string[]): string[] {
  const card = new SimulatedCard(kind);
  card.reset();
  return script.map((c) => toHex(card.process(fromHex(c))));
}

/** GET CHALLENGE is random: compare its length and status word only. */
function comparable(responses: string[]): string[] {
  return responses.map((r, i) => (i === 3 ? `${r.length / 2} bytes, SW ${r.slice(-4)}` : r));
}

async function runScript(driver: Driver, key: string, kind: 'T=0' | 'T=1'): Promise<string[]> {
  const atr = await driver.powerOn(key, 'cold');
  assert.equal(toHex(atr), toHex(new SimulatedCard(kind).atr));
  const protocol = kind === 'T=0' ? 0 : 1;
  await driver.setProtocol(key, protocol, atr);
  const out: string[] = [];
  for (const c of kind === 'T=0' ? SCRIPT_T0 : SCRIPT_T1) out.push(toHex(await driver.transmit(key, fromHex(c), protocol)));
  return out;
}

const PROFILE_CASES: Array<[string, CcidDeviceProfile, string]> = [
  ['TPDU reader, T=0 card', PROFILES.tpduT0, 'TPDU'],
  ['TPDU reader, T=1 card (T=1 blocks by the workbench)', PROFILES.tpduT1, 'TPDU'],
  ['short APDU reader', PROFILES.shortApdu, 'short APDU'],
  ['extended APDU reader', PROFILES.extendedApdu, 'extended APDU'],
  ['pinpad reader', PROFILES.pinpad, 'extended APDU'],
  ['vendor-specific (class 0xFF) interface with a CCID descriptor', PROFILES.vendorSpecific, 'TPDU'],
];

for (const [title, profile, level] of PROFILE_CASES) {
  test(`${title} (${profile.file}): the script gives the card's own answers`, async () => {
    const device = new SimulatedCcidDevice(profile);
    const { sink, driver } = await startWith([device]);
    assert.equal(sink.slots.size, 1);
    const [slot] = sink.slots.values();
    assert.equal(slot.name, device.productName);
    assert.equal(slot.serial, profile.serialNumber);
    assert.equal(slot.cardPresent, true);
    assert.equal(slot.unavailable, undefined);
    assert.equal(slot.details?.['exchange level'], level);
    assert.equal(slot.details?.['VID:PID'], `${device.vendorId.toString(16).padStart(4, '0')}:${device.productId.toString(16).padStart(4, '0')}`.toUpperCase());
    const kind = profile.cards[0]!;
    assert.deepEqual(comparable(await runScript(driver, slot.key, kind)), comparable(expected(kind, kind === 'T=0' ? SCRIPT_T0 : SCRIPT_T1)));
    if (profile === PROFILES.pinpad) assert.equal(slot.details?.['PIN support'], 'verify, modify');
    await driver.powerOff(slot.key);
    await assert.rejects(driver.transmit(slot.key, fromHex('0084000008'), 1), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD');
  });
}

test('multi-slot reader (GemCoreSIMPro): one reader per slot, each with its own card', async () => {
  const device = new SimulatedCcidDevice(PROFILES.multiSlot);
  const { sink, driver } = await startWith([device]);
  const slots = [...sink.slots.values()].sort((a, b) => a.slotIndex - b.slotIndex);
  assert.deepEqual(slots.map((s) => s.slotIndex), [0, 1]);
  assert.equal(new Set(slots.map((s) => s.deviceKey)).size, 1);
  assert.deepEqual(slots.map((s) => s.details?.slots), ['1 of 2', '2 of 2']);
  assert.deepEqual(comparable(await runScript(driver, slots[0].key, 'T=1')), comparable(expected('T=1', SCRIPT_T1)));
  assert.deepEqual(comparable(await runScript(driver, slots[1].key, 'T=0')), comparable(expected('T=0', SCRIPT_T0)));
  // Card removal on slot 1 is reported by NotifySlotChange for that slot only.
  device.setCard(1, null);
  await sink.waitFor(`cardRemoved ${slots[1].key}`);
  assert.ok(!sink.events.includes(`cardRemoved ${slots[0].key}`));
  await assert.rejects(driver.powerOn(slots[1].key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD');
});

test('extended APDU reader chains a long command and a long response (wLevelParameter / bChainParameter)', async () => {
  const device = new SimulatedCcidDevice(PROFILES.extendedApdu);
  device.responseChunk = 100;
  const { sink, driver } = await startWith([device]);
  const [slot] = sink.slots.values();
  const atr = await driver.powerOn(slot.key, 'cold');
  await driver.setProtocol(slot.key, 1, atr);
  const long = fromHex(`00DA0000 0004B0 ${'AB'.repeat(1200)}`);
  await driver.transmit(slot.key, long, 1);
  assert.equal(toHex(device.lastExtendedCommand!), toHex(long));
  const chainedParts = device.received.filter((m) => m[0] === M.PC_to_RDR_XfrBlock && m[8] !== 0);
  assert.deepEqual(chainedParts.map((m) => m[8]), [M.CHAIN.BEGINS, M.CHAIN.CONTINUES, M.CHAIN.ENDS]);
  // 512-byte file read as 256 bytes: the 258-byte answer comes in 100-byte parts.
  await driver.transmit(slot.key, fromHex(`00A40400 07 ${AID}`), 1);
  await driver.transmit(slot.key, fromHex('00A4000C 02 5002'), 1);
  const r = await driver.transmit(slot.key, fromHex('00B00000 00'), 1);
  assert.equal(r.length, 258);
  assert.equal(toHex(r.subarray(0, 4)), '00010203');
  assert.equal(toHex(r.subarray(256)), '9000');
  assert.equal(device.received.filter((m) => m[0] === M.PC_to_RDR_XfrBlock && m[8] === M.CHAIN.CONTINUE_RESPONSE).length, 2);
});

test('short APDU reader refuses an extended APDU with the reason', async () => {
  const { sink, driver } = await startWith([new SimulatedCcidDevice(PROFILES.shortApdu)]);
  const [slot] = sink.slots.values();
  await driver.powerOn(slot.key, 'cold');
  await assert.rejects(driver.transmit(slot.key, fromHex('00B0000000 0100'), 1),
    (e: unknown) => e instanceof ScError && e.code === 'NOT_SUPPORTED' && /short APDU level/.test(e.message));
});

test('voltage selection: no automatic selection → the lowest class the reader offers, bPowerSelect set', async () => {
  const device = new SimulatedCcidDevice(PROFILES.extendedApdu); // Gemalto CT1100: 3 V only, no automatic voltage
  const { sink, driver } = await startWith([device]);
  await driver.powerOn([...sink.slots.keys()][0], 'cold');
  const powerOn = device.received.find((m) => m[0] === M.PC_to_RDR_IccPowerOn)!;
  assert.equal(powerOn[7], M.POWER_SELECT['3V']);
});

test('T=1 at TPDU level: IFSD negotiated, a corrupted block retransmitted, WTX passed as bBWI', async () => {
  const device = new SimulatedCcidDevice(PROFILES.tpduT1, { corruptT1Blocks: 1 });
  const { sink, driver } = await startWith([device]);
  const [slot] = sink.slots.values();
  const atr = await driver.powerOn(slot.key, 'cold');
  await driver.setProtocol(slot.key, 1, atr);
  // The first T=1 block is S(IFS request) with IFSD 254 (the reader does not do it itself).
  const first = device.received.find((m) => m[0] === M.PC_to_RDR_XfrBlock)!;
  assert.equal(toHex(first.subarray(10, 14)), '00C101FE');
  const r = await driver.transmit(slot.key, fromHex(`00A40400 07 ${AID}`), 1);
  assert.equal(toHex(r.subarray(-2)), '9000');
  assert.ok(sink.logs.some(([, m]) => /wrong LRC|resynch|R\(N\(R\)/.test(m)), 'the corrupted block is retransmitted and traced');
});

test('control: PC_to_RDR_Escape carries the data; GET_FEATURE_REQUEST lists the escape ioctl', async () => {
  const { sink, driver } = await startWith([new SimulatedCcidDevice(PROFILES.pinpad)]);
  const [slot] = sink.slots.values();
  assert.equal(toHex(await driver.control(slot.key, 0x42000000 + 3500, Uint8Array.of(1, 2, 3))), '030201');
  assert.equal(toHex(await driver.control(slot.key, 0x42000000 + 3400, new Uint8Array(0))), '1304' + '42000DAC' + '0604' + '42330006', 'escape, and VERIFY_PIN_DIRECT on this pinpad');
});

test('raw trace sees every CCID message both ways', async () => {
  const trace: string[] = [];
  const { sink, driver } = await startWith([new SimulatedCcidDevice(PROFILES.shortApdu)], { rawTrace: (dir, b) => trace.push(`${dir} ${M.describeMessage(b)}`) });
  await driver.powerOn([...sink.slots.keys()][0], 'cold');
  assert.ok(trace.some((t) => /^out PC_to_RDR_IccPowerOn slot 0/.test(t)));
  assert.ok(trace.some((t) => /^in RDR_to_PC_DataBlock slot 0 seq \d+ ICC active, ok/.test(t)));
});

test('hot-plug: connect adds the reader, card events follow the interrupt pipe, disconnect removes it', async () => {
  const { webusb, sink } = await startWith([]);
  assert.equal(sink.slots.size, 0);
  const device = new SimulatedCcidDevice({ ...PROFILES.shortApdu, serialNumber: 'HOTPLUG1' });
  webusb.plug(device);
  const key = 'usb:046a:0090:HOTPLUG1:0';
  await sink.waitFor(`added ${key}`);
  device.setCard(0, null);
  await sink.waitFor(`cardRemoved ${key}`);
  device.setCard(0, 'T=1');
  await sink.waitFor(`inserted ${key}`);
  // node-usb's disconnect event carries a different object for the same device.
  webusb.unplug(device, { asNewObject: true });
  await sink.waitFor(`removed ${key}`);
  assert.equal(sink.slots.size, 0);
});

test('interrupt flooding: repeated NotifySlotChange with no real change gives no events', async () => {
  const device = new SimulatedCcidDevice(PROFILES.shortApdu, { interruptFlood: 5000 });
  const { sink, driver } = await startWith([device]);
  const [slot] = sink.slots.values();
  await driver.powerOn(slot.key, 'cold');
  device.setCard(0, null); // queued after the flood: once seen, the whole flood has been handled
  await sink.waitFor(`cardRemoved ${slot.key}`);
  assert.deepEqual(sink.events.filter((e) => !e.startsWith('added')), [`cardRemoved ${slot.key}`]);
});

const BROKEN: Array<[string, CcidFaults, string, RegExp]> = [
  ['wrong bSeq', { wrongSeq: true }, 'PROTOCOL', /bSeq/],
  ['truncated response', { truncated: true }, 'PROTOCOL', /truncated/],
  ['endless time extensions', { endlessTimeExtension: true }, 'TIMEOUT', /more time/],
  ['disappears mid-exchange', { disappearMidExchange: true }, 'NO_READER', /unplugged/],
  ['corrupts every T=1 block', { corruptT1Blocks: 1000 }, 'PROTOCOL', /resynchronisation/],
];

for (const [title, faults, code, words] of BROKEN) {
  test(`broken device: ${title} → ${code} with clear words, no hang`, async () => {
    const profile = faults.corruptT1Blocks ? PROFILES.tpduT1 : PROFILES.shortApdu;
    const device = new SimulatedCcidDevice(profile);
    const { sink, driver } = await startWith([device]);
    const [slot] = sink.slots.values();
    const atr = await driver.powerOn(slot.key, 'cold');
    await driver.setProtocol(slot.key, 1, atr);
    device.faults = faults;
    await assert.rejects(driver.transmit(slot.key, fromHex('0084000008'), 1), (e: unknown) => e instanceof ScError && e.code === code && words.test(e.message));
    if (faults.disappearMidExchange) await sink.waitFor(`removed ${slot.key}`);
  });
}

test('interface claimed by the system: the reader is listed as unavailable with the way out', async () => {
  const { sink, driver } = await startWith([new SimulatedCcidDevice(PROFILES.tpduT0, { claimedBySystem: true })]);
  const [slot] = sink.slots.values();
  assert.match(slot.unavailable ?? '', /pcscd\) owns this reader: use the PC\/SC driver or stop pcscd/);
  await assert.rejects(driver.powerOn(slot.key, 'cold'), (e: unknown) => e instanceof ScError && e.code === 'READER_UNAVAILABLE' && /PC\/SC driver/.test(e.message));
});

test('character-level reader (Oz776S): listed, unavailable, with the reason', async () => {
  const { sink } = await startWith([new SimulatedCcidDevice({ file: 'Oz776S.txt', cards: ['T=0'], serialNumber: 'OZ1' })]);
  const [slot] = sink.slots.values();
  assert.equal(slot.details?.['exchange level'], 'character');
  assert.match(slot.unavailable ?? '', /character level/);
});

test('no USB on this machine: "USB not available" once, the driver carries on', async () => {
  let listeners = 0;
  const noUsb: WebUsbLike = {
    getDevices: () => Promise.reject(new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)')),
    addEventListener: () => { listeners++; },
    removeEventListener: () => {},
  };
  const sink = new Sink();
  const driver = createUsbCcidDriver({ webusb: noUsb });
  await driver.start(sink);
  await driver.stop();
  await driver.start(sink);
  await driver.stop();
  const notes = sink.logs.filter(([, m]) => /USB not available/.test(m));
  assert.equal(notes.length, 1);
  assert.match(notes[0][1], /not found/);
  assert.equal(listeners, 0, 'no hot-plug listener on a machine without USB');
  assert.equal(sink.slots.size, 0);
});

test('the real transport on this machine: no /sys/bus/usb → "USB not available" once, and start resolves', { skip: existsSync('/sys/bus/usb/devices') && 'this machine has USB' }, async () => {
  const sink = new Sink();
  const driver = createUsbCcidDriver();
  await driver.start(sink);
  await driver.stop();
  const notes = sink.logs.filter(([, m]) => /USB not available/.test(m));
  assert.equal(notes.length, 1, JSON.stringify(sink.logs));
  assert.match(notes[0][1], /sys\/bus\/usb|usb package/);
});

test('PPS from the ATR on a TPDU reader that does not do it itself, then SetParameters with TA1', async () => {
  const device = new SimulatedCcidDevice(PROFILES.tpduT0); // GemPC Twin: no automatic PPS
  const { sink, driver } = await startWith([device]);
  const [slot] = sink.slots.values();
  await driver.powerOn(slot.key, 'cold');
  // The T=0 demo card's ATR with TA1 = 0x95 (Fi 512, Di 16: 125 kbps at 4 MHz, within this reader's 344 kbps).
  const atr = fromHex('3B 7B 95 00 00 80 31 E0 F7 F0 57 42 44 45 4D 4F');
  await driver.setProtocol(slot.key, 0, atr);
  assert.equal(toHex(device.ppsSeen!), 'FF1095' + (0xff ^ 0x10 ^ 0x95).toString(16).toUpperCase());
  const setParams = device.received.find((m) => m[0] === M.PC_to_RDR_SetParameters)!;
  assert.equal(setParams[10], 0x95, 'bmFindexDindex from TA1');
  // A card refusing PPS is powered again and runs at the default rate.
  device.faults = { refusePps: true };
  await driver.powerOn(slot.key, 'cold');
  await driver.setProtocol(slot.key, 0, atr);
  const lastSet = device.received.filter((m) => m[0] === M.PC_to_RDR_SetParameters).pop()!;
  assert.equal(lastSet[10], 0x11);
  assert.ok(sink.logs.some(([, m]) => /PPS failed/.test(m)));
  assert.equal(toHex(await driver.transmit(slot.key, fromHex('0084000008'), 0)).length, 20);
});

test('a slow card: a few time extensions are followed, the answer arrives', async () => {
  const device = new SimulatedCcidDevice(PROFILES.shortApdu, { timeExtensions: 5 });
  const { sink, driver } = await startWith([device]);
  const [slot] = sink.slots.values();
  await driver.powerOn(slot.key, 'cold');
  const r = await driver.transmit(slot.key, fromHex(`00A40400 07 ${AID}`), 1);
  assert.equal(toHex(r.subarray(-2)), '9000');
});

test('HardwareError on the interrupt pipe is logged and the card counts as unpowered', async () => {
  const device = new SimulatedCcidDevice(PROFILES.shortApdu);
  const { sink, driver } = await startWith([device]);
  const [slot] = sink.slots.values();
  await driver.powerOn(slot.key, 'cold');
  device.hardwareError(0, 0x01);
  await sink.waitForLog(/over-current/);
  await assert.rejects(driver.transmit(slot.key, fromHex('0084000008'), 1), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD' && /not powered/.test(e.message));
});

/** The T=1 demo card's ATR with TA3 (IFSC) replaced, TCK recomputed. */
function atrWithIfsc(ifsc: number): Uint8Array {
  const atr = fromHex('3B 8B 81 31 FE 45 80 31 E0 F7 F0 57 42 44 45 4D 4F C0');
  atr[4] = ifsc;
  atr[atr.length - 1] = atr.subarray(1, -1).reduce((x, b) => x ^ b, 0);
  return atr;
}

/** Transmit with a deadline: a T=1 layer that never ends its chain must not hang the test. */
async function transmitWithin(driver: Driver, key: string, apdu: Uint8Array, ms: number): Promise<Uint8Array> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); });
  try { return await Promise.race([driver.transmit(key, apdu, 1), deadline]); } finally { clearTimeout(timer); }
}

for (const [ifsc, expectedIfsc, why] of [[0x00, 32, /IFSC 0.*default 32/], [0xff, 254, /IFSC 255.*254/]] as const) {
  test(`an ATR with IFSC 0x${ifsc.toString(16).toUpperCase().padStart(2, '0')} (RFU) on a TPDU T=1 reader: IFSC ${expectedIfsc} as libccid, logged, and the APDU goes through`, async () => {
    const device = new SimulatedCcidDevice(PROFILES.tpduT1);
    const { sink, driver } = await startWith([device]);
    const [slot] = sink.slots.values();
    await driver.powerOn(slot.key, 'cold');
    await driver.setProtocol(slot.key, 1, atrWithIfsc(ifsc));
    // The bound: the fake device refuses the 100th XfrBlock (with IFSC 0 the loop never yields, so a timer could not end it).
    const transferOut = device.transferOut.bind(device);
    let xfrBlocks = 0;
    device.transferOut = async (ep, data) => {
      if (data[0] === M.PC_to_RDR_XfrBlock && ++xfrBlocks >= 100) throw new Error(`test bound: ${xfrBlocks} XfrBlocks for one short APDU`);
      return transferOut(ep, data);
    };
    const before = device.received.length;
    // 7 + 5 bytes of command: with IFSC 0 every I-block would carry nothing and the chain never end.
    const r = await transmitWithin(driver, slot.key, fromHex(`00A40400 07 ${AID}`), 5000);
    assert.equal(toHex(r.subarray(-2)), '9000');
    const blocks = device.received.slice(before).filter((m) => m[0] === M.PC_to_RDR_XfrBlock);
    assert.ok(blocks.length <= 4, `${blocks.length} XfrBlocks for one short APDU`);
    assert.ok(blocks.every((m) => (m[11] & 0x80) !== 0 || m[12] > 0), 'no empty I-block');
    const setParams = device.received.filter((m) => m[0] === M.PC_to_RDR_SetParameters).pop()!;
    assert.equal(setParams[15], expectedIfsc, 'bIFSC in SetParameters');
    assert.ok(sink.logs.some(([, m]) => why.test(m)), JSON.stringify(sink.logs.map(([, m]) => m)));
  });
}

test('R96: a USB device that cannot be opened is explained per platform: WinUSB on Windows, the PC/SC driver on macOS, a udev rule on Linux', () => {
  assert.match(usbOpenRefusedHint('win32'), /WinUSB/);
  assert.doesNotMatch(usbOpenRefusedHint('win32'), /udev/);
  assert.match(usbOpenRefusedHint('darwin'), /CryptoTokenKit.*PC\/SC driver/);
  assert.doesNotMatch(usbOpenRefusedHint('darwin'), /udev/);
  assert.match(usbOpenRefusedHint('linux'), /udev rule/);
});

test('a .vsix of another VS Code build: usb\'s own "Cannot find native binding … npm i again" becomes which package to install (docs/install.md\'s promise for the USB group)', async () => {
  // usb 3.x's real loader, asked on another platform than ours: it finds no binding package, as in a wrong .vsix.
  const req = createRequire(path.join(process.cwd(), 'package.json'));
  const entry = req.resolve('usb');
  // usb's modules (its main, dist/index.js, loads the binding from index.js) forgotten, so they run again.
  const forget = () => { for (const k of Object.keys(req.cache)) if (k.startsWith(path.dirname(req.resolve('usb/package.json')) + path.sep)) delete req.cache[k]; };
  const ours = Object.getOwnPropertyDescriptor(process, 'platform')!;
  let raw = '';
  const sys = await loadSystemWebUsb(async () => {
    forget();
    Object.defineProperty(process, 'platform', { ...ours, value: process.platform === 'darwin' ? 'win32' : 'darwin' });
    try { return req(entry); } catch (e) { raw = (e as Error).message; throw e; } finally {
      Object.defineProperty(process, 'platform', ours);
      forget();
    }
  });
  assert.match(raw, /Cannot find native binding/, 'usb\'s own words for a missing binding (the case this message is for)');
  assert.equal(sys.ok ? 'loaded' : sys.wrongBuild, true, 'told apart from other failures (the USB group\'s hint about /sys/bus/usb does not apply)');
  const reason = sys.ok ? '' : sys.reason;
  assert.match(reason, new RegExp(`install the Smart Card Workbench package built for ${process.platform}-${process.arch}`));
  assert.doesNotMatch(reason, /npm i|package-lock/, 'no advice meant for a developer\'s checkout');
  // Any other failure is passed on as it is.
  const other = await loadSystemWebUsb(async () => { throw new Error('EACCES: permission denied'); });
  assert.deepEqual(other, { ok: false, reason: 'the usb package could not be loaded (EACCES: permission denied)', wrongBuild: false });
  // And on this machine the real package loads.
  assert.equal((await loadSystemWebUsb()).ok, true);
});

test('review 13: a usb binding that is there and does not load is said as it is (the dlopen error), not as a wrong package; on Alpine the package to install is alpine-ARCH', async () => {
  const req = createRequire(path.join(process.cwd(), 'package.json'));
  const root = path.dirname(req.resolve('usb/package.json')) + path.sep;
  const forget = () => { for (const k of Object.keys(req.cache)) if (k.startsWith(root)) delete req.cache[k]; };
  const junk = path.join(os.tmpdir(), `wb-junk-${process.pid}.node`);
  writeFileSync(junk, 'not a shared object');
  let raw = '';
  try {
    // usb 3.1.0's real loader, pointed at a file that is not a library: it still says "Cannot find native binding".
    const sys = await loadSystemWebUsb(async () => {
      forget();
      process.env.NAPI_RS_NATIVE_LIBRARY_PATH = junk;
      try { return req(req.resolve('usb')); } catch (e) { raw = (e as Error).message; throw e; } finally {
        delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
        forget();
      }
    });
    assert.match(raw, /Cannot find native binding/);
    assert.equal(sys.ok ? 'loaded' : sys.wrongBuild, false);
    const reason = sys.ok ? '' : sys.reason;
    assert.match(reason, /invalid ELF header|file too short|not a valid|wrong ELF/i, reason);
    assert.doesNotMatch(reason, /install the Smart Card Workbench package/);
  } finally {
    rmSync(junk, { force: true });
  }
  // Alpine: the same loader's "no binding at all", named by the package target scripts/package.mjs builds.
  const notFound = Object.assign(new Error('Cannot find native binding.'), { cause: Object.assign(new Error("Cannot find module '@node-usb/usb-linux-x64-musl'"), { cause: new Error("Cannot find module './usb.linux-x64-musl.node'") }) });
  assert.match(usbLoadFailure(notFound, 'linux', 'x64', true), /package built for alpine-x64/);
  assert.match(usbLoadFailure(notFound, 'linux', 'x64', false), /package built for linux-x64/);
});
