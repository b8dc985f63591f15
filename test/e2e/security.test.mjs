// Security in real VS Code (code-server + Chromium):
// - a PIN never reaches any byte written anywhere: PIN scripts run through every path (editor runs
//   with right and wrong PINs, a run failing after the VERIFY, the helper killed mid-run and at the
//   PIN prompt, the CLI in text, JSON and verbose), then every file code-server, Chromium, the
//   extension and the helper wrote, the workspace, the test's own output, the processes' stdout and
//   stderr, the helper's messages to the extension and the webview DOM are searched for the PIN in
//   each encoding `${pin}` supports (a control proves the search finds a planted PIN);
// - the last try of a PIN is confirmed in a modal dialog before the PIN is asked;
// - scripts wait for Workspace Trust.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, resultsDir, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();
const READER = 'Workbench Simulator 00 00';
// Distinctive 8-digit PINs (a short PIN like 1234 turns up by chance in binary files).
const PIN = '73915862';
const WRONG = '46028157';
const TEE = path.join(root, 'test', 'e2e', 'fixtures', 'tee-helper.cjs');
const outDir = path.join(resultsDir, 'security');

// ---- the scanner ------------------------------------------------------------------------------

/** Every form a PIN can take on the way to the card (`${pin}`: ascii, bcd, format2), as text and as raw bytes. */
export function pinForms(pin) {
  const hex = (b) => b.toString('hex');
  const spaced = (h) => h.match(/../g).join(' ');
  const ascii = Buffer.from(pin, 'ascii');
  const bcd = Buffer.from(pin.length % 2 ? `${pin}f` : pin, 'hex');
  const block = Buffer.from(`2${pin.length.toString(16)}${pin}${'f'.repeat(14 - pin.length)}`, 'hex');
  return [
    // text forms, matched without regard to case (hex may be upper or lower case)
    { name: 'ASCII (also BCD as hex)', text: pin },
    { name: 'hex of the ASCII digits', text: hex(ascii) },
    { name: 'spaced hex of the ASCII digits', text: spaced(hex(ascii)) },
    { name: 'spaced BCD hex', text: spaced(hex(bcd)) },
    { name: 'format-2 PIN block hex', text: hex(block) },
    { name: 'spaced format-2 PIN block hex', text: spaced(hex(block)) },
    { name: 'base64 of the ASCII digits', bytes: Buffer.from(ascii.toString('base64').replace(/=+$/, '')) },
    // raw bytes (binary stores: SQLite, LevelDB, caches)
    { name: 'UTF-16LE', bytes: Buffer.from(pin, 'utf16le') },
    { name: 'raw BCD bytes', bytes: bcd },
    { name: 'raw format-2 PIN block', bytes: block },
  ].map((f) => (f.text ? { name: f.name, bytes: Buffer.from(f.text.toLowerCase(), 'latin1'), ci: true } : f));
}

const NEEDLES = [...pinForms(PIN).map((f) => ({ ...f, pin: 'PIN' })), ...pinForms(WRONG).map((f) => ({ ...f, pin: 'wrong PIN' }))];

/** The needles found in a buffer (names only: a report never prints the PIN). */
export function findPin(buf, needles = NEEDLES) {
  let lower;
  const hits = [];
  for (const n of needles) {
    let hay = buf;
    if (n.ci) hay = lower ??= Buffer.from(buf.toString('latin1').toLowerCase(), 'latin1');
    if (hay.indexOf(n.bytes) >= 0) hits.push(`${n.pin}: ${n.name}`);
  }
  return hits;
}

/** Searches every regular file under `dir`; returns counts and the hits (file + form). */
function scanTree(dir, needles = NEEDLES) {
  const res = { files: 0, bytes: 0, hits: [] };
  const walk = (d) => {
    let entries;
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        let buf;
        try { buf = fs.readFileSync(p); } catch { continue; }
        res.files++;
        res.bytes += buf.length;
        for (const h of findPin(buf, needles)) res.hits.push(`${path.relative(dir, p)}: ${h}`);
      }
    }
  };
  walk(dir);
  return res;
}

// ---- the workbench the PIN tests share --------------------------------------------------------

const SELECT = '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00';
const SCRIPTS = {
  'verify.apdu': [SELECT, '00 20 00 01 08 ${pin:"User PIN"} => 90 00', '00 A4 02 0C 02 50 03 => 90 00', '00 B0 00 00 00 => * 90 00 | * 62 82'],
  // The PIN in each encoding (to an instruction the card does not know, so no try is used), then a
  // failing line after the VERIFY.
  'fails-after-verify.apdu': [SELECT, '00 20 00 01 08 ${pin:"User PIN"} => 90 00',
    '00 2C 00 81 08 ${pin:"PIN as BCD", bcd, pad=8, fill=FF} => 6D 00',
    '00 2C 00 81 08 ${pin:"PIN block", format2} => 6D 00',
    '00 B0 00 00 00 => 69 99'],
  'pin-long.apdu': [SELECT, '00 20 00 01 08 ${pin:"User PIN"} => 90 00', 'repeat 400', '  00 84 00 00 08 => ?? ?? ?? ?? ?? ?? ?? ?? 90 00', '  delay 10', 'end'],
  'tries-1.apdu': [SELECT, '00 20 00 01 => 63 C1'],
  'tries-3.apdu': [SELECT, '00 20 00 01 => 63 C3'],
};

let shared;
let workspace;
let codeServerOutput = '';

async function workbench() {
  if (shared) return shared;
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-security-ws-'));
  for (const [f, lines] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(workspace, f), `${lines.join('\n')}\n`);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  shared = await launchWorkbench({
    workspace, name: 'security',
    settings: { 'smartcard.simulator.pin': PIN, 'smartcard.pin.cache': 'session' },
    env: { SMARTCARD_SERVER_MODULE: TEE, SMARTCARD_HELPER_OUTPUT: path.join(outDir, 'helper-output.log') },
  });
  // Everything code-server (and the extension host under it) prints, from here on (its own buffer holds the start).
  codeServerOutput = shared.cs.output();
  for (const s of [shared.cs.child.stdout, shared.cs.child.stderr]) s?.on('data', (d) => { codeServerOutput += d.toString('latin1'); });
  return shared;
}

after(async () => {
  if (shared) {
    await screenshot(shared.page, 'security-end').catch(() => undefined);
    await shared.close();
  }
  if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
});

const passwordBox = (page) => page.locator('.quick-input-widget input[type="password"]');

/** Answers `pins.length` masked PIN prompts in turn. */
async function answerPins(page, pins) {
  for (const pin of pins) {
    const box = passwordBox(page);
    await box.waitFor({ timeout: 30_000 });
    await box.fill(pin);
    await box.press('Enter');
    await box.waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

/** Makes a workspace script the active editor (its tab, when open: the APDU Log may hold the focus). */
async function openScript(page, file) {
  const tab = page.locator(`.tabs-container .tab[aria-label*="${file}"]`).first();
  if (await tab.count()) {
    await tab.click();
    await page.locator('.editor-group-container.active .tab.active', { hasText: file }).waitFor();
    await page.locator('.editor-group-container.active .monaco-editor.focused').waitFor({ timeout: 10_000 }).catch(() => undefined);
  } else {
    await openFile(page, file);
  }
}

/** Runs a workspace script, answers its PIN prompts, returns the result notification. */
async function run(page, file, pins, result) {
  await openScript(page, file);
  await runCommand(page, 'Smart Card: Run APDU Script');
  await answerPins(page, pins);
  return notification(page, result);
}

async function waitRunning(page) {
  await page.locator('.statusbar-item', { hasText: /Smart Card: running \(1 reader\)/ }).waitFor({ timeout: 60_000 });
}

function step(t0, what) { console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`); }

// ---- the tests --------------------------------------------------------------------------------

test('the last try: a modal confirmation before the PIN is asked; Cancel sends nothing, confirming proceeds', { skip, timeout: 300_000 }, async () => {
  const { page } = await workbench();
  const t0 = Date.now();
  // A fresh card (3 tries), then two wrong PINs leave one try.
  await runCommand(page, 'Smart Card: Remove Simulator Card');
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  await page.locator('.monaco-list-row', { hasText: 'no card' }).waitFor({ timeout: 30_000 });
  await runCommand(page, 'Smart Card: Insert Simulator Card');
  await page.locator('.monaco-list-row', { hasText: /ATR 3B|card present/ }).waitFor({ timeout: 30_000 });
  await run(page, 'tries-3.apdu', [], /Script passed/);
  for (const left of ['63 C2', '63 C1']) {
    const text = await run(page, 'verify.apdu', [WRONG], /Script failed at line 2/);
    assert.match(text, new RegExp(left));
  }
  await run(page, 'tries-1.apdu', [], /Script passed/);
  step(t0, 'one try left');

  const log = logFrame(page);
  const verifies = log.locator('[data-kind="exchange"]', { hasText: /00 20 00 01 08/ });
  const counterReads = log.locator('[data-kind="exchange"][data-auto="retryCounter"]');
  // The panel may sit behind the script's tab: bring it forward before reading it.
  await runCommand(page, 'Smart Card: Show APDU Log');
  await verifies.nth(1).waitFor({ timeout: 10_000 });
  const sentBefore = await verifies.count();
  const readsBefore = await counterReads.count();
  assert.equal(sentBefore, 2, 'the two wrong VERIFYs are in the log');

  // Cancel: no PIN prompt, no VERIFY sent, the counter unchanged.
  await openScript(page, 'verify.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ timeout: 30_000 });
  assert.match(await dialog.innerText(), /Only 1 try is left for the PIN "User PIN" on Workbench Simulator 00 00\. A wrong PIN blocks it\. Send the VERIFY\?/);
  assert.equal(await passwordBox(page).isVisible(), false, 'the PIN is not asked before the confirmation');
  await screenshot(page, 'security-last-try');
  await dialog.locator('.monaco-button', { hasText: 'Cancel' }).click();
  const cancelled = await notification(page, /Stopped before the VERIFY/);
  assert.match(cancelled, /only 1 try left for the PIN "User PIN"/);
  await counterReads.nth(readsBefore).waitFor({ timeout: 10_000 });
  assert.equal(await verifies.count(), sentBefore, 'no VERIFY with a PIN reached the card');
  await run(page, 'tries-1.apdu', [], /Script passed/);
  step(t0, 'cancelled: nothing sent, still one try');

  // Confirm: the PIN is asked and the VERIFY goes out.
  await openScript(page, 'verify.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await dialog.waitFor({ timeout: 30_000 });
  await dialog.locator('.monaco-button', { hasText: 'Use the last try' }).click();
  await answerPins(page, [PIN]);
  await notification(page, /Script passed/);
  assert.equal(await verifies.count(), sentBefore + 1);
  step(t0, 'confirmed: verified');

  // Leave a fresh card (3 tries, no cached PIN) for the next test.
  await runCommand(page, 'Smart Card: Remove Simulator Card');
  await page.locator('.monaco-list-row', { hasText: 'no card' }).waitFor({ timeout: 30_000 });
  await runCommand(page, 'Smart Card: Insert Simulator Card');
  await page.locator('.monaco-list-row', { hasText: /ATR 3B|card present/ }).waitFor({ timeout: 30_000 });
  await run(page, 'tries-3.apdu', [], /Script passed/);
  step(t0, 'card reset to 3 tries');
});

function scratchWorkspace(name, files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `smartcard-${name}-ws-`));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

test('an untrusted workspace: Run APDU Script refuses and says why; after trusting the folder it runs', { skip, timeout: 180_000 }, async () => {
  const ws = scratchWorkspace('trust', { 'hello.apdu': fs.readFileSync(path.join(root, 'examples', 'hello.apdu'), 'utf8') });
  const wb = await launchWorkbench({ workspace: ws, name: 'trust', workspaceTrust: true });
  const { page } = wb;
  try {
    const t0 = Date.now();
    // Restricted Mode shows in the status bar.
    await page.locator('.statusbar-item', { hasText: /Restricted Mode/ }).waitFor({ timeout: 30_000 });
    await openFile(page, 'hello.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    const text = await notification(page, /untrusted workspace/);
    assert.match(text, /APDU scripts do not run in an untrusted workspace\. Trust the workspace to run them\./);
    assert.equal(await logFrame(page).locator('[data-kind="exchange"]').count().catch(() => 0), 0, 'nothing reached the card');
    await screenshot(page, 'security-untrusted');

    // Trust the folder the way a user does: Workspaces: Manage Workspace Trust → Trust.
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    await page.locator('.workspace-trust-editor').waitFor({ timeout: 30_000 });
    await screenshot(page, 'security-trust-editor');
    await page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust/ }).first().click();
    await page.locator('.statusbar-item', { hasText: /Restricted Mode/ }).waitFor({ state: 'detached', timeout: 30_000 });

    await openFile(page, 'hello.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    await notification(page, /Script passed: \d+ commands?/);
    console.log(`# trust: refused, trusted and ran in ${Date.now() - t0} ms`);
  } finally {
    await screenshot(page, 'security-trust-end').catch(() => undefined);
    await wb.close();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
