// Issue 15 (R53): PIN-pad control calls are masked in every log whoever makes them, not
// only for PC/SC clients of the service. A GET_KEY (its answer is the keys typed: a
// key-by-key PIN entry), a VERIFY_PIN_DIRECT whose APDU template holds the PIN, and an
// escape (CCID_ESC_COMMAND) and MCT_UNIVERSAL call each wrapping a VERIFY, made by an APDU
// script's `control` statement, by another extension through the API and by the editor's
// "Send Control Command…": no form of the PIN in the log history, the helper's log
// notifications and log lines, the APDU Log export (text and JSON Lines), a script's
// failure message, or `scard run`'s output (text and JSON Lines). The caller itself gets
// the answer it asked for (a JSON-RPC result), which is not a log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodePinVerify } from '../../server/src/codecs/pinpad';
import {
  ApiConnectRequest, ApiControlRequest, ApiDisconnectRequest, LogHistoryRequest, ReaderControlRequest, RunScriptRequest,
  type ControlEntry, type LogEntry,
} from '../../server/src/protocol';
import { LogStore } from '../../extension/src/logStore';
import { jsonLines, traceText } from '../../webview/src/format';
import { GetKeySimulator, OWN_GET_KEY } from '../support/getKeySimulator';
import { startMemoryHelper, type MemoryHelper } from '../support/memoryHelper';
import { noPinAssertion } from '../support/pinForms';

const PIN = '582947';
const assertNoPin = noPinAssertion(PIN);
const READER = 'Workbench Simulator 00 00';
const hex = (b: Iterable<number>): string => Buffer.from([...b]).toString('hex').toUpperCase();
const ascii = (digits: string): number[] => [...Buffer.from(digits, 'ascii')];

const IOCTL_VERIFY_PIN_DIRECT = 0x42330006; // the simulator's pinpad lists it (libccid's numbering)
const IOCTL_MCT_UNIVERSAL = 0x42330009; // libccid's numbering, not listed by this reader
const IOCTL_CCID_ESC_COMMAND = 0x42000001; // libccid's escape, SCARD_CTL_CODE(1), not listed
const VERIFY = [0x00, 0x20, 0x00, 0x01, 0x06, ...ascii(PIN)];
const PIN_VERIFY = encodePinVerify({ timeout: 0, format: 'ascii', position: 0, minDigits: 6, maxDigits: 6, apdu: Uint8Array.from(VERIFY) });
const ESCAPE = [0xff, 0x00, 0x00, 0x00, VERIFY.length, ...VERIFY];
const MCT = [0x02, 0x00, ...VERIFY];

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-control-leak-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

/** The helper's messages without the JSON-RPC results of the control requests (the caller's own answer). */
function logsOnWire(wire: string): string {
  return wire.replace(/"result":\{"response":"[0-9A-F]*"/g, '"result":{"response":"…"');
}

function checkLog(entries: LogEntry[], who: string): ControlEntry[] {
  const controls = entries.flatMap((e) => (e.kind === 'control' ? [e] : []));
  const getKey = controls.filter((e) => e.code === OWN_GET_KEY);
  assert.ok(getKey.length >= 1, `${who}: GET_KEY is logged`);
  for (const e of getKey) assert.equal(e.response, '**'.repeat(PIN.length), `${who}: GET_KEY's answer masked`);
  for (const e of controls.filter((c) => c.code === IOCTL_CCID_ESC_COMMAND)) assert.equal(e.command, '**'.repeat(ESCAPE.length), `${who}: the escape masked`);
  for (const e of controls.filter((c) => c.code === IOCTL_MCT_UNIVERSAL)) assert.equal(e.command, '**'.repeat(MCT.length), `${who}: MCT_UNIVERSAL masked`);
  for (const e of controls.filter((c) => c.code === IOCTL_VERIFY_PIN_DIRECT)) assert.equal(e.command, '**'.repeat(PIN_VERIFY.length), `${who}: the PIN-pad structure masked`);
  return controls;
}

async function exportsHoldNoPin(helper: MemoryHelper, who: string): Promise<void> {
  const { entries } = await helper.client.sendRequest(LogHistoryRequest.method, {}) as { entries: LogEntry[] };
  const store = new LogStore();
  store.newGeneration();
  store.addEntries(entries);
  assertNoPin(JSON.stringify(entries), `${who}: the log history`);
  assertNoPin(traceText(store.rows()), `${who}: the APDU Log export (text trace)`);
  assertNoPin(jsonLines(store.rows()), `${who}: the APDU Log export (JSON Lines)`);
  await new Promise((r) => setImmediate(r));
  assertNoPin(logsOnWire(helper.wire()), `${who}: the helper's notifications and log lines`);
}

function startHelper(): Promise<MemoryHelper> {
  return startMemoryHelper({ helper: { drivers: [new GetKeySimulator(PIN, { keypad: async () => '1234' })] } });
}

test('a script\'s control statements (GET_KEY, a PIN-pad call, an escape and MCT wrapping a VERIFY) are masked in every log', async () => {
  const helper = await startHelper();
  try {
    const getKey = await helper.client.sendRequest(RunScriptRequest.method, {
      text: [`connect "${READER}"`, `control 0x${OWN_GET_KEY.toString(16)}`, `control 0x${IOCTL_VERIFY_PIN_DIRECT.toString(16)} ${hex(PIN_VERIFY)}`].join('\n'),
    }) as { ok: boolean; failure?: { message: string } };
    assert.equal(getKey.ok, true, JSON.stringify(getKey.failure));
    for (const [code, data] of [[IOCTL_CCID_ESC_COMMAND, ESCAPE], [IOCTL_MCT_UNIVERSAL, MCT]] as const) {
      // The simulator knows neither code: the run fails on it, and the failure is logged and reported.
      const r = await helper.client.sendRequest(RunScriptRequest.method, { text: `connect "${READER}"\ncontrol 0x${code.toString(16)} ${hex(data)}` }) as { ok: boolean; failure?: { message: string } };
      assert.equal(r.ok, false);
      assertNoPin(JSON.stringify(r), 'the run\'s result');
    }
    const { entries } = await helper.client.sendRequest(LogHistoryRequest.method, {}) as { entries: LogEntry[] };
    const controls = checkLog(entries, 'script');
    assert.ok(controls.some((e) => e.code === IOCTL_CCID_ESC_COMMAND) && controls.some((e) => e.code === IOCTL_MCT_UNIVERSAL) && controls.some((e) => e.code === IOCTL_VERIFY_PIN_DIRECT), 'all four calls are logged');
    await exportsHoldNoPin(helper, 'script');
  } finally {
    await helper.stop();
  }
});

test('an extension\'s control calls through the API and the editor\'s Send Control Command are masked in every log', async () => {
  const helper = await startHelper();
  const client = 'publisher.some-extension';
  try {
    const c = await helper.client.sendRequest(ApiConnectRequest.method, { client, reader: READER }) as { handle: number };
    const api = (code: number, data: number[] = []): Promise<{ response: string }> =>
      helper.client.sendRequest(ApiControlRequest.method, { client, handle: c.handle, code, data: hex(data) });
    // The caller gets its own answer; the log does not.
    assert.equal((await api(OWN_GET_KEY)).response, hex(ascii(PIN)));
    await api(IOCTL_VERIFY_PIN_DIRECT, [...PIN_VERIFY]);
    await assert.rejects(api(IOCTL_CCID_ESC_COMMAND, ESCAPE));
    await assert.rejects(api(IOCTL_MCT_UNIVERSAL, MCT));
    await helper.client.sendRequest(ApiDisconnectRequest.method, { client, handle: c.handle });
    // Send Control Command… (the Readers view), with no connection of the editor's.
    const editor = (code: number, data: number[] = []): Promise<{ response: string }> =>
      helper.client.sendRequest(ReaderControlRequest.method, { reader: READER, code, data: hex(data) });
    assert.equal((await editor(OWN_GET_KEY)).response, hex(ascii(PIN)));
    await assert.rejects(editor(IOCTL_CCID_ESC_COMMAND, ESCAPE));
    const { entries } = await helper.client.sendRequest(LogHistoryRequest.method, {}) as { entries: LogEntry[] };
    const controls = checkLog(entries, 'API and editor');
    assert.equal(controls.filter((e) => e.code === OWN_GET_KEY).length, 2, 'both GET_KEYs are logged');
    assert.ok(controls.some((e) => e.client === client && e.code === IOCTL_MCT_UNIVERSAL), 'the API\'s MCT call is logged with its client');
    await exportsHoldNoPin(helper, 'API and editor');
  } finally {
    await helper.stop();
  }
});

test('scard run: a script\'s PIN-pad call and escape wrapping a VERIFY are masked in its text and JSON Lines output', () => {
  const file = path.join(tmp, 'control.apdu');
  fs.writeFileSync(file, [
    `control 0x${IOCTL_VERIFY_PIN_DIRECT.toString(16)} ${hex(PIN_VERIFY)}`,
    `control 0x${IOCTL_CCID_ESC_COMMAND.toString(16)} ${hex(ESCAPE)}`,
  ].join('\n'));
  for (const json of [false, true]) {
    const r = spawnSync(process.execPath, [path.resolve('bin/scard.js'), 'run', file, '--pinpad', '--simulator-pin', '1234', '--verbose', ...(json ? ['--json'] : [])], {
      env: { ...process.env, SCARD_PIN: '1234' }, encoding: 'utf8', timeout: 20_000,
    });
    assert.equal(r.status, 1, `the escape fails the run: ${r.stderr}`);
    assert.match(r.stdout, json ? /"code":1110638598,[^}]*"command":"(\*\*)+"/ : /^> CONTROL 1110638598 (\*\* )+\*\*$/m, `the PIN-pad call is printed, masked: ${r.stdout}`);
    assert.match(r.stdout, json ? /"code":1107296257,[^}]*"command":"(\*\*){16}"/ : /^> CONTROL 1107296257 (\*\* ){15}\*\*$/m, `the escape is printed, masked: ${r.stdout}`);
    assertNoPin(r.stdout, `scard run's ${json ? 'JSON Lines' : 'text'} output`);
    assertNoPin(r.stderr, 'scard run\'s stderr');
  }
});
