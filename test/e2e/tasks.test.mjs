// Real VS Code (code-server) in Debian's Chromium: APDU scripts as tasks.
// A workspace holding the repository's examples/ and a tasks.json, with two readers: the
// simulator and a vpcd reader whose card (bench/fast-peer.mjs) answers 90 00 to everything.
// Run Task → apdu → a script: the passing one leaves no problem; fails-on-purpose.apdu puts
// its failed expectation in the Problems view at line 12 ($apdu), and a click opens the line;
// the tasks.json task naming the vpcd reader runs the same script there (where it passes,
// so the problem goes), its exchanges in the APDU Log on that reader.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, launchWorkbench, logFrame, missingPrerequisite, quickInputShowing, root, runCommand, screenshot, selectReader, startFastPeer } from './support.mjs';

const skip = missingPrerequisite();
const SIM = 'Workbench Simulator 00 00';
const VPCD = 'Virtual PCD';
const FAILURE = 'expected * 90 00, got 69 82 (Security status not satisfied)';
let wb;
let workspace;
let peer;

before(async () => {
  if (skip) return;
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-tasks-ws-'));
  fs.cpSync(path.join(root, 'examples'), path.join(workspace, 'examples'), { recursive: true });
  // The tasks.json of docs/editor.md: a script on a named reader.
  fs.mkdirSync(path.join(workspace, '.vscode'));
  fs.writeFileSync(path.join(workspace, '.vscode', 'tasks.json'), JSON.stringify({
    version: '2.0.0',
    tasks: [{
      label: 'fails-on-purpose on the vpcd card',
      type: 'apdu',
      script: 'examples/fails-on-purpose.apdu',
      reader: 'Virtual PCD*',
      problemMatcher: ['$apdu'],
    }],
  }, null, 2));
  const port = await freePort();
  wb = await launchWorkbench({ workspace, name: 'tasks', settings: {
    'smartcard.vpcd.enabled': true,
    'smartcard.vpcd.ports': [port],
    'smartcard.pcsc.enabled': false,
    'smartcard.usbCcid.enabled': false,
    // The DOM renderer: the terminal's text is in the page, so the test reads what a user reads.
    'terminal.integrated.gpuAcceleration': 'off',
  } });
  peer = startFastPeer(port);
}, { timeout: 180_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'tasks-end').catch(() => undefined);
  await wb?.close();
  if (peer && peer.exitCode === null) peer.kill('SIGTERM');
  if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
});

/** Picks a row of the open quick pick by its label (the pick can be slow to fill: providers run). */
async function pick(page, label, timeout = 30_000) {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout });
  await input.fill(label);
  const row = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: label }) }).first();
  await row.waitFor({ timeout });
  await row.click();
}

/** The terminal's text (DOM renderer), lines joined with \n. */
const terminalText = (page) => page.locator('.terminal-wrapper.active .xterm-rows').innerText().catch(() => '');

/**
 * Waits until the active terminal shows `re`. A task's terminal is reused by the next task, so
 * `re` names what only this run prints (its result line names the script and the reader) and
 * VS Code's "Terminal will be reused" after it: the task ended.
 */
async function waitTerminal(page, re, timeout = 60_000) {
  await page.waitForFunction((src) => {
    const rows = document.querySelector('.terminal-wrapper.active .xterm-rows');
    return !!rows && new RegExp(src).test(rows.innerText ?? '');
  }, re.source, { timeout }).catch(async (err) => {
    err.message += `\nthe terminal shows: ${JSON.stringify(await terminalText(page))}`;
    throw err;
  });
}

/**
 * "Tasks: Run Task" from the palette, clicked by its exact title (Enter would run the first
 * row, which can be "Tasks: Restart Running Task"), asked again until `shown` appears: by
 * default the task pick, in Restricted Mode the trust dialog.
 */
async function runTaskCommand(page, shown = page.locator('.quick-input-widget input[placeholder^="Select the task to run"]')) {
  const title = 'Tasks: Run Task';
  const row = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${title}$`) }) }).first();
  for (let i = 0; ; i++) {
    try {
      await quickInputShowing(page, 'F1', `>${title}`, row, 5000);
      await row.click({ timeout: 5000 });
      await shown.waitFor({ state: 'visible', timeout: 10_000 });
      return;
    } catch (err) {
      await page.keyboard.press('Escape').catch(() => undefined);
      if (i >= 4) throw err;
    }
  }
}

/** Run Task → apdu → the script's task: as a user does it from the palette. */
async function runProvidedTask(page, script) {
  await runTaskCommand(page);
  await pick(page, 'apdu');
  await pick(page, script);
}

/** The Problems view's rows (aria-labels); the view is focused (opened) first. */
async function problems(page) {
  await runCommand(page, 'View: Focus Problems (Errors, Warnings, Infos)');
  await page.locator('.markers-panel').waitFor({ timeout: 30_000 });
  return page.locator('.markers-panel .monaco-list-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('aria-label') ?? r.textContent));
}

test('Run Task → apdu: a passing script leaves no problem; fails-on-purpose.apdu puts line 12 in the Problems view, and a click opens it', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  await peer.connected;
  // Two readers with cards: the tasks run on the selected one, as "Run APDU Script" does.
  await selectReader(page, SIM);

  await runProvidedTask(page, 'examples/hello.apdu');
  await waitTerminal(page, /examples\/hello\.apdu: passed, 4 command\(s\) in \d+ ms on Workbench Simulator 00 00\s+\*\s+Terminal will be reused by tasks/);
  const hello = await terminalText(page);
  // The trace as the log has it: each command with its line, the answer with its meaning.
  assert.match(hello, /> 00 B0 00 00 2E {2}\(line 12\)/, hello);
  assert.match(hello, /> 00 84 00 00 08 {2}\(line 15\)\s+< ([0-9A-F]{2} ){8}90 00 : Normal processing/, hello);
  assert.match(hello, /# passed: 4 command\(s\) passed/, hello);
  await screenshot(page, 'tasks-hello');
  await runCommand(page, 'View: Focus Problems (Errors, Warnings, Infos)');
  await page.locator('.markers-panel', { hasText: 'No problems have been detected in the workspace.' }).waitFor({ timeout: 30_000 });

  await runProvidedTask(page, 'examples/fails-on-purpose.apdu');
  // The task's exit code is 1, as `scard run`'s after a failed expectation.
  await waitTerminal(page, /examples\/fails-on-purpose\.apdu: failed, 3 command\(s\) in \d+ ms on Workbench Simulator 00 00\s+\*\s+The terminal process terminated with exit code: 1\.\s+\*\s+Terminal will be reused by tasks/);
  const fop = await terminalText(page);
  assert.match(fop, /> 00 B0 00 00 00 {2}\(line 12\)\s+< 69 82 : Security status not satisfied/, fop);
  assert.match(fop, /examples\/fails-on-purpose\.apdu:12: expected \* 90 00, got 69 82 \(Security status not satisfied\)/, fop);
  // The Problems view: the script, and under it the failed expectation at line 12 (Ln 12).
  await runCommand(page, 'View: Focus Problems (Errors, Warnings, Infos)');
  const problem = page.locator('.markers-panel .monaco-list-row', { hasText: FAILURE }).first();
  await problem.waitFor({ timeout: 30_000 });
  const rows = await problems(page);
  assert.ok(rows.some((r) => /fails-on-purpose\.apdu/.test(r)), `the file is listed: ${JSON.stringify(rows)}`);
  const label = rows.find((r) => r.includes(FAILURE));
  assert.match(label, /line 12\b/i, `the problem is at line 12: ${label}`);
  assert.equal(rows.filter((r) => /expected|got|FAILED/.test(r)).length, 1, `one problem only (the run stops at the first failure): ${JSON.stringify(rows)}`);
  await screenshot(page, 'tasks-problem');
  // A click opens the script on that line.
  await problem.click();
  await page.locator('.tabs-container .tab[aria-label*="fails-on-purpose.apdu"]').first().waitFor({ timeout: 30_000 });
  await page.locator('.statusbar-item', { hasText: /Ln 12,/ }).waitFor({ timeout: 30_000 });
});

test('a tasks.json task with a reader runs on that reader: the same script there passes, its problem goes, the APDU Log shows its exchanges on that reader', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  await peer.connected;
  // The editor's reader stays the simulator: the task's own reader wins.
  await selectReader(page, SIM);
  await runTaskCommand(page);
  await pick(page, 'fails-on-purpose on the vpcd card');
  await waitTerminal(page, new RegExp(`examples/fails-on-purpose\\.apdu: passed, 4 command\\(s\\) in \\d+ ms on ${VPCD}[^\\n]*\\s+\\*\\s+Terminal will be reused by tasks`));
  const out = await terminalText(page);
  // The card there answers 90 00 to everything: line 12 passes.
  assert.match(out, new RegExp(`# examples/fails-on-purpose\\.apdu on Virtual PCD\\*\\s+> 00 A4 04 0C 07 F0 57 42 44 45 4D 4F {2}\\(line 7\\)`), out);
  assert.match(out, /> 00 B0 00 00 00 {2}\(line 12\)\s+< 90 00 : Normal processing/, out);
  await runCommand(page, 'View: Focus Problems (Errors, Warnings, Infos)');
  await page.locator('.markers-panel', { hasText: 'No problems have been detected in the workspace.' }).waitFor({ timeout: 30_000 });

  // The APDU Log: the READ BINARY of line 12 on the vpcd reader, answered 90 00.
  await runCommand(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  const read = log.locator(`#log > .row[data-kind="exchange"][data-sw="9000"][data-reader^="${VPCD}"]`, { hasText: '00 B0 00 00 00' }).first();
  await read.waitFor({ timeout: 30_000 });
  await screenshot(page, 'tasks-reader');
});

test('an untrusted workspace (Restricted Mode): Run Task asks for trust first; Cancel runs nothing on the card', { skip, timeout: 180_000 }, async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-tasks-untrusted-'));
  fs.cpSync(path.join(root, 'examples'), path.join(ws, 'examples'), { recursive: true });
  const untrusted = await launchWorkbench({ workspace: ws, name: 'tasks-untrusted', workspaceTrust: true, settings: {
    'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false,
  } });
  try {
    const { page } = untrusted;
    await page.locator('.statusbar-item', { hasText: /Restricted Mode/ }).waitFor({ timeout: 30_000 });
    await page.locator('.statusbar-item', { hasText: /Smart Card: running/ }).waitFor({ timeout: 60_000 });
    const dialog = page.locator('.monaco-dialog-box', { hasText: 'Listing and running tasks requires' });
    await runTaskCommand(page, dialog);
    await screenshot(page, 'tasks-untrusted');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached', timeout: 10_000 });
    // No task pick, no task terminal, and the card saw nothing: the log holds no exchange.
    assert.equal(await page.locator('.quick-input-widget input[placeholder^="Select the task to run"]').isVisible(), false);
    assert.equal(await page.locator('.terminal-wrapper').count(), 0);
    await runCommand(page, 'Smart Card: Show APDU Log');
    const log = logFrame(page);
    await log.locator('#log').waitFor({ timeout: 30_000 });
    assert.equal(await log.locator('#log .row[data-kind="exchange"]').count(), 0);
  } finally {
    await untrusted.close();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
