import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCommandApdu, decodeCla, describeCommand, EnvelopeSecrets, instructionName, parseCommandApdu, parseResponseApdu, secretRanges } from '../../../server/src/codecs/apdu';
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

// R91: an ENVELOPE (INS C2 / C3, ISO/IEC 7816-4:1995 §7.2) carries (part of) another command APDU in its data. A VERIFY & co.
// inside one is masked after its own header, with the ENVELOPE's length bytes (they tell the PIN's length, as a VERIFY's Lc
// would); the rest of such a command, carried on in the next ENVELOPEs of the chain, is masked whole.
const PIN6 = [0x35, 0x38, 0x32, 0x39, 0x34, 0x37];
const env = (...data: number[]) => Uint8Array.of(0x00, 0xc2, 0x00, 0x00, data.length, ...data);

test('R91 secretRanges: an ENVELOPE whose data starts with a VERIFY & co. is masked after the inner header, its length bytes too; other ENVELOPEs as sent', () => {
  assert.deepEqual(secretRanges(env(0x00, 0x20, 0x00, 0x81, 0x06, ...PIN6)), [[4, 5], [9, 16]], 'a whole VERIFY: the outer Lc and everything after the inner header');
  assert.deepEqual(secretRanges(Uint8Array.of(...env(0x00, 0x24, 0x00, 0x81, 0x06, ...PIN6), 0x00)), [[4, 5], [9, 17]], 'case 4: the outer Le with it');
  assert.deepEqual(secretRanges(Uint8Array.of(0x00, 0xc3, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x20, 0x00, 0x81, 0x06, ...PIN6)), [[4, 7], [11, 18]], 'odd INS, extended outer Lc');
  assert.deepEqual(secretRanges(env(0x00, 0x20, 0x00, 0x81, 0x00, 0x00, 0x06, ...PIN6)), [[4, 5], [9, 18]], 'an extended inner Lc');
  assert.deepEqual(secretRanges(env(0x00, 0x20, 0x00, 0x81, 0x06, 0x35, 0x38)), [[4, 5], [9, 12]], 'the first part of a split one');
  assert.equal(secretRanges(env(0x00, 0xa4, 0x04, 0x00, 0x06, ...PIN6)), undefined, 'a wrapped SELECT');
  assert.equal(secretRanges(env(0x00, 0x20, 0x00, 0x81)), undefined, 'a wrapped VERIFY without data (a retry-counter query)');
  assert.equal(secretRanges(Uint8Array.of(0x80, 0xc2, 0x00, 0x00, 0x00)), undefined, 'an empty ENVELOPE');
  assert.equal(secretRanges(env(0xd1, 0x0a, 0x82, 0x02, 0x83, 0x81, 0x8b, 0x04, 0x04, 0x02, 0x91, 0x10)), undefined, 'a (U)SIM toolkit ENVELOPE (BER-TLV, SMS-PP download) as sent');
  // Never less than before: the plain rule is unchanged.
  assert.deepEqual(secretRanges(Uint8Array.of(0x00, 0x20, 0x00, 0x81, 0x06, ...PIN6)), [[5, 11]]);
});

test('R91 EnvelopeSecrets: the continuation of a VERIFY split over ENVELOPEs is masked whole, until its Lc is reached or an empty ENVELOPE ends the chain; GET RESPONSE between changes nothing', () => {
  const chain = new EnvelopeSecrets();
  assert.deepEqual(chain.next(env(0x00, 0x20, 0x00, 0x81, 0x06, 0x35, 0x38)), [[4, 5], [9, 12]], 'part 1: header, Lc and two PIN bytes');
  assert.equal(chain.next(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, 0x02)), undefined, 'a GET RESPONSE between');
  assert.deepEqual(chain.next(env(0x32, 0x39)), [[4, 7]], 'part 2: all of it');
  assert.deepEqual(chain.next(env(0x34, 0x37)), [[4, 7]], 'part 3: the last two');
  assert.equal(chain.next(env(0x00, 0xa4, 0x04, 0x00, 0x02, 0x3f, 0x00)), undefined, 'the VERIFY is complete: the next one is a new command, shown');
  // Split inside the inner header: the INS and the Lc come in later ENVELOPEs.
  assert.equal(chain.next(env(0x00)), undefined, 'only the CLA');
  assert.deepEqual(chain.next(env(0x20, 0x00, 0x81, 0x06, 0x35)), [[4, 5], [8, 10]], 'the INS first: masked after P2');
  assert.deepEqual(chain.next(env(0x38, 0x32, 0x39, 0x34, 0x37)), [[4, 10]]);
  assert.equal(chain.next(env(0x00, 0xb0, 0x00, 0x00, 0x10)), undefined, 'complete');
  // An extended inner Lc split before its second byte; then an empty ENVELOPE ends the data string (§7.2.3).
  assert.deepEqual(chain.next(env(0x00, 0x20, 0x00, 0x81, 0x00, 0x00)), [[4, 5], [9, 11]]);
  assert.deepEqual(chain.next(env(0x06, 0x35, 0x38)), [[4, 8]]);
  assert.equal(chain.next(Uint8Array.of(0x00, 0xc2, 0x00, 0x00)), undefined, 'the empty ENVELOPE: the chain ends');
  assert.equal(chain.next(env(0x32, 0x39, 0x34, 0x37)), undefined, 'after it, data that starts no secret command is shown');
  // A wrapped SELECT split in two: its continuation is shown; a VERIFY in the next chain is found again.
  assert.equal(chain.next(env(0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00)), undefined);
  assert.equal(chain.next(env(0x00, 0x00, 0x03, 0x08, 0x00)), undefined);
  assert.deepEqual(chain.next(env(0x00, 0x2c, 0x00, 0x81, 0x06, ...PIN6)), [[4, 5], [9, 16]], 'a whole RESET RETRY COUNTER');
});

// R92 (review 12): the chain per class and logical channel, only parts the card took counted, a power-up closing nothing.
const envc = (cla: number, ...data: number[]) => Uint8Array.of(cla, 0xc2, 0x00, 0x00, data.length, ...data);
const PART1 = [0x00, 0x20, 0x00, 0x81, 0x08, 0x37, 0x39, 0x31, 0x38];
const PART2 = [0x38, 0x32, 0x36, 0x34];

test('R92 EnvelopeSecrets: another class or channel between the parts is not counted in the VERIFY; the rest stays masked', () => {
  // (a) a (U)SIM toolkit ENVELOPE (CLA 80) between the parts of an interindustry one.
  let chain = new EnvelopeSecrets();
  assert.deepEqual(chain.next(envc(0x00, ...PART1)), [[4, 5], [9, 14]]);
  assert.equal(chain.next(envc(0x80, 0xd1, 0x02, 0x82, 0x02)), undefined, 'the toolkit ENVELOPE: shown, not counted');
  assert.deepEqual(chain.next(envc(0x00, ...PART2)), [[4, 9]], 'part 2 after the toolkit ENVELOPE');
  // A channel-0 ENVELOPE between the parts of a channel-1 one (CLA 01), and one on a further channel (CLA 41: channel 5).
  chain = new EnvelopeSecrets();
  assert.deepEqual(chain.next(envc(0x01, 0x01, ...PART1.slice(1))), [[4, 5], [9, 14]]);
  assert.equal(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00)), undefined, 'channel 0: shown');
  assert.equal(chain.next(envc(0x41, 0x41, 0xb0, 0x00, 0x00)), undefined, 'channel 5: shown');
  assert.deepEqual(chain.next(envc(0x01, ...PART2)), [[4, 9]], 'channel 1 part 2');
  // Secure messaging bits are the same channel: 0C is channel 0 as 00 is.
  chain = new EnvelopeSecrets();
  chain.next(envc(0x00, ...PART1));
  assert.deepEqual(chain.next(envc(0x0c, ...PART2)), [[4, 9]]);
});

test('R92 EnvelopeSecrets: a part the card refused, or that never reached it, is not counted: its re-send is masked whole', () => {
  // (b) the card refuses part 2 (6D 00) and the client sends it again.
  const chain = new EnvelopeSecrets();
  chain.next(envc(0x00, ...PART1));
  assert.deepEqual(chain.next(envc(0x00, ...PART2), 0x6d00), [[4, 9]]);
  assert.deepEqual(chain.next(envc(0x00, ...PART2)), [[4, 9]], 'the re-send');
  assert.equal(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00)), undefined, 'complete: the next command is shown');
  // (c) part 2 never reached the card (a gate deadline, a Cancel): answered without a status word.
  chain.next(envc(0x00, ...PART1));
  const p2 = envc(0x00, ...PART2);
  assert.deepEqual(chain.ranges(p2), [[4, 9]]);
  chain.answered(p2);
  assert.deepEqual(chain.next(p2), [[4, 9]], 'the re-send after a failed transmit');
  // The last part answered with the VERIFY's own wrong-PIN status (63 C2) completes it.
  chain.next(envc(0x00, ...PART1));
  assert.deepEqual(chain.next(envc(0x00, ...PART2), 0x63c2), [[4, 9]]);
  assert.equal(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00)), undefined, 'after a wrong PIN: shown');
  // The first part refused still opens the chain: its sender's next part is the PIN's rest.
  assert.deepEqual(chain.next(envc(0x00, ...PART1), 0x6d00), [[4, 5], [9, 14]]);
  assert.deepEqual(chain.next(envc(0x00, ...PART2), 0x6d00), [[4, 9]]);
  assert.equal(chain.next(Uint8Array.of(0x00, 0xc2, 0x00, 0x00), 0x6d00), undefined, 'an empty ENVELOPE ends it, whatever the answer');
  assert.equal(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00)), undefined);
});

test('R92 EnvelopeSecrets: a power-up or a new card does not close a secret chain: the rest is masked until an empty ENVELOPE ends it', () => {
  const chain = new EnvelopeSecrets();
  chain.next(envc(0x00, ...PART1));
  chain.cardReset();
  assert.deepEqual(chain.next(envc(0x00, ...PART2)), [[4, 9]], 'the second half after the power-up');
  assert.deepEqual(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00)), [[4, 9]], 'an orphan masks its chain whole, counting nothing');
  assert.equal(chain.next(envc(0x80, 0xd1, 0x02, 0x82, 0x02)), undefined, 'another chain is not touched');
  assert.equal(chain.next(Uint8Array.of(0x00, 0xc2, 0x00, 0x00)), undefined);
  assert.equal(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00)), undefined, 'the empty ENVELOPE ended it');
  // Another command's data appended in the middle overshoots the VERIFY's Lc: an orphan too (those were not its bytes).
  chain.next(envc(0x00, ...PART1));
  assert.deepEqual(chain.next(envc(0x00, 0x00, 0xa4, 0x04, 0x00, 0x02, 0x3f, 0x00)), [[4, 12]]);
  assert.deepEqual(chain.next(envc(0x00, ...PART2)), [[4, 9]], 'the rest after the overshoot');
  // A restart of the VERIFY while the first is open: masked whole, and followed as a start of its own.
  chain.next(Uint8Array.of(0x00, 0xc2, 0x00, 0x00));
  chain.next(envc(0x00, ...PART1));
  chain.cardReset();
  assert.deepEqual(chain.next(envc(0x00, ...PART1)), [[4, 14]], 'the restart: whole');
  assert.deepEqual(chain.next(envc(0x00, ...PART2)), [[4, 9]]);
});
