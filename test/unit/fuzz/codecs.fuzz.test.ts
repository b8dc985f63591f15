// Property-based fuzzing of the byte decoders the helper runs on untrusted
// input (cards, readers, files, the user's hover): ATR, BER-TLV, command and
// response APDUs, status words, smartcard_list.txt, CCID messages and
// descriptors. Each must return (never throw), finish, and give output whose
// size is bounded by the input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { atrToJson, describeAtr, parseAtr } from '../../../server/src/codecs/atr';
import { decodeBerTlv, formatTlvTree, type TlvNode } from '../../../server/src/codecs/tlv';
import { buildCommandApdu, describeCommand, parseCommandApdu, parseResponseApdu } from '../../../server/src/codecs/apdu';
import { describeStatusWord, statusWordHex } from '../../../server/src/codecs/sw';
import { SmartcardList } from '../../../server/src/codecs/smartcardList';
import { describeCommandLines } from '../../../server/src/lsp/describe';
import { ccidDescriptorToJson, decodeCcidDescriptor, findCcidDescriptorInConfiguration } from '../../../server/src/ccid/descriptor';
import { decodeInterrupt, decodeMessage, describeMessage, encodeMessage } from '../../../server/src/ccid/messages';
import { toSpacedHex } from '../../../server/src/util/hex';
import { bounded, bytes, fuzzParams } from './support';

test('parseAtr never throws, finishes, and its output is bounded by the ATR', () => {
  // Real ATRs start 3B/3F and chain TDi bytes; bias the generator towards that.
  const atrLike = fc.tuple(fc.constantFrom(0x3b, 0x3f, 0x03, 0x00), fc.uint8Array({ maxLength: 40 }))
    .map(([ts, rest]) => Uint8Array.of(ts, ...rest));
  fc.assert(fc.property(fc.oneof(atrLike, bytes(300)), (atr) => {
    const info = bounded('parseAtr', () => parseAtr(atr));
    assert.ok(info.interfaceBytes.length <= atr.length);
    assert.ok(info.historicalBytes.length <= atr.length);
    assert.ok(info.errors.length + info.warnings.length <= atr.length + 8, `${info.errors.length} errors for ${atr.length} bytes`);
    assert.ok(info.protocols.every((p) => Number.isInteger(p) && p >= 0 && p <= 15));
    const lines = bounded('describeAtr', () => describeAtr(info));
    assert.ok(lines.join('\n').length < 400 * (atr.length + 10));
    assert.doesNotThrow(() => JSON.stringify(bounded('atrToJson', () => atrToJson(info))));
  }), fuzzParams(3000));
});

function countNodes(nodes: TlvNode[]): { nodes: number; valueBytes: number; depth: number } {
  let n = 0, v = 0, depth = 0;
  for (const x of nodes) {
    n++; v += x.value.length;
    if (x.children) {
      const c = countNodes(x.children);
      n += c.nodes; v += c.valueBytes; depth = Math.max(depth, c.depth + 1);
    }
  }
  return { nodes: n, valueBytes: v, depth };
}

test('decodeBerTlv never throws, finishes, and its tree is bounded by the input', () => {
  // Nested constructed templates (6F, A5, 70, E1) with short and long lengths, right or wrong.
  const tlvLike: fc.Arbitrary<Uint8Array> = fc.letrec<{ node: Uint8Array }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.tuple(fc.constantFrom(0x5a, 0x84, 0x9f, 0x5f, 0x1f, 0xdf), bytes(20)).map(([t, v]) => Uint8Array.of(t, v.length, ...v)),
      fc.tuple(fc.constantFrom(0x6f, 0xa5, 0x70, 0xe1, 0x7f), fc.array(tie('node'), { maxLength: 4 }), fc.integer({ min: -2, max: 2 }))
        .map(([t, kids, skew]) => {
          const body = kids.flatMap((k) => [...k]);
          const len = Math.max(0, body.length + skew);
          const lenField = len < 0x80 ? [len] : len < 0x100 ? [0x81, len] : [0x82, len >> 8, len & 0xff];
          return Uint8Array.of(t, ...lenField, ...body);
        }),
      bytes(12),
    ),
  })).node;
  const deep = fc.integer({ min: 1, max: 200 }).map((d) => {
    // 200 levels of A5 80+ with a long-form length each: deeper than MAX_DEPTH.
    let inner = Uint8Array.of(0x5a, 0x01, 0x00);
    for (let i = 0; i < d; i++) inner = Uint8Array.of(0xa5, 0x82, inner.length >> 8, inner.length & 0xff, ...inner);
    return inner;
  });
  fc.assert(fc.property(fc.oneof(tlvLike, deep, bytes(400)), (data) => {
    const r = bounded('decodeBerTlv', () => decodeBerTlv(data));
    const c = countNodes(r.nodes);
    assert.ok(c.nodes <= data.length, `${c.nodes} nodes from ${data.length} bytes`);
    assert.ok(c.depth <= 65, `depth ${c.depth}`);
    // Each level copies its value: at most (depth + 1) copies of the input.
    assert.ok(c.valueBytes <= data.length * (c.depth + 1), `${c.valueBytes} value bytes from ${data.length}`);
    if (!r.complete) assert.ok(r.error && r.error.offset >= 0 && r.error.offset <= data.length && r.error.message.length > 0);
    const lines = bounded('formatTlvTree', () => formatTlvTree(r));
    assert.ok(lines.length <= c.nodes + 2);
  }), fuzzParams(3000));
});

test('parseCommandApdu never throws; a well-formed result accounts for every byte', () => {
  const apduLike = fc.record({
    cla: fc.integer({ min: 0, max: 255 }), ins: fc.integer({ min: 0, max: 255 }),
    p1: fc.integer({ min: 0, max: 255 }), p2: fc.integer({ min: 0, max: 255 }),
    data: fc.uint8Array({ maxLength: 300 }), le: fc.option(fc.integer({ min: 1, max: 65536 })), extended: fc.boolean(),
  }).map((f) => {
    try { return buildCommandApdu({ ...f, le: f.le ?? undefined }); } catch { return Uint8Array.of(f.cla, f.ins, f.p1, f.p2); }
  });
  fc.assert(fc.property(fc.oneof(apduLike, bytes(600)), (b) => {
    const a = bounded('parseCommandApdu', () => parseCommandApdu(b));
    assert.equal(a.bytes.length, b.length);
    if (a.case !== undefined) {
      const lcField = a.lc === undefined ? 0 : a.extended ? 3 : 1;
      const leField = a.le === undefined ? 0 : !a.extended ? 1 : a.lc === undefined ? 3 : 2;
      assert.equal(4 + lcField + a.data.length + leField, b.length, `case ${a.case} does not account for ${b.length} bytes`);
      assert.equal(a.data.length, a.lc ?? 0);
    }
    assert.ok(a.errors.length <= 4);
    bounded('describeCommand', () => describeCommand(a));
    const lines = bounded('describeCommandLines (hover)', () => describeCommandLines([{ kind: 'hex', bytes: b, span: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } }]));
    assert.ok(lines.join('\n').length < 200 * (b.length + 20));
    const r = bounded('parseResponseApdu', () => parseResponseApdu(b));
    assert.equal(r.data.length, Math.max(0, b.length - 2));
  }), fuzzParams(3000));
});

test('every one of the 65,536 status words has a meaning and a category', () => {
  for (let sw = 0; sw <= 0xffff; sw++) {
    const info = describeStatusWord(sw >> 8, sw & 0xff);
    assert.ok(typeof info.meaning === 'string' && info.meaning.length > 0 && info.meaning.length < 300, `SW ${sw.toString(16)}`);
    assert.ok(['success', 'warning', 'error'].includes(info.category), `SW ${sw.toString(16)}: ${info.category}`);
    assert.match(statusWordHex(sw), /^[0-9A-F]{2} ?[0-9A-F]{2}$/);
  }
  // Out-of-range input from a careless caller still answers.
  for (const [a, b] of [[-1, 0], [256, 0], [0x90, 0x100], [NaN, 0]]) {
    assert.doesNotThrow(() => describeStatusWord(a, b));
  }
});

// Lines as smartcard_list.txt has them: a pattern line, TAB descriptions, # comments.
const patternToken = fc.constantFrom('3B', '3F', '8F', '..', '.', '.*', '[0-9A-F]', '(', ')', '|', '?', '+', '*', '{2}', '\\', '00', 'FF', ' ', ' ');
const listLine = fc.oneof(
  fc.array(patternToken, { maxLength: 40 }).map((t) => t.join('')),
  fc.string({ maxLength: 40 }).map((s) => '\t' + s),
  fc.string({ maxLength: 40 }).map((s) => '#' + s),
  fc.string({ unit: 'binary', maxLength: 60 }),
);
const atrText = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((b) => toSpacedHex(Uint8Array.of(0x3b, ...b))),
  fc.uint8Array({ maxLength: 300 }).map((b) => toSpacedHex(b)),
  fc.string({ maxLength: 80 }),
);

test('SmartcardList.addText never throws on any line; lookup never throws and finishes', () => {
  fc.assert(fc.property(fc.array(listLine, { maxLength: 40 }), fc.array(atrText, { maxLength: 5 }), (lines, atrs) => {
    const list = new SmartcardList();
    const text = lines.join('\n');
    bounded('SmartcardList.addText', () => list.addText(text, 'fuzz'));
    assert.ok(list.size <= text.split(/\r\n|\r|\n/).length, `${list.size} entries from ${lines.length} lines`);
    for (const atr of atrs) {
      const hits = bounded('SmartcardList.lookup', () => list.lookup(atr));
      assert.ok(hits.length <= list.size);
    }
  }), fuzzParams(1500));
});

// The first lookup scans the texts (regular expressions over the bytes, server/src/codecs/smartcardList.ts);
// later ones use the index: both must answer the same for any list, CR, spaces and case included.
const scanLine = fc.oneof(
  listLine,
  fc.array(fc.constantFrom('3B', '3b', '8F', '8f', ' ', ' ', ' ', '  ', '..', '?', '*', '|', '\r', 'É', '#', '\t', '00', '{2}', 'FF', '3F'), { maxLength: 12 }).map((t) => t.join('')),
);
// ATRs the lines above can match, so that the answers are not all empty.
const scanAtr = fc.array(fc.constantFrom('3B', '8F', '00', 'FF', '3F'), { minLength: 1, maxLength: 4 }).map((b) => b.join(' '));
test('SmartcardList: the first lookup (a scan) answers what the index answers', () => {
  fc.assert(fc.property(fc.array(scanLine, { maxLength: 40 }), fc.constantFrom('\n', '\r\n'), fc.array(fc.oneof(scanAtr, atrText), { minLength: 1, maxLength: 4 }), (lines, eol, atrs) => {
    const text = lines.join(eol);
    const indexed = new SmartcardList();
    indexed.addText(text, 'fuzz');
    for (const atr of atrs) {
      const fresh = new SmartcardList();
      fresh.addText(text, 'fuzz');
      assert.deepEqual(bounded('first lookup', () => fresh.lookup(atr)), indexed.lookup(atr), JSON.stringify({ text, atr }));
    }
  }), fuzzParams(1500));
});

const SYSTEM_LIST = '/usr/share/pcsc/smartcard_list.txt';
test('lookup in the real smartcard_list.txt finishes for hostile ATRs (long, repetitive)', { skip: existsSync(SYSTEM_LIST) ? false : `${SYSTEM_LIST} missing (pcsc-tools); run npm run setup:system` }, () => {
  const list = new SmartcardList();
  list.addText(readFileSync(SYSTEM_LIST, 'latin1'), SYSTEM_LIST);
  assert.ok(list.size > 1000);
  const hostile = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 33 }).map((b) => toSpacedHex(Uint8Array.of(0x3b, ...b))),
    fc.tuple(fc.constantFrom(0x3b, 0x3f), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 30, max: 300 }))
      .map(([ts, fill, n]) => toSpacedHex(Uint8Array.of(ts, ...new Uint8Array(n).fill(fill)))),
  );
  fc.assert(fc.property(hostile, (atr) => {
    bounded('lookup in smartcard_list.txt', () => list.lookup(atr));
  }), fuzzParams(200));
});

test('CCID decoders never throw on any bytes and stay within the input', () => {
  fc.assert(fc.property(bytes(120), fc.integer({ min: 0, max: 300 }), (b, slots) => {
    const d = bounded('decodeCcidDescriptor', () => decodeCcidDescriptor(b));
    if (d.ok) assert.doesNotThrow(() => JSON.stringify(ccidDescriptorToJson(d.descriptor, d.warnings)));
    else assert.ok(d.error.message.length > 0);
    const m = bounded('decodeMessage', () => decodeMessage(b));
    if (m.ok) {
      assert.ok(m.message.data.length <= b.length - 10);
      assert.deepEqual(encodeMessage(m.message), b.subarray(0, 10 + m.message.data.length));
    }
    assert.ok(bounded('describeMessage', () => describeMessage(b)).length < 300);
    const i = bounded('decodeInterrupt', () => decodeInterrupt(b, slots));
    if (i.type === 'slotChange') assert.ok(i.slots.length <= Math.min(slots, 4 * b.length));
    const found = bounded('findCcidDescriptorInConfiguration', () => findCcidDescriptorInConfiguration(b, slots & 3));
    if (found) assert.equal(found.length, 0x36);
  }), fuzzParams(3000));
  // A CCID header announcing 4 GiB with no data must not allocate it.
  const huge = Uint8Array.of(0x80, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0);
  const r = decodeMessage(huge);
  assert.equal(r.ok, false);
});
