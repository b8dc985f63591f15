// Security in real VS Code (code-server + Chromium):
// - a PIN never reaches any byte written anywhere: PIN scripts run through every path (editor runs
//   with right and wrong PINs, a run failing after the VERIFY, the helper killed mid-run and at the
//   PIN prompt, the CLI in text, JSON and verbose, the panel with a VERIFY decoded, the log exported
//   as text and JSON Lines), then every file code-server, Chromium, the extension and the helper wrote
//   (the persisted APDU Log included), the workspace, the test's own output, the processes' stdout and
//   stderr, the helper's messages to the extension and the webview DOM are searched for the PIN in
//   each encoding `${pin}` supports (a control proves the search finds a planted PIN);
//   The language client's trace is at verbose the whole time (its output channel at Trace): PINs
//   cross JSON-RPC only sealed, and the per-helper keys that seal them are searched for too;
// - the last try of a PIN is confirmed in a modal dialog before the PIN is asked;
// - a workspace cannot load a PC/SC library into the helper (Restricted Mode, and trusted: the
//   setting is machine-scoped), while the same path in the machine's own settings is loaded;
// - the persisted APDU Log: where it is, Clear deletes it, smartcard.log.persist false writes nothing;
// - scripts wait for Workspace Trust.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { answerExport, launchWorkbench, LOG_IFRAME, logFrame, missingPrerequisite, notification, openFile, resultsDir, root, runCommand, screenshot } from './support.mjs';

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

// The simulated card's own PIN is a setting (smartcard.simulator.pin): it sits in settings.json (and
// VS Code's local history of that file) by the test's own hand. Those occurrences, and only those,
// are blanked before the search; every one is counted in the report. The wrong PIN has no exception.
const SIM_SETTING = new RegExp(`"smartcard\\.simulator\\.pin"\\s*:\\s*"${PIN}"`, 'g');
const excluded = [];

/** Searches every regular file under `dir` (but folders in `skip`); returns counts and the hits (file + form). */
function scanTree(dir, needles = NEEDLES, skip = []) {
  const res = { files: 0, bytes: 0, hits: [] };
  const walk = (d) => {
    if (skip.includes(d)) return;
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
        if (/settings\.json$|[/\\]History[/\\]/.test(p)) {
          const text = buf.toString('latin1');
          const n = (text.match(SIM_SETTING) ?? []).length;
          if (n) {
            excluded.push(`${path.relative(dir, p)} (${n})`);
            buf = Buffer.from(text.replace(SIM_SETTING, '"smartcard.simulator.pin": "…"'), 'latin1');
          }
        }
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
  // Long enough to be still running when the helper is killed (at most about 45 s: the verbose trace
  // slows the extension host, so the panel runs seconds behind the helper).
  'pin-long.apdu': [SELECT, '00 20 00 01 08 ${pin:"User PIN"} => 90 00', 'repeat 4000', '  00 84 00 00 08 => ?? ?? ?? ?? ?? ?? ?? ?? 90 00', '  delay 10', 'end'],
  'tries-1.apdu': [SELECT, '00 20 00 01 => 63 C1'],
  'tries-3.apdu': [SELECT, '00 20 00 01 => 63 C3'],
};

let shared;
let workspace;
let codeServerOutput = '';
// The PIN keys the extension gave each helper (recorded by the tee helper), outside everything searched.
const keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-security-keys-'));
const keysFile = path.join(keysDir, 'keys');

async function workbench() {
  if (shared) return shared;
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-security-ws-'));
  for (const [f, lines] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(workspace, f), `${lines.join('\n')}\n`);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  shared = await launchWorkbench({
    workspace, name: 'security',
    // The language client's trace at its most verbose: every message with its parameters and results
    // goes to the Smart Card output channel and VS Code's log file of it (with the channel at Trace, below).
    // PC/SC off: a system pcscd (another test's) would add readers to the status bar's count.
    settings: { 'smartcard.simulator.pin': PIN, 'smartcard.pin.cache': 'session', 'smartcard.trace.server': 'verbose', 'smartcard.pcsc.enabled': false },
    env: { SMARTCARD_SERVER_MODULE: TEE, SMARTCARD_HELPER_OUTPUT: path.join(outDir, 'helper-output.log'), SMARTCARD_HELPER_KEYS: keysFile },
  });
  // Everything code-server (and the extension host under it) prints, from here on (its own buffer holds the start).
  codeServerOutput = shared.cs.output();
  for (const s of [shared.cs.child.stdout, shared.cs.child.stderr]) s?.on('data', (d) => { codeServerOutput += d.toString('latin1'); });
  // The Smart Card channel's log level to Trace (Developer: Set Log Level… → Smart Card → Trace): with it,
  // vscode-languageclient traces at `smartcard.trace.server`.
  const { page } = shared;
  await runCommand(page, 'Smart Card: Show APDU Log');
  await waitRunning(page);
  await setLogLevelTrace(page, 'Smart Card');
  return shared;
}

/**
 * Developer: Set Log Level… → CHANNEL → Trace. The channel is typed into the pick's filter before it is clicked (the
 * list is virtualized: only the rows in view exist), and its row is found by its label: a CI run waited 30 s for a row
 * whose whole text was the channel's name alone; a pick that does not show it is closed and asked again.
 */
async function setLogLevelTrace(page, channel, timeout = 60_000) {
  const input = page.locator('.quick-input-widget input');
  // Matched on the row's label: a row first in its group also shows the group's name (a separator inside the row), so
  // its whole text is not the channel's name alone.
  const row = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${channel}$`) }) }).first();
  const deadline = Date.now() + timeout;
  for (;;) {
    await runCommand(page, 'Developer: Set Log Level');
    try {
      await input.fill(channel, { timeout: 5000 });
      await row.waitFor({ timeout: 10_000 });
      await row.click({ timeout: 5000 });
      break;
    } catch (err) {
      await page.keyboard.press('Escape').catch(() => undefined);
      if (Date.now() > deadline) throw err;
    }
  }
  await page.locator('.quick-input-list .monaco-list-row', { hasText: /^Trace/ }).first().click();
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
}

after(async () => {
  if (shared) {
    await screenshot(shared.page, 'security-end').catch(() => undefined);
    await shared.close();
  }
  if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
  fs.rmSync(keysDir, { recursive: true, force: true });
});

const passwordBox = (page) => page.locator('.quick-input-widget input[type="password"]');

/** The title of every PIN prompt answered, in order. */
const promptTitles = [];

/** Answers `pins.length` masked PIN prompts in turn. */
async function answerPins(page, pins) {
  for (const pin of pins) {
    const box = passwordBox(page);
    await box.waitFor({ timeout: 30_000 });
    promptTitles.push(await page.locator('.quick-input-widget .quick-input-title').innerText());
    await box.fill(pin);
    await box.press('Enter');
    // Accepted: the box hides, or shows empty for the next prompt.
    await page.waitForFunction(() => {
      const i = document.querySelector('.quick-input-widget input[type="password"]');
      return !i || !i.checkVisibility() || i.value === '';
    }, undefined, { timeout: 10_000 });
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

/**
 * How many rows of a kind whose trace text holds `text` the panel's model has (its list renders
 * only the rows in view), once there are at least `atLeast` (or when `timeout` ms have passed).
 */
function modelCount(log, kind, text, atLeast = 0, timeout = 30_000) {
  return log.locator('body').evaluate(async (_, [k, t, n, ms]) => {
    const end = Date.now() + ms;
    while (window.apduLog.count(k, t) < n && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    return window.apduLog.count(k, t);
  }, [kind, text, atLeast, timeout]);
}

/** Smart Card: Export APDU Log in a format, to `file`. */
async function exportLog(page, format, file) {
  const { note, text } = await answerExport(page, format, file, () => runCommand(page, 'Smart Card: Export APDU Log'));
  assert.ok(note.includes(file));
  return text;
}

/** A modal dialog makes the workbench inert until it is gone: wait for that before using the palette. */
async function dialogGone(page) {
  await page.locator('.monaco-dialog-box').waitFor({ state: 'detached', timeout: 10_000 });
  await page.waitForFunction(() => !document.querySelector('.monaco-dialog-modal-block') && !document.querySelector('[inert]'), undefined, { timeout: 10_000 });
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
  const VERIFY = '00 20 00 01 08';
  const COUNTER = 'PIN retry counter check';
  const sentBefore = await modelCount(log, 'exchange', VERIFY, 2);
  const readsBefore = await modelCount(log, 'exchange', COUNTER, 2);
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
  await dialogGone(page);
  const cancelled = await notification(page, /Stopped before the VERIFY/);
  assert.match(cancelled, /only 1 try left for the PIN "User PIN"/);
  assert.equal(await modelCount(log, 'exchange', COUNTER, readsBefore + 1), readsBefore + 1, 'the counter was read');
  assert.equal(await modelCount(log, 'exchange', VERIFY), sentBefore, 'no VERIFY with a PIN reached the card');
  await run(page, 'tries-1.apdu', [], /Script passed/);
  step(t0, 'cancelled: nothing sent, still one try');

  // Confirm: the PIN is asked and the VERIFY goes out.
  await openScript(page, 'verify.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await dialog.waitFor({ timeout: 30_000 });
  await dialog.locator('.monaco-button', { hasText: 'Use the last try' }).click();
  await dialogGone(page);
  await answerPins(page, [PIN]);
  await notification(page, /Script passed/);
  assert.equal(await modelCount(log, 'exchange', VERIFY, sentBefore + 1), sentBefore + 1);
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

/** Kills this workbench's helper (never another test's), waits until it is gone. */
function killHelper(wb) {
  const pids = wb.helperPids(TEE);
  assert.ok(pids.length >= 1, 'the helper process is running');
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  return pids;
}

test('a PIN reaches no byte written anywhere: editor runs, failures, helper crashes, the CLI, the panel, export; a planted PIN is found', { skip, timeout: 300_000 }, async () => {
  const wb = await workbench();
  const { page } = wb;
  const t0 = Date.now();
  const log = logFrame(page);
  const stopped = (file) => new RegExp(`The reader manager stopped while ${file.replace('.', '\\.')} was running`);

  // 1. Editor runs: the right PIN (cached for the session), a run failing after the VERIFY with the
  //    PIN in BCD and as a format-2 block, Clear PIN Cache, a wrong PIN, the right PIN again.
  await run(page, 'verify.apdu', [PIN], /Script passed/);
  const failed = await run(page, 'fails-after-verify.apdu', [PIN, PIN], /Script failed at line 5/);
  assert.match(failed, /expected 69 99, got 69 86/);
  assert.match(await (async () => { await runCommand(page, 'Smart Card: Clear PIN Cache'); return notification(page, /cached PIN/); })(), /Forgot 1 cached PIN\./);
  assert.match(await run(page, 'verify.apdu', [WRONG], /Script failed at line 2/), /63 C2/);
  await run(page, 'verify.apdu', [PIN], /Script passed/);
  // Each prompt names the label once, the reader and the script line.
  assert.deepEqual(promptTitles.slice(-5), [
    `User PIN — ${READER}, verify.apdu:2`,
    `PIN as BCD — ${READER}, fails-after-verify.apdu:3`, `PIN block — ${READER}, fails-after-verify.apdu:4`,
    `User PIN — ${READER}, verify.apdu:2`, `User PIN — ${READER}, verify.apdu:2`,
  ]);
  step(t0, 'editor runs: right, failing after the VERIFY, wrong, right');

  // 2. The helper killed while a script runs on a cached PIN: a clear error, the helper comes back,
  //    and the cache went with the old process (the PIN is asked again).
  await openScript(page, 'pin-long.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  const before = await modelCount(log, 'exchange', '00 84 00 00 08');
  const during = await modelCount(log, 'exchange', '00 84 00 00 08', before + 20);
  assert.ok(during >= before + 20, `the long run is under way (${before} → ${during} GET CHALLENGEs, ${await modelCount(log, 'exchange', '')} exchanges in the panel)`);
  assert.equal(await passwordBox(page).isVisible(), false, 'the session-cached PIN was used, not asked');
  killHelper(wb);
  assert.match(await notification(page, stopped('pin-long.apdu')), /restarts by itself/);
  await waitRunning(page);
  await run(page, 'verify.apdu', [PIN], /Script passed/);
  step(t0, 'helper killed mid-run: error, restart, PIN asked again (cache gone)');

  // 3. The helper killed while the PIN prompt is open: the run ends with the same clear error, the
  //    prompt closes with it, and the next run asks again.
  await runCommand(page, 'Smart Card: Clear PIN Cache');
  await notification(page, /Forgot 1 cached PIN\./);
  await openScript(page, 'verify.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await passwordBox(page).waitFor({ timeout: 30_000 });
  killHelper(wb);
  // Seen without the palette (opening it would close the prompt): the helper restarts...
  await page.locator('.statusbar-item', { hasText: /Smart Card: restarting/ }).waitFor({ timeout: 30_000 }).catch(() => undefined);
  await waitRunning(page);
  // ...and its PIN prompt went with it: no box left open for a PIN nobody would read.
  await passwordBox(page).waitFor({ state: 'hidden', timeout: 10_000 });
  const crashText = await notification(page, stopped('verify.apdu'));
  assert.match(crashText, /did not finish/);
  await run(page, 'verify.apdu', [PIN], /Script passed/);
  step(t0, 'helper killed at the PIN prompt: error, restart, next run asks');

  // 4. The CLI: text, --json, --verbose; right and wrong PIN; every encoding; a failure after the VERIFY.
  const cli = [];
  for (const file of ['verify.apdu', 'fails-after-verify.apdu']) {
    for (const [pin, flags] of [[PIN, []], [PIN, ['--json']], [PIN, ['--verbose']], [PIN, ['--json', '--verbose']], [WRONG, []], [WRONG, ['--json', '--verbose']]]) {
      const r = spawnSync(process.execPath, [path.join(root, 'bin', 'scard.js'), 'run', path.join(workspace, file), '--simulator-pin', PIN, ...flags], {
        env: { ...process.env, SCARD_PIN: pin }, encoding: 'utf8', timeout: 60_000,
      });
      const name = `cli-${file.replace('.apdu', '')}-${pin === PIN ? 'right' : 'wrong'}${flags.join('')}`;
      fs.writeFileSync(path.join(outDir, `${name}.stdout`), r.stdout);
      fs.writeFileSync(path.join(outDir, `${name}.stderr`), r.stderr);
      const expectOk = pin === PIN && file === 'verify.apdu';
      assert.equal(r.status, expectOk ? 0 : 1, `${name}: ${r.stderr}`);
      assert.match(r.stdout, /\*\* \*\* \*\* \*\*|"\*{16}|\*{16}/, `${name}: the VERIFY shows masked`);
      cli.push({ name, out: `${r.stdout}\n${r.stderr}` });
    }
  }
  step(t0, `CLI: ${cli.length} runs`);

  // 5. The panel: a VERIFY expanded into the helper's decoding, then the webview's DOM (text,
  //    attributes, markup) and the workbench's (incl. input values).
  await runCommand(page, 'Smart Card: Show APDU Log');
  const MASKED = '00 20 00 01 08 ** ** ** ** ** ** ** **';
  // 4 in step 1, 2 in step 2, 1 in step 3 (the run killed at the prompt sent none); and the BCD and format-2 commands.
  assert.ok(await modelCount(log, 'exchange', MASKED, 7) >= 7, 'the VERIFYs are in the panel, masked');
  assert.equal(await modelCount(log, 'exchange', '00 2C 00 81 08 ** ** ** ** ** ** ** **', 2), 2, 'the BCD and format-2 PINs are in the panel, masked');
  const verifyRow = log.locator('[data-kind="exchange"]', { hasText: MASKED }).last();
  await verifyRow.waitFor({ timeout: 10_000 });
  await verifyRow.locator('.apdu').click();
  const decoded = verifyRow.locator(':scope > .details [data-field="ins"]');
  await decoded.waitFor({ timeout: 30_000 });
  assert.match(await decoded.innerText(), /20 — VERIFY/);
  const decodedData = await verifyRow.locator(':scope > .details').innerText();
  assert.match(decodedData, /\*\*/, 'the decoding shows the PIN bytes masked');

  // 6. Export: the whole log as a text trace and as JSON Lines (into the test's output folder, searched below).
  const exported = {
    text: await exportLog(page, 'Text trace', path.join(outDir, 'export.txt')),
    jsonl: await exportLog(page, 'JSON Lines', path.join(outDir, 'export.jsonl')),
  };
  assert.ok(exported.text.includes(`> ${MASKED}`), 'the text export holds the masked VERIFYs');
  assert.match(exported.jsonl, /0020000108\*{16}|00 20 00 01 08( \*\*){8}/, 'the JSONL export holds the masked VERIFYs');
  step(t0, 'exported as text and JSON Lines');
  const dom = {
    'webview: inner frame markup': await log.locator('html').evaluate((e) => e.outerHTML),
    'webview: inner frame text': await log.locator('body').innerText(),
    'webview: host frame markup': await page.frameLocator('iframe.webview.ready').locator('html').evaluate((e) => e.outerHTML),
    'workbench: markup': await page.content(),
    'workbench: text': await page.locator('body').innerText(),
    'workbench: input values': await page.evaluate(() => [...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\n')),
  };
  await screenshot(page, 'security-panel');
  step(t0, 'panel read');

  // The log persisted in the extension's storage (written a second after the last row) is searched too.
  const storage = path.join(wb.tmp, 'userData', 'User');
  const persisted = () => { const f = []; const w = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) w(p); else if (e.name === 'apdu-log.jsonl') f.push(p); } }; w(storage); return f; };
  const persistDeadline = Date.now() + 20_000;
  const holdsMasked = (f) => /0020000108\*{16}|00 20 00 01 08( \*\*){8}/.test(fs.readFileSync(f, 'utf8'));
  while (!persisted().some(holdsMasked) && Date.now() < persistDeadline) {
    await new Promise((r) => setTimeout(r, 250));
  }

  // 7. Everything written: stop code-server and Chromium (logs flushed, storage written), keep their folders.
  await wb.close({ keep: true });
  shared = undefined;
  try {
    const persistedLogs = persisted();
    assert.ok(persistedLogs.some(holdsMasked), 'the persisted APDU Log (extension storage) holds the masked VERIFYs');
    fs.writeFileSync(path.join(outDir, 'code-server-output.log'), codeServerOutput);
    const helperOutput = fs.readFileSync(path.join(outDir, 'helper-output.log'), 'latin1');
    assert.ok((helperOutput.match(/^\[start\]/gm) ?? []).length >= 3, 'the helper output covers the first helper and both restarts');
    assert.match(helperOutput, /0020000108\*{16}/, 'the helper output holds the masked VERIFYs (the capture works)');
    assert.match(helperOutput, /^\[ipc in\] .*"result":\{"sealed":\{"nonce":/m, 'the capture holds the answers to the PIN prompts as they came in (sealed)');

    // The PIN keys too: every key the extension handed a helper (base64 as in the environment, hex, raw).
    const keys = fs.readFileSync(keysFile, 'utf8').split('\n').filter(Boolean);
    assert.ok(keys.length >= 3, `a key for the first helper and both restarts (${keys.length})`);
    assert.ok(keys.every((k) => Buffer.from(k, 'base64').length === 32), 'each helper got a 32-byte key in its environment');
    const ALL = [...NEEDLES, ...keys.flatMap((k, i) => {
      const raw = Buffer.from(k, 'base64');
      return [
        { pin: `PIN key ${i + 1}`, name: 'base64', bytes: Buffer.from(k.replace(/=+$/, ''), 'latin1') },
        { pin: `PIN key ${i + 1}`, name: 'hex', bytes: Buffer.from(raw.toString('hex'), 'latin1'), ci: true },
        { pin: `PIN key ${i + 1}`, name: 'raw bytes', bytes: raw },
      ];
    })];
    const places = [];
    const report = (where, res) => { places.push({ where, ...res }); };
    const dirs = fs.readdirSync(wb.tmp).map((d) => path.join(wb.tmp, d));
    const userData = path.join(wb.tmp, 'userData');
    const parts = [
      ['VS Code logs (code-server, extension host, output channels)', path.join(userData, 'logs')],
      ['extension and webview storage (globalStorage)', path.join(userData, 'User', 'globalStorage')],
      ['extension and webview storage (workspaceStorage)', path.join(userData, 'User', 'workspaceStorage')],
    ];
    for (const [where, d] of parts) report(`code-server user data: ${where}`, scanTree(d, ALL));
    report('code-server user data: the rest (settings, history, machine state)', scanTree(userData, ALL, parts.map(([, d]) => d)));
    for (const d of dirs.filter((x) => x !== userData)) report(`${path.basename(d) === 'profile' ? 'Chromium' : 'code-server'} ${path.basename(d)} folder`, scanTree(d, ALL));
    report('workspace', scanTree(workspace, ALL));
    report('test output (test-results/security: CLI and process output, helper capture)', scanTree(outDir, ALL));
    const shots = fs.readdirSync(resultsDir).filter((f) => f.startsWith('security-')).map((f) => path.join(resultsDir, f));
    report('screenshots (test-results/security-*.png)', shots.reduce((acc, f) => {
      const buf = fs.readFileSync(f);
      return { files: acc.files + 1, bytes: acc.bytes + buf.length, hits: [...acc.hits, ...findPin(buf, ALL).map((h) => `${path.basename(f)}: ${h}`)] };
    }, { files: 0, bytes: 0, hits: [] }));
    for (const [where, text] of [['code-server stdout/stderr', codeServerOutput], ['helper stdout/stderr/IPC messages', helperOutput],
      ...cli.map((c) => [`CLI ${c.name} stdout/stderr`, c.out]), ...Object.entries(dom)]) {
      const buf = Buffer.from(text, 'utf8');
      report(where, { files: 1, bytes: buf.length, hits: findPin(buf, ALL) });
    }
    // (In code-server the workbench's and extensions' memento state lives in Chromium's IndexedDB, in
    // the profile folder; globalStorage/workspaceStorage hold only what extensions write as files.)
    for (const p of places.filter((x) => /logs|profile/.test(x.where))) assert.ok(p.files > 0, `${p.where} holds files`);
    // The extension's output channel (the helper's log as the extension shows it) was among the files searched.
    const channel = [];
    const findLogs = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) findLogs(p); else if (/Smart Card|smartcard/i.test(e.name)) channel.push(p); } };
    findLogs(path.join(wb.tmp, 'userData', 'logs'));
    assert.ok(channel.length >= 1, 'the extension output channel\'s log file exists');
    const channelText = channel.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    assert.match(channelText, /The script asks for "User PIN — Workbench Simulator 00 00, verify\.apdu:2"/, 'the output channel log holds the PIN prompts (by label)');
    // The trace was on at verbose where it matters: prompts and their answers, and the helpers' initialize.
    assert.match(channelText, /\[trace\] Received request 'smartcard\/askPin - \(\d+\)'\.\s*Params: \{\s*"label": "User PIN",\s*"reader": "Workbench Simulator 00 00"/, 'the trace shows the PIN prompts with their parameters');
    assert.match(channelText, /\[trace\] Sending response 'smartcard\/askPin - \(\d+\)'[^\n]*\s*Result: \{\s*"sealed": \{\s*"nonce"/, 'the trace shows the answers (sealed)');
    const inits = channelText.split(/\[trace\] Sending request 'initialize - \(\d+\)'\./).slice(1).map((c) => c.split(/\[trace\] Received response 'initialize/)[0]);
    assert.ok(inits.length >= 2, `the trace shows the restarted helpers' initialize (${inits.length})`);
    assert.ok(inits.every((c) => /"initializationOptions": \{/.test(c) && /"sealedPin": \{\s*"nonce"/.test(c)), 'each traced initialize carries the simulator PIN sealed');

    console.log(`# searched for the PIN and the wrong PIN (ASCII, hex of the ASCII digits, BCD, format-2 PIN block, UTF-16, base64) and the ${keys.length} PIN keys (base64, hex, raw), with the language client's trace at verbose:`);
    let totalFiles = 0;
    let totalBytes = 0;
    for (const p of places) {
      totalFiles += p.files;
      totalBytes += p.bytes;
      console.log(`#   ${p.where}: ${p.files} file(s), ${p.bytes} bytes, ${p.hits.length} hit(s)`);
    }
    console.log(`#   the simulator card's PIN setting, blanked before the search: ${excluded.join(', ') || 'none'}`);
    console.log(`#   total: ${totalFiles} files, ${totalBytes} bytes; output channel logs: ${channel.map((f) => path.relative(wb.tmp, f)).join(', ')}; persisted APDU Log: ${persistedLogs.map((f) => path.relative(wb.tmp, f)).join(', ')}; exports: export.txt, export.jsonl`);
    const hits = places.flatMap((p) => p.hits.map((h) => `${p.where}: ${h}`));

    // 8. The control: the same search finds a planted PIN in every form, in a file in that tree.
    const control = path.join(wb.tmp, 'userData', 'control');
    fs.mkdirSync(control, { recursive: true });
    const forms = pinForms(PIN);
    forms.forEach((f, i) => fs.writeFileSync(path.join(control, `planted-${i}.bin`), Buffer.concat([Buffer.from('noise '), f.ci ? Buffer.from(f.bytes.toString('latin1').toUpperCase(), 'latin1') : f.bytes, Buffer.from(' noise')])));
    // The setting's exception hides only the setting: a PIN elsewhere in a settings.json is found.
    fs.writeFileSync(path.join(control, 'settings.json'), JSON.stringify({ 'smartcard.simulator.pin': PIN, 'some.other': `x${PIN}` }));
    const found = scanTree(control);
    assert.equal(found.files, forms.length + 1);
    assert.ok(found.hits.includes('settings.json: PIN: ASCII (also BCD as hex)'), 'a PIN beside the simulator setting is found');
    for (let i = 0; i < forms.length; i++) {
      assert.ok(found.hits.some((h) => h.startsWith(`planted-${i}.bin: PIN: ${forms[i].name}`)), `the control finds the planted ${forms[i].name}`);
    }
    console.log(`# control: ${found.hits.length} planted form(s) found in ${found.files} files`);
    step(t0, 'scanned');
    assert.deepEqual(hits, [], 'no PIN anywhere');
  } finally {
    fs.rmSync(wb.tmp, { recursive: true, force: true });
  }
});

// ---- a PIN written in a script (R88) ---------------------------------------------------------

// A third PIN, written in hex in the script itself; the file is the only place it may be.
const LITERAL = '58204719';

test('a PIN written in a script (a literal VERIFY, CHANGE REFERENCE DATA, a variable) is ** in the panel, its export, the output channel and the persisted log', { skip, timeout: 300_000 }, async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-literal-pin-ws-'));
  fs.cpSync(path.join(root, 'examples'), path.join(ws, 'examples'), { recursive: true });
  const hexPin = Buffer.from(LITERAL, 'ascii').toString('hex').toUpperCase();
  fs.writeFileSync(path.join(ws, 'examples', 'literal-pin.apdu'), [
    SELECT, `00 20 00 01 08 ${hexPin} => 90 00`, `00 24 00 01 10 ${hexPin}${hexPin} => 6D 00`,
    `let USERPIN = ${hexPin}`, '00 20 00 01 08 ${USERPIN} => 90 00', '',
  ].join('\n'));
  const needles = pinForms(LITERAL).map((f) => ({ ...f, pin: 'literal PIN' }));
  // Not named security-…: the test above searches every test-results/security-* file as a screenshot.
  const out = path.join(resultsDir, 'literal-pin');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const wb = await launchWorkbench({ workspace: ws, name: 'security-literal', settings: { 'smartcard.simulator.pin': LITERAL, 'smartcard.pcsc.enabled': false } });
  let closed = false;
  try {
    const { page } = wb;
    await runCommand(page, 'Smart Card: Show APDU Log');
    await waitRunning(page);
    await openFile(page, 'literal-pin.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    assert.match(await notification(page, /Script (passed|failed)/), /Script passed/);

    // The panel: both VERIFYs and the CHANGE REFERENCE DATA masked; decoded, the data stays `**`.
    const log = logFrame(page);
    const VERIFY = `00 20 00 01 08${' **'.repeat(8)}`;
    assert.equal(await modelCount(log, 'exchange', VERIFY, 2), 2, 'both VERIFYs (literal and from a variable) are in the panel, masked');
    assert.equal(await modelCount(log, 'exchange', `00 24 00 01 10${' **'.repeat(16)}`, 1), 1, 'the CHANGE REFERENCE DATA is in the panel, masked');
    const row = log.locator('[data-kind="exchange"]', { hasText: VERIFY }).last();
    await row.locator('.apdu').click();
    await row.locator(':scope > .details [data-field="ins"]').waitFor({ timeout: 30_000 });
    assert.match(await row.locator(':scope > .details').innerText(), /\*\*/, 'the decoding shows the data masked');
    await screenshot(page, 'security-literal-panel');
    const dom = {
      'webview: inner frame markup': await log.locator('html').evaluate((e) => e.outerHTML),
      'webview: inner frame text': await log.locator('body').innerText(),
      'webview: host frame markup': await page.frameLocator(LOG_IFRAME).locator('html').evaluate((e) => e.outerHTML),
    };

    // The export, as a text trace and as JSON Lines.
    const exported = {
      'export: text trace': await exportLog(page, 'Text trace', path.join(out, 'export.txt')),
      'export: JSON Lines': await exportLog(page, 'JSON Lines', path.join(out, 'export.jsonl')),
    };
    assert.ok(exported['export: text trace'].includes(`> ${VERIFY}`), 'the text export holds the masked VERIFY');
    assert.match(exported['export: JSON Lines'], /0020000108\*{16}/, 'the JSONL export holds the masked VERIFY');

    // The editor's hint, in the Problems view: the literal VERIFY and CHANGE REFERENCE DATA (not the variable's line).
    await runCommand(page, 'View: Focus Problems (Errors, Warnings, Infos)');
    await page.locator('.markers-panel').waitFor({ timeout: 30_000 });
    const hintRows = () => page.locator('.markers-panel .monaco-list-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('aria-label') ?? r.textContent).filter((t) => /a PIN written in the file/.test(t)));
    const hintDeadline = Date.now() + 30_000;
    let hints = await hintRows();
    while (hints.length < 2 && Date.now() < hintDeadline) { await new Promise((r) => setTimeout(r, 250)); hints = await hintRows(); }
    assert.equal(hints.length, 2, `two hints in the Problems view: ${hints.join(' | ')}`);
    assert.ok(hints.every((h) => /\$\{pin:"…"\} asks for it instead/.test(h)), hints.join(' | '));
    await screenshot(page, 'security-literal-problems');

    // The persisted APDU Log (written a second after the last row), then everything flushed.
    const storage = path.join(wb.tmp, 'userData', 'User');
    const persisted = () => { const f = []; const w = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) w(p); else if (e.name === 'apdu-log.jsonl') f.push(p); } }; w(storage); return f; };
    const holdsMasked = (f) => /0020000108\*{16}/.test(fs.readFileSync(f, 'utf8'));
    const deadline = Date.now() + 20_000;
    while (!persisted().some(holdsMasked) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    await wb.close({ keep: true });
    closed = true;
    const persistedLogs = persisted();
    assert.ok(persistedLogs.some(holdsMasked), 'the persisted APDU Log holds the masked VERIFY');

    // The output channel's log file (and every other VS Code log), the persisted log, the exports, the panel.
    const channel = [];
    const findLogs = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) findLogs(p); else if (/Smart Card|smartcard/i.test(e.name)) channel.push(p); } };
    findLogs(path.join(wb.tmp, 'userData', 'logs'));
    assert.ok(channel.length >= 1, 'the extension output channel\'s log file exists');
    assert.match(channel.map((f) => fs.readFileSync(f, 'utf8')).join('\n'), /literal-pin\.apdu/, 'the output channel logged the run');
    const places = [
      ['VS Code logs (output channels, extension host)', scanTree(path.join(wb.tmp, 'userData', 'logs'), needles)],
      ['persisted APDU Log', persistedLogs.reduce((acc, f) => { const b = fs.readFileSync(f); return { files: acc.files + 1, bytes: acc.bytes + b.length, hits: [...acc.hits, ...findPin(b, needles)] }; }, { files: 0, bytes: 0, hits: [] })],
      ...Object.entries({ ...exported, ...dom }).map(([where, text]) => { const b = Buffer.from(text, 'utf8'); return [where, { files: 1, bytes: b.length, hits: findPin(b, needles) }]; }),
    ];
    for (const [where, r] of places) console.log(`#   ${where}: ${r.files} file(s), ${r.bytes} bytes, ${r.hits.length} hit(s)`);
    // The control: the search finds the PIN where it is written, the script.
    assert.ok(findPin(fs.readFileSync(path.join(ws, 'examples', 'literal-pin.apdu')), needles).length > 0, 'the search finds the PIN in the script');
    assert.deepEqual(places.flatMap(([where, r]) => r.hits.map((h) => `${where}: ${h}`)), [], 'the written PIN is nowhere but in the script');
  } finally {
    if (!closed) await wb.close();
    fs.rmSync(ws, { recursive: true, force: true });
    if (closed) fs.rmSync(wb.tmp, { recursive: true, force: true });
  }
});

// ---- settings a workspace may not set ---------------------------------------------------------

/** Builds test/e2e/fixtures/marker-lib.c: a library whose loading appends to `marker`. */
function markerLibrary(dir) {
  const lib = path.join(dir, 'libmarker.so');
  const marker = path.join(dir, 'loaded.txt');
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-o', lib, path.join(root, 'test', 'e2e', 'fixtures', 'marker-lib.c'), `-DMARKER="${marker}"`], { encoding: 'utf8' });
  assert.equal(cc.status, 0, `gcc: ${cc.stderr}`);
  // The fixture's own control: koffi.load (what the PC/SC driver calls) leaves the mark.
  const load = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(root, 'node_modules', 'koffi'))}).load(${JSON.stringify(lib)})`], { encoding: 'utf8' });
  assert.equal(load.status, 0, load.stderr);
  assert.match(fs.readFileSync(marker, 'utf8'), /^loaded by pid \d+\n$/, 'loading the library writes the marker');
  fs.rmSync(marker);
  return { lib, marker };
}

/**
 * Waits until the APDU Log holds `n` "running" rows of the reader manager (each helper start adds
 * one). Counted in the log's model: in the bottom panel not every row is drawn.
 */
async function helperStarts(page, n, timeout = 60_000) {
  const starts = await logFrame(page).locator('body').evaluate(async (_, [want, ms]) => {
    const end = Date.now() + ms;
    while (window.apduLog.count('manager', '', 'running') < want && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    return window.apduLog.count('manager', '', 'running');
  }, [n, timeout]);
  if (starts < n) throw new Error(`the reader manager started ${starts} time(s), expected ${n}`);
  return starts;
}

/** The APDU Log files the extension persisted under code-server's user data. */
function persistedLogs(userData) {
  const found = [];
  const walk = (d) => {
    let entries;
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else if (e.name === 'apdu-log.jsonl') found.push(p); }
  };
  walk(path.join(userData, 'User'));
  return found;
}

/** Waits (bounded) until `check()` holds. */
async function until(what, check, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Changes code-server's remote machine settings (`<user data>/Machine/settings.json`, the Settings
 * editor's "Remote" tab): code-server applies edits of that file at once, and takes machine-scoped
 * settings from there only (not from `User/settings.json`, whose edits on disk it does not pick up).
 */
function editMachineSettings(wb, change) {
  const file = path.join(wb.tmp, 'userData', 'Machine', 'settings.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const old = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
  fs.writeFileSync(file, JSON.stringify({ ...old, ...change }, null, 2));
}

test('a workspace cannot load a PC/SC library into the helper (Restricted Mode, and trusted: machine scope); the same path in the machine settings is loaded', { skip, timeout: 300_000 }, async () => {
  const fixture = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-pcsclib-'));
  const { lib, marker } = markerLibrary(fixture);
  const ws = scratchWorkspace('pcsclib', { 'hello.apdu': fs.readFileSync(path.join(root, 'examples', 'hello.apdu'), 'utf8') });
  fs.mkdirSync(path.join(ws, '.vscode'));
  // What a cloned repository would carry.
  fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'smartcard.pcsc.library': lib, 'smartcard.pcsc.enabled': true }, null, 2));
  const wb = await launchWorkbench({ workspace: ws, name: 'pcsclib', workspaceTrust: true });
  const { page } = wb;
  try {
    const t0 = Date.now();
    await page.locator('.statusbar-item', { hasText: /Restricted Mode/ }).waitFor({ timeout: 30_000 });
    // The helper starts (the PC/SC driver loads its library before the helper reports "started").
    await runCommand(page, 'Smart Card: Show APDU Log');
    await helperStarts(page, 1);
    assert.equal(fs.existsSync(marker), false, 'Restricted Mode: the workspace\'s library was not loaded');
    step(t0, 'restricted: helper running, library not loaded');

    // Trusted: the setting is machine-scoped, so the workspace value still does not count.
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    await page.locator('.workspace-trust-editor').waitFor({ timeout: 30_000 });
    await page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust/ }).first().click();
    await page.locator('.statusbar-item', { hasText: /Restricted Mode/ }).waitFor({ state: 'detached', timeout: 30_000 });
    const modal = page.locator('.monaco-modal-editor-block');
    if (await modal.count()) {
      await modal.locator('.codicon-close, [aria-label^="Close"]').first().click();
      await modal.waitFor({ state: 'detached', timeout: 10_000 });
    }
    await runCommand(page, 'Smart Card: Restart Reader Manager');
    await runCommand(page, 'Smart Card: Show APDU Log');
    const starts = await helperStarts(page, 2);
    assert.equal(fs.existsSync(marker), false, 'trusted workspace: the machine-scoped setting is still not taken from it');
    step(t0, `trusted: helper restarted (${starts} starts), library not loaded`);

    // The control: the same setting in the machine's own settings is taken; the helper restarts and loads it.
    editMachineSettings(wb, { 'smartcard.pcsc.library': lib });
    await until('the user setting\'s library is loaded (marker written)', () => fs.existsSync(marker), 60_000);
    const pids = fs.readFileSync(marker, 'utf8').trim().split('\n').map((l) => Number(l.replace('loaded by pid ', '')));
    assert.ok(pids.every((pid) => wb.helperPids().includes(pid) || !fs.existsSync(`/proc/${pid}`)), 'loaded by the helper');
    step(t0, 'machine settings: library loaded by the helper');
  } finally {
    await screenshot(page, 'security-pcsclib-end').catch(() => undefined);
    await wb.close();
    fs.rmSync(ws, { recursive: true, force: true });
    fs.rmSync(fixture, { recursive: true, force: true });
  }
});

test('the persisted APDU Log: written to the extension storage, Clear deletes the file, smartcard.log.persist false writes nothing and deletes it', { skip, timeout: 240_000 }, async () => {
  const ws = scratchWorkspace('persist', { 'hello.apdu': fs.readFileSync(path.join(root, 'examples', 'hello.apdu'), 'utf8') });
  // PC/SC off: a system pcscd (another test's) would add readers and make the script's reader ambiguous.
  const wb = await launchWorkbench({ workspace: ws, name: 'persist', settings: { 'smartcard.pcsc.enabled': false } });
  const { page } = wb;
  const userData = path.join(wb.tmp, 'userData');
  const log = logFrame(page);
  const stored = () => persistedLogs(userData);
  const storedText = () => stored().map((f) => fs.readFileSync(f, 'utf8')).join('');
  try {
    const t0 = Date.now();
    await openFile(page, 'hello.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    await notification(page, /Script passed/);
    await until('the log is saved in the extension\'s storage', () => /"kind":"exchange"/.test(storedText()));
    const [file] = stored();
    assert.match(path.relative(userData, file), /^User[/\\]workspaceStorage[/\\][^/\\]+[/\\]smartcard-workbench\.smartcard-workbench[/\\]apdu-log\.jsonl$/, 'the path docs/security.md gives');
    step(t0, `saved: ${path.relative(userData, file)}`);

    // Clear in the panel: the rows and the file go.
    await runCommand(page, 'Smart Card: Show APDU Log');
    await log.locator('#clear').click();
    await log.locator('[data-kind="exchange"]').first().waitFor({ state: 'detached' });
    await until('Clear deleted the stored file', () => !fs.existsSync(file));
    step(t0, 'Clear: file deleted');

    // A new run writes a new file; turning persistence off deletes it.
    await openScript(page, 'hello.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    await notification(page, /Script passed/);
    await until('the new run is saved', () => /"kind":"exchange"/.test(storedText()));
    editMachineSettings(wb, { 'smartcard.log.persist': false });
    await until('persist off deleted the stored file', () => stored().length === 0);
    step(t0, 'persist off: file deleted');

    // Off: a run is shown in the panel and nothing is written, not after several save delays (1 s each) either.
    const before = await modelCount(log, 'exchange', '');
    await openScript(page, 'hello.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    await notification(page, /Script passed/);
    const after = await modelCount(log, 'exchange', '', before + 3);
    assert.ok(after >= before + 3, `the run is in the panel (${before} → ${after} exchanges)`);
    const quiet = Date.now() + 5000;
    await until('five seconds passed', () => Date.now() > quiet || stored().length > 0, 10_000);
    assert.deepEqual(stored(), [], 'nothing written while smartcard.log.persist is false');
    step(t0, 'persist off: a run, nothing written');

    // On again: what the panel holds is written whole (the run made while off included).
    editMachineSettings(wb, { 'smartcard.log.persist': true });
    const storedExchanges = () => storedText().split('\n').filter((l) => l.includes('"kind":"exchange"')).length;
    await until('persist on wrote every exchange the panel holds', async () => storedExchanges() >= after && storedExchanges() === await modelCount(log, 'exchange', ''));
    step(t0, 'persist on: everything written');
  } finally {
    await screenshot(page, 'security-persist-end').catch(() => undefined);
    await wb.close();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

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
    // A run opens the APDU Log before it starts: no tab, no run (and no helper was needed).
    assert.equal(await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).count(), 0, 'the run never started (no log tab)');
    assert.equal(await page.locator(LOG_IFRAME).count(), 0, 'the run never started (no log in the bottom panel)');
    await screenshot(page, 'security-untrusted');

    // Trust the folder the way a user does: Workspaces: Manage Workspace Trust → Trust.
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    await page.locator('.workspace-trust-editor').waitFor({ timeout: 30_000 });
    await screenshot(page, 'security-trust-editor');
    await page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust/ }).first().click();
    await page.locator('.statusbar-item', { hasText: /Restricted Mode/ }).waitFor({ state: 'detached', timeout: 30_000 });
    // The trust editor opens as a modal editor here: close it.
    const modal = page.locator('.monaco-modal-editor-block');
    if (await modal.count()) {
      await modal.locator('.codicon-close, [aria-label^="Close"]').first().click();
      await modal.waitFor({ state: 'detached', timeout: 10_000 });
    }
    assert.equal(await modal.count(), 0, 'the trust editor closed');

    await openScript(page, 'hello.apdu');
    await runCommand(page, 'Smart Card: Run APDU Script');
    await notification(page, /Script passed: \d+ commands?/);
    await logFrame(page).locator('[data-kind="exchange"][data-sw="9000"]').first().waitFor({ timeout: 30_000 });
    console.log(`# trust: refused, trusted and ran in ${Date.now() - t0} ms`);
  } finally {
    await screenshot(page, 'security-trust-end').catch(() => undefined);
    await wb.close();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
