// R100: SCardGetAttrib of a USB CCID reader through the PC/SC service, as pcscd answers it with libccid behind it.
// pcscd passes the tag to the IFD handler and its answer through (winscard.c 2.5.1 1401–1426: IFD_SUCCESS → the
// bytes; IFD_ERROR_TAG → SCARD_E_UNSUPPORTED_FEATURE). libccid's IFDHGetCapabilities (ifdhandler.c) answers, of the
// reader-fact tags: VENDOR_NAME (iManufacturer and a NUL, none: 0 bytes), VENDOR_IFD_VERSION (bcdDevice << 16),
// VENDOR_IFD_SERIAL_NO (iSerialNumber and a NUL, none: 0 bytes), MAXINPUT (dwMaxCCIDMessageLength − 10) and
// CHANNEL_ID; it has no case for VENDOR_IFD_TYPE nor MAX_IFSD (IFD_ERROR_TAG).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReaderManager } from '../../../server/src/manager/manager';
import { createUsbCcidDriver } from '../../../server/src/drivers/usb-ccid/driver';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { rvOf } from '../../../server/src/service/backend';
import { ProtocolBits, ShareMode } from '../../../server/src/service/wire';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb, type CcidDeviceProfile } from '../../support/ccid-device/device';

const TAGS = {
  VENDOR_NAME: 0x00010100, VENDOR_IFD_TYPE: 0x00010101, VENDOR_IFD_VERSION: 0x00010102, VENDOR_IFD_SERIAL_NO: 0x00010103,
  CHANNEL_ID: 0x00020110, MAX_IFSD: 0x00030125, MAXINPUT: 0x0007a007,
};

async function attribs(profile: CcidDeviceProfile, change?: (d: SimulatedCcidDevice) => void): Promise<{ answers: Record<string, string>; facts: unknown }> {
  const device = new SimulatedCcidDevice(profile);
  change?.(device);
  const m = new ReaderManager([createUsbCcidDriver({ webusb: new SimulatedWebUsb([device]), readTimeoutMs: 2000 })], { historySize: 0 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const r = m.list().readers[0];
    const { handle } = await b.connect(r.name, ShareMode.SCARD_SHARE_DIRECT, 0);
    const answers: Record<string, string> = {};
    for (const [name, tag] of Object.entries(TAGS)) {
      answers[name] = await b.getAttrib(handle, tag).then((v) => Buffer.from(v).toString('hex'), (e: unknown) => `rv ${rvOf(e).toString(16)}`);
    }
    return { answers, facts: m.reader(r.name).facts };
  } finally {
    b.dispose();
    await m.stop();
  }
}

const hex = (s: string) => Buffer.from(s).toString('hex');

test('R100: a USB CCID reader\'s attributes through the service are libccid\'s: no VENDOR_IFD_TYPE nor MAX_IFSD (IFD_ERROR_TAG → SCARD_E_UNSUPPORTED_FEATURE), MAXINPUT = dwMaxCCIDMessageLength − 10', async () => {
  const { answers, facts } = await attribs({ ...PROFILES.pinpad, bus: '2', address: 5 });
  assert.deepEqual(answers, {
    VENDOR_NAME: hex('Gemalto\0'),
    VENDOR_IFD_TYPE: 'rv 8010001f',
    VENDOR_IFD_VERSION: '00000201', // bcdDevice 1.02 = 0x0102, << 16, little-endian
    VENDOR_IFD_SERIAL_NO: hex('EZIO0001\0'),
    CHANNEL_ID: '05022000',
    MAX_IFSD: 'rv 8010001f',
    MAXINPUT: '05010000', // 271 − 10 = 261
  }, JSON.stringify(facts));
});

test('R100: a USB CCID reader without iManufacturer or iSerialNumber: libccid answers them with 0 bytes (IFD_SUCCESS, *Length = 0), not SCARD_E_UNSUPPORTED_FEATURE', async () => {
  const { answers } = await attribs({ ...PROFILES.tpduT0, serialNumber: undefined }, (d) => {
    (d as { manufacturerName: string }).manufacturerName = '';
  });
  assert.equal(answers.VENDOR_NAME, '');
  assert.equal(answers.VENDOR_IFD_SERIAL_NO, '');
  assert.equal(answers.VENDOR_IFD_TYPE, 'rv 8010001f');
  assert.equal(answers.CHANNEL_ID, 'rv 8010001f', 'no bus and address told: unsupported, as before (R45, R61)');
});

test('R100: the Readers view keeps the descriptor\'s model and dwMaxIFSD among the facts', async () => {
  const { facts } = await attribs(PROFILES.pinpad);
  const f = facts as { ifdType?: string; maxIfsd?: number; maxInput?: number; vendorName?: string };
  assert.equal(f.ifdType, 'Ezio Shield');
  assert.equal(f.vendorName, 'Gemalto');
  assert.equal(typeof f.maxIfsd, 'number');
  assert.equal(f.maxInput, 261);
});

test('review 13: SCardSetAttrib on a USB CCID reader is libccid\'s IFD_ERROR_TAG (SCARD_E_UNSUPPORTED_FEATURE, libccid 1.5.0 on); SCARD_ATTR_DEVICE_SYSTEM_NAME is the reader\'s name, as pcscd answers it for a handler that does not know it', async () => {
  const device = new SimulatedCcidDevice({ ...PROFILES.pinpad, bus: '2', address: 5 });
  const m = new ReaderManager([createUsbCcidDriver({ webusb: new SimulatedWebUsb([device]), readTimeoutMs: 2000 })], { historySize: 0 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const name = m.list().readers[0].name;
    const { handle } = await b.connect(name, ShareMode.SCARD_SHARE_SHARED, ProtocolBits.SCARD_PROTOCOL_T0 | ProtocolBits.SCARD_PROTOCOL_T1);
    await assert.rejects(b.setAttrib(handle, TAGS.VENDOR_NAME, Uint8Array.of(0x41, 0)), (e) => rvOf(e) === 0x8010001f);
    assert.equal(Buffer.from(await b.getAttrib(handle, 0x7fff0004)).toString('latin1'), `${name}\0`);
  } finally {
    b.dispose();
    await m.stop();
  }
});
