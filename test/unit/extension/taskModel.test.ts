// The `$apdu` problem matcher (package.json) against the lines it must read: an `apdu` task's
// failure line (taskModel.resultLines), `scard run`'s stderr, `scard test`'s FAIL line and a
// parser diagnostic; and against the lines it must leave alone (trace, PASS, summaries, a card
// error without a line). The regexp is taken from package.json and run as VS Code runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { checkDefinition, displayPath, exitCode, isAbsoluteScript, resultLines } from '../../../extension/src/taskModel';
import type { RunScriptResult } from '../../../server/src/protocol';

interface Pattern { regexp: string; file: number; line: number; column: number; severity: number; message: number }
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const matcher = pkg.contributes.problemMatchers.find((m: { name: string }) => m.name === 'apdu');
const pattern: Pattern = matcher.pattern;
const re = new RegExp(pattern.regexp);

function match(line: string): { file: string; line: number; column?: number; severity?: string; message: string } | undefined {
  const m = re.exec(line);
  if (!m) return undefined;
  return {
    file: m[pattern.file], line: Number(m[pattern.line]), message: m[pattern.message],
    ...(m[pattern.column] ? { column: Number(m[pattern.column]) } : {}), ...(m[pattern.severity] ? { severity: m[pattern.severity] } : {}),
  };
}

const failed: RunScriptResult = {
  runId: 3, ok: false, reader: 'Workbench Simulator 00 00', commands: 3, durationMs: 4.6, lines: [],
  failure: { code: 'EXPECTATION_FAILED', message: 'line 12: expected * 90 00, got 69 82 (Security status not satisfied)', line: 12 },
};

test('package.json: the task type apdu (script required, reader optional) and the $apdu matcher', () => {
  const def = pkg.contributes.taskDefinitions.find((d: { type: string }) => d.type === 'apdu');
  assert.deepEqual(def.required, ['script']);
  assert.deepEqual(Object.keys(def.properties).sort(), ['reader', 'script']);
  assert.equal(matcher.owner, 'apdu');
  assert.deepEqual(matcher.fileLocation, ['autoDetect', '${workspaceFolder}']);
  assert.ok(pkg.activationEvents.includes('onTaskType:apdu'));
});

test('a task\'s failure line is matched: the file, line 12 and the message without "line 12: "', () => {
  const lines = resultLines('examples/fails-on-purpose.apdu', failed);
  assert.equal(lines[0], 'examples/fails-on-purpose.apdu:12: expected * 90 00, got 69 82 (Security status not satisfied)');
  assert.deepEqual(match(lines[0]), { file: 'examples/fails-on-purpose.apdu', line: 12, message: 'expected * 90 00, got 69 82 (Security status not satisfied)' });
  // The summary after it is no second problem.
  assert.equal(lines.slice(1).filter((l) => match(l)).length, 0, lines.join('\n'));
});

test('the scard CLI\'s lines are matched too: run, test (without its duration), a parser diagnostic with column and severity', () => {
  assert.deepEqual(match('examples/fails-on-purpose.apdu:12: expected * 90 00, got 69 82 (Security status not satisfied)')?.line, 12);
  assert.deepEqual(match('FAIL  examples/fails-on-purpose.apdu:12: expected * 90 00, got 69 82 (Security status not satisfied)  (5 ms)'),
    { file: 'examples/fails-on-purpose.apdu', line: 12, message: 'expected * 90 00, got 69 82 (Security status not satisfied)' });
  assert.deepEqual(match('bad.apdu:3:7: error: odd number of hex digits'), { file: 'bad.apdu', line: 3, column: 7, severity: 'error', message: 'odd number of hex digits' });
  assert.deepEqual(match('scripts/x.apdu:1:1: warning: scriptor stops at "exit"'), { file: 'scripts/x.apdu', line: 1, column: 1, severity: 'warning', message: 'scriptor stops at "exit"' });
  // Absolute paths, Windows' drive letter included, and a folder name with spaces and colons.
  assert.equal(match('/home/me/cards/my card.apdu:8: expected 90 00, got 6A 82 (File or application not found)')?.file, '/home/me/cards/my card.apdu');
  assert.equal(match('C:\\cards\\piv.apdu:4: expected 90 00, got 63 C2 (Verification failed, 2 tries left)')?.file, 'C:\\cards\\piv.apdu');
});

test('trace, passes, summaries and card errors without a line are not problems', () => {
  for (const l of [
    '# examples/hello.apdu on Workbench Simulator 00 00',
    '> 00 B0 00 00 00  (line 12)',
    '< 69 82 : Security status not satisfied [0.09 ms]',
    '# FAILED: line 12: expected * 90 00, got 69 82 (Security status not satisfied)',
    'PASS  examples/hello.apdu  (4 command(s), 5 ms)',
    '5 passed, 1 failed',
    ...resultLines('examples/hello.apdu', { ...failed, ok: true, failure: undefined }),
    ...resultLines('examples/hello.apdu', { ...failed, failure: { code: 'NO_CARD', message: 'No card in Workbench Simulator 00 00' } }),
    'notes.txt:3: not a script',
  ]) assert.equal(match(l), undefined, l);
});

test('task definitions: script required, reader a non-empty string; paths shown relative to the folder', () => {
  assert.deepEqual(checkDefinition({ type: 'apdu', script: ' examples/hello.apdu ', reader: 'Virtual PCD*' }), { ok: { type: 'apdu', script: 'examples/hello.apdu', reader: 'Virtual PCD*' } });
  assert.deepEqual(checkDefinition({ type: 'apdu', script: 'a.apdu' }), { ok: { type: 'apdu', script: 'a.apdu' } });
  assert.ok('error' in checkDefinition({ type: 'apdu' }));
  assert.ok('error' in checkDefinition({ type: 'apdu', script: '  ' }));
  assert.ok('error' in checkDefinition({ type: 'apdu', script: 'a.apdu', reader: 7 }));
  assert.ok('error' in checkDefinition({ type: 'apdu', script: 'a.apdu', reader: '' }));
  assert.equal(displayPath('/ws/examples/hello.apdu', '/ws'), 'examples/hello.apdu');
  assert.equal(displayPath('/ws/examples/hello.apdu', '/ws/'), 'examples/hello.apdu');
  assert.equal(displayPath('/wsx/hello.apdu', '/ws'), '/wsx/hello.apdu');
  assert.equal(displayPath('/other/hello.apdu', undefined), '/other/hello.apdu');
  for (const p of ['/abs/a.apdu', 'C:\\a.apdu', 'c:/a.apdu', '\\\\server\\share\\a.apdu']) assert.ok(isAbsoluteScript(p), p);
  for (const p of ['a.apdu', 'examples/a.apdu', '..\\a.apdu']) assert.ok(!isAbsoluteScript(p), p);
});

test('exit codes: 0 passed, 1 failed, 130 cancelled', () => {
  assert.equal(exitCode({ ...failed, ok: true, failure: undefined }, false), 0);
  assert.equal(exitCode(failed, false), 1);
  assert.equal(exitCode({ ...failed, failure: { code: 'CANCELLED', message: 'cancelled' } }, true), 130);
  assert.equal(exitCode(undefined, true), 130);
  // Cancelled after the failure: the failure stands.
  assert.equal(exitCode(failed, true), 1);
});
