// Issue 18 item 12, on the README's path (examples/ open, no setting touched): the APDU Log lives
// in the bottom panel by default, so the script keeps the editor's width. Its first reveal by a
// run does not take the keyboard focus (a palette or input box opened meanwhile stays open); the
// place is the user's choice, kept in the user settings; at the side bar's default width the
// card row's ATR is not cut off, and its tooltip has it whole.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launchWorkbench, LOG_IFRAME, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();
let wb;

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'log-location',
    settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false },
  });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'log-location-end').catch(() => undefined);
  await wb?.close();
});

/** The user's settings.json as code-server wrote it. */
function userSettings() {
  return JSON.parse(fs.readFileSync(path.join(wb.tmp, 'userData', 'User', 'settings.json'), 'utf8'));
}

/** Whether the log's webview sits inside the bottom panel. */
async function logInBottomPanel(page) {
  const panelBox = await page.locator('.part.panel').boundingBox();
  const logBox = await page.locator(LOG_IFRAME).first().boundingBox();
  return Boolean(panelBox && logBox && logBox.height > 0 && logBox.y >= panelBox.y - 1 && logBox.y + logBox.height <= panelBox.y + panelBox.height + 1);
}

test('by default a run opens the log in the bottom panel without taking the keyboard focus; the script keeps the editor\'s width', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'hello.apdu');
  // Everything that takes the focus from now on, other than the palette and the script (a webview
  // is laid over its part, outside it): a first reveal that focuses the log, even if it hands the
  // focus back to the editor after, shows here.
  await page.evaluate(() => {
    window.__focusTaken = [];
    document.addEventListener('focusin', (e) => {
      const t = e.target;
      if (t instanceof Element && !t.closest('.quick-input-widget, .editor-instance')) window.__focusTaken.push(`${t.tagName}.${t.className}`);
    }, true);
    // Focus moving into a webview's iframe blurs this window without a focusin here.
    window.addEventListener('blur', (e) => { if (e.target === window) window.__focusTaken.push(`into ${document.activeElement?.tagName}.${document.activeElement?.className}`); });
  });
  await runCommand(page, 'Smart Card: Run APDU Script');
  await logFrame(page).locator('[data-kind="scriptEnded"][data-ok="true"]').first().waitFor({ timeout: 60_000 });
  assert.ok(await logInBottomPanel(page), 'the log opened in the bottom panel');
  assert.equal(await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).count(), 0, 'no editor tab for the log');
  assert.deepEqual(await page.evaluate(() => window.__focusTaken), [], 'nothing but the palette and the script took the focus');
  // The cursor is still in the script: typed keys go into the editor.
  const active = await page.evaluate(() => ({ inScript: Boolean(document.activeElement?.closest('.editor-instance')), what: `${document.activeElement?.tagName}.${document.activeElement?.className}` }));
  assert.ok(active.inScript, `the keyboard focus is in the script, not in ${active.what}`);
  // One editor column: the script has the editor's whole width.
  const editorPart = await page.locator('.part.editor').boundingBox();
  const script = await page.locator('.editor-instance .monaco-editor').first().boundingBox();
  assert.ok(editorPart && script && script.width > editorPart.width * 0.9, `the script keeps the width (${script?.width} of ${editorPart?.width})`);
  // The palette opened right after the run stays open and takes a command (no retry here, unlike runCommand).
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill('>Smart Card: Show APDU Log');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Smart Card: Show APDU Log' }).first().waitFor({ timeout: 10_000 });
  await input.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  assert.ok(await logInBottomPanel(page), 'Show APDU Log keeps it in the bottom panel');
  await screenshot(page, 'log-location-panel');
});

// Issue 18, noticed: in the bottom panel the toolbar wrapped onto two lines and left ~5 rows.
test('in the bottom panel at its default size the toolbar is one line and at least 8 rows show', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  // Rows enough to fill the view: hello.apdu again until the log holds 16 rows or more (the
  // panel's model counts them: the virtual list has only the rows in view in its DOM).
  const inLog = (fn) => log.locator('body').evaluate(fn);
  for (let run = 0; run < 4 && (await inLog(() => window.apduLog.rows())) < 16; run++) {
    const ended = await inLog(() => window.apduLog.count('scriptEnded'));
    await page.locator('.editor-instance .monaco-editor').first().click();
    await runCommand(page, 'Smart Card: Run APDU Script');
    await log.locator('body').evaluate((_, n) => new Promise((resolve, reject) => {
      const t0 = performance.now();
      const check = () => (window.apduLog.count('scriptEnded') > n ? resolve() : performance.now() - t0 > 60_000 ? reject(new Error('the run did not end in the log')) : requestAnimationFrame(check));
      check();
    }), ended);
  }
  assert.ok(await logInBottomPanel(page), 'the log is in the bottom panel');
  const got = await log.locator('body').evaluate(() => {
    const bar = document.getElementById('toolbar');
    const shown = [...bar.children].filter((e) => e.getBoundingClientRect().height > 0);
    const tops = shown.map((e) => Math.round(e.getBoundingClientRect().top));
    const tallest = Math.max(...shown.map((e) => e.getBoundingClientRect().height));
    const sc = document.getElementById('scroller').getBoundingClientRect();
    const rows = [...document.querySelectorAll('#log > .row')].map((e) => e.getBoundingClientRect());
    const exchange = document.querySelector('#log > .row.exchange')?.getBoundingClientRect().height ?? 0;
    return {
      barHeight: bar.getBoundingClientRect().height, tallest, lines: new Set(tops.map((t) => Math.round(t / 4))).size, tops,
      width: document.documentElement.clientWidth,
      scroller: sc.height, exchange,
      fullyShown: rows.filter((r) => r.height > 0 && r.top >= sc.top - 1 && r.bottom <= sc.bottom + 1).length,
    };
  });
  await screenshot(page, 'log-location-toolbar');
  // One line: every control's top is the same, and the bar is not taller than its tallest control and its padding.
  assert.ok(got.tops.every((t) => Math.abs(t - got.tops[0]) <= 6), `the toolbar's controls sit on one line at ${got.width} px (tops ${got.tops.join(', ')})`);
  assert.ok(got.barHeight < got.tallest * 1.8, `the toolbar is one line high: ${got.barHeight} px for controls of ${got.tallest} px`);
  assert.ok(got.exchange > 0 && got.scroller / got.exchange >= 8, `the rows' area holds 8 exchange rows or more: ${got.scroller} px for rows of ${got.exchange} px`);
  assert.ok(got.fullyShown >= 8, `at least 8 rows show whole (${got.fullyShown})`);
});

test('the place is the user\'s choice: moving the log beside the editor and back is kept in the user settings', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'Smart Card: Move APDU Log Beside the Editor');
  const tab = page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).first();
  await tab.waitFor({ timeout: 30_000 });
  await waitFor(() => userSettings()['smartcard.log.location'] === 'editor', 'smartcard.log.location "editor" in the user settings');
  await logFrame(page).locator('[data-kind="scriptEnded"][data-ok="true"]').first().waitFor({ timeout: 30_000 });

  await runCommand(page, 'Smart Card: Move APDU Log to the Bottom Panel');
  await tab.waitFor({ state: 'detached', timeout: 30_000 });
  await waitFor(() => userSettings()['smartcard.log.location'] === 'panel', 'smartcard.log.location "panel" in the user settings');
  await logFrame(page).locator('[data-kind="scriptEnded"][data-ok="true"]').first().waitFor({ timeout: 30_000 });
  assert.ok(await logInBottomPanel(page), 'back in the bottom panel');
});

test('at the side bar\'s default width the card row\'s ATR is not cut off; the tooltip has it whole', { skip, timeout: 90_000 }, async () => {
  const { page } = wb;
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  const card = page.locator('.monaco-list-row[aria-level="3"]', { hasText: /ATR 3B/ }).first();
  await card.waitFor({ timeout: 30_000 });
  // What the row's label shows fits: the label's own text is not clipped by the row.
  const cut = await card.evaluate((row) => {
    const name = row.querySelector('.label-name');
    const container = row.querySelector('.monaco-icon-label-container');
    const r = name.getBoundingClientRect();
    const c = container.getBoundingClientRect();
    return { label: name.textContent, right: r.right, limit: Math.min(c.right, row.getBoundingClientRect().right) };
  });
  assert.ok(cut.right <= cut.limit + 0.5, `the label "${cut.label}" ends at ${cut.right}, the row shows up to ${cut.limit}`);
  assert.match(cut.label, /^ATR 3B /);
  // The tooltip: the whole ATR, which starts with what the label shows.
  await card.hover();
  const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: /ATR 3B( [0-9A-F]{2})+/ }).first();
  await hover.waitFor({ timeout: 30_000 });
  const full = /ATR 3B( [0-9A-F]{2})+/.exec(await hover.innerText())[0];
  const shown = cut.label.replace(/\s*…$/, '');
  assert.ok(full.startsWith(shown) && full.length > shown.length, `the tooltip's "${full}" is the whole of "${cut.label}"`);
  await page.mouse.move(700, 600);
  await screenshot(page, 'log-location-tree');
});

test('no unexpected errors in the browser console', { skip }, () => {
  assert.deepEqual(wb.consoleErrors, []);
});

/** Polls a condition of the file system (no event to wait on) for up to 15 s. */
async function waitFor(check, what) {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
