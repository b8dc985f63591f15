import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeStatusWord, statusWordHex } from '../../../server/src/codecs/sw';

test('9000 is normal processing', () => {
  assert.deepEqual(describeStatusWord(0x90, 0x00), { sw: 0x9000, meaning: 'Normal processing', category: 'success' });
});

test('ISO 7816-4 errors read like scriptor', () => {
  assert.equal(describeStatusWord(0x69, 0x82).meaning, 'Security status not satisfied');
  assert.equal(describeStatusWord(0x6A, 0x82).meaning, 'File or application not found');
  assert.equal(describeStatusWord(0x6D, 0x00).meaning, 'Instruction code not supported or invalid');
  assert.equal(describeStatusWord(0x6A, 0x82).category, 'error');
  assert.equal(describeStatusWord(0x62, 0x83).category, 'warning');
});

test('63Cx spells out the retry counter', () => {
  const two = describeStatusWord(0x63, 0xC2);
  assert.equal(two.meaning, 'Verification failed, 2 retries left');
  assert.equal(two.retries, 2);
  assert.equal(two.category, 'warning');
  assert.equal(describeStatusWord(0x63, 0xC1).meaning, 'Verification failed, 1 retry left');
  assert.equal(describeStatusWord(0x63, 0xC0).retries, 0);
  assert.equal(describeStatusWord(0x63, 0xC0).meaning, 'Verification failed, no retries left');
});

test('61xx gives the bytes still available, 00 meaning 256', () => {
  const info = describeStatusWord(0x61, 0x10);
  assert.equal(info.category, 'success');
  assert.equal(info.available, 16);
  assert.match(info.meaning, /16 bytes still available/);
  assert.equal(describeStatusWord(0x61, 0x00).available, 256);
});

test('6Cxx gives the right Le', () => {
  const info = describeStatusWord(0x6C, 0x0A);
  assert.equal(info.correctLe, 10);
  assert.equal(info.category, 'error');
  assert.equal(describeStatusWord(0x6C, 0x00).correctLe, 256);
});

test('GlobalPlatform and application status words', () => {
  assert.equal(describeStatusWord(0x94, 0x85).meaning, 'Invalid key check value');
  assert.equal(describeStatusWord(0x63, 0x10).meaning, 'More data available (GET STATUS)');
  assert.equal(describeStatusWord(0x91, 0xAF).category, 'success');
});

test('unknown status words fall back to the ISO class', () => {
  assert.deepEqual(describeStatusWord(0x12, 0x34), { sw: 0x1234, meaning: 'Unknown status word', category: 'error' });
  assert.equal(describeStatusWord(0x93, 0x01).category, 'error');
  assert.equal(describeStatusWord(0x90, 0x01).category, 'success');
  // families with an unlisted SW2 keep the SW1 meaning and the ISO class
  assert.equal(describeStatusWord(0x62, 0x99).category, 'warning');
  assert.match(describeStatusWord(0x69, 0x55).meaning, /^Command not allowed \(SW2 55\)$/);
});

test('out-of-range input never throws', () => {
  const info = describeStatusWord(0x1_90, -1);
  assert.equal(info.sw, 0x90FF);
  assert.equal(describeStatusWord(NaN, NaN).sw, 0);
  assert.equal(statusWordHex(0x6a82), '6A82');
});
