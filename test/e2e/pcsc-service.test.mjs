// Issue 15 in real VS Code, with examples/ open: with `smartcard.pcscService.enabled` at its
// default (on, on Linux; set in the machine settings elsewhere), the helper serves its readers over the PC/SC service; a new
// integrated terminal has PCSCLITE_CSOCK_NAME, and Debian's own pcsc_scan and a pyscard
// one-liner typed into it see "Workbench Simulator 00 00"; pyscard's SELECT shows in the
// APDU Log. "Smart Card: Copy PC/SC Service Environment" says the export line it copied.
// The terminal's output goes to a file the test reads (xterm draws on a canvas).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, root, runCommand, screenshot } from './support.mjs';

const READER = 'Workbench Simulator 00 00';
const pyscard = spawnSync('/usr/bin/python3', ['-c', 'import smartcard'], { stdio: 'ignore' }).status === 0;
const pcscScan = spawnSync('sh', ['-c', 'command -v pcsc_scan'], { stdio: 'ignore' }).status === 0;
const skip = missingPrerequisite() || (!pyscard || !pcscScan ? 'needs pcsc_scan and python3-pyscard (sudo npm run setup:system)' : false);
let wb;
let runtime;
let out;

before(async () => {
  if (skip) return;
  // A private XDG_RUNTIME_DIR: the service's socket is this test's, not the machine user's.
  runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-e2e-pcsc-run-'));
  fs.chmodSync(runtime, 0o700);
  out = path.join(runtime, 'terminal-output.txt');
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'pcsc-service',
    env: { XDG_RUNTIME_DIR: runtime },
    settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false, 'smartcard.log.location': 'editor' },
    // Nothing set on Linux: the service is on by default there (the setting's documented default); elsewhere it is asked for.
    ...(process.platform === 'linux' ? {} : { machineSettings: { 'smartcard.pcscService.enabled': true } }),
  });
  await wb.context.grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => undefined);
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'pcsc-service-end').catch(() => undefined);
  await wb?.close();
  if (runtime) fs.rmSync(runtime, { recursive: true, force: true });
});

/** Waits (bounded) until the terminal's output file holds `marker`; returns the file. */
async function terminalOutput(marker, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
    if (text.includes(marker)) return text;
    if (Date.now() > deadline) throw new Error(`the terminal did not write ${marker} within ${timeout} ms; so far:\n${text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the service runs with the helper; Copy PC/SC Service Environment names its socket', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Smart Card: Show APDU Log'); // first use: the helper starts
  await page.locator('.statusbar-item', { hasText: 'Smart Card: running' }).first().waitFor({ timeout: 60_000 });
  const socket = path.join(runtime, 'smartcard-workbench', 'pcscd.comm');
  // The log panel opening can take the focus from the palette as Enter is pressed: run the command again then.
  let text;
  for (let i = 0; ; i++) {
    await runCommand(page, 'Smart Card: Copy PC/SC Service Environment');
    try {
      text = await notification(page, /Copied "export PCSCLITE_CSOCK_NAME=/, 15_000);
      break;
    } catch (err) {
      if (i >= 2) throw err;
    }
  }
  assert.ok(text.includes(`export PCSCLITE_CSOCK_NAME=${socket}`), text);
  assert.equal(fs.statSync(socket).mode & 0o777, 0o600);
});

test('in a new integrated terminal, pcsc_scan -r and pyscard see the simulator; the SELECT shows in the APDU Log', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Terminal: Create New Terminal');
  const terminal = page.locator('.terminal-wrapper.active .xterm, .terminal .xterm').first();
  await terminal.waitFor({ timeout: 30_000 });
  await terminal.click();
  const py = `from smartcard.System import readers; r=[x for x in readers() if str(x)=='${READER}'][0]; c=r.createConnection(); c.connect(); d,s1,s2=c.transmit([0,0xA4,4,0,7,0xF0,0x57,0x42,0x44,0x45,0x4D,0x4F]); print('PYSCARD', str(r), '%02X%02X' % (s1,s2))`;
  // Shell integration writes the command line itself (OSC 633;E) into the redirected file, so the
  // end marker is spelt DO''NE there: DONE is found only once the commands have run.
  const line = `{ echo "ENV=$PCSCLITE_CSOCK_NAME"; pcsc_scan -r; /usr/bin/python3 -c "${py}"; echo DO''NE; } > '${out}' 2>&1`;
  await page.keyboard.type(line, { delay: 2 });
  await page.keyboard.press('Enter');
  const text = await terminalOutput('DONE');
  assert.match(text, new RegExp(`ENV=${path.join(runtime, 'smartcard-workbench', 'pcscd.comm').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), text);
  assert.match(text, /0: Workbench Simulator 00 00/, text);
  assert.match(text, /PYSCARD Workbench Simulator 00 00 9000/, text);
  await screenshot(page, 'pcsc-service-terminal');

  await runCommand(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  const select = log.locator('[data-kind="exchange"][data-sw="9000"]', { hasText: /00 A4 04 00 07 F0 57 42 44 45 4D 4F/ }).first();
  await select.waitFor({ timeout: 30_000 });
  await screenshot(page, 'pcsc-service-log');
});

/** Opens the Smart Card container unless it is open already (a second click would close the side bar). */
async function showSmartCard(page) {
  const item = page.locator('.activitybar .action-item:has(a[aria-label^="Smart Card"])').first();
  if (!/\bchecked\b/.test((await item.getAttribute('class')) ?? '')) await item.locator('a').click();
  await page.locator('.monaco-list-row', { hasText: READER }).first().waitFor({ timeout: 30_000 });
}

test('a pyscard program holding the reader exclusively in a transaction shows under the reader as "python3 (pid N) · exclusive · in a transaction", its SELECT row in the APDU Log carries its name, and the row goes when it exits', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  const socket = path.join(runtime, 'smartcard-workbench', 'pcscd.comm');
  // The Readers view starts the helper (if the tests before did not); the service listens once its readers are known.
  await showSmartCard(page);
  for (const deadline = Date.now() + 30_000; !fs.existsSync(socket); await new Promise((r) => setTimeout(r, 200))) {
    if (Date.now() > deadline) throw new Error(`no service socket at ${socket} within 30 s`);
  }
  const env = { ...process.env, PCSCLITE_CSOCK_NAME: socket };
  delete env.LD_LIBRARY_PATH;
  const child = spawn('/usr/bin/python3', [path.join(root, 'test/support/py/pcsc_holder.py'), READER, 'exclusive', 'tx'], { env });
  try {
    const pid = await new Promise((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`the pyscard holder did not connect within 30 s: ${text}`)), 30_000);
      child.stdout.on('data', (b) => {
        text += b.toString();
        const line = text.split('\n').find((l) => l.startsWith('{'));
        if (!line) return;
        clearTimeout(timer);
        const o = JSON.parse(line);
        if (o.connected !== 0 || o.sw !== '9000') reject(new Error(`the holder failed: ${line}`));
        else resolve(o.pid);
      });
      child.stderr.on('data', (b) => { text += b.toString(); });
    });
    const name = `python3 (pid ${pid})`;

    // The Readers view, as a person opens it: the Smart Card container in the activity bar.
    await showSmartCard(page);
    const row = page.locator(`.monaco-list-row[aria-label="${name} · exclusive · in a transaction"]`).first();
    await row.waitFor({ timeout: 30_000 });
    const text = await row.innerText();
    assert.match(text, new RegExp(`${name.replace(/[()]/g, '\\$&')}\\s*exclusive · in a transaction`), text);
    await screenshot(page, 'pcsc-service-readers-client');

    await runCommand(page, 'Smart Card: Show APDU Log');
    const log = logFrame(page);
    const select = log.locator(`[data-kind="exchange"][data-client="${name}"]`, { hasText: /00 A4 04 00 07 F0 57 42 44 45 4D 4F/ }).first();
    await select.waitFor({ timeout: 30_000 });
    assert.match(await select.innerText(), new RegExp(name.replace(/[()]/g, '\\$&')));
    await screenshot(page, 'pcsc-service-log-client');

    // The program exits: its row goes.
    child.kill('SIGKILL');
    await showSmartCard(page);
    await page.locator(`.monaco-list-row[aria-label^="${name}"]`).first().waitFor({ state: 'detached', timeout: 30_000 });
  } finally {
    child.kill('SIGKILL');
  }
});
