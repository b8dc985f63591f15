// A PIN never leaks: run PIN scripts through the CLI (text and JSON, success and
// failure) and through the helper (every message it sends), and search every byte
// for the PIN in ASCII, hex (with and without spaces) and BCD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createConnection } from 'vscode-languageserver/node';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { createHelper } from '../../server/src/lsp/server';
import { AskPinRequest, LogHistoryRequest, RunScriptRequest, StartedNotification } from '../../server/src/protocol';

const PIN = '739182';
const WRONG = '846295';
const forms = (pin: string) => {
  const ascii = Buffer.from(pin, 'ascii').toString('hex').toUpperCase();
  return [pin, ascii, ascii.match(/../g)!.join(' '), ascii.toLowerCase(), pin.match(/../g)!.join(' ')];
};
const NEEDLES = [...forms(PIN), ...forms(WRONG)];

function assertNoPin(haystack: string, where: string) {
  for (const n of NEEDLES) assert.ok(!haystack.includes(n), `${where} contains a PIN form '${n.length > 2 ? n.slice(0, 2) + '…' : n}'`);
}

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
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  let wire = '';
  toClient.on('data', (d) => { wire += d.toString('utf8'); });
  createHelper(createConnection(toServer, toClient), { drivers: [new SimulatorDriver({ pin: PIN })] });
  const client = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
  const started = new Promise((r) => client.onNotification(StartedNotification.method, r));
  const answers = [PIN, WRONG];
  client.onRequest(AskPinRequest.method, () => ({ pin: answers.shift() ?? PIN }));
  client.listen();
  try {
    await client.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, initializationOptions: { pin: { cache: 'none' } } });
    client.sendNotification('initialized', {});
    await started;
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
    assert.ok(wire.includes('"command":"0020000106************"'), 'masked VERIFY on the wire');
    assertNoPin(wire, 'helper → extension messages');
  } finally {
    await client.sendRequest('shutdown');
    client.dispose();
  }
});
