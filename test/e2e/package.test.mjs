// `npm run package` builds a .vsix that installs offline in code-server and works
// there as installed (not loaded from the working tree), native drivers included.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand } from './support.mjs';

const skip = missingPrerequisite();
const target = `${process.platform}-${process.arch}`;
const vsix = path.join(root, `smartcard-workbench-${target}.vsix`);
let wb;

before(async () => {
  if (skip) return;
  const r = spawnSync('npm', ['run', '-s', 'package'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  assert.equal(r.status, 0, `npm run package failed:\n${r.stdout}\n${r.stderr}`);
  assert.ok(fs.existsSync(vsix), `${vsix} was written`);
  wb = await launchWorkbench({ workspace: path.join(root, 'examples'), name: 'package', vsix });
}, { timeout: 400_000 });

after(async () => {
  await wb?.close();
  fs.rmSync(vsix, { force: true });
  // npm run package left production bundles in out/: the other suites use the development build.
  spawnSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'ignore' });
});

test('the .vsix installs offline in code-server and runs a script, with its native drivers loading', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  await page.locator('.monaco-list-row', { hasText: 'Workbench Simulator 00 00' }).waitFor({ timeout: 60_000 });
  await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await notification(page, /Script passed: \d+ commands?/);
  // The PC/SC (koffi) and USB (usb) drivers come from the package's node_modules.
  const running = logFrame(page).locator('[data-kind="manager"][data-state="running"]').first();
  await running.waitFor();
  // pcsc: running, or waiting for a PC/SC service that is not running here, either way koffi
  // loaded libpcsclite (a koffi that cannot load makes the driver fail with its reason).
  // usb-ccid: running, or idle where the machine has no USB (/sys/bus/usb); that the package's
  // own usb binary loads is checked in the package tier (test/package: koffi and usb load from
  // the unpacked linux-x64 package).
  const text = await running.innerText();
  assert.match(text, /pcsc (running|waiting for the PC\/SC service)/);
  assert.match(text, /usb-ccid (running|unavailable)/);
  assert.doesNotMatch(text, /pcsc failed|usb-ccid failed/);
});
