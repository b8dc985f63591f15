import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBerTlv, formatTlvTree, tagName } from '../../../server/src/codecs/tlv';
import { fromHex, toHex } from '../../../server/src/util/hex';

const decode = (hex: string) => decodeBerTlv(fromHex(hex));

// A Visa SELECT response (FCI).
const VISA_FCI = '6F 25 84 07 A0 00 00 00 03 10 10 A5 1A 50 0A 56 49 53 41 20 44 45 42 49 54 87 01 01 9F 38 03 9F 1A 02 5F 2D 02 65 6E';

test('EMV FCI: nesting, multi-byte tags, names, offsets', () => {
  const r = decode(VISA_FCI);
  assert.equal(r.complete, true);
  assert.equal(r.error, undefined);
  assert.equal(r.nodes.length, 1);
  const fci = r.nodes[0];
  assert.equal(fci.tag, 0x6F);
  assert.equal(fci.tagHex, '6F');
  assert.equal(fci.name, 'File control information (FCI)');
  assert.equal(fci.constructed, true);
  assert.equal(fci.length, 0x25);
  assert.equal(fci.offset, 0);
  const [df, a5] = fci.children!;
  assert.equal(df.name, 'DF name');
  assert.equal(toHex(df.value), 'A0000000031010');
  assert.equal(df.offset, 2);
  assert.equal(a5.name, 'FCI proprietary template');
  const names = a5.children!.map((c) => `${c.tagHex}=${c.name}`);
  assert.deepEqual(names, ['50=Application label', '87=Application priority indicator',
    '9F38=Processing options data object list (PDOL)', '5F2D=Language preference']);
  assert.equal(a5.children![2].tag, 0x9F38);
  assert.deepEqual(formatTlvTree(r), [
    '6F File control information (FCI) (37 bytes)',
    '  84 DF name: A0 00 00 00 03 10 10',
    '  A5 FCI proprietary template (26 bytes)',
    '    50 Application label: 56 49 53 41 20 44 45 42 49 54 "VISA DEBIT"',
    '    87 Application priority indicator: 01',
    '    9F38 Processing options data object list (PDOL): 9F 1A 02',
    '    5F2D Language preference: 65 6E "en"',
  ]);
});

test('ISO FCP and PIV context names', () => {
  const fcp = decode('62 0E 82 01 38 83 02 3F 00 8A 01 05 80 02 00 10');
  assert.deepEqual(fcp.nodes[0].children!.map((c) => c.name), ['File descriptor', 'File identifier', 'Life cycle status', 'Number of data bytes in the file']);
  const apt = decode('61 11 4F 06 00 00 10 00 01 00 79 07 4F 05 A0 00 00 03 08');
  assert.equal(apt.nodes[0].children![0].name, 'PIV application identifier (PIX)');
  assert.equal(apt.nodes[0].children![1].children![0].name, 'Application identifier (AID)');
  const getData = decode('5C 03 5F C1 05');
  assert.equal(getData.nodes[0].name, 'Tag list');
  assert.equal(tagName('5FC105'), 'X.509 certificate for PIV authentication');
  assert.equal(tagName('82', '7C'), 'Response');
  assert.equal(tagName('80'), 'Response message template format 1');
  assert.equal(tagName('82', '77'), 'Application interchange profile');
  assert.equal(tagName('DF7F'), undefined);
});

test('long-form lengths and padding', () => {
  const value = new Uint8Array(300).fill(0xAB);
  const r = decodeBerTlv(Uint8Array.from([0x53, 0x82, 0x01, 0x2C, ...value]));
  assert.equal(r.complete, true);
  assert.equal(r.nodes[0].length, 300);
  assert.equal(r.nodes[0].value.length, 300);
  const r81 = decode('70 81 03 5A 01 12');
  assert.equal(r81.nodes[0].length, 3);
  assert.equal(r81.nodes[0].children![0].tagHex, '5A');
  const padded = decode('00 00 4F 01 AA FF FF 50 00 00');
  assert.equal(padded.complete, true);
  assert.deepEqual(padded.nodes.map((n) => [n.tagHex, n.offset, n.length]), [['4F', 2, 1], ['50', 7, 0]]);
  assert.equal(decode('').complete, true);
  assert.deepEqual(decode('').nodes, []);
});

test('malformed input: decoding stops with an offset and a reason, keeps what came before', () => {
  const truncated = decode('4F 01 AA 6F 10 84 07 A0 00');
  assert.equal(truncated.complete, false);
  assert.equal(truncated.nodes.length, 1);
  assert.deepEqual(truncated.error, { offset: 3, message: 'Tag 6F at offset 3 declares 16 value bytes but only 4 remain' });

  const inner = decode('6F 06 84 07 A0 00 00 00');
  assert.equal(inner.complete, false);
  assert.equal(inner.nodes[0].tagHex, '6F');
  assert.deepEqual(inner.nodes[0].children, []);
  assert.equal(inner.error?.offset, 2);
  assert.match(inner.error!.message, /Tag 84 at offset 2 declares 7 value bytes but only 4 remain/);

  assert.match(decode('9F').error!.message, /cut off/);
  assert.match(decode('9F 81').error!.message, /cut off/);
  assert.match(decode('9F 81 82 83 84 01 00').error!.message, /longer than 4 bytes/);
  assert.match(decode('84').error!.message, /no length byte/);
  assert.match(decode('84 80 00 00').error!.message, /indefinite length/);
  assert.match(decode('84 85 01 02 03 04 05').error!.message, /length field of 5 bytes/);
  assert.match(decode('84 82 01').error!.message, /ends inside its 3-byte length field/);
  // deep nesting stops instead of overflowing the stack
  // 100 empty constructed objects side by side are fine
  const nested = decodeBerTlv(Uint8Array.from(Array.from({ length: 100 }, () => [0x70, 0x00]).flat()));
  assert.equal(nested.complete, true);
  // 70 levels of nesting are not
  const chain: number[] = [];
  for (let k = 0; k < 70; k++) chain.push(0x70, 0x81, 0);
  const lens = chain.length;
  for (let k = 0; k < 70; k++) chain[3 * k + 2] = Math.min(255, lens - 3 * (k + 1));
  assert.match(decodeBerTlv(Uint8Array.from(chain)).error?.message ?? '', /nested deeper/);
  // nothing throws on arbitrary bytes, and formatTlvTree always renders
  for (let n = 0; n < 3000; n++) {
    const len = n % 40;
    const bytes = Uint8Array.from({ length: len }, (_, k) => (n * 29 + k * 113 + k * k * 7) & 0xFF);
    const r = decodeBerTlv(bytes);
    assert.ok(r.complete || r.error);
    const lines = formatTlvTree(r);
    if (r.error) assert.match(lines.at(-1)!, /^Decoding stopped at offset \d+/);
  }
});
