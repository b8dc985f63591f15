// Issue 18 item 14: every driver tells the reader's facts once, after the reader appears; the
// Readers view's Details show them. Through the helper (simulator), the manager (vpcd, a USB CCID
// reader built from a real reader's dump, a reader that never answers).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { createUsbCcidDriver } from '../../server/src/drivers/usb-ccid/driver';
import type { Driver, ReaderFacts } from '../../server/src/drivers/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import { type ReaderList, ReadersRequest } from '../../server/src/protocol';
import { runScript } from '../../server/src/script/engine';
import { parseScript } from '../../server/src/script/parser';
import { WORKBENCH_VERSION, ifdVersionDword } from '../../server/src/util/version';
import { startMemoryHelper, type MemoryHelper } from '../support/memoryHelper';
import { freePort } from '../support/net';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb } from '../support/ccid-device/device';
import { parseReaderFile, readerPath } from '../support/ccid-device/reader-file';

const stops: Array<() => Promise<unknown>> = [];
after(async () => { for (const s of stops) await s(); });

test('simulator: vendor, model and the package version as IFD version, in the helper\'s reader list from the start', async () => {
  const helper: MemoryHelper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ card: 'T=1', keypad: async () => '1234' })] },
    handlers: (c: MessageConnection) => { c.onNotification('window/logMessage', () => undefined); },
  });
  stops.push(() => helper.stop());
  const list = await helper.client.sendRequest(ReadersRequest.method, {}) as ReaderList;
  const r = list.readers[0];
  assert.deepEqual({ ...r.facts, note: undefined }, {
    source: 'built in', vendorName: 'Smart Card Workbench', ifdType: 'Simulator', ifdVersion: ifdVersionDword(WORKBENCH_VERSION), note: undefined,
  });
  assert.match(r.facts!.note!, /no T=1 blocks/);
  assert.deepEqual(r.features, ['VERIFY_PIN_DIRECT 0x42330006'], 'the keypad\'s feature, read at the first power-up');
});

test('vpcd: says it gives no reader attributes, and invents none', async () => {
  const m = new ReaderManager([createVpcdDriver({ ports: [await freePort()] })]);
  stops.push(() => m.stop());
  await m.start();
  const r = m.list().readers[0];
  assert.deepEqual(r.facts, { source: 'vpcd', note: 'vpcd gives no reader attributes: its protocol carries only power, reset, the ATR and APDUs.' });
});

test('usb-ccid: facts from the device and CCID descriptors of a real reader dump (Gemalto IDBridge CT30)', async () => {
  const device = new SimulatedCcidDevice(PROFILES.tpduT1);
  const dump = parseReaderFile(readerPath(PROFILES.tpduT1.file));
  const m = new ReaderManager([createUsbCcidDriver({ webusb: new SimulatedWebUsb([device]), readTimeoutMs: 2000 })]);
  stops.push(() => m.stop());
  await m.start();
  const f = m.list().readers[0].facts!;
  assert.equal(f.source, 'USB descriptors');
  assert.equal(f.vendorName, dump.iManufacturer);
  assert.equal(f.ifdType, dump.iProduct);
  assert.equal(f.ifdSerial, PROFILES.tpduT1.serialNumber);
  // "bcdDevice: 2.01" → 0x0201 << 16, as libccid answers SCARD_ATTR_VENDOR_IFD_VERSION.
  assert.equal(dump.bcdDevice, '2.01');
  assert.equal(f.ifdVersion, 0x02010000);
  assert.equal(f.maxIfsd, dump.interfaces[0].fields.dwMaxIFSD);
  assert.equal(f.ccid?.maxDataRate, dump.interfaces[0].fields.dwMaxDataRate);
  assert.equal(f.ccid?.defaultClockKHz, dump.interfaces[0].fields.dwDefaultClock);
  assert.ok(f.ccid?.features.includes('TPDU level exchange') || f.ccid?.features.some((w) => /TPDU/i.test(w)), JSON.stringify(f.ccid?.features));
});

/** A simulator whose reader never tells its facts (a reader stuck on SCardGetAttrib). */
class StuckFactsSimulator extends SimulatorDriver {
  asked = 0;
  override readerFacts(): Promise<ReaderFacts> {
    this.asked++;
    return new Promise(() => undefined);
  }
}

test('a reader that does not tell its facts holds nobody up: each ask ends at its deadline, asked again once at the power-up, scripts run', async () => {
  const driver = new StuckFactsSimulator({ card: 'T=1' });
  const logs: string[] = [];
  const m = new ReaderManager([driver as Driver], { log: (_l, msg) => logs.push(msg) });
  stops.push(() => m.stop());
  await m.start();
  const name = m.list().readers[0].name;
  // The card is powered at insertion although the facts reads ahead of it never answered: each ends at its deadline.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still waiting: ${JSON.stringify(m.reader(name))}`)), 10_000);
    const check = () => { const r = m.reader(name); if (r.card?.powered && driver.asked === 2 && r.facts) { clearTimeout(timer); off(); resolve(); } };
    const off = m.onReadersChanged(check);
    check();
  });
  assert.match(m.reader(name).facts?.note ?? '', /could not be read: The reader '.*' did not tell its facts .* within 1000 ms/);
  const res = await runScript(parseScript('reset\n00 84 00 00 08 => ?? ?? ?? ?? ?? ?? ?? ?? 90 00'), { manager: m, reader: name });
  assert.equal(res.ok, true, JSON.stringify(res.failure));
  assert.equal(driver.asked, 2, 'not asked at every reset');
  assert.equal(m.reader(name).facts?.vendorName, undefined, 'nothing made up');
  assert.equal(logs.filter((l) => /did not tell its facts/.test(l)).length, 2);
});
