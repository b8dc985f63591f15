// SCARD_ATTR_CHANNEL_ID of a USB CCID reader through the PC/SC service, as libccid answers it through pcscd
// (ifdhandler.c IFDHGetCapabilities: a uint32 0x0020 << 16 | bus << 8 | address, the USB bus number and device
// address libusb reports; pcscd passes the 4 bytes through). A device that tells no bus and address keeps
// SCARD_E_UNSUPPORTED_FEATURE, as every reader that gives no channel id (R45, R61).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReaderManager } from '../../../server/src/manager/manager';
import { createUsbCcidDriver, usbChannelId } from '../../../server/src/drivers/usb-ccid/driver';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { rvOf } from '../../../server/src/service/backend';
import { Rv, ShareMode } from '../../../server/src/service/wire';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb } from '../../support/ccid-device/device';

const SCARD_ATTR_CHANNEL_ID = 0x00020110;

async function channelIds(devices: SimulatedCcidDevice[]): Promise<Array<{ name: string; id: Uint8Array | number }>> {
  const m = new ReaderManager([createUsbCcidDriver({ webusb: new SimulatedWebUsb(devices), readTimeoutMs: 2000 })], { historySize: 0 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const out: Array<{ name: string; id: Uint8Array | number }> = [];
    for (const r of m.list().readers) {
      const { handle } = await b.connect(r.name, ShareMode.SCARD_SHARE_DIRECT, 0);
      out.push({ name: r.name, id: await b.getAttrib(handle, SCARD_ATTR_CHANNEL_ID).catch((e: unknown) => rvOf(e)) });
    }
    return out;
  } finally {
    b.dispose();
    await m.stop();
  }
}

test('R61: a USB CCID reader answers SCARD_ATTR_CHANNEL_ID as libccid: 0x0020 << 16 | bus << 8 | address, 4 bytes little-endian, every slot alike', async () => {
  const ids = await channelIds([
    new SimulatedCcidDevice({ ...PROFILES.tpduT1, bus: '3', address: 7 }),
    new SimulatedCcidDevice({ ...PROFILES.multiSlot, bus: '1', address: 0x7f }),
  ]);
  assert.equal(ids.length, 3, JSON.stringify(ids.map((i) => i.name)));
  const hex = ids.map((i) => (i.id instanceof Uint8Array ? Buffer.from(i.id).toString('hex') : `rv ${i.id.toString(16)}`));
  assert.deepEqual(hex, ['07032000', '7f012000', '7f012000'], '0x00200307 and 0x0020017F: CT30 on bus 3 address 7; both slots of the SIMPro on bus 1 address 127');
});

test('R61: a USB device that tells no bus and address: SCARD_E_UNSUPPORTED_FEATURE, as before', async () => {
  const ids = await channelIds([new SimulatedCcidDevice(PROFILES.tpduT1)]);
  assert.equal(ids[0].id, Rv.SCARD_E_UNSUPPORTED_FEATURE >>> 0);
});

test('R61: usbChannelId reads node-usb\'s bus string on Linux (nusb: the sysfs busnum, zero-padded: "003") and refuses what is not a byte', () => {
  assert.equal(usbChannelId({ bus: '003', address: 7 }, 'linux'), 0x00200307);
  assert.equal(usbChannelId({ bus: '3', address: 7 }, 'linux'), 0x00200307);
  assert.equal(usbChannelId({ bus: 12, address: 1 }, 'linux'), 0x00200c01);
  assert.equal(usbChannelId({ bus: '010', address: 1 }, 'linux'), 0x00200a01, 'decimal on Linux, not octal');
  assert.equal(usbChannelId({ bus: '3' }, 'linux'), undefined);
  assert.equal(usbChannelId({ address: 3 }, 'linux'), undefined);
  assert.equal(usbChannelId({ bus: '256', address: 1 }, 'linux'), undefined);
  assert.equal(usbChannelId({ bus: '1', address: 300 }, 'linux'), undefined);
  assert.equal(usbChannelId({ bus: 'x', address: 1 }, 'linux'), undefined);
  assert.equal(usbChannelId({ bus: '3-1.2', address: 9 }, 'linux'), undefined, 'not a bus number: no guess');
});

test('R67: on macOS nusb writes the bus as two hex digits of the IOKit locationID (format!("{:02x}", location_id >> 24)), which is libusb\'s bus number there: read as hex', () => {
  assert.equal(usbChannelId({ bus: '14', address: 3 }, 'darwin'), 0x00201403, 'bus 0x14 = 20, not 14');
  assert.equal(usbChannelId({ bus: '0a', address: 2 }, 'darwin'), 0x00200a02);
  assert.equal(usbChannelId({ bus: '01', address: 5 }, 'darwin'), 0x00200105);
  assert.equal(usbChannelId({ bus: 'zz', address: 5 }, 'darwin'), undefined);
});

test('R67: on Windows nusb\'s bus is a location path ("PCIROOT(0)#PCI(1400)#USBROOT(0)"), which carries no libusb bus number: no channel id, SCARD_E_UNSUPPORTED_FEATURE', () => {
  assert.equal(usbChannelId({ bus: 'PCIROOT(0)#PCI(1400)#USBROOT(0)', address: 4 }, 'win32'), undefined);
  assert.equal(usbChannelId({ bus: '3', address: 4 }, 'win32'), undefined);
});
