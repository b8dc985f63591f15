// Real VS Code (code-server) in Debian's Chromium: the Readers view grouped by
// driver, reader initialization (the ATR shows without a script), the state
// icons, the context menus (Connect, Disconnect, Reset, Power Off, Send Control
// Command, Remove/Insert), and the Get Started walkthrough.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, launchWorkbench, logFrame, missingPrerequisite, notification, root, runCommand, screenshot } from './support.mjs';

const READER = 'Workbench Simulator 00 00';
const skip = missingPrerequisite();
let wb;
let t0;

before(async () => {
  if (skip) return;
  t0 = Date.now();
  wb = await launchWorkbench({ workspace: path.join(root, 'examples'), name: 'tree', settings: {
    // A pinpad simulator announces a PC/SC feature list, so control 3400 has an answer.
    'smartcard.simulator.pinpad': true,
    // A second group: a vpcd reader waiting for an emulator.
    'smartcard.vpcd.enabled': true,
    'smartcard.vpcd.ports': [await freePort()],
    'smartcard.pcsc.enabled': false,
    'smartcard.usbCcid.enabled': false,
  } });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'tree-end').catch(() => undefined);
  await wb?.close();
});

const row = (page, text, level) => page.locator(`.monaco-list-row${level ? `[aria-level="${level}"]` : ''}`, { hasText: text }).first();
const readerRow = (page) => row(page, READER, 2);
// The simulator's group comes first, so the first card row with a card is the simulator's (the vpcd reader is empty).
const cardRow = (page) => row(page, /ATR 3B|card present|mute card/, 3);

/** Waits until the reader row's icon is `icon` and its description matches `re`. */
async function readerLooks(page, icon, re) {
  const r = readerRow(page);
  await r.locator(`.codicon-${icon}`).first().waitFor({ timeout: 30_000 });
  await page.waitForFunction(([name, src]) => {
    const rows = [...document.querySelectorAll('.monaco-list-row[aria-level="2"]')].filter((e) => e.textContent.includes(name));
    return rows.some((e) => new RegExp(src).test(e.querySelector('.label-description')?.textContent ?? ''));
  }, [READER, re.source], { timeout: 30_000 });
}

/** Right-clicks a row and runs one entry of its context menu. */
async function contextMenu(page, target, item) {
  await target.click({ button: 'right' });
  const entry = page.locator('.context-view .action-menu-item', { hasText: item }).first();
  await entry.waitFor({ timeout: 15_000 });
  // code-server's menu runs an entry on Enter once the pointer has focused it (a synthetic click does not run it).
  await entry.hover();
  await page.keyboard.press('Enter');
  await page.locator('.context-view .monaco-menu').waitFor({ state: 'detached', timeout: 15_000 });
}

async function pick(page, label) {
  const r = page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first();
  await r.waitFor({ timeout: 15_000 });
  await r.click();
}

test('the tree groups readers by driver and shows the card\'s ATR right after start-up, no script run', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  await row(page, 'Simulator', 1).waitFor({ timeout: 30_000 });
  await row(page, 'vpcd', 1).waitFor();
  await readerRow(page).waitFor();
  await row(page, 'Virtual PCD 00 00', 2).waitFor();
  // Reader initialization: powered up and the ATR read by the manager at insertion.
  await row(page, /ATR 3B/, 3).waitFor({ timeout: 30_000 });
  console.log(`# ATR shown ${Date.now() - t0} ms after the workbench launch began`);
  assert.match(await cardRow(page).innerText(), /T=1/);
  // Its tooltip: the ATR decoded by the helper (smartcard/decodeAtr).
  await cardRow(page).hover();
  await page.locator('.monaco-hover, .workbench-hover', { hasText: /TS = 3B: direct convention/ }).first().waitFor({ timeout: 30_000 });
  await page.mouse.move(700, 600);
  await readerLooks(page, 'zap', /^powered/);
  // The empty vpcd reader: the empty icon and "no card".
  await row(page, 'Virtual PCD 00 00', 2).locator('.codicon-circle-large-outline').waitFor();
  // Details: collapsed, with the driver and the PC/SC feature of the pinpad.
  await row(page, 'Details', 3).click();
  await row(page, 'PC/SC feature', 4).waitFor();
  assert.match(await row(page, 'PC/SC feature', 4).innerText(), /VERIFY_PIN_DIRECT/);
  // A wider side bar for the picture in docs/editor.md (drag the sash between side bar and editor).
  const side = await page.locator('.part.sidebar').boundingBox();
  const sashes = await page.locator('.monaco-sash.vertical').all();
  let sash;
  for (const l of sashes) {
    const box = await l.boundingBox();
    if (side && box && Math.abs(box.x - (side.x + side.width)) < 8 && box.height > side.height / 2) sash = box;
  }
  if (sash) {
    await page.mouse.move(sash.x + sash.width / 2, sash.y + sash.height / 2);
    await page.mouse.down();
    await page.mouse.move(sash.x + 300, sash.y + sash.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.mouse.move(1000, 700);
  }
  await screenshot(page, 'readers-tree', { docs: true });
  await row(page, 'Details', 3).click();
});

test('Remove and Insert from the reader\'s menu change the icon and description', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await contextMenu(page, readerRow(page), 'Remove Simulator Card');
  await readerLooks(page, 'circle-large-outline', /^empty/);
  assert.equal(await row(page, /ATR 3B/, 3).count(), 0, 'no ATR row left');
  await contextMenu(page, readerRow(page), 'Insert Simulator Card');
  await row(page, /ATR 3B/, 3).waitFor({ timeout: 30_000 });
  await readerLooks(page, 'zap', /^powered/);
});

test('Connect exclusive shows the exclusive state, shared shows in use; Disconnect clears them', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await contextMenu(page, cardRow(page), 'Connect…');
  await pick(page, 'Exclusive, any protocol');
  await readerLooks(page, 'lock', /exclusive · editor: exclusive/);
  // Held exclusively by the editor: a script is refused with the reason.
  await runCommand(page, 'Smart Card: Open Example Script');
  await pick(page, 'hello.apdu');
  await page.locator('.tabs-container .tab[aria-label*="hello.apdu"]').first().waitFor();
  const ends = logFrame(page).locator('[data-kind="scriptEnded"][data-ok="false"]');
  const endsBefore = await ends.count();
  await runCommand(page, 'Smart Card: Run APDU Script');
  await ends.nth(endsBefore).waitFor({ timeout: 60_000 });
  assert.match(await ends.nth(endsBefore).innerText(), /held exclusively|exclusive/);
  await contextMenu(page, readerRow(page), 'Disconnect…');
  await pick(page, 'Leave the card');
  await readerLooks(page, 'zap', /^powered/);
  const text = await readerRow(page).innerText();
  assert.doesNotMatch(text, /editor/);
  // A shared connection on T=1 shows "in use".
  await contextMenu(page, cardRow(page), 'Connect…');
  await pick(page, 'Shared, T=1');
  await readerLooks(page, 'plug', /in use · editor: shared, T=1/);
  await contextMenu(page, cardRow(page), 'Disconnect…');
  await pick(page, 'Leave the card');
  await readerLooks(page, 'zap', /^powered/);
});

test('Reset and Power Off act on the card: tree and APDU Log event rows', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  await log.locator('[data-kind="cardPowered"]').first().waitFor({ timeout: 30_000 });
  const powered = await log.locator('[data-kind="cardPowered"]').count();
  const unpowered = await log.locator('[data-kind="cardUnpowered"]').count();
  await contextMenu(page, cardRow(page), 'Reset Card…');
  await pick(page, 'Cold reset');
  await log.locator('[data-kind="cardPowered"]').nth(powered).waitFor({ timeout: 30_000 });
  assert.equal(await log.locator('[data-kind="cardUnpowered"]').count(), unpowered + 1, 'a cold reset powers off, then on');

  await contextMenu(page, cardRow(page), 'Power Off Card');
  await log.locator('[data-kind="cardUnpowered"]').nth(unpowered + 1).waitFor({ timeout: 30_000 });
  await readerLooks(page, 'credit-card', /^unpowered/);
  await page.locator('.monaco-list-row[aria-level="3"]', { hasText: 'card present' }).first().waitFor();

  const resets = await log.locator('[data-kind="cardPowered"], [data-kind="cardReset"]').count();
  await contextMenu(page, cardRow(page), 'Reset Card…');
  await pick(page, 'Warm reset');
  await log.locator('[data-kind="cardPowered"], [data-kind="cardReset"]').nth(resets).waitFor({ timeout: 30_000 });
  await readerLooks(page, 'zap', /^powered/);
});

test('Send Control Command: a bad code is refused clearly, 3400 answers the feature list, logged as a control row', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  const controls = await log.locator('[data-kind="control"]').count();
  await contextMenu(page, readerRow(page), 'Send Control Command…');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill('12zz');
  await page.locator('.quick-input-message', { hasText: /not a control code/ }).waitFor({ timeout: 15_000 });
  await input.fill('3400');
  // Enter is refused while the box still shows an error: wait for the check to pass.
  await page.locator('.quick-input-message', { hasText: /not a control code/ }).waitFor({ state: 'hidden', timeout: 15_000 });
  await input.press('Enter');
  // The data box (empty: no data).
  await page.locator('.quick-input-widget', { hasText: /Data in hex/ }).waitFor();
  await input.fill('0G');
  await page.locator('.quick-input-message', { hasText: /'G' is not a hex digit/ }).waitFor({ timeout: 15_000 });
  await input.fill('');
  await page.locator('.quick-input-message', { hasText: /not a hex digit/ }).waitFor({ state: 'hidden', timeout: 15_000 });
  await input.press('Enter');
  const text = await notification(page, /Control 3400 on .* answered/);
  assert.match(text, /answered 06 04 [0-9A-F]{2} [0-9A-F]{2} [0-9A-F]{2} [0-9A-F]{2}/);
  await log.locator('[data-kind="control"]').nth(controls).waitFor({ timeout: 30_000 });
});

test('the walkthrough opens from "Welcome: Open Walkthrough..." and its step button opens hello.apdu', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'View: Close All Editors');
  await runCommand(page, 'Welcome: Open Walkthrough...');
  await pick(page, 'Get Started with Smart Card Workbench');
  // The first step is open with its picture (media/walkthrough/readers.svg, no inline styles: the page's CSP forbids them).
  await page.locator('.getting-started-step', { hasText: 'See the simulator reader' }).first().waitFor({ timeout: 30_000 });
  await screenshot(page, 'walkthrough-start');
  const step = page.locator('.getting-started-step', { hasText: 'Run a first script' }).first();
  await step.waitFor({ timeout: 30_000 });
  await step.click();
  const button = step.locator('.button-link, a, button', { hasText: 'Open hello.apdu' }).first();
  await button.waitFor({ timeout: 15_000 });
  await button.click();
  await page.locator('.tabs-container .tab[aria-label*="hello.apdu"]').first().waitFor({ timeout: 30_000 });
  await screenshot(page, 'walkthrough');
});

test('no unexpected errors in the browser console', { skip }, () => {
  // The refused script's notification is expected.
  assert.deepEqual(wb.consoleErrors.filter((e) => !/^Script failed/.test(e)), []);
});
