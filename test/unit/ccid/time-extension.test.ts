// The reader's own time extensions reach the manager's deadline (issue 14,
// item 9): a CCID time extension (bmCommandStatus 2) and a T=1 S(WTX request)
// each tell the driver's sink to move the deadline of the call in flight.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createUsbCcidDriver } from '../../../server/src/drivers/usb-ccid/driver';
import type { Driver, DriverSink, SlotDescriptor } from '../../../server/src/drivers/driver';
import { T1Protocol } from '../../../server/src/ccid/t1';
import { fromHex, toHex } from '../../../server/src/util/hex';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb } from '../../support/ccid-device/device';
import { T1Card } from '../../support/ccid-device/t1-card';

class RecordingSink implements DriverSink {
  readonly slots: SlotDescriptor[] = [];
  readonly extensions: Array<[string, number]> = [];
  slotAdded(s: SlotDescriptor) { this.slots.push(s); }
  slotRemoved() {}
  cardInserted() {}
  cardRemoved() {}
  log() {}
  timeExtension(key: string, ms: number) { this.extensions.push([key, ms]); }
}

const drivers: Driver[] = [];
after(async () => { for (const d of drivers) await d.stop(); });

async function start(device: SimulatedCcidDevice) {
  const sink = new RecordingSink();
  const driver = createUsbCcidDriver({ webusb: new SimulatedWebUsb([device]), readTimeoutMs: 2000 });
  drivers.push(driver);
  await driver.start(sink);
  const [slot] = sink.slots;
  return { sink, driver, key: slot.key };
}

const SELECT = fromHex('00A4040007F0574244454D4F');

test('T=1: every S(WTX request) is reported with its multiplier', async () => {
  const card = new T1Card(() => fromHex('0102039000'), { wtxBeforeResponse: 3 });
  const seen: number[] = [];
  const t1 = new T1Protocol(async (block) => card.receive(block), { onWtx: (m) => seen.push(m) });
  assert.equal(toHex(await t1.transmit(Uint8Array.of(0, 0xca, 0, 0, 3))), '0102039000');
  assert.equal(seen.length, 3);
  assert.ok(seen.every((m) => m >= 1));
});

test('usb-ccid: a CCID time extension (bStatus 0x80) moves the deadline of the call in flight', async () => {
  const { sink, driver, key } = await start(new SimulatedCcidDevice(PROFILES.shortApdu, { timeExtensions: 4 }));
  await driver.powerOn(key, 'cold');
  sink.extensions.length = 0;
  const r = await driver.transmit(key, SELECT, 1);
  assert.equal(toHex(r.subarray(-2)), '9000');
  assert.deepEqual(sink.extensions, Array(4).fill([key, 2000]));
});

test('usb-ccid: a T=1 S(WTX request) on a TPDU reader moves the deadline of the call in flight', async () => {
  const device = new SimulatedCcidDevice(PROFILES.tpduT1);
  const { sink, driver, key } = await start(device);
  const atr = await driver.powerOn(key, 'cold');
  await driver.setProtocol(key, 1, atr);
  device.faults.t1Wtx = 2;
  await driver.powerOn(key, 'cold'); // the card object takes the fault at power-up
  await driver.setProtocol(key, 1, atr);
  sink.extensions.length = 0;
  const r = await driver.transmit(key, SELECT, 1);
  assert.equal(toHex(r.subarray(-2)), '9000');
  assert.ok(sink.extensions.length >= 2, `extensions: ${JSON.stringify(sink.extensions)}`);
  assert.ok(sink.extensions.every(([k, ms]) => k === key && ms === 2000));
});
