import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAtr, atrToJson, describeAtr, decodeHistoricalBytes, lifeCycleStatus } from '../../../server/src/codecs/atr';
import { fromHex, toHex } from '../../../server/src/util/hex';

const atr = (hex: string) => parseAtr(fromHex(hex));

test('vicc ATR: T=1, TA1 13, compact-TLV card capabilities, correct TCK', () => {
  const info = atr('3B 95 13 81 01 80 73 FF 01 00 0B');
  assert.equal(info.convention, 'direct');
  assert.deepEqual(info.protocols, [1]);
  assert.equal(info.fi, 372);
  assert.equal(info.di, 4);
  assert.equal(info.fMax, 5);
  assert.equal(toHex(info.historicalBytes), '8073FF0100');
  assert.equal(info.tckRequired, true);
  assert.equal(info.tckValid, true);
  assert.deepEqual(info.errors, []);
  const caps = info.historical.objects[0];
  assert.equal(caps.tag, 7);
  assert.ok(caps.details.includes('Selection: DF selection by full DF name'));
  assert.ok(caps.details.includes('Maximum logical channels: 1'));
  const json = atrToJson(info);
  assert.equal(json.atr, '3B 95 13 81 01 80 73 FF 01 00 0B');
  assert.deepEqual(json.protocols, [1]);
  assert.equal(json.historicalBytes, '8073FF0100');
  assert.equal(json.tckValid, true);
  assert.deepEqual(json.errors, []);
});

test('PC/SC contactless storage card ATR (MIFARE Classic 1K)', () => {
  const info = atr('3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A');
  assert.deepEqual(info.protocols, [0, 1]);
  assert.equal(info.fi, 372);
  assert.equal(info.di, 1);
  assert.equal(info.tckValid, true);
  assert.equal(info.historical.pcscContactless?.standardName, 'ISO 14443 A, part 3');
  assert.equal(info.historical.pcscContactless?.cardNameText, 'MIFARE Classic 1K');
  assert.deepEqual(info.historical.errors, []);
});

test('inverse convention, T=0 only: no TCK expected', () => {
  const info = atr('3F 65 25 00 2C 09 F6 90 00');
  assert.equal(info.convention, 'inverse');
  assert.deepEqual(info.protocols, [0]);
  assert.equal(info.tckRequired, false);
  assert.equal(info.tck, undefined);
  assert.equal(info.tckValid, null);
  assert.equal(info.n, 0);
  assert.equal(toHex(info.historicalBytes), '2C09F69000');
  assert.deepEqual(info.errors, []);
});

test('T=0 only with TA1 and category 00 status indicator', () => {
  // TA1 96 = Fi 512, Di 32; historical 00 | 31 C0 | 07 90 00
  const info = atr('3B 76 96 00 00 00 31 C0 07 90 00');
  assert.deepEqual(info.protocols, [0]);
  assert.equal(info.fi, 512);
  assert.equal(info.di, 32);
  assert.equal(info.fMax, 5);
  assert.equal(info.historical.categoryIndicator, 0x00);
  assert.equal(info.historical.statusIndicator?.lcs, 0x07);
  assert.equal(info.historical.statusIndicator?.lcsMeaning, 'Operational state (activated)');
  assert.equal(info.historical.statusIndicator?.sw, 0x9000);
  const service = info.historical.objects.find((o) => o.tag === 3);
  assert.ok(service?.details.includes('Application selection by full DF name'));
  assert.ok(service?.details.includes('EF.DIR and EF.ATR access by READ RECORD(S)'));
  assert.deepEqual(info.errors, []);
});

test('T=1 specific bytes and T=15 global bytes', () => {
  const info = atr('3B DF 18 FF 81 F1 FE 43 00 3F 03 83 4D 49 46 41 52 45 20 50 6C 75 73 20 53 41 4D 3B');
  assert.deepEqual(info.protocols, [1]);
  assert.equal(info.di, 12);
  assert.equal(info.n, 255);
  assert.equal(info.ifsc, 254);
  assert.equal(info.bwi, 4);
  assert.equal(info.cwi, 3);
  assert.equal(info.errorDetection, 'LRC');
  assert.equal(info.clockStop, 'not supported');
  assert.deepEqual(info.classes, ['A', 'B']);
  assert.equal(info.tckValid, true);
  const ta3 = info.interfaceBytes.find((b) => b.name === 'TA' && b.index === 3);
  assert.equal(ta3?.protocol, 1);
  assert.equal(info.historical.category, 'Proprietary');
});

test('TA2 specific mode and TC2 WI', () => {
  // T0 = E0 (TB1 TC1 TD1), TD1 = 60 (TB2 TC2, T=0), TB2 00, TC2 0A, K=0.
  const i2 = atr('3B E0 00 00 60 00 0A');
  assert.equal(i2.wi, 10);
  assert.deepEqual(i2.protocols, [0]);
  assert.deepEqual(i2.errors, []);
  const i3 = atr('3B 90 11 10 81 00'); // TD1 10: TA2, T=0; TA2 81 = specific T=1, unable to change
  assert.equal(i3.specificMode?.protocol, 1);
  assert.equal(i3.specificMode?.canChange, false);
  assert.equal(i3.specificMode?.implicitParameters, false);
  assert.match(atr('3B E0 00 00 60 00 00').errors.join(), /WI must not be 0/);
});

test('defaults when TA1 is absent', () => {
  const info = atr('3B 00');
  assert.equal(info.fi, 372);
  assert.equal(info.di, 1);
  assert.equal(info.fMax, 5);
  assert.deepEqual(info.protocols, [0]);
  assert.deepEqual(info.errors, []);
});

test('wrong TCK, missing TCK, extra bytes', () => {
  const wrong = atr('3B 95 13 81 01 80 73 FF 01 00 0C');
  assert.equal(wrong.tckValid, false);
  assert.match(wrong.errors.join(), /TCK is 0C but .* gives 0B/);
  const missing = atr('3B 95 13 81 01 80 73 FF 01 00');
  assert.equal(missing.tckValid, false);
  assert.match(missing.errors.join(), /TCK is missing: it is required because T=1 is offered/);
  const extra = atr('3B 95 13 81 01 80 73 FF 01 00 0B 99');
  assert.equal(extra.tckValid, true);
  assert.match(extra.errors.join(), /1 extra byte after the TCK/);
  const extraT0 = atr('3B 02 14 50 99 99');
  assert.equal(extraT0.tck, undefined);
  assert.match(extraT0.errors.join(), /2 extra bytes after the historical bytes/);
  const tckT0 = atr('3B 02 14 50 46');
  assert.equal(tckT0.tckValid, true);
  assert.match(tckT0.warnings.join(), /only T=0/);
});

test('truncated and malformed ATRs return errors, never throw', () => {
  assert.match(atr('').errors[0], /empty/);
  assert.match(atr('3B').errors[0], /T0 is missing/);
  assert.match(atr('3B 95 13').errors.join(), /TD1, announced by T0, is missing/);
  assert.match(atr('3B 95 13 81').errors.join(), /TD2, announced by TD1, is missing/);
  assert.match(atr('3B 05 01 02').errors.join(), /announces 5 historical bytes but only 2 follow/);
  assert.match(atr('12 00').errors.join(), /TS is 12/);
  assert.match(atr('03 00').errors.join(), /inverse-convention card read as direct/);
  const rfu = atr('3B 10 70');
  assert.equal(rfu.fi, null);
  assert.equal(rfu.di, null);
  assert.match(rfu.errors.join(), /Fi index 7 is RFU.*Di index 0 is RFU/);
  assert.match(atr('3B 80 1F').errors.join(), /T=15.*forbids/);
  const long = atr('3B ' + '0F '.repeat(1) + '00 '.repeat(40));
  assert.match(long.warnings.join(), /at most 33/);
  // every byte sequence parses without an exception
  for (let n = 0; n < 2000; n++) {
    const len = (n * 7) % 40;
    const bytes = Uint8Array.from({ length: len }, (_, k) => (n * 31 + k * 97 + (k * k * n)) & 0xFF);
    const info = parseAtr(bytes);
    assert.ok(Array.isArray(describeAtr(info)));
    assert.ok(atrToJson(info));
  }
});

test('historical bytes: categories and compact-TLV errors', () => {
  assert.equal(decodeHistoricalBytes(fromHex('10 05')).dirDataReference, 5);
  assert.match(decodeHistoricalBytes(fromHex('10')).errors[0], /DIR data reference byte/);
  assert.equal(decodeHistoricalBytes(fromHex('81 00')).category, 'RFU');
  assert.match(decodeHistoricalBytes(fromHex('00 90')).errors[0], /status indicator/);
  assert.match(decodeHistoricalBytes(fromHex('80 45 01 02')).errors[0], /declares 5 bytes but 2 remain/);
  const status = decodeHistoricalBytes(fromHex('80 83 05 63 C2'));
  assert.equal(status.statusIndicator?.lcs, 5);
  assert.equal(status.statusIndicator?.swMeaning, 'Verification failed, 2 retries left');
  assert.equal(decodeHistoricalBytes(fromHex('80 82 90 00')).statusIndicator?.sw, 0x9000);
  assert.equal(lifeCycleStatus(0x0F), 'Termination state');
  assert.equal(lifeCycleStatus(0x42), 'Proprietary');
});

test('describeAtr gives readable lines', () => {
  const lines = describeAtr(atr('3B 95 13 81 01 80 73 FF 01 00 0B'));
  assert.equal(lines[0], 'ATR: 3B 95 13 81 01 80 73 FF 01 00 0B');
  assert.ok(lines.includes('TS = 3B: direct convention'));
  assert.ok(lines.includes('Protocols: T=1'));
  assert.ok(lines.includes('TCK = 0B (correct checksum)'));
  assert.ok(lines.some((l) => l.includes('TA1 = 13: Fi=372, Di=4')));
});
