import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeInterrupt, decodeMessage, decodeStatus, describeMessage, describeSlotError, encodeHardwareError, encodeNotifySlotChange,
  encodeResponse, iccPowerOn, xfrBlock, setDataRateAndClockFrequency, RDR_to_PC_DataBlock, PC_to_RDR_IccPowerOn, PC_to_RDR_XfrBlock,
  RESPONSE_TO, MESSAGE_NAMES, PC_to_RDR_Escape, RDR_to_PC_Escape,
} from '../../../server/src/ccid/messages';
import { toHex } from '../../../server/src/util/hex';

test('commands encode with the 10-byte header (§6.1)', () => {
  assert.equal(toHex(iccPowerOn(1, 7, '3V')), '62000000000107020000');
  assert.equal(toHex(xfrBlock(0, 0xff, Uint8Array.of(0, 0xa4, 4, 0), 4, 0x0103)), '6F0400000000FF040301' + '00A40400');
  assert.equal(toHex(setDataRateAndClockFrequency(0, 1, 4000, 10752)), '730800000000010000' + '00A00F0000002A0000');
  assert.equal(RESPONSE_TO[PC_to_RDR_XfrBlock], RDR_to_PC_DataBlock);
  assert.equal(RESPONSE_TO[PC_to_RDR_Escape], RDR_to_PC_Escape);
  assert.equal(MESSAGE_NAMES[PC_to_RDR_IccPowerOn], 'PC_to_RDR_IccPowerOn');
});

test('responses decode; truncated ones say so', () => {
  const r = encodeResponse(RDR_to_PC_DataBlock, 0, 3, 0x00, 0, 0, Uint8Array.of(0x90, 0x00));
  const d = decodeMessage(r);
  assert.ok(d.ok);
  assert.equal(d.message.bSeq, 3);
  assert.deepEqual([...d.message.data], [0x90, 0x00]);
  const t = decodeMessage(r.subarray(0, 11));
  assert.ok(!t.ok && /truncated/.test(t.reason));
  assert.ok(!decodeMessage(r.subarray(0, 5)).ok);
  assert.match(describeMessage(r), /RDR_to_PC_DataBlock slot 0 seq 3 ICC active, ok \[2 bytes\]/);
});

test('bStatus and bError decode to words', () => {
  assert.deepEqual(decodeStatus(0x00), { iccStatus: 'active', commandStatus: 'ok' });
  assert.deepEqual(decodeStatus(0x42), { iccStatus: 'absent', commandStatus: 'failed' });
  assert.deepEqual(decodeStatus(0x80), { iccStatus: 'active', commandStatus: 'timeExtension' });
  assert.equal(describeSlotError(0xfe).name, 'ICC_MUTE');
  assert.match(describeSlotError(0xfe).message, /does not answer/);
  assert.equal(describeSlotError(0x05).name, 'BAD_PARAMETER');
  assert.match(describeSlotError(0x05).message, /offset 5 \(bSlot\)/);
  assert.equal(describeSlotError(0x00).name, 'CMD_NOT_SUPPORTED');
  assert.match(describeSlotError(0xc5).message, /reader-specific error 0xC5/);
});

test('interrupt messages: NotifySlotChange for several slots, HardwareError', () => {
  const slots = [{ present: true, changed: true }, { present: false, changed: false }, { present: false, changed: true },
    { present: true, changed: false }, { present: true, changed: true }];
  const bytes = encodeNotifySlotChange(slots);
  assert.equal(toHex(bytes), '5063' + '03');
  const m = decodeInterrupt(bytes, 5);
  assert.equal(m.type, 'slotChange');
  if (m.type === 'slotChange') assert.deepEqual(m.slots.map(({ present, changed }) => ({ present, changed })), slots);
  const h = decodeInterrupt(encodeHardwareError(1, 9, 1), 2);
  assert.ok(h.type === 'hardwareError' && h.slot === 1 && /over-current/.test(h.message));
  assert.equal(decodeInterrupt(Uint8Array.of(0x99), 1).type, 'unknown');
});
