import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bitRate, ifscFromAtr, ppsRequest, protocolDataStructure, readAtrProtocolBytes } from '../../../server/src/ccid/parameters';
import { ATR_T0, ATR_T1 } from '../../../server/src/drivers/simulator/card';
import { fromHex, toHex } from '../../../server/src/util/hex';

test('ATR interface bytes for SetParameters', () => {
  const t1 = readAtrProtocolBytes(ATR_T1); // 3B 8B 81 31 FE 45 …: TD1 T=1, TA3 IFSC 254, TB3 BWI 4 CWI 5
  assert.deepEqual([t1.protocols, t1.t1ta, t1.t1tb, t1.ta1], [[1], 0xfe, 0x45, undefined]);
  assert.equal(toHex(protocolDataStructure(1, ATR_T1, false)), '11100045' + '00FE00');
  assert.equal(toHex(protocolDataStructure(0, ATR_T0, false)), '1100000A00');
  // TA1 96, TC1 FF, TD1 T=0 with TC2 20, TD2 T=1 with TA3 FE and TC3 01 (CRC).
  const atr = fromHex('3B D6 96 FF C0 20 51 FE 01 01 02 03 04 05 06');
  const a = readAtrProtocolBytes(atr);
  assert.deepEqual([a.ta1, a.tc1, a.tc2, a.protocols, a.t1ta, a.t1tc], [0x96, 0xff, 0x20, [0, 1], 0xfe, 0x01]);
  assert.equal(toHex(protocolDataStructure(0, atr, true)), '9600FF2000');
  assert.equal(toHex(protocolDataStructure(1, atr, true)), '9611FF4D00FE00');
  assert.equal(protocolDataStructure(0, fromHex('3F 10 96'), false)[1], 0x02, 'inverse convention');
});

test('PPS request and bit rates', () => {
  assert.equal(toHex(ppsRequest(1, 0x96)), 'FF119678');
  assert.equal(bitRate(0x11, 3580), 9623);
  assert.equal(bitRate(0x96, 4000), 250000);
  assert.equal(bitRate(0x7f, 4000), 0);
});

test('IFSC from the first TA after T=1 as libccid reads it: 00 → default 32, FF → 254, absent → 32', () => {
  const atr = (ta3: number) => Uint8Array.of(0x3b, 0x80, 0x81, 0x31, ta3, 0x45);
  assert.deepEqual(ifscFromAtr(readAtrProtocolBytes(atr(0xfe))), { ifsc: 254 });
  assert.deepEqual(ifscFromAtr(readAtrProtocolBytes(atr(0x01))), { ifsc: 1 });
  assert.equal(ifscFromAtr(readAtrProtocolBytes(atr(0x00))).ifsc, 32);
  assert.match(ifscFromAtr(readAtrProtocolBytes(atr(0x00))).note!, /IFSC 0/);
  assert.equal(ifscFromAtr(readAtrProtocolBytes(atr(0xff))).ifsc, 254);
  assert.equal(ifscFromAtr(readAtrProtocolBytes(fromHex('3B 80 01'))).ifsc, 32);
  assert.equal(protocolDataStructure(1, atr(0x00), false)[5], 32);
  assert.equal(protocolDataStructure(1, atr(0xff), false)[5], 254);
});
