import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { encodePin, runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { toHex } from '../../../server/src/util/hex';
import { formatEntry } from '../../../server/src/script/trace';
import { simulatorManager } from './support';

const setup = simulatorManager;

const HELLO = `
00 A4 04 00 07 F0 57 42 44 45 4D 4F 00 => 6F * 90 00
00 A4 02 0C 02 50 01 => 90 00
00 B0 00 00 05 => 48 65 6C 6C 6F 90 00
`;

for (const card of ['T=1', 'T=0'] as const) {
  test(`a passing script on the ${card} card gives the same responses`, async () => {
    const { m } = await setup(card);
    const r = await runScript(parseScript(HELLO), { manager: m });
    assert.equal(r.ok, true, r.failure?.message);
    assert.equal(r.commands, 3);
    assert.equal(r.reader, 'Workbench Simulator 00 00');
    assert.deepEqual(r.lines.map((l) => [l.line, l.sw]), [[2, '9000'], [3, '9000'], [4, '9000']]);
  });
}

test('line results: a line whose answer changes on a repeat changes alone (lines with the same answer before it keep theirs)', async () => {
  const { m } = await setup();
  const src = `00 A4 04 0C 07 F0 57 42 44 45 4D 4F
repeat 2
00 A4 02 0C 02 50 01
00 A4 00 0C 02 3F 00
end`;
  const r = await runScript(parseScript(src), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  assert.deepEqual(r.lines.map((l) => [l.line, l.sw, l.response, l.count]), [
    [1, '9000', '9000', 1],
    [3, '6A82', '6A82', 2],
    [4, '9000', '9000', 2],
  ]);
  assert.notEqual(r.lines[1].swMeaning, r.lines[0].swMeaning);
  assert.equal(r.lines[2].swMeaning, r.lines[0].swMeaning);
});

test('a failed expectation stops the run with the line, the status word and its meaning', async () => {
  const { m, entries } = await setup();
  const r = await runScript(parseScript('00 A4 04 0C 07 F0 57 42 44 45 4D 4F\n00 A4 02 0C 02 50 03\n00 B0 00 00 00 => 90 00\n00 84 00 00 08'), { manager: m });
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'EXPECTATION_FAILED');
  assert.equal(r.failure?.line, 3);
  assert.match(r.failure!.message, /line 3: expected 90 00, got 69 82 \(Security status not satisfied\)/);
  assert.equal(entries.filter((e) => e.kind === 'exchange').length, 3, 'nothing after the failure');
  assert.equal(m.reader(r.reader!).connections, 0, 'connection closed');
});

test('$data feeds the next command; let, slices, repeat and echo work', async () => {
  const { m, entries } = await setup();
  const src = `00 84 00 00 08
let C = $data
echo "got \${C}"
00 88 00 00 04 \${C[0:4]} => 6D 00
repeat 3
00 84 00 00 04
end`;
  const r = await runScript(parseScript(src), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  const ex = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange');
  const challenge = ex[0].response.slice(0, 16);
  assert.equal(ex[1].command, '0088000004' + challenge.slice(0, 8));
  assert.equal(ex.length, 5);
  const echo = entries.find((e) => e.kind === 'echo');
  assert.equal(echo && 'message' in echo && echo.message, `got ${challenge.match(/../g)!.join(' ')}`);
});

test('an undefined variable fails at its line with a clear message', async () => {
  const { m } = await setup();
  const r = await runScript(parseScript('00 84 00 00 08\n00 88 00 00 04 ${NOPE}'), { manager: m });
  assert.equal(r.failure?.line, 2);
  assert.match(r.failure!.message, /\$\{NOPE\} is not defined/);
});

test('syntax errors stop the run before any APDU is sent', async () => {
  const { m, entries } = await setup();
  const r = await runScript(parseScript('00 84 00 00 08\n00 A4 0'), { manager: m });
  assert.equal(r.failure?.code, 'SCRIPT_SYNTAX');
  assert.equal(r.failure?.line, 2);
  assert.equal(entries.filter((e) => e.kind === 'exchange').length, 0);
});

test('PINs: asked once per run, masked in every log entry, encodings', async () => {
  const { m, entries } = await setup();
  let asked = 0;
  const r = await runScript(parseScript('00 20 00 01 04 ${pin:"User PIN"} => 90 00\n00 20 00 01 04 ${pin:"User PIN"} => 90 00'), {
    manager: m, askPin: async () => { asked++; return '1234'; },
  });
  assert.equal(r.ok, true, r.failure?.message);
  assert.equal(asked, 1);
  const text = JSON.stringify(entries) + entries.flatMap(formatEntry).join('\n');
  assert.ok(!text.includes('31323334') && !text.includes('31 32 33 34'), 'PIN bytes never logged');
  assert.ok(text.includes('0020000104********'));
  assert.equal(toHex(encodePin('1234', 'bcd', 8, 0xff)), '1234FFFFFFFFFFFF');
  assert.equal(toHex(encodePin('12345', 'format2', undefined, 0xff)), '2512345FFFFFFFFF');
  assert.equal(toHex(encodePin('1234', 'ascii', 6, 0x00)), '313233340000');
});

test('card removed mid-run: the run ends with a clear error at the line', async () => {
  const { m, sim } = await setup();
  const script = parseScript('00 84 00 00 08\ndelay 30\n00 84 00 00 08');
  const p = runScript(script, { manager: m });
  setTimeout(() => sim.removeCard('sim:0'), 5);
  const r = await p;
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'CARD_REMOVED');
  assert.equal(r.failure?.line, 3);
});

test('cancel stops between APDUs and closes the connection', async () => {
  const { m } = await setup();
  const abort = new AbortController();
  let n = 0;
  const r = await runScript(parseScript('repeat 1000\n00 84 00 00 08\nend'), {
    manager: m, signal: abort.signal, onProgress: (done) => { n = done; if (done === 10) abort.abort(); },
  });
  assert.equal(r.ok, false);
  assert.equal(r.failure?.code, 'CANCELLED');
  assert.equal(n, 10);
  assert.equal(m.reader(r.reader!).connections, 0);
});

test('fromLine/toLine run only part of the script', async () => {
  const { m } = await setup();
  const r = await runScript(parseScript('00 84 00 00 08\n00 84 00 00 04\n00 84 00 00 02'), { manager: m, fromLine: 2, toLine: 2 });
  assert.deepEqual(r.lines.map((l) => l.line), [2]);
});

test('line results: one per source line, in the order first run; a repeat counts; a failure keeps the line\'s place', async () => {
  const { m } = await setup();
  const src = `00 A4 00 0C 02 3F 00
repeat 3
00 84 00 00 08
00 A4 00 0C 02 3F 00
end
00 A4 00 0C 02 3F 00 => 6A 82`;
  const r = await runScript(parseScript(src), { manager: m });
  assert.equal(r.ok, false);
  assert.deepEqual(r.lines.map((l) => Object.keys(l)), [
    ['line', 'sw', 'response', 'responseBytes', 'swMeaning', 'ok', 'count'],
    ['line', 'sw', 'response', 'responseBytes', 'swMeaning', 'ok', 'count'],
    ['line', 'sw', 'response', 'responseBytes', 'swMeaning', 'ok', 'count'],
    ['line', 'sw', 'response', 'responseBytes', 'swMeaning', 'ok', 'message', 'count'],
  ]);
  const ok = { sw: '9000', response: '9000', responseBytes: 2, swMeaning: r.lines[0].swMeaning, ok: true };
  assert.equal(typeof ok.swMeaning, 'string');
  assert.deepEqual(r.lines[0], { line: 1, ...ok, count: 1 });
  assert.deepEqual({ ...r.lines[1], response: r.lines[1].response?.slice(-4) }, { line: 3, ...ok, responseBytes: 10, count: 3 });
  assert.match(r.lines[1].response ?? '', /^[0-9A-F]{16}9000$/);
  assert.deepEqual(r.lines[2], { line: 4, ...ok, count: 3 });
  assert.deepEqual(r.lines[3], { line: 6, ...ok, ok: false, message: r.lines[3].message, count: 1 });
  assert.match(r.lines[3].message!, /expected 6A 82, got 90 00/);
});
