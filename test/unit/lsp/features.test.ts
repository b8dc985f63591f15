// LSP features over the script AST: deep nesting (issue 14, item 15) and `set timeout` (item 9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { completions, diagnostics, documentSymbols, hover } from '../../../server/src/lsp/features';
import { parseScript } from '../../../server/src/script/parser';

test('outline and hover work on 20,000 nested repeat blocks (no recursion limit)', () => {
  const script = parseScript('repeat 1\n'.repeat(20_000) + '00 84 00 00 08\n' + 'end\n'.repeat(20_000));
  const symbols = documentSymbols(script);
  assert.equal(symbols.length, 1);
  let depth = 0;
  let all = 0;
  const stack = [...symbols];
  while (stack.length) {
    const s = stack.pop()!;
    all++;
    if (s.children?.length) stack.push(...s.children);
  }
  for (let s = symbols[0]; s.children?.length; s = s.children[0]) depth++;
  assert.equal(all, 20_001, 'every statement is in the outline');
  assert.ok(depth < 64, `the outline is ${depth} levels deep: deeper bodies are listed flat`);
  assert.doesNotThrow(() => JSON.stringify(symbols));
  const h = hover(script, { line: 20_000, character: 2 });
  assert.match(String((h?.contents as { value: string }).value), /GET CHALLENGE/);
});

test('set timeout: completion, outline name and diagnostics with the bound', () => {
  assert.ok(completions().some((c) => c.label === 'set timeout'));
  const script = parseScript('set timeout 120000\nset timeout 2147483648');
  assert.equal(documentSymbols(script)[0].name, 'set timeout 120000');
  const d = diagnostics(script);
  assert.equal(d.length, 1);
  assert.equal(d[0].range.start.line, 1);
  assert.match(String(d[0].message), /1 to 2147483647/);
});

test('a PIN written in the file: an Information hint on a literal VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER (in a repeat too); none for ${pin}, a variable, no data, other commands', () => {
  const text = [
    '00 20 00 81 08 3132333435363738 => 90 00', // 0
    '00 A4 04 00 08 3132333435363738', // 1: SELECT
    '00 20 00 81 08 ${pin:"User PIN",pad=8}', // 2
    'let P = 3132333435363738', // 3
    '00 20 00 81 08 ${P}', // 4
    '00 20 00 81', // 5: the retry counter query
    'repeat 2', // 6
    '  00 24 00 81 10 31323334353637383132333435363738', // 7
    'end', // 8
    '00 2C 00 81 10 3132333435363738 3132333435363738', // 9
    'verify pinpad 00 20 00 01 08 FFFFFFFFFFFFFFFF', // 10: the keypad supplies it
  ].join('\n');
  const hints = diagnostics(parseScript(text)).filter((d) => d.code === 'pin-in-file');
  assert.deepEqual(hints.map((d) => d.range.start.line).sort((a, b) => a - b), [0, 7, 9]);
  for (const d of hints) {
    assert.equal(d.severity, 3 /* Information */);
    assert.equal(d.message, 'This command\'s data is a PIN written in the file: ${pin:"…"} asks for it instead');
  }
  const verify = hints.find((d) => d.range.start.line === 0)!;
  assert.deepEqual([verify.range.start.character, verify.range.end.character], [0, 31], 'the command, not its expectation');
  assert.equal(diagnostics(parseScript(text)).filter((d) => d.severity === 1).length, 0, 'no errors');
});

test('R92: the pin-in-file hint on a VERIFY written in hex inside an ENVELOPE; not on a wrapped SELECT or an empty ENVELOPE', () => {
  const text = [
    '00 C2 00 00 0D 00 20 00 81 08 3132333435363738', // 0: a whole wrapped VERIFY
    '00 C2 00 00 09 00 20 00 81 08 31323334', // 1: the first part of a split one
    '00 C2 00 00 0D 00 A4 04 00 08 3132333435363738', // 2: a wrapped SELECT
    '00 C2 00 00', // 3: the empty ENVELOPE
    '00 C3 00 00 00 00 0D 00 24 00 81 08 3132333435363738', // 4: odd INS, extended outer Lc, CHANGE REFERENCE DATA
  ].join('\n');
  const hints = diagnostics(parseScript(text)).filter((d) => d.code === 'pin-in-file');
  assert.deepEqual(hints.map((d) => d.range.start.line).sort((a, b) => a - b), [0, 1, 4]);
});
