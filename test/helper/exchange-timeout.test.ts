// The exchange time-out is a setting (issue 14, item 9): the extension passes
// `smartcard.readerManager.exchangeTimeout` (seconds) in the helper's
// initialization options and again when it changes; `scard run --timeout MS`
// sets it on the command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RunScriptRequest, SettingsNotification, type RunScriptResult } from '../../server/src/protocol';
import { startMemoryHelper } from '../support/memoryHelper';
import { FaultyDriver, settlesWithin } from '../unit/reliability/support';

test('helper: the exchange time-out comes from the settings at start and follows a change', async () => {
  const driver = new FaultyDriver();
  const helper = await startMemoryHelper({
    helper: { drivers: [driver] },
    initializationOptions: { readerManager: { exchangeTimeoutSeconds: 1 } },
  });
  try {
    // The card goes silent for GET CHALLENGE (it answers nothing, ever).
    driver.onTransmit = (command) => (command[1] === 0x84 ? new Promise<Uint8Array>(() => {}) : undefined);
    const run = (): Promise<RunScriptResult> => helper.client.sendRequest(RunScriptRequest.method, { text: '00 84 00 00 08 => * 90 00' }) as Promise<RunScriptResult>;
    const first = await settlesWithin(run(), 10_000, 'run with a 1 s time-out');
    assert.equal(first.ok, false);
    assert.equal(first.failure?.code, 'TIMEOUT');
    assert.match(first.failure!.message, /within 1000 ms/);
    helper.client.sendNotification(SettingsNotification.method, { readerManager: { exchangeTimeoutSeconds: 2 } });
    const second = await settlesWithin(run(), 10_000, 'run with a 2 s time-out');
    assert.match(second.failure!.message, /within 2000 ms/);
  } finally {
    await helper.stop();
  }
});

test('CLI: --timeout MS is taken, a bad value is refused with words', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-timeout-'));
  try {
    const file = path.join(dir, 'one.apdu');
    fs.writeFileSync(file, '00 84 00 00 08 => * 90 00\n');
    const scard = path.resolve('bin/scard.js');
    const ok = spawnSync(process.execPath, [scard, 'run', file, '--timeout', '5000'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    for (const bad of ['abc', '0', '1.5']) {
      const r = spawnSync(process.execPath, [scard, 'run', file, '--timeout', bad], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `--timeout ${bad} was accepted`);
      assert.match(r.stderr, /--timeout takes milliseconds/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
