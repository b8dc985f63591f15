import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCommandApdu, decodeCla, describeCommand, instructionName, parseCommandApdu, parseResponseApdu } from '../../../server/src/codecs/apdu';
import { fromHex, toHex } from '../../../server/src/util/hex';
import { ScError } from '../../../server/src/util/errors';

const parse = (hex: string) => parseCommandApdu(fromHex(hex));

test('the seven cases of ISO 7816-4 §5.1', () => {
  const c1 = parse('00 70 80 01');
  assert.equal(c1.case, '1');
  assert.equal(c1.le, undefined);
  assert.equal(c1.lc, undefined);

  const c2s = parse('00 84 00 00 08');
  assert.equal(c2s.case, '2S');
  assert.equal(c2s.le, 8);
  assert.equal(parse('00 C0 00 00 00').le, 256);

  const c3s = parse('00 20 00 80 04 31 32 33 34');
  assert.equal(c3s.case, '3S');
  assert.equal(c3s.lc, 4);
  assert.equal(toHex(c3s.data), '31323334');
  assert.equal(c3s.le, undefined);

  const c4s = parse('00 A4 04 00 07 A0 00 00 00 03 10 10 00');
  assert.equal(c4s.case, '4S');
  assert.equal(c4s.lc, 7);
  assert.equal(c4s.le, 256);
  assert.equal(c4s.extended, false);
  assert.deepEqual(c4s.errors, []);

  const c2e = parse('00 B0 00 00 00 00 00');
  assert.equal(c2e.case, '2E');
  assert.equal(c2e.le, 65536);
  assert.equal(parse('00 B0 00 00 00 01 00').le, 256);

  const c3e = parseCommandApdu(Uint8Array.from([0x00, 0xD6, 0, 0, 0, 0x01, 0x00, ...new Uint8Array(256)]));
  assert.equal(c3e.case, '3E');
  assert.equal(c3e.lc, 256);
  assert.equal(c3e.data.length, 256);

  const c4e = parse('00 2A 9E 9A 00 00 02 AB CD 00 00');
  assert.equal(c4e.case, '4E');
  assert.equal(c4e.lc, 2);
  assert.equal(c4e.le, 65536);
  assert.equal(c4e.extended, true);
  assert.deepEqual(c4e.errors, []);
});

test('length errors say what is wrong and keep the partial fields', () => {
  const short = parse('00 A4 04 00 05 A0 00 00 00');
  assert.equal(short.case, undefined);
  assert.deepEqual(short.errors, ['Lc is 5 but 4 data bytes follow']);
  assert.equal(short.lc, 5);
  assert.equal(toHex(short.data), 'A0000000');
  assert.equal(short.ins, 0xA4);

  assert.match(parse('00 A4 04 00 02 3F 00 00 00 00').errors[0], /at most one Le byte/);
  assert.match(parse('00 A4 04 00 02 3F 00 00 00').errors[0], /short and extended length fields are mixed/);
  assert.match(parse('00 A4 04 00 00 00 02 3F 00 00').errors[0], /Extended Lc \(2\) followed by a 1-byte Le: short and extended/);
  assert.match(parse('00 A4 04 00 00 00 00 12').errors[0], /extended Lc must be 1 to 65535/);
  assert.match(parse('00 A4 04 00 00 01').errors[0], /short Lc cannot be 00/);
  assert.match(parse('00 A4 04 00 00 00 05 01 02').errors[0], /Lc is 5 \(extended\) but 2 data bytes follow/);
  assert.match(parse('00 A4').errors[0], /has 2 bytes: it needs at least the 4 header bytes/);
  assert.match(parse('').errors[0], /has 0 bytes/);
  assert.match(parse('00 61 00 00').errors[0], /procedure bytes/);
  assert.match(parse('20 A4 00 00').errors[0], /RFU class/);
  for (let n = 0; n < 3000; n++) {
    const len = n % 24;
    const bytes = Uint8Array.from({ length: len }, (_, k) => (n * 13 + k * 71 + k * k) & 0xFF);
    const apdu = parseCommandApdu(bytes);
    assert.equal(typeof describeCommand(apdu), 'string');
    assert.ok(apdu.case !== undefined || apdu.errors.length > 0);
  }
});

test('CLA decoding: channels, secure messaging, chaining, proprietary, reader', () => {
  assert.deepEqual(decodeCla(0x00), { cla: 0, kind: 'interindustry', channel: 0, secureMessaging: 'none', chaining: false, description: 'CLA 00: interindustry, channel 0' });
  assert.equal(decodeCla(0x03).channel, 3);
  assert.equal(decodeCla(0x0C).secureMessaging, 'header authenticated');
  assert.equal(decodeCla(0x04).secureMessaging, 'proprietary');
  assert.equal(decodeCla(0x10).chaining, true);
  assert.equal(decodeCla(0x40).channel, 4);
  assert.equal(decodeCla(0x4F).channel, 19);
  assert.equal(decodeCla(0x60).secureMessaging, 'header not authenticated');
  assert.equal(decodeCla(0x80).kind, 'proprietary');
  assert.equal(decodeCla(0x84).secureMessaging, 'proprietary');
  assert.equal(decodeCla(0xFF).kind, 'pcsc-reader');
  assert.equal(decodeCla(0x20).kind, 'rfu');
});

test('instruction names by class family', () => {
  assert.equal(instructionName(0x00, 0xA4), 'SELECT');
  assert.equal(instructionName(0x80, 0xE6), 'INSTALL');
  assert.equal(instructionName(0x00, 0xE6), 'TERMINATE DF');
  assert.equal(instructionName(0x80, 0x50), 'INITIALIZE UPDATE');
  assert.equal(instructionName(0x84, 0x82), 'EXTERNAL AUTHENTICATE');
  assert.equal(instructionName(0x80, 0xD8), 'PUT KEY');
  assert.equal(instructionName(0x80, 0xE2), 'STORE DATA');
  assert.equal(instructionName(0x80, 0xF0), 'SET STATUS');
  assert.equal(instructionName(0x80, 0xF2), 'GET STATUS');
  assert.equal(instructionName(0x80, 0xE4), 'DELETE');
  assert.equal(instructionName(0x80, 0xE8), 'LOAD');
  assert.equal(instructionName(0x80, 0xA8), 'GET PROCESSING OPTIONS');
  assert.equal(instructionName(0x80, 0xAE), 'GENERATE AC');
  assert.equal(instructionName(0x00, 0xB2), 'READ RECORD(S)');
  assert.equal(instructionName(0x00, 0x87), 'GENERAL AUTHENTICATE');
  assert.equal(instructionName(0x00, 0xCB), 'GET DATA');
  assert.equal(instructionName(0xFF, 0xCA), 'GET DATA');
  assert.equal(instructionName(0x00, 0x99), undefined);
});

test('describeCommand', () => {
  assert.equal(describeCommand(parse('00 A4 04 00 07 A0 00 00 00 03 10 10 00')), 'SELECT (by DF name) CLA 00 P1 04 P2 00 Lc 07 Le 256');
  assert.equal(describeCommand(parse('00 20 00 80 04 31 32 33 34')), 'VERIFY (PIV Card Application PIN) CLA 00 P1 00 P2 80 Lc 04');
  assert.equal(describeCommand(parse('80 E6 0C 00 03 01 02 03 00')), 'INSTALL (for install and make selectable) CLA 80 P1 0C P2 00 Lc 03 Le 256');
  assert.equal(describeCommand(parse('00 B2 01 0C 00')), 'READ RECORD(S) (record 1, SFI 1) CLA 00 P1 01 P2 0C Le 256');
  assert.equal(describeCommand(parse('80 F2 40 00 02 4F 00 00')), 'GET STATUS (applications) CLA 80 P1 40 P2 00 Lc 02 Le 256');
  assert.equal(describeCommand(parse('01 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00')), 'GET DATA (tag 3FFF) CLA 01 P1 3F P2 FF Lc 0005 Le 65536 [channel 1]');
  assert.equal(describeCommand(parse('FF CA 00 00 00')), 'GET DATA (tag 0000) CLA FF P1 00 P2 00 Le 256 [reader command]');
  assert.equal(describeCommand(parse('00 99 00 00')), 'INS 99 CLA 00 P1 00 P2 00 (invalid: INS 99 is invalid: 6X and 9X are T=0 procedure bytes (ISO 7816-3))');
  assert.match(describeCommand(parse('00 A4 04 00 05 A0')), /\(invalid: Lc is 5 but 1 data byte follows\)$/);
});

test('buildCommandApdu picks short or extended encoding and round-trips', () => {
  assert.equal(toHex(buildCommandApdu({ cla: 0, ins: 0xA4, p1: 4, p2: 0, data: fromHex('A0000000031010'), le: 256 })), '00A4040007A000000003101000');
  assert.equal(toHex(buildCommandApdu({ cla: 0, ins: 0x84, p1: 0, p2: 0, le: 8 })), '0084000008');
  assert.equal(toHex(buildCommandApdu({ cla: 0, ins: 0x70, p1: 0x80, p2: 1 })), '00708001');
  assert.equal(toHex(buildCommandApdu({ cla: 0, ins: 0xB0, p1: 0, p2: 0, le: 65536 })), '00B00000000000');
  assert.equal(toHex(buildCommandApdu({ cla: 0, ins: 0xB0, p1: 0, p2: 0, le: 257 })), '00B00000000101');
  assert.equal(toHex(buildCommandApdu({ cla: 0, ins: 0x2A, p1: 0x9E, p2: 0x9A, data: fromHex('ABCD'), le: 65536, extended: true })), '002A9E9A000002ABCD0000');
  const big = buildCommandApdu({ cla: 0, ins: 0xD6, p1: 0, p2: 0, data: new Uint8Array(300), le: 10 });
  const parsed = parseCommandApdu(big);
  assert.equal(parsed.case, '4E');
  assert.equal(parsed.lc, 300);
  assert.equal(parsed.le, 10);
  for (const c of [{ le: 0 }, { le: 65537 }, { cla: 256 }, { data: new Uint8Array(65536) }]) {
    assert.throws(() => buildCommandApdu({ cla: 0, ins: 0xA4, p1: 0, p2: 0, ...c }), (e: unknown) => e instanceof ScError && e.code === 'BAD_REQUEST');
  }
});

test('parseResponseApdu splits data and status word', () => {
  const r = parseResponseApdu(fromHex('6F 00 90 00'));
  assert.equal(toHex(r.data), '6F00');
  assert.equal(r.sw1, 0x90);
  assert.equal(r.status?.meaning, 'Normal processing');
  assert.deepEqual(r.errors, []);
  assert.equal(parseResponseApdu(fromHex('63 C1')).status?.retries, 1);
  const bad = parseResponseApdu(fromHex('90'));
  assert.equal(bad.status, undefined);
  assert.match(bad.errors[0], /has 1 byte: it needs at least the status word/);
});
