import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchExpectation, parseScript } from '../../../server/src/script/parser';
import { fromHex } from '../../../server/src/util/hex';

const apdus = (src: string) => parseScript(src).statements.filter((s) => s.kind === 'apdu');

test('hex lines with and without spaces, comments after commands, continuation', () => {
  const s = parseScript([
    '# comment',
    '00A4040007F0574244454D4F // trailing comment',
    '00 B0 00 00 \\',
    '   10   # continued',
    '',
  ].join('\n'));
  assert.deepEqual(s.diagnostics, []);
  const a = s.statements;
  assert.equal(a.length, 2);
  assert.equal(a[0].kind, 'apdu');
  assert.equal(a[0].line, 2);
  assert.equal(a[1].line, 3);
  const parts = (a[1] as Extract<typeof a[1], { kind: 'apdu' }>).parts;
  // Hex runs separated by spaces are one part (one byte array, one range), across the continuation too.
  assert.deepEqual(parts.map((p) => (p.kind === 'hex' ? Buffer.from(p.bytes).toString('hex') : '?')), ['00b0000010']);
  // the continued byte keeps its real position (line 3, col 3): the part ends after it
  assert.deepEqual(parts[0].span, { start: { line: 2, character: 0 }, end: { line: 3, character: 5 } });
});

test('odd hex digits and bad characters get exact ranges', () => {
  const s = parseScript('00 A4 0 00\n00 B0 zz 00');
  assert.equal(s.statements.length, 0);
  const [odd, bad] = s.diagnostics;
  assert.equal(odd.code, 'odd-hex');
  assert.deepEqual(odd.span, { start: { line: 0, character: 6 }, end: { line: 0, character: 7 } });
  assert.equal(bad.code, 'bad-hex');
  assert.match(bad.message, /unexpected 'zz'/);
});

test('Lc that does not match the data is an error on the command', () => {
  const s = parseScript('00 A4 04 00 07 F0 57\n00 A4 04 00 02 3F 00 00\n00 B0 00 00 00 01 00');
  assert.equal(s.diagnostics.length, 1);
  assert.equal(s.diagnostics[0].code, 'apdu-shape');
  assert.match(s.diagnostics[0].message, /Lc is 7 but 2 data bytes follow/);
  assert.deepEqual(s.diagnostics[0].span, { start: { line: 0, character: 0 }, end: { line: 0, character: 20 } });
  assert.equal(s.statements.length, 2);
});

test('expectations: status word, data patterns, wildcards, alternatives', () => {
  const [a] = apdus('00 A4 04 00 00 => 6F * 90 00 | 61 ?? | 63 C?');
  assert.equal(a.kind, 'apdu');
  const e = (a as Extract<typeof a, { kind: 'apdu' }>).expect!;
  assert.equal(e.alternatives.length, 3);
  assert.ok(matchExpectation(e, fromHex('6F 02 84 00 90 00')));
  assert.ok(!matchExpectation(e, fromHex('6E 02 84 00 90 00')));
  assert.ok(matchExpectation(e, fromHex('61 10')));
  assert.ok(matchExpectation(e, fromHex('63 C2')));
  assert.ok(!matchExpectation(e, fromHex('63 00')));
  assert.ok(!matchExpectation(e, fromHex('90 00')), 'no alternative is a bare 90 00');
  // A bare status word checks only the SW, whatever data the card sent before it.
  const [b] = apdus('00 B0 00 00 04 => 90 00 | 62 8?');
  const sw = (b as Extract<typeof b, { kind: 'apdu' }>).expect!;
  assert.ok(matchExpectation(sw, fromHex('01 02 03 04 90 00')), 'data before a bare 90 00 is accepted');
  assert.ok(matchExpectation(sw, fromHex('90 00')));
  assert.ok(matchExpectation(sw, fromHex('AA 62 82')));
  assert.ok(!matchExpectation(sw, fromHex('90 00 6A 82')), 'the SW is the last two bytes');
  assert.ok(!matchExpectation(sw, fromHex('90')), 'one byte is no status word');
  const bad = parseScript('00 A4 04 00 => 90');
  assert.equal(bad.diagnostics[0].code, 'bad-expectation');
});

test('keywords: reset, connect, disconnect, control, transaction, wait, delay, echo, repeat, set, let, exit', () => {
  const s = parseScript([
    'reset cold', 'connect "Workbench*" T=1 exclusive', 'control 3400', 'transaction begin',
    'repeat 3', '  00 B0 00 00 10', 'end', 'transaction end', 'wait removal 500', 'delay 10',
    'echo "hi $data"', 'set getresponse off', 'let K = 01 02 $data[0:2]', 'disconnect unpower', 'exit',
  ].join('\n'));
  assert.deepEqual(s.diagnostics, []);
  assert.deepEqual(s.statements.map((x) => x.kind), [
    'reset', 'connect', 'control', 'transaction', 'repeat', 'transaction', 'wait', 'delay', 'echo', 'set', 'let', 'disconnect', 'exit',
  ]);
  const connect = s.statements[1] as Extract<typeof s.statements[1], { kind: 'connect' }>;
  assert.deepEqual([connect.reader, connect.protocol, connect.share], ['Workbench*', 1, 'exclusive']);
  const rep = s.statements[4] as Extract<typeof s.statements[4], { kind: 'repeat' }>;
  assert.equal(rep.count, 3);
  assert.equal(rep.body.length, 1);
});

test('unknown command suggests the keyword, unmatched end and repeat are errors', () => {
  const s = parseScript('rest\nend\nrepeat 2\n00 B0 00 00 01');
  const msgs = s.diagnostics.map((d) => d.message);
  assert.ok(msgs.some((m) => /unknown command 'rest'; did you mean 'reset'/.test(m)), msgs.join('|'));
  assert.ok(msgs.some((m) => /'end' without a matching 'repeat'/.test(m)));
  assert.ok(msgs.some((m) => /'repeat' without a matching 'end'/.test(m)));
});

test("scriptor's exit quirk: a warning with a quick fix, and a real exit is fine", () => {
  const s = parseScript('# do not exit here\n00 B0 00 00 01\nexit');
  assert.equal(s.statements.length, 2);
  const w = s.diagnostics.filter((d) => d.code === 'scriptor-exit');
  assert.equal(w.length, 1);
  assert.equal(w[0].span.start.line, 0);
  assert.equal(w[0].fixes?.[0].edits[0].newText, 'e-xit');
});

test('PIN placeholders parse with encodings and padding; bad options are errors', () => {
  const [a] = apdus('00 20 00 01 08 ${pin:"User PIN", bcd, pad=8, fill=FF}');
  const pin = (a as Extract<typeof a, { kind: 'apdu' }>).parts.find((p) => p.kind === 'pin');
  assert.deepEqual(pin && { ...pin, span: undefined }, { kind: 'pin', label: 'User PIN', encoding: 'bcd', padTo: 8, fill: 0xff, span: undefined });
  const bad = parseScript('00 20 00 01 08 ${pin:"X", rot13}');
  assert.equal(bad.diagnostics[0].code, 'bad-pin');
});

test('never throws on arbitrary input', () => {
  const junk = ['${', '$', '=>', '"', '\\', 'repeat', 'let = ', '00 => * | ', '${pin:"', '$data[1:2:3]', '\u0000\uffff'];
  for (let i = 0; i < 500; i++) {
    const src = Array.from({ length: 8 }, (_, k) => junk[(i * 7 + k * 13) % junk.length]).join(i % 3 ? ' ' : '\n');
    assert.doesNotThrow(() => parseScript(src));
  }
});

test('an Lc that does not match gets a quick fix that sets it', () => {
  const s = parseScript('  00 A4 04 00 07 F0 57 42');
  const d = s.diagnostics[0];
  assert.equal(d.code, 'apdu-shape');
  assert.deepEqual(d.fixes?.[0], { title: 'Set Lc to 03 (3 data bytes, no Le)', preferred: true, edits: [{ span: { start: { line: 0, character: 14 }, end: { line: 0, character: 16 } }, newText: '03' }] });
  const joined = parseScript('00A4040007F05742');
  assert.deepEqual(joined.diagnostics[0].fixes?.[0].edits[0].span.start, { line: 0, character: 8 });
});
