// Issue 18 item 6: card-state errors are not diagnostics; the notification offers the way out
// and names the line once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failureActions, failureIsDiagnostic, failureMessage, failureText } from '../../../extension/src/runFailure';

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
