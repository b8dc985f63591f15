// Issue 18 item 14: the Details rows show the reader's facts (SCardGetAttrib, USB descriptors) and
// say what each number means.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { ReaderInfo } from '../../../server/src/protocol';
import { channelIdText, detailRows, ifdVersionText } from '../../../extension/src/readersModel';
import { WORKBENCH_VERSION, ifdVersionDword } from '../../../server/src/util/version';
import { cleanFacts } from '../../../server/src/manager/manager';

function reader(name: string, extra: Partial<ReaderInfo> = {}): ReaderInfo {
  return { name, driver: 'pcsc', slot: 0, eventCount: 3, card: null, connections: 0, exclusive: false, inTransaction: false, ...extra };
}
const rowsOf = (r: ReaderInfo) => new Map(detailRows(r).map((d) => [d.label, d]));

test('IFD version: 0xMMmmbbbb read as the driver reports it (major and minor as BCD, as libccid copies bcdDevice)', () => {
  assert.equal(ifdVersionText(0x01050001), '1.5.1');
  assert.equal(ifdVersionText(0x02160000), '2.16.0'); // ACR39U: bcdDevice 2.16 << 16
  assert.equal(ifdVersionText(0x00010000), '0.1.0');
  assert.equal(ifdVersionDword('1.5.1'), 0x01050001);
  assert.equal(ifdVersionDword('2.16.0'), 0x02160000);
  assert.equal(ifdVersionText(ifdVersionDword(WORKBENCH_VERSION)), WORKBENCH_VERSION);
  assert.equal(JSON.parse(fs.readFileSync('package.json', 'utf8')).version, WORKBENCH_VERSION, 'one version for the package and the helper');
});

test('channel id: 0xDDDDCCCC as type and number', () => {
  assert.equal(channelIdText(0x00200102), 'USB, number 0x0102');
  assert.equal(channelIdText(0x00010001), 'serial port, number 0x0001');
  assert.equal(channelIdText(0x00f10000), 'vendor-defined (0x00F1), number 0x0000');
});

test('Details show vendor, model, IFD version, serial, max IFSD, max input, channel, each explained', () => {
  const rows = rowsOf(reader('ACS ACR39U ICC Reader 00 00', {
    facts: {
      source: 'SCardGetAttrib', vendorName: 'ACS', ifdVersion: 0x02160000, ifdSerial: 'A1B2', maxInput: 261, channelId: 0x00200305,
      unanswered: ['VENDOR_IFD_TYPE: SCARD_E_UNSUPPORTED_FEATURE', 'MAX_IFSD: SCARD_E_UNSUPPORTED_FEATURE'],
    },
  }));
  assert.equal(rows.get('vendor')?.value, 'ACS');
  assert.match(rows.get('vendor')!.tooltip, /SCARD_ATTR_VENDOR_NAME/);
  assert.equal(rows.get('IFD version')?.value, '2.16.0');
  assert.match(rows.get('IFD version')!.tooltip, /^IFD version 2\.16\.0 \(0x02160000, as the driver reports it\)/);
  assert.match(rows.get('IFD version')!.tooltip, /bcdDevice/);
  assert.equal(rows.get('serial number')?.value, 'A1B2');
  assert.equal(rows.get('max input')?.value, '261 bytes');
  assert.match(rows.get('max input')!.tooltip, /longest command .*SCARD_ATTR_MAXINPUT/s);
  assert.equal(rows.get('channel')?.value, 'USB, number 0x0305');
  assert.ok(!rows.has('model') && !rows.has('max IFSD'), 'nothing shown that the reader did not say');
  assert.equal(rows.get('reader facts')?.value, 'SCardGetAttrib');
  assert.match(rows.get('reader facts')!.tooltip, /not answered:\n {2}VENDOR_IFD_TYPE: SCARD_E_UNSUPPORTED_FEATURE\n {2}MAX_IFSD/);
});

test('max IFSD, CCID features, data rates and clock from a CCID descriptor; slot is the CCID slot index', () => {
  const rows = rowsOf(reader('ACS ACR39U ICC Reader 01 00', {
    driver: 'usb-ccid',
    facts: {
      source: 'USB descriptors', vendorName: 'ACS', ifdType: 'ACR39U ICC Reader', ifdVersion: 0x02160000, maxIfsd: 254,
      ccid: { features: ['Automatic parameter configuration based on ATR data', 'TPDU level exchange'], dataRate: 12903, maxDataRate: 826000, defaultClockKHz: 4800, maxClockKHz: 16000 },
    },
  }));
  assert.equal(rows.get('model')?.value, 'ACR39U ICC Reader');
  assert.equal(rows.get('max IFSD')?.value, '254 bytes');
  assert.match(rows.get('max IFSD')!.tooltip, /^max IFSD 254: the longest T=1 block the reader accepts/);
  assert.equal(rows.get('CCID features')?.value, '2 flags');
  assert.match(rows.get('CCID features')!.tooltip, /dwFeatures[^]*TPDU level exchange/);
  assert.equal(rows.get('data rate')?.value, '12,903 to 826,000 bps');
  assert.equal(rows.get('clock')?.value, '4.8 to 16 MHz');
  assert.match(rows.get('slot')!.tooltip, /^slot 0 — CCID slot index/);
  assert.match(rows.get('events')!.tooltip, /^events: 3 — card insertions\/removals seen since the reader appeared/);
});

test('a driver with no attributes says so and invents nothing (vpcd)', () => {
  const rows = detailRows(reader('Virtual PCD 00 00', { driver: 'vpcd', facts: { source: 'vpcd', note: 'vpcd gives no reader attributes: its protocol carries only power, reset, the ATR and APDUs.' } }));
  const facts = rows.find((d) => d.label === 'reader facts');
  assert.equal(facts?.value, 'none (vpcd)');
  assert.match(facts!.tooltip, /vpcd gives no reader attributes/);
  assert.ok(!rows.some((d) => ['vendor', 'model', 'IFD version'].includes(d.label)));
});

test('facts from a device are made safe to show: no control characters, bounded, bad numbers dropped', () => {
  const f = cleanFacts({ source: 'USB descriptors', vendorName: 'Evil\u001b[31m\nCorp', ifdType: 'x'.repeat(1000), ifdSerial: '\u0000\u0001', maxIfsd: -1, ifdVersion: 2 ** 40 });
  assert.equal(f.vendorName, 'Evil [31m Corp');
  assert.equal(f.ifdType!.length, 128);
  assert.equal(f.ifdSerial, undefined);
  assert.equal(f.maxIfsd, undefined);
  assert.equal(f.ifdVersion, undefined);
});
