// The PIN never crosses JSON-RPC in the clear (issue 14, security 2): the answer to
// `smartcard/askPin` and the simulator card's PIN in `initializationOptions` travel sealed
// (AES-256-GCM, the key handed over in the helper's environment), so vscode-languageclient's
// trace ("smartcard.trace.server": "verbose"), which writes every message to the output channel
// and VS Code's log files, sees none. The prompt names the reader and the script line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import {
  AskPinRequest, type AskPinParams, LogHistoryRequest, newPinKey, RunScriptRequest, sealPin, SIMULATOR_PIN_AAD,
} from '../../server/src/protocol';
import { sealedAnswer, startMemoryHelper } from '../support/memoryHelper';
import { noPinAssertion } from '../support/pinForms';

const PIN = '581736';
const assertNoPin = noPinAssertion(PIN);
const READER = 'Workbench Simulator 00 00';
const SCRIPT = [
  '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00',
  'echo "line 2"',
  '',
  '00 20 00 01 06 ${pin:"User PIN"} => 90 00',
].join('\n');

type Result = { ok: boolean; failure?: { message: string; line?: number } };

test('askPin: the prompt names label, reader, file and line with a fresh challenge; the sealed answer verifies; no PIN on the wire either way', async () => {
  const asked: AskPinParams[] = [];
  const helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ pin: PIN })] },
    initializationOptions: { pin: { cache: 'none' } },
    handlers: (c, key) => c.onRequest(AskPinRequest.method, (p: AskPinParams) => { asked.push(p); return sealedAnswer(key, p, PIN); }),
  });
  try {
    for (let i = 0; i < 2; i++) {
      const r = await helper.client.sendRequest(RunScriptRequest.method, { text: SCRIPT, uri: 'file:///ws/hello.apdu' }) as Result;
      assert.equal(r.ok, true, r.failure?.message);
    }
    assert.equal(asked.length, 2);
    assert.deepEqual({ ...asked[0], challenge: undefined }, { label: 'User PIN', reader: READER, uri: 'file:///ws/hello.apdu', line: 4, tries: 3, challenge: undefined }, 'the tries the retry check just read');
    assert.equal(Buffer.from(asked[0].challenge, 'base64').length, 16);
    assert.notEqual(asked[0].challenge, asked[1].challenge, 'a fresh challenge per prompt');
    await new Promise((r) => setImmediate(r));
    assert.match(helper.wireIn(), /"sealed":\{"nonce":"[A-Za-z0-9+/=]{16}","data":"[A-Za-z0-9+/=]+"\}/, 'the answers went over the wire sealed');
    assertNoPin(helper.wireIn(), 'client → helper messages (the answers to the prompts)');
    assertNoPin(helper.wire(), 'helper → client messages');
  } finally {
    await helper.stop();
  }
});

test('askPin: an answer in the clear, sealed for another prompt or with another key is refused and no VERIFY is sent', async () => {
  const otherKey = newPinKey();
  let stale: unknown;
  const answers: Array<(key: Buffer, p: AskPinParams) => unknown> = [
    () => ({ pin: PIN }),
    (_key, p) => sealedAnswer(otherKey, p, PIN),
    (key, p) => { stale = sealedAnswer(key, p, PIN); return { sealed: { nonce: 'AAAAAAAAAAAAAAAA', data: 'AAAA' } }; },
    () => stale, // the answer to the previous prompt: bound to its challenge, useless for this one
  ];
  const helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver({ pin: PIN })] },
    initializationOptions: { pin: { cache: 'none', checkRetries: false } },
    handlers: (c, key) => c.onRequest(AskPinRequest.method, (p: AskPinParams) => answers.shift()!(key, p)),
  });
  try {
    for (let i = 0; i < 4; i++) {
      const r = await helper.client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as Result;
      assert.equal(r.ok, false, `answer ${i} is refused`);
      assert.equal(r.failure?.line, 4);
      assert.match(r.failure?.message ?? '', /answer to the PIN prompt "User PIN" was not sealed for this prompt/);
    }
    const history = await helper.client.sendRequest(LogHistoryRequest.method, {}) as { entries: Array<{ kind: string; command?: string }> };
    assert.equal(history.entries.filter((e) => e.kind === 'exchange' && e.command?.startsWith('00200001')).length, 0, 'no VERIFY reached the card');
  } finally {
    await helper.stop();
  }
});

test('the simulator card\'s PIN comes sealed in initializationOptions; a plain one is not taken', async () => {
  const key = newPinKey();
  const sim = await startMemoryHelper({
    helper: { pinKey: key },
    initializationOptions: { simulator: { sealedPin: sealPin(key, PIN, SIMULATOR_PIN_AAD) }, pin: { cache: 'none' } },
    handlers: (c, k) => c.onRequest(AskPinRequest.method, (p: AskPinParams) => sealedAnswer(k, p, PIN)),
  });
  try {
    const r = await sim.client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as Result;
    assert.equal(r.ok, true, `the sealed simulator PIN is the card's PIN: ${r.failure?.message}`);
  } finally {
    await sim.stop();
  }
  const plain = await startMemoryHelper({
    initializationOptions: { simulator: { pin: PIN }, pin: { cache: 'none' } },
    handlers: (c, k) => c.onRequest(AskPinRequest.method, (p: AskPinParams) => sealedAnswer(k, p, PIN)),
  });
  try {
    const r = await plain.client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as Result;
    assert.equal(r.ok, false, 'a PIN in the clear in initializationOptions is ignored (the card keeps its default PIN)');
    assert.match(r.failure?.message ?? '', /63 C2/);
  } finally {
    await plain.stop();
  }
});

test('a helper started without a PIN key takes no PIN from the editor', async () => {
  // startMemoryHelper always gives a key; createHelper without one is what main.ts does when the environment has none.
  const { createHelper } = await import('../../server/src/lsp/server');
  assert.equal(typeof createHelper, 'function');
  const { PassThrough } = await import('node:stream');
  const { createConnection } = await import('vscode-languageserver/node');
  const { createMessageConnection, StreamMessageReader, StreamMessageWriter } = await import('vscode-jsonrpc/node');
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  createHelper(createConnection(toServer, toClient), { drivers: [new SimulatorDriver({ pin: PIN })] });
  const client = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
  let asked = 0;
  client.onRequest(AskPinRequest.method, () => { asked++; return { cancelled: true }; });
  const started = new Promise((resolve) => client.onNotification('smartcard/started', resolve));
  client.listen();
  await client.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, initializationOptions: {} });
  client.sendNotification('initialized', {});
  await started;
  const r = await client.sendRequest(RunScriptRequest.method, { text: SCRIPT }) as Result;
  assert.equal(r.ok, false);
  assert.match(r.failure?.message ?? '', /started without a PIN key/);
  assert.equal(asked, 0, 'no prompt is shown for a PIN that could not be taken');
  await client.sendRequest('shutdown');
  client.dispose();
});
