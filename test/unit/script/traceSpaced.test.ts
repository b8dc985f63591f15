// The trace's spaced hex ("00 A4 04 00"), written for speed (it runs twice per traced APDU):
// the same text as the plain definition for every length, odd ones, masks and non-ASCII.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { formatEntry, spaced } from '../../../server/src/script/trace';

function reference(hex: string): string {
  if (hex.length <= 2) return hex;
  const parts: string[] = [];
  for (let i = 0; i < hex.length; i += 2) parts.push(hex.slice(i, i + 2));
  return parts.join(' ');
}

test('spaced: every length up to an extended APDU, as the plain definition', () => {
  for (let n = 0; n < 600; n++) {
    const hex = randomBytes(n).toString('hex').toUpperCase();
    assert.equal(spaced(hex), reference(hex));
    assert.equal(spaced(hex.slice(1)), reference(hex.slice(1)), 'odd length');
  }
  const ext = randomBytes(65_548).toString('hex');
  assert.equal(spaced(ext), reference(ext));
  assert.equal(spaced('0'.repeat(30)), reference('0'.repeat(30)), 'a shorter one after the scratch grew');
});

test('spaced: masks and text that is not hex come out as they went in', () => {
  for (const s of ['0020000106' + '**'.repeat(6), '**', '*', '', 'é9000', '9000Ωx', '00A4😀00']) assert.equal(spaced(s), reference(s));
});

test('the exchange lines keep their form', () => {
  const lines = formatEntry({
    kind: 'exchange', seq: 1, time: 0, reader: 'r', command: '00A4000C023F00', response: '9000', swMeaning: 'OK', durationMs: 0.25,
  } as Parameters<typeof formatEntry>[0]);
  assert.deepEqual(lines, ['> 00 A4 00 0C 02 3F 00', '< 90 00 : OK [0.25 ms]']);
});
