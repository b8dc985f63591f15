// Real VS Code (code-server) in Debian's Chromium: APDU scripts in the Testing view.
// A workspace holding the repository's examples/: the view lists the folder and its
// scripts with expectations, Run All runs them on the simulator, shows which pass and
// that fails-on-purpose.apdu fails at line 12, and a click on the failure opens line 12.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, missingPrerequisite, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();
let wb;
let workspace;

before(async () => {
  if (skip) return;
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-testing-ws-'));
  fs.cpSync(path.join(root, 'examples'), path.join(workspace, 'examples'), { recursive: true });
  wb = await launchWorkbench({ workspace, name: 'testing', settings: {
    'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false, 'testing.automaticallyOpenPeekView': 'never',
    // The DOM renderer: the test output's text is in the page, as a user reads it.
    'terminal.integrated.gpuAcceleration': 'off',
  } });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'testing-end').catch(() => undefined);
  await wb?.close();
  if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
});

/** The Test Explorer's row for a label (its aria-label starts with it). */
const row = (page, label) => page.locator(`.test-explorer .monaco-list-row[aria-label^="${label}"]`).first();

/** Which result icon a row shows: passed, failed, errored, skipped… */
async function state(r) {
  return r.evaluate((el) => {
    const icon = el.querySelector('.codicon[class*="testing-"]');
    const m = icon && /codicon-testing-([a-z]+)-icon/.exec(icon.className);
    return m ? m[1] : null;
  });
}

test('the Testing view lists examples/; Run All shows which pass and that fails-on-purpose.apdu fails at line 12; a click opens the line', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  // scriptor-compatible.apdu has no expectation (plain scriptor): it is no test.
  const scripts = fs.readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.apdu') && f !== 'scriptor-compatible.apdu').sort();
  assert.ok(scripts.length >= 6);
  await runCommand(page, 'View: Show Testing');
  const folder = row(page, 'examples');
  await folder.waitFor({ timeout: 60_000 });
  if ((await folder.getAttribute('aria-expanded')) !== 'true') await folder.click();
  for (const s of scripts) await row(page, s).waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('.test-explorer .monaco-list-row[aria-label^="scriptor-compatible.apdu"]').count(), 0);
  await screenshot(page, 'testing-listed');

  // verify-pin.apdu asks for the PIN: answer it when the masked box shows.
  const pinBox = page.locator('.quick-input-widget input[type="password"]');
  const answered = pinBox.waitFor({ timeout: 120_000 }).then(async () => { await pinBox.fill('1234'); await pinBox.press('Enter'); }).catch(() => undefined);
  await runCommand(page, 'Test: Run All Tests');
  const fop = row(page, 'fails-on-purpose.apdu');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('.test-explorer .monaco-list-row')];
    const files = rows.filter((r) => /\.apdu/.test(r.getAttribute('aria-label') ?? ''));
    return files.length > 0 && files.every((r) => /codicon-testing-(passed|failed|errored|skipped)-icon/.test(r.querySelector('.codicon[class*="testing-"]')?.className ?? ''));
  }, undefined, { timeout: 120_000 });
  await answered;
  await screenshot(page, 'testing-run-all');
  const states = Object.fromEntries(await Promise.all(scripts.map(async (s) => [s, await state(row(page, s))])));
  assert.equal(states['fails-on-purpose.apdu'], 'failed', JSON.stringify(states));
  assert.equal(states['hello.apdu'], 'passed', JSON.stringify(states));
  assert.equal(states['variables.apdu'], 'passed', JSON.stringify(states));
  assert.equal(states['verify-pin.apdu'], 'passed', JSON.stringify(states));
  assert.equal(states['pinpad.apdu'], 'failed', `the simulator is no pinpad reader: ${JSON.stringify(states)}`);

  // The failed line: expand the file; line 12's item failed, the lines before passed, the one after never ran.
  if ((await fop.getAttribute('aria-expanded')) !== 'true') await fop.click();
  const l12 = row(page, 'line 12: 00 B0 00 00 00');
  await l12.waitFor({ timeout: 10_000 });
  assert.equal(await state(l12), 'failed');
  assert.equal(await state(row(page, 'line 8: ')), 'passed');
  assert.equal(await state(row(page, 'line 15: ')), 'skipped');

  // The Test Results view shows the message naming the expected and the actual status word.
  await runCommand(page, 'Focus on Test Results View');
  await page.locator('.test-output-peek-tree .monaco-list-row', { hasText: /expected \* 90 00, got 69 82/ }).first().waitFor({ timeout: 30_000 });

  // A click on the failure opens the script at line 12.
  await runCommand(page, 'View: Show Testing');
  await l12.click();
  await l12.dblclick();
  await page.locator('.tabs-container .tab[aria-label*="fails-on-purpose.apdu"]').first().waitFor({ timeout: 30_000 });
  await page.locator('.statusbar-item', { hasText: /Ln 12,/ }).waitFor({ timeout: 30_000 });
  await screenshot(page, 'testing-failure-opened');
});

test('Show Output shows the last run\'s trace: each script on its reader, > / < lines with the script line, the PIN masked', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  // The run of the test before (Run All) is the most recent one; its last script is verify-pin.apdu,
  // whose trace ends the output (the view shows its end).
  await runCommand(page, 'Test: Show Output');
  const rows = page.locator('.xterm-rows', { hasText: '> 00 20 00 01 04 ** ** ** **' }).first();
  await rows.waitFor({ timeout: 30_000 });
  await screenshot(page, 'testing-output');
  const text = await rows.innerText();
  assert.match(text, /> 00 20 00 01 04 \*\* \*\* \*\* \*\* {2}\(line 9\)\s+< 90 00 : Normal processing/, text);
  assert.match(text, /> 00 A4 02 0C 02 50 03 {2}\(line 12\)\s+< 90 00/, text);
  assert.match(text, /# passed: 5 command\(s\) passed/, text);
  assert.doesNotMatch(text, /31 32 33 34|1234/, 'the PIN never shows');
});

test('Cancel stops a run: long-run.apdu is stopped between two APDUs and marked skipped, not passed', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'View: Show Testing');
  const long = row(page, 'long-run.apdu');
  await long.waitFor({ timeout: 30_000 });
  await long.hover();
  await long.locator('.action-label[aria-label^="Run Test"]').first().click();
  // Running: the row shows the spinning icon; then the Testing view's Cancel.
  await page.waitForFunction(() => {
    const r = document.querySelector('.test-explorer .monaco-list-row[aria-label^="long-run.apdu"]');
    return /codicon-testing-(loading|queued)-icon|codicon-loading/.test(r?.innerHTML ?? '');
  }, undefined, { timeout: 30_000 });
  const t0 = Date.now();
  await runCommand(page, 'Test: Cancel Test Run');
  // The Test Results view's newest run: long-run.apdu skipped (the explorer keeps showing the
  // last pass or failure for a skipped test).
  await runCommand(page, 'Focus on Test Results View');
  const result = page.locator('.test-output-peek-tree .monaco-list-row[aria-label^="long-run.apdu"]').first();
  await page.waitForFunction(() => {
    const r = document.querySelector('.test-output-peek-tree .monaco-list-row[aria-label^="long-run.apdu"]');
    return /codicon-testing-(skipped|passed|failed|errored)-icon/.test(r?.innerHTML ?? '');
  }, undefined, { timeout: 30_000 });
  await screenshot(page, 'testing-cancelled');
  // Skipped, not passed: a run that went on to the script's end would have passed (no time is
  // asserted: a loaded machine may take seconds to show the result).
  assert.equal(await state(result), 'skipped', `long-run.apdu ${Date.now() - t0} ms after the Cancel`);
});
