// A real PC/SC client through the workbench's PC/SC service to a USB CCID reader (issue 15: the service serves
// every reader of the manager, USB CCID included). USB devices cannot run here, so the device is the project's
// simulated CCID device (test/support/ccid-device/device.ts, built from real readers' CCID descriptors);
// everything else is real: the USB CCID driver over it, the reader manager, ManagerBackend, PcscService and
// startPcscServer on a UNIX socket in a private temporary folder (serviceStack.ts), and Debian's pyscard over
// Debian's libpcsclite (test/refstack/py/pcsc_usb.py) reaching it through PCSCLITE_CSOCK_NAME.
// The client lists the readers, sees the card (SCardGetStatusChange), connects, transmits, asks SCardStatus,
// SCardGetAttrib and SCardControl(CM_IOCTL_GET_FEATURE_REQUEST); then the card leaves the simulated device
// while the client holds its handle: the next transmit is SCARD_W_REMOVED_CARD and the reader is EMPTY, as
// pcscd answers (winscard.c SCardTransmit → RFCheckReaderEventState, readerfactory.c).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createUsbCcidDriver } from '../../server/src/drivers/usb-ccid/driver';
import { parseFeatureList } from '../../server/src/codecs/pcscFeatures';
import { DEMO_AID } from '../../server/src/drivers/simulator/card';
import { toHex } from '../../server/src/util/hex';
import { missingPyscard } from '../support/system';
import { eachJsonLine } from '../support/jsonLines';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb, type CcidDeviceProfile } from '../support/ccid-device/device';
import { clientEnv, startServiceStack, type ServiceStack } from './serviceStack';

const PY = '/usr/bin/python3'; // Debian's, which has pyscard
const CLIENT = path.resolve('test/refstack/py/pcsc_usb.py');
const skip = missingPyscard(PY);

const SCARD_STATE_PRESENT = 0x20;
const SCARD_STATE_EMPTY = 0x10;
const SCARD_PROTOCOL_T0 = 1;
const SCARD_PROTOCOL_T1 = 2;
const SCARD_W_REMOVED_CARD = 0x80100069;
const SCARD_E_TIMEOUT = 0x8010000a;

/** SELECT the demo application (no answer data), then READ BINARY of its EF 5001 (SFI 1), the greeting's 46 bytes. */
const SELECT_APP = `00a4040c07${toHex(DEMO_AID).replace(/ /g, '').toLowerCase()}`;
const READ_HELLO = '00b081002e';
const HELLO = Buffer.from('Hello from the Smart Card Workbench simulator!').toString('hex');

type Line = Record<string, unknown>;

/**
 * Runs the client on `reader`; at its "ready" line `onReady` runs (the card's removal) and the client is told to go
 * on. Bounded: the client is killed after `ms`.
 */
function runClient(socket: string, reader: string, onReady: () => Promise<void>, ms = 30_000): Promise<{ lines: Line[]; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PY, [CLIENT, reader, SELECT_APP, READ_HELLO], { env: clientEnv(socket), stdio: ['pipe', 'pipe', 'pipe'] });
    const lines: Line[] = [];
    let stderr = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`pcsc_usb.py: no exit within ${ms} ms\n${JSON.stringify(lines)}\n${stderr}`));
    }, ms);
    eachJsonLine(p.stdout, (o) => {
      lines.push(o as Line);
      if (o.step === 'ready') {
        onReady().then(() => p.stdin.end('go\n'), (e: unknown) => { p.kill('SIGKILL'); clearTimeout(timer); reject(e); });
      }
    });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code) => { clearTimeout(timer); resolve({ lines, code, stderr }); });
  });
}

/** Until `check` holds, polling the manager every 20 ms; fails after `ms`. */
async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function step(lines: Line[], name: string, nth = 0): Line {
  const found = lines.filter((l) => l.step === name)[nth];
  assert.ok(found, `no "${name}" line (${nth}) in ${JSON.stringify(lines)}`);
  return found;
}

/** A DWORD attribute as libccid answers it: 4 bytes, little-endian. */
function le32(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b.toString('hex');
}

/** A string attribute as libccid answers it through pcscd: the bytes and a NUL. */
const cString = (s: string) => Buffer.from(s + '\0').toString('hex');

interface Case { label: string; profile: CcidDeviceProfile; protocol: number; pinpad: boolean }
const CASES: Case[] = [
  {
    label: 'a PIN-pad reader at short APDU level, T=1 card (Gemalto Ezio Shield)',
    profile: { ...PROFILES.pinpad, bus: '2', address: 5 }, protocol: SCARD_PROTOCOL_T1, pinpad: true,
  },
  {
    label: 'a TPDU reader, T=0 card (Gemalto GemPC Twin)',
    profile: { ...PROFILES.tpduT0, bus: '1', address: 9 }, protocol: SCARD_PROTOCOL_T0, pinpad: false,
  },
];

describe('pyscard through the PC/SC service to a USB CCID reader (simulated device, real driver, manager and service)', { skip }, () => {
  let stack: ServiceStack | undefined;
  after(async () => { await stack?.stop(); });

  for (const c of CASES) {
    test(`${c.label}: readers, card PRESENT with its ATR, transmit, status, attributes, the part 10 features; a removal → SCARD_W_REMOVED_CARD and EMPTY`, async () => {
      const device = new SimulatedCcidDevice(c.profile);
      const webusb = new SimulatedWebUsb([device]);
      stack = await startServiceStack([createUsbCcidDriver({ webusb, readTimeoutMs: 2000 })], 'wb-usbsvc-');
      try {
        const { manager, server } = stack;
        const readers = manager.list().readers;
        assert.equal(readers.length, 1, JSON.stringify(readers.map((r) => r.name)));
        const name = readers[0].name;
        assert.ok(name.startsWith(device.productName), `the manager names the reader after the device: ${name}`);
        // Reader initialization powers the card and reads the reader's part 10 features (manager.ts readFeatures).
        await until('the manager has the card powered and the reader\'s features', () => {
          const r = manager.reader(name);
          return !!r.card?.atr && r.features !== undefined && !manager.cardInitializing(name);
        });
        const info = manager.reader(name);
        const atr = info.card!.atr!.replace(/[\s:]/g, '').toLowerCase();
        assert.ok(info.facts?.vendorName && info.facts.ifdType, `the manager's facts: ${JSON.stringify(info.facts)}`);
        const features = info.features ?? [];
        if (c.pinpad) assert.ok(features.some((f) => f.startsWith('VERIFY_PIN_DIRECT ')), `a PIN pad lists VERIFY_PIN_DIRECT: ${features}`);

        const r = await runClient(server.socketPath, name, async () => {
          device.setCard(0, null);
          await manager.waitForCard(name, false, 5000);
        });
        assert.equal(r.code, 0, `client exit ${r.code}: ${r.stderr}`);
        const { lines } = r;

        assert.deepEqual(step(lines, 'readers'), { step: 'readers', rv: 0, readers: [name] });
        const initial = step(lines, 'initial');
        assert.equal(initial.rv, 0);
        assert.equal(initial.present, true, `PRESENT: ${JSON.stringify(initial)}`);
        assert.equal(initial.empty, false);
        assert.equal(initial.atr, atr, 'the card\'s ATR as the manager has it');

        assert.deepEqual(step(lines, 'connect'), { step: 'connect', rv: 0, protocol: c.protocol });
        assert.deepEqual(step(lines, 'transmit', 0), { step: 'transmit', rv: 0, response: '9000' }, 'SELECT of the demo application');
        assert.deepEqual(step(lines, 'transmit', 1), { step: 'transmit', rv: 0, response: HELLO + '9000' }, 'READ BINARY of EF 5001');

        const status = step(lines, 'status');
        assert.equal(status.rv, 0);
        assert.equal(status.reader, name);
        assert.equal(status.protocol, c.protocol);
        assert.equal(status.atr, atr);
        // pcscd's state of a powered card: SCARD_PRESENT | SCARD_POWERED | SCARD_NEGOTIABLE (eventhandler.c 283, winscard.c 325).
        assert.equal(status.state, 0x34, `state 0x${(status.state as number).toString(16)}`);

        // As pcscd answers with libccid behind it (R100): libccid's IFDHGetCapabilities answers VENDOR_NAME
        // (iManufacturer), VENDOR_IFD_VERSION (bcdDevice << 16), VENDOR_IFD_SERIAL_NO, CHANNEL_ID (0x0020 << 16 |
        // bus << 8 | address) and MAXINPUT (dwMaxCCIDMessageLength − 10); it has no case for VENDOR_IFD_TYPE nor
        // MAX_IFSD, IFD_ERROR_TAG, which pcscd answers SCARD_E_UNSUPPORTED_FEATURE (winscard.c 1407–1426).
        const f = info.facts!;
        assert.equal(f.vendorName, device.manufacturerName);
        assert.equal(f.ifdType, device.productName, 'the Readers view has the model');
        assert.deepEqual(step(lines, 'attribs').attribs, {
          VENDOR_NAME: cString(f.vendorName!),
          VENDOR_IFD_TYPE: 'rv 8010001F',
          VENDOR_IFD_VERSION: le32(f.ifdVersion!),
          VENDOR_IFD_SERIAL_NO: cString(c.profile.serialNumber!),
          CHANNEL_ID: le32((0x0020 << 16) | (Number(c.profile.bus) << 8) | c.profile.address!),
          MAX_IFSD: 'rv 8010001F',
          MAXINPUT: le32(device.descriptor.dwMaxCCIDMessageLength - 10),
        });

        const feat = step(lines, 'features');
        assert.equal(feat.rv, 0, `SCardControl(SCARD_CTL_CODE(3400)): 0x${(feat.rv as number).toString(16)}`);
        const listed = parseFeatureList(Buffer.from(feat.answer as string, 'hex'))
          .map((f) => `${f.name} 0x${f.controlCode.toString(16).toUpperCase().padStart(8, '0')}`);
        assert.deepEqual(listed, features, 'the client gets the features the manager knows');
        assert.equal(listed.some((f) => f.startsWith('VERIFY_PIN_DIRECT ')), c.pinpad);

        assert.equal(step(lines, 'removed').rv, SCARD_W_REMOVED_CARD, 'the transmit after the removal');
        const watch = step(lines, 'watch');
        assert.notEqual(watch.rv, SCARD_E_TIMEOUT, 'the removal is a change of the reader state');
        assert.equal(watch.rv, 0);
        assert.equal(watch.empty, true, `EMPTY: ${JSON.stringify(watch)}`);
        assert.equal(watch.present, false);
        assert.equal(watch.changed, true);
        assert.equal(((watch.event as number) & SCARD_STATE_EMPTY) !== 0 && ((watch.event as number) & SCARD_STATE_PRESENT) === 0, true);
        assert.equal(watch.atr, '', 'no ATR once the card is gone');
        assert.deepEqual(step(lines, 'disconnect'), { step: 'disconnect', rv: 0 });
      } finally {
        await stack.stop();
        stack = undefined;
      }
    });
  }
});
