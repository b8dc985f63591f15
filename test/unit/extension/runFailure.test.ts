// Issue 18 item 6: card-state errors are not diagnostics; the notification offers the way out
// and names the line once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failureActions, failureIsDiagnostic, failureMessage, failureText } from '../../../extension/src/runFailure';
import { carriesSecret, pushHistory, sendApduMessage, shortData, HISTORY_SIZE } from '../../../extension/src/sendApduModel';

test('only the script\'s own errors are diagnostics', () => {
  assert.equal(failureIsDiagnostic('EXPECTATION_FAILED'), true);
  assert.equal(failureIsDiagnostic('BAD_REQUEST'), true);
  assert.equal(failureIsDiagnostic('SCRIPT_SYNTAX'), false, 'the parser shows it already');
  for (const code of ['NO_CARD', 'NO_READER', 'CARD_REMOVED', 'CARD_RESET', 'READER_UNAVAILABLE', 'SHARING_VIOLATION', 'TIMEOUT', 'CANCELLED']) {
    assert.equal(failureIsDiagnostic(code), false, code);
  }
});

test('the failure names its line once', () => {
  const failure = { code: 'NO_CARD', message: "line 4: No card in 'Workbench Simulator 00 00'. Insert a card and try again.", line: 4 };
  assert.equal(failureText({ failure }), "Script failed at line 4: No card in 'Workbench Simulator 00 00'. Insert a card and try again.");
  assert.equal(failureMessage({ message: 'line 12: line 12 is odd', line: 12 }), 'line 12 is odd');
  assert.equal(failureText({ failure: { code: 'NO_READER', message: 'No reader.' } }), 'Script failed: No reader.');
});

test('a card-state failure offers Insert Card (simulator) and Select Reader', () => {
  assert.deepEqual(failureActions('NO_CARD', 'simulator'), ['Insert Card', 'Select Reader']);
  assert.deepEqual(failureActions('NO_CARD', 'pcsc'), ['Select Reader']);
  assert.deepEqual(failureActions('NO_READER', undefined), ['Select Reader']);
  assert.deepEqual(failureActions('EXPECTATION_FAILED', 'simulator'), []);
});

// Issue 18 item 15: Send APDU's history and notification.

test('Send APDU history: most recent first, no duplicates, bounded', () => {
  assert.deepEqual(pushHistory(['00 84 00 00 08', '00 A4 04 00'], ' 00  a4 04 00 '), ['00 a4 04 00', '00 84 00 00 08']);
  const many = Array.from({ length: 30 }, (_, i) => `00 B0 00 ${i.toString(16).padStart(2, '0')}`);
  assert.equal(pushHistory(many, '00 84 00 00 08').length, HISTORY_SIZE);
});

test('Send APDU notification: name, status word, meaning, data; or why it was not sent', () => {
  const ex = { kind: 'exchange' as const, seq: 1, time: 0, reader: 'R', command: '0084000008', response: '0102030405060708' + '9000', sw: '9000', swMeaning: 'Success', swCategory: 'success' as const, durationMs: 1 };
  const result = { runId: 1, ok: true, commands: 1, durationMs: 2, lines: [], exchanges: [ex] };
  const decoded = { command: { insName: 'GET CHALLENGE', summary: 'GET CHALLENGE CLA 00' }, response: {} } as never;
  assert.deepEqual(sendApduMessage(result, decoded), { text: 'GET CHALLENGE: 90 00 Success · 01 02 03 04 05 06 07 08', ok: true });
  const noCard = { runId: 2, ok: false, commands: 0, durationMs: 1, lines: [], exchanges: [], failure: { code: 'NO_CARD', message: "line 1: No card in 'R'.", line: 1 } };
  assert.deepEqual(sendApduMessage(noCard), { text: "APDU not sent: No card in 'R'.", ok: false });
  assert.equal(shortData('00'.repeat(20), 4), '00 00 00 00 … (20 bytes)');
});

test('Send APDU history: a command whose data is a PIN is never kept (VS Code stores the history on disk)', () => {
  const verify = '00 20 00 81 08 37 33 39 31 35 38 36 32';
  assert.deepEqual(pushHistory(['00 84 00 00 08'], verify), ['00 84 00 00 08'], 'VERIFY with data not added');
  assert.deepEqual(pushHistory([], '0024000110' + '31'.repeat(16) + ' => 90 00'), [], 'CHANGE REFERENCE DATA with an expectation');
  for (const ins of ['20', '21', '24', '25', '26', '28', '2C', '2D']) assert.equal(carriesSecret(`00 ${ins} 00 01 04 31 32 33 34`), true, ins);
  // Kept: no data (VERIFY asking the tries left), other commands with the same bytes, a ${pin} prompt.
  assert.deepEqual(pushHistory([], '00 20 00 81'), ['00 20 00 81']);
  assert.deepEqual(pushHistory([], '00 CA 00 81 08 37 33 39 31 35 38 36 32'), ['00 CA 00 81 08 37 33 39 31 35 38 36 32']);
  assert.equal(carriesSecret('00 20 00 81 08 ${pin:"User PIN"}'), false);
  // One kept before this rule goes with the next push.
  assert.deepEqual(pushHistory([verify, '00 84 00 00 08'], '00 A4 00 0C 02 3F 00'), ['00 A4 00 0C 02 3F 00', '00 84 00 00 08']);
  // R91: an ENVELOPE carrying data may be a wrapped VERIFY or the rest of one an earlier command began, which its own
  // bytes cannot tell: none is kept. An empty one (the end of a string) is.
  assert.equal(carriesSecret('00 C2 00 00 0D 00 20 00 81 08 37 33 39 31 38 32 36 34'), true, 'a whole wrapped VERIFY');
  assert.equal(carriesSecret('00 C2 00 00 04 38 32 36 34'), true, 'the second half of a split one');
  assert.equal(carriesSecret('80 C3 00 00 02 3F 00'), true, 'any ENVELOPE with data (odd INS)');
  assert.deepEqual(pushHistory(['00 C2 00 00 04 38 32 36 34'], '00 C2 00 00'), ['00 C2 00 00'], 'an empty ENVELOPE is kept; one with data kept before goes');
});
