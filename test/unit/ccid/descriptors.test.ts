// Every real reader dump in shared/data/ccid-readers: rebuild the 54 bytes from
// the printed field values, decode them, and check that our interpretation agrees
// with what libccid printed beside each field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import {
  ccidDescriptorToJson, decodeCcidDescriptor, encodeCcidDescriptor, findCcidDescriptorInConfiguration, CCID_FEATURES,
} from '../../../server/src/ccid/descriptor';
import { ccidCommand } from '../../../server/src/ccid/cli';
import { ScError } from '../../../server/src/util/errors';
import { toHex } from '../../../server/src/util/hex';
import { parseReaderFile, READERS_DIR } from '../../support/ccid-device/reader-file';

const haveData = existsSync(READERS_DIR);

test('every libccid reader dump decodes the way libccid printed it', { skip: !haveData && `no ${READERS_DIR}` }, () => {
  const files = readdirSync(READERS_DIR).filter((f) => f.endsWith('.txt') && f !== 'supported_readers.txt').sort();
  assert.ok(files.length >= 690, `expected the ~691 reader dumps, found ${files.length}`);
  const disagreements: string[] = [];
  let interfaces = 0;
  let agreements = 0;
  const checks = { voltages: 0, protocols: 0, exchangeLevel: 0, features: 0, slots: 0, pin: 0, maxMessageLength: 0, maxIFSD: 0 };
  for (const file of files) {
    const reader = parseReaderFile(`${READERS_DIR}/${file}`);
    if (reader.interfaces.length === 0) { disagreements.push(`${file}: no CCID class descriptor parsed`); continue; }
    for (const iface of reader.interfaces) {
      interfaces++;
      const where = `${file} interface ${iface.bInterfaceNumber}`;
      const r = decodeCcidDescriptor(encodeCcidDescriptor(iface.fields));
      if (!r.ok) { disagreements.push(`${where}: ${r.error.message}`); continue; }
      const j = ccidDescriptorToJson(r.descriptor, r.warnings);
      const says = iface.says;
      const why: string[] = [];
      const same = (k: keyof typeof checks, ok: boolean, msg: string) => { if (ok) checks[k]++; else why.push(msg); };
      same('voltages', JSON.stringify(j.voltages) === JSON.stringify(says.voltages), `voltages ${j.voltages} vs libccid ${says.voltages}`);
      // libccid prints only T=0 and T=1; so does `protocols` (other bits are reserved, reported apart).
      same('protocols', JSON.stringify(j.protocols) === JSON.stringify(says.protocols), `protocols ${j.protocols} vs libccid ${says.protocols}`);
      same('protocols', j.reservedProtocolBits === (r.descriptor.dwProtocols & ~3) >>> 0, `reservedProtocolBits ${j.reservedProtocolBits}`);
      // libccid prints no line for a combination of exchange-level bits.
      const levelBits = (r.descriptor.dwFeatures & CCID_FEATURES.EXCHANGE_MASK) >>> 16;
      if ([0, 1, 2, 4].includes(levelBits)) same('exchangeLevel', j.exchangeLevel === says.exchangeLevel, `exchange level ${j.exchangeLevel} vs libccid ${says.exchangeLevel}`);
      else same('exchangeLevel', says.exchangeLevel === null, `libccid printed ${says.exchangeLevel} for exchange bits ${levelBits}`);
      // Feature lines: bits 1..11 and the USB wake-up bit, as printed.
      const printable = 0x00000ffe | CCID_FEATURES.USB_WAKE_UP;
      same('features', (r.descriptor.dwFeatures & printable) === says.featureBits, `feature lines 0x${says.featureBits.toString(16)} vs dwFeatures 0x${j.features.toString(16)}`);
      same('slots', j.maxSlotIndex === iface.fields.bMaxSlotIndex && j.slots === iface.fields.bMaxSlotIndex + 1, 'bMaxSlotIndex');
      same('pin', j.pinSupport.verify === says.pinVerify && j.pinSupport.modify === says.pinModify,
        `pinSupport ${JSON.stringify(j.pinSupport)} vs libccid verify=${says.pinVerify} modify=${says.pinModify}`);
      same('maxMessageLength', j.maxMessageLength === iface.fields.dwMaxCCIDMessageLength, 'dwMaxCCIDMessageLength');
      same('maxIFSD', j.maxIFSD === iface.fields.dwMaxIFSD, 'dwMaxIFSD');
      if (why.length) disagreements.push(`${where}: ${why.join('; ')}`);
      else agreements++;
    }
  }
  console.log(`CCID descriptors: ${files.length} files, ${interfaces} CCID interfaces, ${agreements} agree with libccid, ${disagreements.length} disagree`);
  console.log(`  per check: ${Object.entries(checks).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.deepEqual(disagreements, [], `disagreements with libccid:\n${disagreements.join('\n')}`);
  assert.equal(agreements, interfaces);
});

const ACR122U = {
  bcdCCID: 0x0100, bVoltageSupport: 7, dwProtocols: 3, dwDefaultClock: 4000, dwMaximumClock: 4000,
  dwDataRate: 10752, dwMaxDataRate: 250000, dwMaxIFSD: 247, dwFeatures: 0x00010030, dwMaxCCIDMessageLength: 271, bMaxCCIDBusySlots: 1,
};

test('ccidDescriptorToJson gives the documented fields', () => {
  const r = decodeCcidDescriptor(encodeCcidDescriptor({ ...ACR122U, bcdCCID: 0x0110, bPINSupport: 3, wLcdLayout: 0x0210 }));
  assert.ok(r.ok);
  const j = ccidDescriptorToJson(r.descriptor);
  assert.equal(j.bcdCCID, '1.10');
  assert.deepEqual(j.voltages, [5, 3, 1.8]);
  assert.deepEqual(j.protocols, [0, 1]);
  assert.equal(j.defaultClockKHz, 4000);
  assert.equal(j.maxDataRate, 250000);
  assert.equal(j.exchangeLevel, 'tpdu');
  assert.equal(j.maxMessageLength, 271);
  assert.deepEqual(j.pinSupport, { verify: true, modify: true });
  assert.deepEqual(j.lcdLayout, { lines: 2, charactersPerLine: 16 });
  assert.deepEqual(j.featureFlags, [
    'automatic ICC clock frequency change according to parameters',
    'automatic baud rate change according to frequency and Fi, Di params',
  ]);
});

test('reserved dwProtocols bits are not protocols: MySmartPad (dwProtocols 0x0300) lists none, like libccid', { skip: !haveData && `no ${READERS_DIR}` }, () => {
  const reader = parseReaderFile(`${READERS_DIR}/MySmartPad.txt`);
  const iface = reader.interfaces.find((i) => i.fields.dwProtocols === 0x0300);
  assert.ok(iface, 'MySmartPad.txt has an interface with dwProtocols 0x0300');
  assert.deepEqual(iface.says.protocols, []);
  const hex = toHex(encodeCcidDescriptor(iface.fields));
  const j = ccidCommand(hex);
  assert.deepEqual(j.protocols, []);
  assert.equal(j.reservedProtocolBits, 0x0300);
  assert.ok(j.warnings.some((w) => /reserved/.test(w) && /0x00000300/.test(w)), j.warnings.join('; '));
  // T=0 and T=1 with a reserved bit: both listed, the bit apart.
  const mixed = ccidCommand(toHex(encodeCcidDescriptor({ ...ACR122U, dwProtocols: 0x8003 })));
  assert.deepEqual(mixed.protocols, [0, 1]);
  assert.equal(mixed.reservedProtocolBits, 0x8000);
  assert.equal(ccidCommand(toHex(encodeCcidDescriptor(ACR122U))).reservedProtocolBits, 0);
});

test('short, mis-sized and foreign descriptors come back as error values', () => {
  const good = encodeCcidDescriptor(ACR122U);
  const short = decodeCcidDescriptor(good.subarray(0, 20));
  assert.ok(!short.ok && short.error.code === 'TOO_SHORT' && /54 bytes; got 20/.test(short.error.message));
  const empty = decodeCcidDescriptor(new Uint8Array(0));
  assert.ok(!empty.ok && empty.error.code === 'TOO_SHORT');
  const badLen = decodeCcidDescriptor(Uint8Array.of(0x09, 0x04, ...good.subarray(2)));
  assert.ok(!badLen.ok && badLen.error.code === 'BAD_LENGTH' && /0x09/.test(badLen.error.message));
  const badType = decodeCcidDescriptor(Uint8Array.of(0x36, 0x24, ...good.subarray(2)));
  assert.ok(!badType.ok && badType.error.code === 'BAD_TYPE');
  const proprietary = decodeCcidDescriptor(Uint8Array.of(0x36, 0xff, ...good.subarray(2)));
  assert.ok(proprietary.ok && proprietary.warnings.some((w) => /proprietary/.test(w)));
});

test('ccidCommand decodes hex and throws BAD_REQUEST with the reason', () => {
  const hex = toHex(encodeCcidDescriptor({ ...ACR122U, dwFeatures: 0x000404BA }));
  const j = ccidCommand(hex);
  assert.equal(j.exchangeLevel, 'extendedApdu');
  assert.throws(() => ccidCommand('36 21 zz'), (e: unknown) => e instanceof ScError && e.code === 'BAD_REQUEST' && /hex/.test(e.message));
  assert.throws(() => ccidCommand('3621'), (e: unknown) => e instanceof ScError && e.code === 'BAD_REQUEST' && /54 bytes; got 2/.test(e.message));
});

test('the CCID descriptor is found after its interface in a configuration descriptor', () => {
  const ccid = encodeCcidDescriptor(ACR122U);
  const config = Uint8Array.of(
    9, 2, 0, 0, 2, 1, 0, 0x80, 50,
    9, 4, 0, 0, 1, 0x03, 0, 0, 0, // a HID interface first
    7, 5, 0x83, 3, 8, 0, 10,
    9, 4, 1, 0, 3, 0x0b, 0, 0, 0,
    ...ccid,
    7, 5, 0x01, 2, 64, 0, 0,
  );
  assert.deepEqual(findCcidDescriptorInConfiguration(config, 1), ccid);
  assert.equal(findCcidDescriptorInConfiguration(config, 0), null);
});
