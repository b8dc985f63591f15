// The Testing view's items of an APDU script: its commands with expectations (and only
// those), at their lines, inside repeat bodies too; a script without one is no test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { expectedLines } from '../../../extension/src/testItems';

test('fails-on-purpose.apdu: the three commands with expectations, line 12 among them', () => {
  const lines = expectedLines(fs.readFileSync('examples/fails-on-purpose.apdu', 'utf8'));
  assert.deepEqual(lines.map((l) => l.line), [7, 8, 12, 15]);
  assert.deepEqual(lines[2], { line: 12, command: '00 B0 00 00 00', expected: '* 90 00' });
});

test('commands without expectations, comments and other statements are not tests; repeat bodies are, once', () => {
  const text = [
    '# 00 A4 04 00 => 90 00 in a comment',
    '00 A4 04 0C 07 F0 57 42 44 45 4D 4F',
    'echo "=> 90 00"',
    'repeat 3',
    '  00 84 00 00 08 => ?? ?? ?? ?? ?? ?? ?? ?? 90 00',
    'end',
    '00 B0 00 00 00 => * 90 00 | * 62 82',
  ].join('\n');
  assert.deepEqual(expectedLines(text), [
    { line: 5, command: '00 84 00 00 08', expected: '?? ?? ?? ?? ?? ?? ?? ?? 90 00' },
    { line: 7, command: '00 B0 00 00 00', expected: '* 90 00 | * 62 82' },
  ]);
  assert.deepEqual(expectedLines('00 A4 04 00\n# nothing expected\n'), []);
});
