// Property-based fuzzing of the script parser: it never throws, its ranges lie
// inside the text, its output is bounded by its input, and it finishes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseScript, matchExpectation } from '../../../server/src/script/parser';
import type { Span, Statement } from '../../../server/src/script/ast';
import { bounded, fuzzParams, LARGE_HANG_MS, lspLines } from './support';

// Pieces of real scripts, so the fuzzer reaches deep into the grammar instead of
// stopping at "unknown command" on the first character.
const TOKENS = [
  '00', 'A4', '04', '0C', '07', 'A0000000031010', 'F0574244454D4F', '3F00', 'FF', 'B0', '84', '20', 'C0', '6C', '61', '0', 'ABC', 'zz', 'g1',
  '=>', '90 00', '6F * 90 00', '??', '*', 'X', '|', '61 ??', ':',
  'reset', 'cold', 'warm', 'connect', '"Workbench*"', '"', 'T=0', 'T=1', 'shared', 'exclusive',
  'disconnect', 'leave', 'unpower', 'eject', 'control', '3400', '0x42000D48', 'transaction', 'begin', 'end',
  'wait', 'card', 'removal', 'delay', '10', 'echo', '"hi $data ${X}"', 'repeat', '3', '0', '99999999999999999999',
  'set', 'getresponse', 'on', 'off', 'let', 'X', '=', '${X}', '${X[0:2]}', '${X[-1]}', '${X[a:b]}', '$data', '$sw', '$sw1', '$', '${',
  '${pin:"User PIN"}', '${pin:"PIN",bcd,pad=8,fill=FF}', '${pin:""}', '${pin:"P",pad=999}', 'exit', 'EXIT', 'rest', 'repaet',
  '#', '# exit', '//', '\\', '\t', ' ', '  ', '\u00e9', '\u{1F4B3}', '\u0000', '[', ']', '}', '{',
];
const SEPARATORS = ['\n', '\r\n', ' ', ' ', ' ', '', '\\\n'];

const scriptish = fc.array(
  fc.tuple(fc.constantFrom(...TOKENS), fc.constantFrom(...SEPARATORS)).map(([t, s]) => t + s),
  { maxLength: 120 },
).map((parts) => parts.join(''));

const anyText = fc.oneof(
  { weight: 3, arbitrary: scriptish },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 400 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('0', 'A', ' ', '\n', '\\', '"', '#', '$', '{', '}', '=', '>', '*', '|', 'e', 'x', 'i', 't'), maxLength: 400 }) },
);

function spansOf(statements: Statement[]): Span[] {
  const out: Span[] = [];
  for (const s of statements) {
    out.push(s.span);
    if (s.kind === 'apdu' || s.kind === 'let' || s.kind === 'control') for (const p of s.parts) out.push(p.span);
    if (s.kind === 'apdu' && s.expect) out.push(s.expect.span);
    if (s.kind === 'repeat') out.push(...spansOf(s.body));
  }
  return out;
}

function countStatements(statements: Statement[]): number {
  return statements.reduce((n, s) => n + 1 + (s.kind === 'repeat' ? countStatements(s.body) : 0), 0);
}

function assertInside(span: Span, lines: string[], what: string): void {
  const { start, end } = span;
  assert.ok(start.line >= 0 && start.line < lines.length, `${what}: start line ${start.line} outside 0..${lines.length - 1}`);
  assert.ok(end.line >= start.line && end.line < lines.length, `${what}: end line ${end.line} outside ${start.line}..${lines.length - 1}`);
  assert.ok(start.character >= 0 && start.character <= lines[start.line].length,
    `${what}: start ${start.line}:${start.character} beyond the line's ${lines[start.line].length} characters`);
  assert.ok(end.character >= 0 && end.character <= lines[end.line].length,
    `${what}: end ${end.line}:${end.character} beyond the line's ${lines[end.line].length} characters`);
  assert.ok(end.line > start.line || end.character >= start.character, `${what}: end before start`);
}

test('parseScript never throws, and every range is inside the text', () => {
  fc.assert(fc.property(anyText, (text) => {
    const script = bounded('parseScript', () => parseScript(text));
    const lines = lspLines(text);
    for (const d of script.diagnostics) {
      assertInside(d.span, lines, `diagnostic '${d.message}'`);
      for (const e of (d.fixes ?? []).flatMap((f) => f.edits)) assertInside(e.span, lines, 'quick-fix edit');
      assert.ok(['error', 'warning', 'info'].includes(d.severity));
      assert.ok(d.message.length > 0 && d.message.length < 2000 + text.length, 'a diagnostic message is bounded');
    }
    for (const s of spansOf(script.statements)) assertInside(s, lines, 'statement');
    // Bounded output: at most a few diagnostics per character, one statement per line.
    assert.ok(script.diagnostics.length <= 2 * text.length + lines.length, `${script.diagnostics.length} diagnostics for ${text.length} characters`);
    assert.ok(countStatements(script.statements) <= lines.length);
  }), fuzzParams(1500));
});

// LSP clients (and vscode-languageserver-textdocument, which the helper uses)
// also end a line at a lone \r. Ranges must be inside the text as the editor sees it.
test('parseScript ranges are inside the text as an LSP client splits it (a lone \\r ends a line)', () => {
  const withCr = fc.array(fc.constantFrom('00 A4 04 00', 'zz', '\r', '\n', ' ', 'reset', 'exit', '# c', '=> 90 00', 'bad'), { maxLength: 30 }).map((p) => p.join(''));
  fc.assert(fc.property(withCr, (text) => {
    const script = bounded('parseScript', () => parseScript(text));
    const lines = lspLines(text);
    for (const d of script.diagnostics) assertInside(d.span, lines, `diagnostic '${d.message}'`);
  }), fuzzParams(500));
});

test('parseScript finishes on large inputs (10,000 lines, long lines, deep repeat nesting)', () => {
  const big = [
    '00 B0 00 00 10 => * 90 00\n'.repeat(10_000),
    'A'.repeat(200_000),
    'repeat 2\n'.repeat(2000) + '00 84 00 00 08\n' + 'end\n'.repeat(2000),
    ('00 A4 04 00 07 \\\n').repeat(3000),
    'repaet'.repeat(20_000),
    '${'.repeat(50_000),
    '"'.repeat(100_000),
    // Shapes that threw RangeError (issue 14, item 15) or made a loop count of Infinity (item 13).
    '00 D6 00 00 \\\n' + 'AB'.repeat(100_000),
    '00 D6 00 00 \\\n' + 'AB '.repeat(100_000) + '\\\n1',
    'repeat 1\n'.repeat(20_000) + '00 84 00 00 08\n' + 'end\n'.repeat(20_000),
    'repeat 1\n'.repeat(20_000),
    'end\n'.repeat(20_000),
    `repeat ${'9'.repeat(400)}\nend`,
    `delay ${'9'.repeat(400)}\nwait card ${'9'.repeat(400)}\nset timeout ${'9'.repeat(400)}`,
    '${pin:"' + 'P'.repeat(100_000) + '"}',
    'A0'.repeat(100_000) + ' => ' + '* '.repeat(50_000) + '90 00',
  ];
  for (const text of big) {
    const script = bounded(`parseScript (large: ${JSON.stringify(text.slice(0, 30))}…)`, () => parseScript(text), LARGE_HANG_MS);
    assert.ok(Array.isArray(script.statements));
    const lines = lspLines(text);
    for (const d of script.diagnostics.slice(0, 1000)) {
      assertInside(d.span, lines, `diagnostic '${d.message.slice(0, 80)}'`);
      assert.ok(d.message.length < 2000, 'a diagnostic never copies a huge token');
    }
  }
});

test('numbers in repeat, delay, wait and set timeout are refused or kept within their bounds, never Infinity', () => {
  const digits = fc.oneof(fc.stringMatching(/^[0-9]{1,420}$/), fc.stringMatching(/^0x[0-9a-fA-F]{1,40}$/));
  fc.assert(fc.property(fc.constantFrom('repeat', 'delay', 'wait card', 'wait removal', 'set timeout'), digits, (kw, n) => {
    const script = bounded('parseScript', () => parseScript(`${kw} ${n}\n${kw === 'repeat' ? 'end' : ''}`));
    for (const s of script.statements) {
      const v = s.kind === 'repeat' ? s.count : s.kind === 'delay' ? s.ms : s.kind === 'wait' ? s.ms : s.kind === 'set' && s.option === 'timeout' ? s.timeoutMs : 0;
      assert.ok(v === undefined || (Number.isSafeInteger(v) && v >= 0 && v <= 2_147_483_647), `${kw} ${n} gave ${v}`);
      if (s.kind === 'repeat') assert.ok(s.count >= 1 && s.count <= 10_000_000);
    }
  }), fuzzParams(500));
});

// Expectations with `*` are matched by backtracking; make sure a response of the
// longest size (65,536 + 2 bytes for extended Le, 258 for short) cannot make it hang.
test('matchExpectation finishes for any pattern from the parser and any response', () => {
  const pattern = fc.array(fc.constantFrom('*', '??', '00', 'FF', '9X', '*', '*'), { minLength: 0, maxLength: 12 })
    .map((items) => `00 B0 00 00 00 => ${items.join(' ')} 90 00`);
  const response = fc.oneof(
    fc.uint8Array({ maxLength: 260 }),
    fc.integer({ min: 0, max: 300 }).map((n) => new Uint8Array(n)), // all 00: the worst case for `00 * 00 *`
  );
  fc.assert(fc.property(pattern, response, (line, resp) => {
    const st = parseScript(line).statements[0];
    if (!st || st.kind !== 'apdu' || !st.expect) return;
    const hit = bounded(`matchExpectation(${line}) on ${resp.length} bytes`, () => matchExpectation(st.expect!, resp));
    assert.equal(typeof hit, 'boolean');
  }), fuzzParams(300));
});

// Found by the property above with a longer run; kept as a fixed case. Each `*`
// multiplies the backtracking by the response length: 5 stars against a
// 258-byte response that fails at the status word took 98 s, blocking the helper.
test('matchExpectation with several `*` on a long non-matching response does not hang', () => {
  const line = '00 B0 00 00 00 => * 00 * 00 * 00 * 00 * 00 * 00 90 00';
  const st = parseScript(line).statements[0];
  assert.ok(st && st.kind === 'apdu' && st.expect);
  const resp = new Uint8Array(258);
  resp.set([0x6a, 0x82], 256);
  assert.equal(bounded('matchExpectation (6 stars, 258 bytes)', () => matchExpectation(st.expect!, resp)), false);
  resp.set([0x90, 0x00], 256);
  assert.equal(bounded('matchExpectation (6 stars, 258 bytes, match)', () => matchExpectation(st.expect!, resp)), true);
});
