// Real VS Code (code-server) in Debian's Chromium: the Smart Card view, running a
// script from the command palette, the APDU Log webview, and simulator card events.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const READER = 'Workbench Simulator 00 00';
const workspace = process.env.SMARTCARD_E2E_WORKSPACE ?? path.join(root, 'examples');
const skip = missingPrerequisite();
let wb;

before(async () => {
  if (skip) return;
  // The tree's looks after a run (its protocol) are checked seconds later: no idle power-down in between (R77's own
  // e2e test, idle-power.test.mjs, checks that one).
  wb = await launchWorkbench({ workspace, name: 'workbench' });
}, { timeout: 120_000 });

after(async () => {
  // The last state of the page, for reading a failure.
  if (wb) await screenshot(wb.page, 'workbench-end').catch(() => undefined);
  await wb?.close();
});

test('the Smart Card view shows the simulator reader and its card', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  await page.locator('.monaco-list-row', { hasText: READER }).waitFor({ timeout: 30_000 });
  // The card row: the reader manager powers the card up at insertion, so its ATR shows before any script.
  await page.locator('.monaco-list-row', { hasText: /ATR 3B/ }).waitFor();
  await page.locator('.statusbar-item', { hasText: /Smart Card: running \(1 reader\)/ }).waitFor();
});

test('Run APDU Script runs hello.apdu and the APDU Log shows the exchange', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await notification(page, /Script passed: \d+ commands?/);
  const log = logFrame(page);
  const exchange = log.locator('[data-kind="exchange"][data-sw="9000"]').first();
  await exchange.waitFor({ timeout: 30_000 });
  const text = await exchange.innerText();
  assert.match(text, />\s+00 A4 04 00/, 'the command is shown as spaced hex');
  assert.match(text, /90 00/, 'the status word is shown');
  assert.ok(await log.locator('[data-kind="scriptEnded"][data-ok="true"]').count() >= 1, 'the end of the run is logged');
  // After a run the card is powered: the tree shows its ATR and protocol.
  const card = page.locator('.monaco-list-row', { hasText: /ATR 3B/ });
  await card.waitFor();
  assert.match(await card.innerText(), /T=1/);
  await screenshot(page, 'workbench', { docs: true });
});

test('a failing script names its line and the editor reveals it', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'fails-on-purpose.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  const text = await notification(page, /Script failed at line \d+/);
  const line = Number(text.match(/Script failed at line (\d+)/)[1]);
  assert.equal(line, 12, 'examples/fails-on-purpose.apdu documents line 12 as the failing one');
  // The cursor is put on the failing line (status bar "Ln N, Col 1").
  await page.locator('.statusbar-item', { hasText: new RegExp(`Ln ${line},`) }).waitFor();
  // The failed expectation is a diagnostic on its line (one error in the status bar), gone after an edit.
  await page.locator('.monaco-editor .squiggly-error').first().waitFor({ timeout: 30_000 });
  await page.locator('.statusbar-item[id="status.problems"]', { hasText: /1/ }).waitFor();
  await page.keyboard.press('End');
  await page.keyboard.type(' ');
  await page.locator('.monaco-editor .squiggly-error').first().waitFor({ state: 'detached', timeout: 30_000 });
  await page.keyboard.press('Backspace');
  await logFrame(page).locator('[data-kind="scriptEnded"][data-ok="false"]').first().waitFor();
});

test('removing and inserting the simulator card shows in the tree and the log', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  const removedBefore = await log.locator('[data-kind="cardRemoved"]').count();
  await runCommand(page, 'Smart Card: Remove Simulator Card');
  await page.locator('.monaco-list-row', { hasText: 'no card' }).waitFor({ timeout: 20_000 });
  await log.locator('[data-kind="cardRemoved"]').nth(removedBefore).waitFor({ timeout: 20_000 });
  assert.equal(await log.locator(`[data-kind="cardRemoved"][data-reader="${READER}"]`).count(), removedBefore + 1);

  const insertedBefore = await log.locator('[data-kind="cardInserted"]').count();
  await runCommand(page, 'Smart Card: Insert Simulator Card');
  await page.locator('.monaco-list-row', { hasText: /ATR 3B/ }).waitFor({ timeout: 20_000 });
  await log.locator('[data-kind="cardInserted"]').nth(insertedBefore).waitFor({ timeout: 20_000 });
  assert.equal(await page.locator('.monaco-list-row', { hasText: 'no card' }).count(), 0);
  await screenshot(page, 'card-events');
});

test('no unexpected errors in the browser console', { skip }, () => {
  // The failing script's own error notification is expected.
  assert.deepEqual(wb.consoleErrors.filter((e) => !/^Script failed at line/.test(e)), []);
});

test('Decode ATR opens a readable decoding with the card identified', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Smart Card: Decode ATR');
  const box = page.locator('.quick-input-widget input');
  await box.waitFor();
  await box.fill('3B 95 13 81 01 80 73 FF 01 00 0B');
  await box.press('Enter');
  await page.locator('.monaco-editor .view-lines', { hasText: /TA1\s=\s13/ }).waitFor({ timeout: 30_000 });
  // The identification is further down: with the log in the bottom panel the editor may not show
  // it yet, so find it as a reader would (the editor draws only the lines in view).
  await page.locator('.monaco-editor .view-lines', { hasText: /TA1\s=\s13/ }).first().click();
  await page.keyboard.press('Control+F');
  const find = page.locator('.editor-widget.find-widget textarea, .editor-widget.find-widget input').first();
  await find.waitFor({ timeout: 10_000 });
  await find.fill('vsmartcard - iso7816');
  await page.keyboard.press('Enter');
  await page.locator('.monaco-editor .view-lines', { hasText: /vsmartcard\s-\siso7816/ }).waitFor();
  await page.keyboard.press('Escape');
});

test('the helper killed mid-script: a clear error, the log keeps the exchanges, the helper and its reader come back', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  await openFile(page, 'long-run.apdu');
  // The notification center open before the run: the progress notification is seen as it comes,
  // without palette round trips eating the run's few seconds before the helper is killed.
  const center = page.locator('.notifications-center');
  if (!(await center.isVisible())) await runCommand(page, 'Notifications: Show Notifications');
  await runCommand(page, 'Smart Card: Run APDU Script');
  // The long run shows a progress notification with Cancel after a second.
  await center.locator('.notification-list-item', { hasText: /Running long-run\.apdu/ }).first().waitFor({ timeout: 30_000 });
  // The panel is a virtual list (only the rows in view are in the DOM): count its model's rows.
  const count = () => log.locator('body').evaluate(() => window.apduLog.count('exchange', '90 00 : '));
  const before = await count();
  for (const deadline = Date.now() + 30_000; (await count()) < before + 20;) {
    if (Date.now() > deadline) throw new Error('the long run logged no exchanges');
    await log.locator('body').evaluate(() => new Promise((r) => requestAnimationFrame(r)));
  }
  // Kill the helper process serving this workbench's extension (not another test's: e2e files run side by side).
  const pids = wb.helperPids();
  assert.ok(pids.length >= 1, 'the helper process is running');
  for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
  const seen = await count();
  const text = await notification(page, /The reader manager stopped while long-run\.apdu was running/);
  assert.match(text, /restarts by itself/);
  // Restarted by the policy (first delay 1 s), with the simulator reader back.
  await page.locator('.statusbar-item', { hasText: /Smart Card: running \(1 reader\)/ }).waitFor({ timeout: 30_000 });
  await log.locator('[data-kind="manager"][data-state="restarting"]').first().waitFor();
  // The view's own focus command (clicking the view's icon while it is shown would close the side bar).
  await runCommand(page, 'Focus on Readers View');
  await page.locator('.monaco-list-row', { hasText: READER }).waitFor();
  assert.ok(await count() >= seen, 'every exchange shown before the crash is still in the log');
  // And the next script works.
  await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await notification(page, /Script passed/);
});

