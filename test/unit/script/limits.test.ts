// Script engine limits (issue 14, items 12–15 and `set timeout`): commands
// built at run time are checked like literal ones, counts and times are
// bounded, a long loop hears Cancel, and the exchange time-out reaches the manager.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReaderManager, type Connection, type TransmitOptions } from '../../../server/src/manager/manager';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import type { Statement } from '../../../server/src/script/ast';
import { formatEntry } from '../../../server/src/script/trace';
import { simulatorManager } from './support';

const setup = simulatorManager;

/** The VERIFY retry counter as the card reports it to an empty VERIFY (ISO 7816-4 §11.5.6). */
async function retryStatus(m: ReaderManager): Promise<string> {
  const r = await runScript(parseScript('00 20 00 01'), { manager: m });
  return r.lines[0]?.sw ?? `no answer: ${r.failure?.message}`;
}

const errorsOf = (text: string) => parseScript(text).diagnostics.filter((d) => d.severity === 'error');

// ---------------------------------------------------------------- item 12

test('a VERIFY whose PIN does not fit Lc is refused at its line: nothing sent, retry counter unchanged, PIN not shown (T=0)', async () => {
  const { m, entries } = await setup('T=0');
  const r = await runScript(parseScript('echo "start"\n00 20 00 01 04 ${pin:"User PIN"} => 90 00'), {
    manager: m, askPin: async () => '123456',
  });
  assert.equal(r.ok, false, 'the 6-digit PIN must not verify on its first 4 digits');
  assert.equal(r.failure?.code, 'BAD_REQUEST');
  assert.equal(r.failure?.line, 2);
  assert.match(r.failure!.message, /^line 2: .*Lc is 04/);
  assert.match(r.failure!.message, /the command was not sent/);
  assert.equal(entries.filter((e) => e.kind === 'exchange').length, 0, 'no exchange at all');
  const text = r.failure!.message + JSON.stringify(entries) + entries.flatMap(formatEntry).join('\n');
  for (const leak of ['123456', '313233343536', '31 32 33 34 35 36', '6 data bytes', '6 bytes']) {
    assert.ok(!text.includes(leak), `the error or the log shows '${leak}'`);
  }
  assert.equal(await retryStatus(m), '63C3', 'still 3 tries and not verified');
});

test('with the retry-counter check on, only the empty VERIFY (the counter query) goes out before the refusal', async () => {
  const { m, entries } = await setup('T=0');
  const r = await runScript(parseScript('00 20 00 01 04 ${pin:"User PIN"}'), {
    manager: m, askPin: async () => '123456', confirm: async () => true,
  });
  assert.equal(r.failure?.code, 'BAD_REQUEST');
  const sent = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange');
  assert.deepEqual(sent.map((e) => [e.command, e.auto]), [['0020000100', 'retryCounter']]);
  assert.ok(!r.failure!.message.includes('123456'));
  assert.equal(await retryStatus(m), '63C3');
});

test('a command built from let variables is checked like a literal one (Lc, Le) before it is sent', async () => {
  const { m, entries } = await setup('T=0');
  const r = await runScript(parseScript('let P = 31 32 33 34 35 36\n00 20 00 01 04 ${P}'), { manager: m });
  assert.equal(r.ok, false);
  assert.equal(r.failure?.line, 2);
  // A VERIFY's data is a PIN however it was written: the message does not tell its length (R88).
  assert.match(r.failure!.message, /line 2: Lc is 04 but the data of this VERIFY has another length; the command was not sent/);
  assert.doesNotMatch(r.failure!.message, /2 bytes follow/);
  assert.equal(entries.filter((e) => e.kind === 'exchange').length, 0);
  assert.equal(await retryStatus(m), '63C3');

  // $data too: 8 challenge bytes after an Lc of 04.
  const { m: m3, entries: e3 } = await setup('T=1');
  const r3 = await runScript(parseScript('00 84 00 00 08\n00 88 00 00 04 $data 00'), { manager: m3 });
  assert.equal(r3.failure?.line, 2);
  assert.match(r3.failure!.message, /Lc is 4 but 9 bytes follow/);
  assert.equal(e3.filter((e) => e.kind === 'exchange').length, 1, 'only the GET CHALLENGE went out');

  // A well-formed built command still runs.
  const { m: m4 } = await setup('T=1');
  const ok = await runScript(parseScript('let H = 00 84 00 00\n${H} 08 => * 90 00\nlet X = $data\n00 88 00 00 08 ${X} 00 => * 90 00 | 6D 00'), { manager: m4 });
  assert.equal(ok.ok, true, ok.failure?.message);
});

// ---------------------------------------------------------------- item 13

test('repeat counts are bounded: 0, more than 10,000,000 and 400 nines are parse errors with the bound', () => {
  for (const count of ['0', '10000001', '9'.repeat(400), '0x' + 'F'.repeat(40)]) {
    const errs = errorsOf(`repeat ${count}\n00 84 00 00 08\nend`);
    assert.equal(errs.length, 1, `repeat ${count.slice(0, 20)}…: one error (its 'end' still matches it)`);
    assert.match(errs[0].message, /10,?000,?000/, errs[0].message);
  }
  const ok = parseScript('repeat 10000000\nend');
  assert.equal(ok.diagnostics.length, 0);
  assert.equal((ok.statements[0] as Extract<Statement, { kind: 'repeat' }>).count, 10_000_000);
});

test('a cancelled empty repeat ends promptly with a cancelled result, not "passed"', async () => {
  const { m, entries } = await setup();
  const abort = new AbortController();
  // setImmediate runs only when the engine lets the event loop turn.
  setImmediate(() => abort.abort());
  const r = await runScript(parseScript('repeat 10000000\nend\n00 84 00 00 08'), { manager: m, signal: abort.signal });
  assert.equal(r.ok, false, 'an empty loop that did not hear Cancel ran to the end and passed');
  assert.equal(r.failure?.code, 'CANCELLED');
  const ended = entries.find((e) => e.kind === 'scriptEnded');
  assert.ok(ended && 'ok' in ended && ended.ok === false);
  assert.equal(entries.filter((e) => e.kind === 'exchange').length, 0);
});

// ---------------------------------------------------------------- item 14

test('delay and wait above 2^31-1 ms are parse errors naming the bound, never a timer that fires at once', () => {
  for (const line of ['delay 2147483648', 'wait card 2147483648', 'wait removal 99999999999999999999', 'delay 0x80000000']) {
    const errs = errorsOf(line);
    assert.equal(errs.length, 1, line);
    assert.match(errs[0].message, /2147483647|2,147,483,647/, errs[0].message);
  }
  assert.equal(errorsOf('delay 2147483647\nwait card 2147483647').length, 0);
  // A control code is a DWORD: past it is an error too, not Infinity sent to the driver.
  assert.match(errorsOf(`control ${'9'.repeat(30)}`)[0].message, /0 to 4294967295/);
  assert.equal(errorsOf('control 0x42000D48').length, 0);
});

// ---------------------------------------------------------------- item 15

test('the parser does not throw on a 200,000-digit continued line or 20,000 nested repeat 1 blocks', () => {
  const continued = '00 D6 00 00 \\\n' + 'AB'.repeat(100_000) + ' \\\n' + 'CD'.repeat(100_000);
  const a = parseScript(continued);
  assert.equal(a.statements.length, 0, 'the too-long command is a diagnostic');
  assert.ok(a.diagnostics.some((d) => d.severity === 'error'));
  const d = a.diagnostics.find((x) => x.severity === 'error')!;
  assert.equal(d.span.start.line, 0);
  assert.equal(d.span.end.line, 2, 'the range spans the continued lines');

  const deep = 'repeat 1\n'.repeat(20_000) + '00 84 00 00 08\n' + 'end\n'.repeat(20_000);
  const b = parseScript(deep);
  assert.deepEqual(b.diagnostics, []);
  let depth = 0;
  let s: Statement | undefined = b.statements[0];
  while (s && s.kind === 'repeat') { depth++; s = s.body[0]; }
  assert.equal(depth, 20_000);
  assert.equal(s?.kind, 'apdu');
});

test('20,000 nested repeat 1 blocks run (no recursion limit in the engine)', async () => {
  const { m } = await setup();
  const deep = 'repeat 1\n'.repeat(20_000) + '00 84 00 00 08 => * 90 00\n' + 'end\n'.repeat(20_000);
  const r = await runScript(parseScript(deep), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  assert.equal(r.commands, 1);
});

test('positions of a continued line stay exact (no per-character table)', () => {
  const s = parseScript('00 A4 04 00 \\\n  07 A0 00 00 00 03 10 1X').diagnostics.find((d) => d.code === 'bad-hex')!;
  assert.deepEqual(s.span, { start: { line: 1, character: 23 }, end: { line: 1, character: 25 } });
  const e = parseScript('00 A4 04 00 05 \\\n01 02').diagnostics.find((d) => d.code === 'apdu-shape')!;
  assert.deepEqual(e.span, { start: { line: 0, character: 0 }, end: { line: 1, character: 5 } });
});

// ---------------------------------------------------------------- item 9 (script part)

test('set timeout MS: parsed with its bound, default restores the setting', () => {
  const ok = parseScript('set timeout 120000\nset timeout default\nset timeout 1\nset timeout 2147483647');
  assert.deepEqual(ok.diagnostics, []);
  assert.deepEqual(ok.statements.map((s) => s.kind === 'set' && s.option === 'timeout' ? s.timeoutMs ?? 'default' : '?'), [120000, 'default', 1, 2147483647]);
  for (const bad of ['set timeout 0', 'set timeout 2147483648', 'set timeout', 'set timeout soon', 'set timeout 10 20']) {
    const errs = errorsOf(bad);
    assert.equal(errs.length, 1, bad);
    assert.match(errs[0].message, /set timeout/, errs[0].message);
  }
});

test('set timeout: the engine passes timeoutMs with every transmit and control call', async () => {
  const { m } = await setup();
  const seen: Array<[string, number | undefined]> = [];
  const connect = m.connect.bind(m);
  m.connect = async (...args: Parameters<ReaderManager['connect']>) => {
    const conn: Connection = await connect(...args);
    const transmit = conn.transmit.bind(conn);
    const control = conn.control.bind(conn);
    conn.transmit = (apdu: Uint8Array, opts?: TransmitOptions) => { seen.push(['transmit', opts?.timeoutMs]); return transmit(apdu, opts); };
    conn.control = (code: number, data: Uint8Array, opts?: { timeoutMs?: number }) => { seen.push(['control', opts?.timeoutMs]); return control(code, data, opts); };
    return conn;
  };
  const r = await runScript(parseScript('00 84 00 00 08\nset timeout 120000\n00 84 00 00 08\ncontrol 3400\nset timeout default\n00 84 00 00 08'), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  assert.deepEqual(seen, [['transmit', undefined], ['transmit', 120000], ['control', 120000], ['transmit', undefined]]);
});
