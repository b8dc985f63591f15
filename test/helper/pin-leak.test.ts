// A PIN never leaks: run PIN scripts through the CLI (text and JSON, success and
// failure) and through the helper (every message it sends), and search every byte
// for the PIN in ASCII, hex (with and without spaces) and BCD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { AskPinRequest, type AskPinParams, LogHistoryRequest, RunScriptRequest } from '../../server/src/protocol';
import { sealedAnswer, startMemoryHelper } from '../support/memoryHelper';
import { noPinAssertion } from '../support/pinForms';

const PIN = '739182';
const WRONG = '846295';
// ASCII, hex (plain, spaced, both cases), BCD and the format-2 block: the earlier list here is a part of it.
const assertNoPin = noPinAssertion(PIN, WRONG);

const SCRIPT = [
  '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00',
  '00 20 00 01 06 ${pin:"User PIN"} => 90 00',
  'echo "verified: $sw"',
  '00 A4 02 0C 02 50 03',
  '00 B0 00 00 00 => * 62 82',
].join('\n');

test('CLI: text and JSON traces, success and a refused PIN, show no PIN', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pin-leak-'));
  try {
    const file = path.join(dir, 'pin.apdu');
    fs.writeFileSync(file, SCRIPT);
    const scard = path.resolve('bin/scard.js');
    for (const [pin, json, expectCode] of [[PIN, false, 0], [PIN, true, 0], [WRONG, false, 1], [WRONG, true, 1]] as const) {
      const r = spawnSync(process.execPath, [scard, 'run', file, '--simulator-pin', PIN, '--verbose', ...(json ? ['--json'] : [])], {
        env: { ...process.env, SCARD_PIN: pin }, encoding: 'utf8',
      });
      assert.equal(r.status, expectCode, r.stderr);
      assertNoPin(r.stdout, `stdout (${json ? 'json' : 'text'}, ${pin === PIN ? 'right' : 'wrong'} PIN)`);
      assertNoPin(r.stderr, 'stderr');
      assert.match(r.stdout, /\*\*/, 'the VERIFY data is shown masked');
      if (pin === WRONG) assert.match(r.stdout + r.stderr, /63 C2/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('helper: every message it sends, the log history and results show no PIN', async () => {
  const answers = [PIN, WRONG];
  const helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ pin: PIN })] },
    initializationOptions: { pin: { cache: 'none' } },
    handlers: (c, key) => c.onRequest(AskPinRequest.method, (p: AskPinParams) => sealedAnswer(key, p, answers.shift() ?? PIN)),
  });
  const { client } = helper;
  try {
    const ok = await client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as { ok: boolean };
    assert.equal(ok.ok, true);
    const bad = await client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as { ok: boolean; failure: { message: string } };
    assert.equal(bad.ok, false);
    assert.match(bad.failure.message, /63 C2/);
    // syntax error on a line with a PIN placeholder: the message names the label, no value
    const syn = await client.sendRequest(RunScriptRequest.method, { text: '00 20 00 01 06 ${pin:"User PIN"} => 9' }) as { ok: boolean };
    assert.equal(syn.ok, false);
    const history = await client.sendRequest(LogHistoryRequest.method, {});
    assertNoPin(JSON.stringify(history), 'log history');
    await new Promise((r) => setImmediate(r));
    assert.ok(helper.wire().includes('"command":"0020000106************"'), 'masked VERIFY on the wire');
    assertNoPin(helper.wire(), 'helper → extension messages');
  } finally {
    await helper.stop();
  }
});
