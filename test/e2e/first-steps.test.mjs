// Real VS Code (code-server) in Debian's Chromium, the README's path: the repository's
// examples/ folder open, the Get Started walkthrough used from the Welcome page (issue 18
// items 2, 12, 13). Its "Run APDU Script" buttons run the script the walkthrough just opened
// although the Welcome page is the active editor; steps 2–4 tick after a passing run, a
// failing run and the log; no literal backticks; the log opens in the bottom panel, so the
// page keeps its width and the step's media shows; "Run line" keeps the results of lines run
// before and adds one row group to the log, not start/end rows around it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchWorkbench, LOG_IFRAME, logFrame, missingPrerequisite, root, runCommand, screenshot, startAndPick } from './support.mjs';

const skip = missingPrerequisite();
let wb;

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'first-steps',
    settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false },
  });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'first-steps-end').catch(() => undefined);
  await wb?.close();
});

const stepOf = (page, title) => page.locator('.getting-started-step', { hasText: title }).first();
const checked = (step) => step.locator('.codicon-getting-started-step-checked');

/** The Welcome tab again; when it came back on its overview (it can after a step completes), into the walkthrough. */
async function backToWelcome(page) {
  // The tab is "Welcome", or "Walkthrough: Smart Card Workbench" once entered from the overview.
  await page.locator('.tabs-container .tab', { hasText: /Welcome|Walkthrough: Smart Card Workbench/ }).first().click();
  const page_ = page.locator('.gettingStarted.showDetails, .gettingStarted.showCategories').first();
  await page_.waitFor({ timeout: 15_000 });
  if (await page.locator('.gettingStarted.showCategories').count()) {
    await page.locator('.gettingStartedSlideCategories button', { hasText: 'Get Started with Smart Card Workbench' }).first().click();
    await page.locator('.gettingStarted.showDetails').waitFor({ timeout: 15_000 });
  }
}

/** The texts the editor shows after the ends of lines (decorations' `after` content), in line order. */
async function inlineResults(page) {
  return page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('.editor-instance .monaco-editor .view-lines span')) {
      const c = getComputedStyle(el, '::after').content;
      if (c && c !== 'none' && c !== 'normal' && /[✓✗]/.test(c)) out.push(c.replace(/^"|"$/g, ''));
    }
    return out;
  });
}

test('with examples/ open, the walkthrough runs the script it opened from the Welcome page, ticks steps 2–4, and its media shows beside a bottom-panel log', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  const choice = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Get Started with Smart Card Workbench' }).first();
  await startAndPick(page, () => runCommand(page, 'Welcome: Open Walkthrough...'), choice);

  // Step 2: open hello.apdu, come back to the Welcome page, press its Run button.
  const hello = stepOf(page, 'Run a first script');
  await hello.waitFor({ timeout: 30_000 });
  await hello.click();
  const helloText = await hello.innerText();
  assert.ok(!helloText.includes('`'), `no literal backticks in the step: ${helloText}`);
  await hello.locator('.button-link, a, button', { hasText: 'Open hello.apdu' }).first().click();
  await page.locator('.tabs-container .tab', { hasText: 'hello.apdu' }).first().waitFor({ timeout: 30_000 });
  await backToWelcome(page);
  await hello.locator('.button-link, a, button', { hasText: 'Run APDU Script' }).first().click();
  const passed = logFrame(page).locator('[data-kind="scriptEnded"][data-ok="true"]').first();
  await passed.waitFor({ timeout: 60_000 });
  await backToWelcome(page);
  await checked(hello).waitFor({ timeout: 30_000 });

  // Step 3: the same with fails-on-purpose.apdu; the run fails at its documented line.
  const fails = stepOf(page, 'See a failed expectation');
  await fails.click();
  await fails.locator('.button-link, a, button', { hasText: 'Open fails-on-purpose.apdu' }).first().click();
  await page.locator('.tabs-container .tab', { hasText: 'fails-on-purpose.apdu' }).first().waitFor({ timeout: 30_000 });
  await backToWelcome(page);
  await fails.locator('.button-link, a, button', { hasText: 'Run APDU Script' }).first().click();
  const failed = logFrame(page).locator('[data-kind="scriptEnded"][data-ok="false"]').first();
  await failed.waitFor({ timeout: 60_000 });
  assert.match(await failed.innerText(), /line 12/);
  await backToWelcome(page);
  await checked(fails).waitFor({ timeout: 30_000 });

  // Step 4: the log was seen (it opened with the runs); the step is done.
  const log = stepOf(page, 'Read the APDU Log');
  await checked(log).waitFor({ timeout: 30_000 });
  // Step 1 was never done here: it stays unchecked.
  assert.equal(await checked(stepOf(page, 'See the simulator reader')).count(), 0);

  // No step shows a literal backtick (code spans do not render in step text).
  for (const t of await page.locator('.getting-started-step').allInnerTexts()) assert.ok(!t.includes('`'), `a backtick in: ${t}`);

  // The log lives in the bottom panel: its webview sits inside the panel part, not in an editor column.
  const panelBox = await page.locator('.part.panel').boundingBox();
  const logBox = await page.locator(LOG_IFRAME).first().boundingBox();
  assert.ok(panelBox && logBox, 'the panel and the log are on screen');
  assert.ok(logBox.y >= panelBox.y - 1 && logBox.y + logBox.height <= panelBox.y + panelBox.height + 1, `the log (${JSON.stringify(logBox)}) is in the bottom panel (${JSON.stringify(panelBox)})`);
  assert.equal(await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).count(), 0, 'no editor tab for the log');

  // The Welcome page keeps the editor's width and the selected step's media is shown.
  await log.click();
  const media = page.locator('.getting-started-media');
  await media.waitFor({ state: 'visible', timeout: 15_000 });
  const mediaBox = await media.boundingBox();
  assert.ok(mediaBox && mediaBox.width > 100 && mediaBox.height > 50, `the step's media is visible: ${JSON.stringify(mediaBox)}`);
  await screenshot(page, 'first-steps-walkthrough');
});

test('Run line keeps the results of lines run before, and adds one row group to the log, no start/end rows', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await page.locator('.tabs-container .tab', { hasText: 'hello.apdu' }).first().click();
  await page.locator('.editor-instance .monaco-editor .view-lines', { hasText: /GET\sCHALLENGE/ }).first().waitFor({ timeout: 30_000 });
  // A whole-file run showed results before; edit nothing but clear them by a new start: a fresh document state.
  const frame = logFrame(page);
  const started = () => frame.locator('[data-kind="scriptStarted"]').count();
  const ended = () => frame.locator('[data-kind="scriptEnded"]').count();
  const exchanges = () => frame.locator('[data-kind="exchange"]').count();
  const lenses = page.locator('.editor-instance .monaco-editor .codelens-decoration a', { hasText: /^Run line$/ });
  await lenses.first().waitFor({ timeout: 30_000 });
  const [s0, e0, x0] = [await started(), await ended(), await exchanges()];
  // Line 6 (SELECT by AID), then line 9 (SELECT EF 5001).
  await lenses.nth(0).click();
  await frame.locator('[data-kind="exchange"]').nth(x0).waitFor({ timeout: 30_000 });
  await lenses.nth(1).click();
  await frame.locator('[data-kind="exchange"]').nth(x0 + 1).waitFor({ timeout: 30_000 });
  assert.equal(await exchanges(), x0 + 2, 'one exchange row per line run');
  assert.equal(await started(), s0, 'no "Script started" row for a line run');
  assert.equal(await ended(), e0, 'no "Script ended" row for a passing line run');
  // Both lines still show their results (the second run did not wipe the first).
  const shown = await inlineResults(page);
  assert.ok(shown.filter((t) => t.includes('✓ 90 00')).length >= 2, `both lines keep their results: ${JSON.stringify(shown)}`);
  await screenshot(page, 'first-steps-run-line');
});

test('no unexpected errors in the browser console', { skip }, () => {
  assert.deepEqual(wb.consoleErrors.filter((e) => !/^Script failed at line/.test(e)), []);
});
