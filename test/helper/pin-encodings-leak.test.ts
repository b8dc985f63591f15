// The PIN in every encoding `${pin}` supports (ASCII, BCD, ISO 9564 format-2 PIN block) never
// reaches the CLI's output (text, JSON, verbose; right PIN, wrong PIN, a failure after the
// VERIFY), nor the helper's messages and log history. The forms searched include the raw bytes
// of BCD and the PIN block as they would sit in a hex dump. (The same search over everything real
// VS Code writes: test/e2e/security.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { AskPinRequest, type AskPinParams, ClearPinCacheRequest, LogHistoryRequest, RunScriptRequest } from '../../server/src/protocol';
import { sealedAnswer, startMemoryHelper } from '../support/memoryHelper';
import { noPinAssertion, pinForms as forms } from '../support/pinForms';

const PIN = '73915862';
const WRONG = '46028157';

const assertNoPin = noPinAssertion(PIN, WRONG);

test('the search finds each form it looks for (control)', () => {
  for (const n of forms(PIN)) assert.throws(() => assertNoPin(`noise ${n} noise`, 'control'), /holds a PIN form/);
  // The format-2 block of 73915862: 28 73 91 58 62 FF FF FF.
  assert.ok(forms(PIN).includes('28 73 91 58 62 FF FF FF'));
});

const SCRIPT = [
  '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00',
  '00 20 00 01 08 ${pin:"User PIN"} => 90 00',
  '00 2C 00 81 08 ${pin:"PIN as BCD", bcd, pad=8, fill=FF} => 6D 00',
  '00 2C 00 81 08 ${pin:"PIN block", format2} => 6D 00',
  '00 B0 00 00 00 => 69 99',
].join('\n');

test('CLI: ASCII, BCD and format-2 PINs, text/JSON/verbose, right and wrong PIN, a failure after the VERIFY: no PIN in any output', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pin-enc-'));
  try {
    const file = path.join(dir, 'pin.apdu');
    fs.writeFileSync(file, SCRIPT);
    const scard = path.resolve('bin/scard.js');
    for (const pin of [PIN, WRONG]) {
      for (const flags of [[], ['--json'], ['--verbose'], ['--json', '--verbose']]) {
        const r = spawnSync(process.execPath, [scard, 'run', file, '--simulator-pin', PIN, ...flags], { env: { ...process.env, SCARD_PIN: pin }, encoding: 'utf8' });
        const what = `${pin === PIN ? 'right' : 'wrong'} PIN ${flags.join(' ') || 'text'}`;
        assert.equal(r.status, 1, `${what}: the script fails (line ${pin === PIN ? 5 : 2}): ${r.stderr}`);
        assert.match(r.stdout + r.stderr, pin === PIN ? /69 99/ : /63 C2/, what);
        if (pin === PIN) assert.equal((r.stdout.match(/\*\* \*\* \*\* \*\* \*\* \*\* \*\* \*\*|\*{16}/g) ?? []).length >= 3, true, `${what}: three masked PIN commands`);
        assertNoPin(r.stdout, `${what} stdout`);
        assertNoPin(r.stderr, `${what} stderr`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('helper: PINs in every encoding, the session cache and Clear PIN Cache: no PIN in any message sent or in the log history', async () => {
  const asked: string[] = [];
  let answer = PIN;
  const helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ pin: PIN })] },
    initializationOptions: { pin: { cache: 'session' } },
    handlers: (c, key) => c.onRequest(AskPinRequest.method, (p: AskPinParams) => { asked.push(p.label); return sealedAnswer(key, p, answer); }),
  });
  const { client } = helper;
  try {
    const first = await client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as { ok: boolean; failure?: { message: string; line?: number } };
    assert.equal(first.ok, false);
    assert.equal(first.failure?.line, 5, 'fails after the VERIFY');
    assert.deepEqual(asked, ['User PIN', 'PIN as BCD', 'PIN block']);
    // Session cache: the User PIN is remembered (the others were refused with 6D 00 and forgotten).
    await client.sendRequest(RunScriptRequest.method, { text: SCRIPT });
    assert.deepEqual(asked.slice(3), ['PIN as BCD', 'PIN block']);
    assert.equal(await client.sendRequest(ClearPinCacheRequest.method, {}), 1);
    answer = WRONG;
    const wrong = await client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as { ok: boolean; failure?: { message: string } };
    assert.match(wrong.failure?.message ?? '', /63 C2/);
    const history = await client.sendRequest(LogHistoryRequest.method, {});
    assertNoPin(JSON.stringify(history), 'log history');
    await new Promise((r) => setImmediate(r));
    assert.ok(helper.wire().includes('"command":"002C008108****************"'), 'the BCD and format-2 commands are on the wire, masked');
    assertNoPin(helper.wire(), 'helper → client messages');
  } finally {
    await helper.stop();
  }
});
