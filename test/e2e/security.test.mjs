// Security in real VS Code (code-server + Chromium): scripts wait for Workspace Trust.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();

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
