// The reader manager's failure actions in real VS Code: a helper that crashes every
// time is restarted after the first delay, after the second, then stays down until
// "Smart Card: Restart Reader Manager"; commands say it is not running meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, root, runCommand, screenshot } from './support.mjs';

const helper = path.join(root, 'test/e2e/fixtures/crashing-helper.cjs');
const skip = missingPrerequisite();
let wb;

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'),
    name: 'restart',
    env: { SMARTCARD_SERVER_MODULE: helper },
    settings: { 'smartcard.readerManager.restartDelays': [0.3, 0.6] },
  });
}, { timeout: 120_000 });

after(async () => {
  // The last state of the page, for reading a failure.
  if (wb) await screenshot(wb.page, 'restart-end').catch(() => undefined);
  await wb?.close();
});

test('a crashing helper is restarted twice, then stays down', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Smart Card: Show APDU Log');
  await page.locator('.statusbar-item', { hasText: 'Smart Card: stopped' }).waitFor({ timeout: 30_000 });
  const log = logFrame(page);
  await log.locator('[data-kind="manager"][data-state="stopped"]').first().waitFor();
  // Counted in the log's model: in the bottom panel not every row is drawn.
  assert.equal(await managerRows(log, 'starting'), 3, 'first start and two restarts');
  assert.equal(await managerRows(log, 'restarting'), 2);
  assert.equal(await managerRows(log, 'stopped'), 1);
  assert.match(await log.locator('[data-kind="manager"][data-state="stopped"]').innerText(), /Restart Reader Manager/);
  await screenshot(page, 'restart-stopped');
});

test('commands say the reader manager is not running', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Smart Card: Refresh Readers');
  const text = await notification(page, /The reader manager is not running/);
  assert.match(text, /Restart Reader Manager/);
  // The Readers view's operations from the palette say so too, before asking for a reader.
  for (const title of ['Smart Card: Connect…', 'Smart Card: Power Off Card', 'Smart Card: Send Control Command…']) {
    await runCommand(page, title);
    assert.match(await notification(page, /The reader manager is not running/), /Restart Reader Manager/, title);
  }
});

test('Restart Reader Manager starts it again with a fresh failure count', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  await runCommand(page, 'Smart Card: Restart Reader Manager');
  // Fresh count: two more automatic restarts before it stops again.
  const deadline = Date.now() + 30_000;
  while (await managerRows(log, 'stopped') < 2) {
    if (Date.now() > deadline) throw new Error('the reader manager did not stop a second time');
    await log.locator('body').evaluate(() => new Promise((r) => setTimeout(r, 100)));
  }
  assert.equal(await managerRows(log, 'starting'), 6);
  assert.equal(await managerRows(log, 'restarting'), 4);
  await page.locator('.statusbar-item', { hasText: 'Smart Card: stopped' }).waitFor();
});

/** The reader manager's rows in one state, in the log's model. */
function managerRows(log, state) {
  return log.locator('body').evaluate((_, st) => window.apduLog.count('manager', '', st), state);
}
