// A PIN written literally in a script (`00 20 00 81 08 3733…`, or through a variable) is masked
// like a PC/SC client's: the command data of VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
// and ENABLE / DISABLE VERIFICATION REQUIREMENT (SECRET_INS) is `**` in `scard run`'s text and
// JSON traces, `scard test`'s JUnit report, the helper's messages and its log history; the
// responses are shown as before, and other commands carrying the same bytes are not masked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { LogHistoryRequest, ReaderResetRequest, RunScriptRequest, SendApduRequest } from '../../server/src/protocol';
import { startMemoryHelper } from '../support/memoryHelper';
import { noPinAssertion } from '../support/pinForms';

// Eight digits: a run's timestamps and durations do not hold them by chance.
const PIN = '73918264';
const NEW_PIN = '50627183';
const hexOf = (s: string) => Buffer.from(s, 'ascii').toString('hex').toUpperCase();
const P = hexOf(PIN);
const N = hexOf(NEW_PIN);
const assertNoPin = noPinAssertion(PIN, NEW_PIN);
const SELECT = '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00';

// Each line's expected response is the simulator's answer, as it was before masking.
const SCRIPT = [
  SELECT,
  `00 20 00 81 08 ${P} => 90 00`, // VERIFY, short Lc: the right PIN
  `00 20 00 81 00 00 08 ${P} => 67 00`, // extended Lc: the simulator takes short lengths only
  `00 21 00 81 0A 80 08 ${P} => 6D 00`, // odd INS, the PIN in a BER-TLV data object
  `00 24 00 81 10 ${P}${N} => 6D 00`, // CHANGE REFERENCE DATA: old and new PIN
  `00 2C 00 81 10 ${P}${N} => 6D 00`, // RESET RETRY COUNTER: a PUK and the new PIN
  `00 28 00 81 08 ${P} => 6D 00`, // ENABLE VERIFICATION REQUIREMENT (SIM, UICC)
  `repeat 2`,
  `  00 20 00 81 08 ${P} => 90 00`,
  `end`,
  `let USERPIN = ${P}`,
  '00 20 00 81 08 ${USERPIN} => 90 00', // a variable into a VERIFY
  '00 20 00 81 08 ${USERPIN[0:8]} => 90 00', // a slice of it
].join('\n');

const scard = path.resolve('bin/scard.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [scard, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
}

function withScript(text: string, body: (file: string, dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'literal-pin-'));
  try {
    const file = path.join(dir, 'literal-pin.apdu');
    fs.writeFileSync(file, `${text}\n`);
    body(file, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('scard run: a literal VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, ENABLE VERIFICATION and a PIN in a variable are ** in the text trace; responses unchanged', () => {
  // T=0 refuses an extended length before sending (it would need ENVELOPE): that line is left out there.
  const t0Script = SCRIPT.split('\n').filter((l) => !l.includes(' 00 00 08 ')).join('\n');
  for (const card of ['T=1', 'T=0']) {
    withScript(card === 'T=0' ? t0Script : SCRIPT, (file) => {
      const r = run(['run', file, '--simulator-pin', PIN, '--card', card, '--verbose']);
      assert.equal(r.status, 0, `${card}: ${r.stderr}`);
      assertNoPin(r.stdout, `text trace (${card})`);
      assertNoPin(r.stderr, `stderr (${card})`);
      const sent = r.stdout.split('\n').filter((l) => l.startsWith('> ')).map((l) => l.replace(/ {2}\(line \d+\)$/, ''));
      const answers = r.stdout.split('\n').filter((l) => l.startsWith('< ')).map((l) => l.replace(/ \[.*\]$/, ''));
      const stars = (n: number) => Array(n).fill('**').join(' ');
      assert.deepEqual(sent, [
        '> 00 A4 04 0C 07 F0 57 42 44 45 4D 4F',
        `> 00 20 00 81 08 ${stars(8)}`,
        ...(card === 'T=1' ? [`> 00 20 00 81 00 ${stars(10)}`] : []), // the extended length bytes are the data's too (T=0 refuses it)
        `> 00 21 00 81 0A ${stars(10)}`,
        `> 00 24 00 81 10 ${stars(16)}`,
        `> 00 2C 00 81 10 ${stars(16)}`,
        `> 00 28 00 81 08 ${stars(8)}`,
        `> 00 20 00 81 08 ${stars(8)}`,
        `> 00 20 00 81 08 ${stars(8)}`,
        `> 00 20 00 81 08 ${stars(8)}`,
        `> 00 20 00 81 08 ${stars(8)}`,
      ], `${card}: each command's header shown, its data masked`);
      assert.deepEqual(answers.map((l) => l.slice(0, 7)), [
        '< 90 00', '< 90 00', ...(card === 'T=1' ? ['< 67 00'] : []), '< 6D 00', '< 6D 00', '< 6D 00', '< 6D 00', '< 90 00', '< 90 00', '< 90 00', '< 90 00',
      ], `${card}: the responses as the card gave them`);
    });
  }
});

test('scard run --json and scard test --junit: no PIN in the JSON trace, the result or the report', () => {
  withScript(SCRIPT, (file, dir) => {
    const r = run(['run', file, '--simulator-pin', PIN, '--json', '--verbose']);
    assert.equal(r.status, 0, r.stderr);
    assertNoPin(r.stdout, 'JSON trace');
    assertNoPin(r.stderr, 'stderr');
    const exchanges = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((o) => o.kind === 'exchange');
    assert.equal(exchanges[1].command, `0020008108${'**'.repeat(8)}`);
    assert.equal(exchanges[1].response, '9000');
    assert.equal(exchanges[4].command, `0024008110${'**'.repeat(16)}`);
    const junit = path.join(dir, 'report.xml');
    const t = run(['test', file, '--junit', junit, '--simulator-pin', PIN]);
    assert.equal(t.status, 0, t.stderr);
    assertNoPin(t.stdout + t.stderr, 'scard test output');
    const xml = fs.readFileSync(junit, 'utf8');
    assert.match(xml, /&gt; 00 20 00 81 08 \*\* \*\*/, 'the report holds the trace, masked');
    assertNoPin(xml, 'JUnit report');
  });
});

test('other commands carrying the same bytes are not masked: SELECT by name, GET DATA, a VERIFY without data (the search finds a PIN that is there)', () => {
  withScript([`00 A4 04 00 08 ${P} => 6A 82`, `00 CA 00 81 08 ${P} => 6D 00`, '00 20 00 81 => 63 C3'].join('\n'), (file) => {
    const r = run(['run', file, '--simulator-pin', PIN, '--verbose']);
    assert.equal(r.status, 0, r.stderr);
    const spacedPin = P.match(/../g)!.join(' ');
    assert.ok(r.stdout.includes(`> 00 A4 04 00 08 ${spacedPin}`), r.stdout);
    assert.ok(r.stdout.includes(`> 00 CA 00 81 08 ${spacedPin}`), r.stdout);
    assert.ok(r.stdout.includes('> 00 20 00 81  (line 3)'), r.stdout);
    assert.throws(() => assertNoPin(r.stdout, 'control'), /holds a PIN form/);
  });
});

test('the Lc check still refuses a VERIFY whose Lc does not fit, literal or built from a variable; the message shows neither the PIN nor its length', () => {
  withScript([SELECT, `00 20 00 81 0C ${P} => 90 00`].join('\n'), (file) => {
    const r = run(['run', file, '--simulator-pin', PIN, '--json']);
    assert.equal(r.status, 1, r.stderr);
    assertNoPin(r.stdout + r.stderr, 'literal: output');
    assert.match(r.stdout + r.stderr, /Lc is 12 but 8 data bytes follow/, 'a literal line: the file holds it anyway');
  });
  withScript([SELECT, `let X = ${P}`, '00 20 00 81 09 ${X} => 90 00', '00 B0 00 00 00'].join('\n'), (file) => {
    for (const json of [false, true]) {
      const r = run(['run', file, '--simulator-pin', PIN, '--verbose', ...(json ? ['--json'] : [])]);
      assert.equal(r.status, 1, r.stderr);
      const out = r.stdout + r.stderr;
      assertNoPin(out, 'built: output');
      assert.match(out, /line 3: Lc is 09 but the data of this VERIFY has another length; the command was not sent/);
      assert.doesNotMatch(out, /8 data bytes/, 'the PIN\'s length is not told');
      assert.doesNotMatch(out, /> 00 20 00 81 09/, 'nothing was sent');
    }
  });
});

test('a bad hex digit in a literal PIN: the error quotes no PIN digits', () => {
  // R92: and a VERIFY wrapped in an ENVELOPE, whole or the rest of a split one (whose line alone cannot tell it).
  withScript([SELECT, `00 20 00 81 08 ${P.slice(0, -1)}G`, `00 20 00 81 08 ${P.slice(0, -1)}`,
    `00 C2 00 00 0D 00 20 00 81 08 ${P.slice(0, -1)}G`, `00 C2 00 00 04 ${P.slice(8, -1)}G`].join('\n'), (file) => {
    const r = run(['run', file, '--simulator-pin', PIN]);
    assert.equal(r.status, 1);
    const out = r.stdout + r.stderr;
    assert.match(out, /:2:16: error: .*not hex/);
    assert.match(out, /:3:16: error: odd number of hex digits/);
    assert.match(out, /:4:\d+: error: .*not hex/);
    assert.match(out, /:5:\d+: error: .*not hex/);
    assert.ok(!out.includes(P.slice(0, 8)), 'no PIN digits quoted');
    assert.ok(!out.includes(P.slice(8, 14)), 'no digits of the second half quoted');
  });
});

// R91: an ENVELOPE (INS C2) carrying a VERIFY, whole and split over two ENVELOPEs. Split, the PIN is in two halves, so
// the forms the leak assertion looks for never appear whole: each line's masked shape is asserted instead.
const P1 = P.slice(0, 8);
const P2 = P.slice(8);
const spaced = (hex: string) => hex.match(/../g)!.join(' ');
const ENVELOPES = [
  SELECT,
  `00 C2 00 00 0D 00 20 00 81 08 ${P}`, // a whole VERIFY in one ENVELOPE
  `00 C2 00 00 09 00 20 00 81 08 ${P1}`, // split: its header, Lc and half the PIN
  `00 C2 00 00 04 ${P2}`, // the other half
  '00 C2 00 00', // the empty ENVELOPE that ends the string (ISO/IEC 7816-4:1995 §7.2.3)
  `00 C2 00 00 0D 00 A4 04 00 08 ${P}`, // a wrapped SELECT with the same bytes: shown
].join('\n');

test('R91: scard run: a VERIFY inside an ENVELOPE, whole or split over two, is ** after its inner header (with the ENVELOPE\'s length), on T=1 and T=0, text and JSON', () => {
  withScript(ENVELOPES, (file) => {
    const stars = (n: number) => Array(n).fill('**').join(' ');
    for (const card of ['T=1', 'T=0']) {
      const r = run(['run', file, '--simulator-pin', PIN, '--card', card, '--verbose']);
      assert.equal(r.status, 0, `${card}: ${r.stderr}`);
      const sent = r.stdout.split('\n').filter((l) => l.startsWith('> ')).map((l) => l.replace(/ {2}\(line \d+\)$/, ''));
      assert.deepEqual(sent, [
        '> 00 A4 04 0C 07 F0 57 42 44 45 4D 4F',
        `> 00 C2 00 00 ** 00 20 00 81 ${stars(9)}`,
        `> 00 C2 00 00 ** 00 20 00 81 ${stars(5)}`,
        `> 00 C2 00 00 ${stars(5)}`,
        card === 'T=1' ? '> 00 C2 00 00' : '> 00 C2 00 00 00', // T=0: the TPDU's P3
        `> 00 C2 00 00 0D 00 A4 04 00 08 ${spaced(P)}`,
      ], `${card}: ${r.stdout}`);
    }
    const j = run(['run', file, '--simulator-pin', PIN, '--json', '--verbose']);
    assert.equal(j.status, 0, j.stderr);
    const commands = j.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((o) => o.kind === 'exchange').map((o) => o.command);
    assert.deepEqual(commands.slice(1, 4), [`00C20000**00200081${'**'.repeat(9)}`, `00C20000**00200081${'**'.repeat(5)}`, `00C20000${'**'.repeat(5)}`]);
    assert.equal(commands[5], `00C200000D00A4040008${P}`, 'the control: the wrapped SELECT shows the same bytes');
  });
});

// R92 (review 12, HIGH 1): the card forgetting what it was assembling (the idle power-off between two Send APDUs, a
// Readers-view Reset) is no reason to print the rest of the PIN: a secret chain stays open over a power-up.
test('R92: helper: a split wrapped VERIFY whose halves are sent across an idle power-off, or across a Reset, keeps its second half masked', async () => {
  const helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ pin: PIN })] },
    initializationOptions: { readerManager: { idlePowerOffSeconds: 0.2 } },
  });
  const { client } = helper;
  const send = async (apdu: string) => (await client.sendRequest(SendApduRequest.method, { apdu }) as { exchanges: Array<{ command: string }> }).exchanges.map((e) => e.command);
  try {
    const reader = helper.started.readers.find((r) => r.card)!.name;
    // 1: the halves 600 ms apart, three times the idle power-off: the card is powered down, then up for the second.
    assert.deepEqual(await send(`00 C2 00 00 09 00 20 00 81 08 ${P1}`), [`00C20000**00200081${'**'.repeat(5)}`]);
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(await send(`00 C2 00 00 04 ${P2}`), [`00C20000${'**'.repeat(5)}`], 'after the idle power-off');
    // The half is kept open over the power-up (an orphan): the next ENVELOPEs on that channel are masked whole until an
    // empty one ends the string (ISO/IEC 7816-4:1995 §7.2.3), shown as sent.
    assert.deepEqual(await send('00 C2 00 00 02 3F 00'), ['00C20000******'], 'the orphan masks the chain whole');
    assert.deepEqual(await send('00 C2 00 00'), ['00C20000']);
    assert.deepEqual(await send('00 C2 00 00 02 3F 00'), ['00C20000023F00'], 'after the empty ENVELOPE: shown');
    assert.deepEqual(await send('00 C2 00 00'), ['00C20000']);
    // 2: a Reset from the Readers view between the halves.
    assert.deepEqual(await send(`00 C2 00 00 09 00 20 00 81 08 ${P1}`), [`00C20000**00200081${'**'.repeat(5)}`]);
    await client.sendRequest(ReaderResetRequest.method, { reader, mode: 'cold' });
    assert.deepEqual(await send(`00 C2 00 00 04 ${P2}`), [`00C20000${'**'.repeat(5)}`], 'after a Reset');
    const history = JSON.stringify(await client.sendRequest(LogHistoryRequest.method, {}));
    assert.ok(![P1, P2].some((h) => history.includes(h)), 'no half of the PIN in the log history');
    assert.ok(![P1, P2].some((h) => helper.wire().includes(h)), 'no half of the PIN on the wire');
  } finally {
    await helper.stop();
  }
});

test('helper: a literal VERIFY run from the editor, and one typed into Send APDU, is ** on the wire and in the log history', async () => {
  const helper = await startMemoryHelper({ helper: { drivers: [new SimulatorDriver({ pin: PIN })] } });
  const { client } = helper;
  try {
    const res = await client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as { ok: boolean; lines: Array<{ line: number; sw: string }> };
    assert.equal(res.ok, true);
    assert.equal(res.lines.find((l) => l.line === 2)?.sw, '9000');
    // Send APDU… runs a typed command as a one-line script: a VERIFY typed there is masked too.
    const sent = await client.sendRequest(SendApduRequest.method, { apdu: `00 20 00 81 08 ${P}` }) as { ok: boolean; exchanges: Array<{ command: string; sw: string }> };
    assert.deepEqual(sent.exchanges.map((e) => [e.command, e.sw]), [[`0020008108${'**'.repeat(8)}`, '9000']]);
    assertNoPin(JSON.stringify(sent), 'Send APDU answer');
    // R91: an ENVELOPE-wrapped VERIFY split over two Send APDUs (two runs): the second half is masked too.
    const halves: string[] = [];
    for (const apdu of [`00 C2 00 00 09 00 20 00 81 08 ${P1}`, `00 C2 00 00 04 ${P2}`]) {
      const r = await client.sendRequest(SendApduRequest.method, { apdu }) as { exchanges: Array<{ command: string }> };
      halves.push(...r.exchanges.map((e) => e.command));
    }
    assert.deepEqual(halves, [`00C20000**00200081${'**'.repeat(5)}`, `00C20000${'**'.repeat(5)}`]);
    const history = await client.sendRequest(LogHistoryRequest.method, {});
    assertNoPin(JSON.stringify(history), 'log history');
    assert.ok(![P1, P2].some((h) => JSON.stringify(history).includes(h)), 'no half of the PIN in the log history');
    await new Promise((r) => setImmediate(r));
    assert.ok(helper.wire().includes(`"command":"0020008108${'**'.repeat(8)}"`), 'masked VERIFY on the wire');
    assertNoPin(helper.wire(), 'helper → extension messages');
  } finally {
    await helper.stop();
  }
});
