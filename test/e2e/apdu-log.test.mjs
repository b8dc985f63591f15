// The APDU Log with the T=0 demo card: automatic GET RESPONSE steps nested under
// the exchange that caused them, history for a panel opened late, the PIN prompt, filter and clear.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();
let wb;

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'apdu-log', settings: { 'smartcard.simulator.card': 'T=0', 'smartcard.log.location': 'editor' }, // the log as an editor tab: closed and reopened below
    // A PC/SC library that does not exist: that driver fails, the others carry on (a machine-scoped setting).
    machineSettings: { 'smartcard.pcsc.library': '/nonexistent/libpcsclite.so.1' },
  });
}, { timeout: 120_000 });

after(async () => {
  // The last state of the page, for reading a failure.
  if (wb) await screenshot(wb.page, 'apdu-log-end').catch(() => undefined);
  await wb?.close();
});

test('a T=0 card: GET RESPONSE is nested under the SELECT that answered 61xx', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await notification(page, /Script passed/);
  const log = logFrame(page);
  const parent = log.locator('[data-kind="exchange"][data-sw^="61"]').first();
  await parent.waitFor();
  const child = parent.locator(':scope > .children > [data-kind="exchange"][data-auto="getResponse"]');
  await child.waitFor();
  assert.match(await child.innerText(), /GET RESPONSE/);
  assert.match(await child.innerText(), />\s+00 C0 00 00/);
  assert.equal(await child.getAttribute('data-sw'), '9000');
  await screenshot(page, 'apdu-log-t0', { docs: true });
});

test('a panel opened late shows what happened before', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  const before = await log.locator('[data-kind="exchange"]').count();
  assert.ok(before >= 5);
  // Close the panel (it is the active editor of its group after a click on its tab) and open it again.
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).click();
  await runCommand(page, 'View: Close Editor');
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).waitFor({ state: 'detached' });
  await runCommand(page, 'Smart Card: Show APDU Log');
  await log.locator('[data-kind="exchange"]').nth(before - 1).waitFor();
  assert.equal(await log.locator('[data-kind="exchange"]').count(), before);
  assert.ok(await log.locator('[data-kind="cardPowered"]').count() >= 1);
});

test('the list of rows paints the panel\'s background, opaque: the compositor draws its layer without blending', { skip, timeout: 60_000 }, async () => {
  const log = logFrame(wb.page);
  await log.locator('#log > .row').first().waitFor();
  // #log is a layer of its own (will-change: transform) that a scroll jump redraws whole. Transparent,
  // it was blended over the layers under it, which the display compositor drew too at every frame
  // (software compositing in code-server: 2.3 ms of CPU per jump more, docs/benchmarks.md, tenth pass).
  const [list, body] = await log.locator('#log').evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(document.body).backgroundColor]);
  assert.match(body, /^rgb\(/, `the panel's background is opaque: ${body}`);
  assert.equal(list, body, 'the list paints the panel\'s own background (what the user sees does not change)');
});

test('a script asks for the PIN in a masked input box; the PIN never reaches the log', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'verify-pin.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  const box = page.locator('.quick-input-widget input[type="password"]');
  await box.waitFor({ timeout: 30_000 });
  // The box names the label once, the reader and the script line.
  assert.equal(await page.locator('.quick-input-widget .quick-input-title').innerText(), 'User PIN (simulator: 1234) — Workbench Simulator 00 00, verify-pin.apdu:9');
  await box.fill('1234');
  await box.press('Enter');
  await notification(page, /Script passed/);
  // The panel may sit behind the script's tab since it was reopened: bring it forward.
  await runCommand(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  const verify = log.locator('[data-kind="exchange"][data-sw="9000"]', { hasText: /00 20 00 01 04/ }).first();
  await verify.waitFor();
  assert.match(await verify.innerText(), /\*\*/, 'the PIN bytes are masked');
  // Expanded, the decoded VERIFY shows the data masked too (the helper decodes what was logged).
  await verify.locator(':scope > .apdu').click();
  const data = verify.locator(':scope > .details [data-field="data"]');
  await data.waitFor();
  assert.match(await data.innerText(), /\*\* \*\* \*\* \*\*/);
  assert.match(await verify.locator(':scope > .details [data-field="ins"]').innerText(), /20 — VERIFY/);
  const all = await log.locator('#log').innerText();
  assert.doesNotMatch(all.replace(/\s+/g, ''), /0020000104(31323334|1234)/, 'the PIN is not in the panel');
  assert.doesNotMatch(all, /31 32 33 34/, 'nor its ASCII bytes in the expanded row');
});

test('the filter hides rows that do not match; Clear empties the log', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  await runCommand(page, 'Smart Card: Show APDU Log');
  // GET CHALLENGE; hex matches with or without spaces.
  await log.locator('#filter input').fill('00 84 00 00 08');
  const visible = log.locator('[data-kind="exchange"]:visible');
  await log.locator('[data-kind="exchange"][data-sw="6112"]').first().waitFor({ state: 'hidden' });
  const texts = await visible.allInnerTexts();
  assert.ok(texts.length >= 1);
  for (const t of texts) assert.match(t.replace(/\s+/g, ''), /0084000008/);

  await log.locator('#clear').click();
  await log.locator('[data-kind="exchange"]').first().waitFor({ state: 'detached' });
  assert.equal(await log.locator('#count').innerText(), '0');
});

test('a driver that cannot start says why in the tree, and the others carry on', { skip, timeout: 60_000 }, async () => {
  const { page } = wb;
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  // The PC/SC driver's group row says why, instead of listing readers.
  const row = page.locator('.monaco-list-row[aria-level="1"]', { hasText: /PC\/SC\s*failed:/ });
  await row.waitFor({ timeout: 30_000 });
  assert.match(await row.innerText(), /could not be loaded/);
  await page.locator('.monaco-list-row', { hasText: 'Workbench Simulator 00 00' }).waitFor();
});
