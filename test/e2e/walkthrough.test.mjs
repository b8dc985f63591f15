// Real VS Code (code-server) in Debian's Chromium: the Get Started walkthrough in a
// workspace that is not the examples folder. Its button opens the bundled
// fails-on-purpose.apdu in an untitled APDU editor, the script runs and fails at
// its documented line, and the step is marked done.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, runCommand, screenshot, startAndPick } from './support.mjs';

const skip = missingPrerequisite();
let wb;
let workspace;

before(async () => {
  if (skip) return;
  // An empty folder: nothing of the repository's examples in it.
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-walkthrough-ws-'));
  wb = await launchWorkbench({ workspace, name: 'walkthrough', settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false } });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'walkthrough-end').catch(() => undefined);
  await wb?.close();
  if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
});

test('in an empty workspace the walkthrough opens the bundled example, it runs and fails at line 12, and the step completes', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  const choice = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Get Started with Smart Card Workbench' }).first();
  await startAndPick(page, () => runCommand(page, 'Welcome: Open Walkthrough...'), choice);
  const step = page.locator('.getting-started-step', { hasText: 'See a failed expectation' }).first();
  await step.waitFor({ timeout: 30_000 });
  await step.click();
  await step.locator('.button-link, a, button', { hasText: 'Open fails-on-purpose.apdu' }).first().click();
  // An untitled editor holding the bundled file's text, in the APDU language.
  await page.locator('.tabs-container .tab', { hasText: /Untitled/ }).first().waitFor({ timeout: 30_000 });
  await page.locator('.monaco-editor .view-lines', { hasText: /FAILS\sON\sPURPOSE/ }).first().waitFor({ timeout: 30_000 });
  await page.locator('.statusbar-item', { hasText: 'APDU Script' }).waitFor({ timeout: 30_000 });
  await runCommand(page, 'Smart Card: Run APDU Script');
  // The failed line: the cursor lands on it and it carries the error diagnostic; the log ends the run as failed.
  await page.locator('.statusbar-item', { hasText: /Ln 12,/ }).waitFor({ timeout: 60_000 });
  await page.locator('.monaco-editor .squiggly-error').first().waitFor({ timeout: 30_000 });
  const ended = logFrame(page).locator('[data-kind="scriptEnded"][data-ok="false"]').first();
  await ended.waitFor({ timeout: 30_000 });
  assert.match(await ended.innerText(), /line 12/);
  // Back on the walkthrough, the step is done (its completion event is the failed run).
  await page.locator('.tabs-container .tab', { hasText: 'Welcome' }).first().click();
  await step.locator('.codicon-getting-started-step-checked').waitFor({ timeout: 30_000 });
  // A step whose event has not happened stays unchecked (the Readers view was never opened here).
  assert.equal(await page.locator('.getting-started-step', { hasText: 'See the simulator reader' }).first().locator('.codicon-getting-started-step-checked').count(), 0);
  await screenshot(page, 'walkthrough-done');
});

test('no unexpected errors in the browser console', { skip }, () => {
  assert.deepEqual(wb.consoleErrors.filter((e) => !/^Script failed at line/.test(e)), []);
});
