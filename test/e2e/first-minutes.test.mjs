// Issue 18 (items 3, 4, 5, 9, 10), on the README's path: a workspace with examples/ open, the
// simulator, hello.apdu. The editor: the Lc quick fix keeps Le, the hover explains P1/P2, the
// completion list starts with the ISO 7816-4 snippets and previews them. The APDU Log: rows name
// their command, text reads as text, "not TLV" quietly, the filter finds "READ BINARY" and says
// when nothing matches, Follow says its state and a new run comes into view; the inline result's
// hover shows the card's response.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();
let wb;
let ws;

before(async () => {
  if (skip) return;
  ws = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-first-minutes-'));
  fs.cpSync(path.join(root, 'examples'), path.join(ws, 'examples'), { recursive: true });
  // The SELECT by AID snippet with a 5-byte AID typed over the 7-byte one, Lc left at 07.
  fs.writeFileSync(path.join(ws, 'examples', 'mine.apdu'), '00 A4 04 00 07 A0 00 00 00 03 00 => * 90 00\n');
  wb = await launchWorkbench({ workspace: ws, name: 'first-minutes',
    settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false } });
}, { timeout: 180_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'first-minutes-end').catch(() => undefined);
  await wb?.close();
  if (ws) fs.rmSync(ws, { recursive: true, force: true });
});

const editorText = (page) => page.locator('.editor-instance .monaco-editor .view-lines').first().innerText();

async function goToLine(page, n) {
  await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+G');
  await page.locator('.quick-input-widget input').fill(`:${n}`);
  await page.keyboard.press('Enter');
}

test('item 3: the Lc quick fix offers "Lc 05, Le 00" first and applying it gives a valid SELECT', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'mine.apdu');
  await page.locator('.monaco-editor .squiggly-error').first().waitFor({ timeout: 30_000 });
  await goToLine(page, 1);
  await page.keyboard.press('Control+.');
  const items = page.locator('.action-widget .monaco-list-row.action');
  await items.first().waitFor({ timeout: 30_000 });
  const titles = await items.allInnerTexts();
  assert.match(titles[0], /Set Lc to 05, keep the last byte 00 as Le/, `first fix: ${titles.join(' | ')}`);
  assert.ok(titles.some((t) => /Set Lc to 06 \(6 data bytes, no Le\)/.test(t)), 'the other reading is offered too');
  await page.keyboard.press('Enter');
  await page.locator('.monaco-editor .view-lines', { hasText: /00\sA4\s04\s00\s05\sA0/ }).first().waitFor({ timeout: 10_000 });
  await page.locator('.monaco-editor .squiggly-error').first().waitFor({ state: 'detached', timeout: 30_000 });
  await page.keyboard.press('Control+Z');
});

test('item 10: completion lists the ISO 7816-4 snippets first, with a preview of what is inserted', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'mine.apdu');
  await goToLine(page, 2);
  const rows = page.locator('.suggest-widget .monaco-list-row');
  await page.keyboard.press('Control+Space');
  try {
    await rows.first().waitFor({ timeout: 10_000 });
  } catch {
    // Typing a command's first letter opens the list too (quick suggestions), as a user would.
    await screenshot(page, 'first-minutes-completion-ctrl-space');
    await page.keyboard.type('S');
    await rows.first().waitFor({ timeout: 20_000 }).catch(async (err) => { await screenshot(page, 'first-minutes-completion-failed'); throw err; });
  }
  const labels = (await rows.allInnerTexts()).slice(0, 5).map((t) => t.split('\n')[0]);
  assert.ok(labels.every((l) => /^SELECT/.test(l)), `the first rows are SELECT snippets: ${labels.join(' | ')}`);
  // Details (documentation with the preview) beside the list.
  const details = page.locator('.suggest-details');
  if (!(await details.isVisible())) await page.keyboard.press('Control+Space');
  await details.filter({ hasText: 'Inserts:' }).waitFor({ timeout: 10_000 });
  assert.match(await details.innerText(), /00 A4 00 0C 02 3F 00/);
  await screenshot(page, 'first-minutes-completion');
  await page.keyboard.press('Escape');
});

test('item 9: the hover on a SELECT explains P1/P2', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await openFile(page, 'hello.apdu');
  await goToLine(page, 6);
  await runCommand(page, 'Show or Focus Hover');
  const hover = page.locator('.monaco-hover', { hasText: 'SELECT' }).first();
  await hover.waitFor({ timeout: 30_000 });
  const text = await hover.innerText();
  assert.match(text, /P1 04: select by DF name \(AID\)/);
  assert.match(text, /P2 00: first or only occurrence, return FCI/);
  await page.keyboard.press('Escape');
});

const log = () => logFrame(wb.page);
const api = (fn, arg) => log().locator('body').evaluate(fn, arg);

async function runHello(page) {
  const tab = page.locator('.tabs-container .tab[aria-label*="hello.apdu"]').first();
  if (await tab.count()) await tab.click();
  else await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  return notification(page, /Script passed/, 60_000);
}

test('item 5: rows name their command, text reads as text, not TLV quietly; the inline hover shows the response', { skip, timeout: 180_000 }, async () => {
  const { page } = wb;
  await runHello(page);
  const read = log().locator('#log > .row[data-kind="exchange"]').filter({ hasText: '00 B0 00 00 2E' }).last();
  await read.waitFor({ timeout: 30_000 });
  assert.equal((await read.locator('.apdu > .name').innerText()).trim(), 'READ BINARY');
  assert.match(await read.locator('.apdu > .text').innerText(), /"[^"]*[A-Za-z]{3}/, 'the text shows as text on the collapsed row');
  assert.ok(await read.locator('.apdu > .text').isVisible(), 'the text is visible, not cut off after the hex');
  assert.ok(await read.locator('.apdu > .data').isHidden(), 'text replaces the hex on the collapsed row (hex in the tooltip)');
  await read.locator(':scope > .apdu').click();
  const details = read.locator(':scope > .details');
  await details.locator('[data-field="ascii"]').waitFor({ timeout: 30_000 });
  assert.match(await details.locator('[data-field="p1p2"]').innerText(), /offset 0/);
  assert.match(await details.locator('[data-field="tlv"]').innerText(), /not TLV \(text\)/);
  assert.doesNotMatch(await details.innerText(), /declares|Not BER-TLV/);
  await screenshot(page, 'first-minutes-read-binary');
  // The inline "✓ 90 00" after READ BINARY: its hover shows the response.
  const line = page.locator('.monaco-editor .view-line', { hasText: /00\sB0\s00\s00\s2E/ }).first();
  await line.waitFor();
  const box = await line.boundingBox();
  const mark = line.locator('span[class*="ced-"]').last();
  const target = (await mark.count()) ? await mark.boundingBox() : { x: box.x + box.width - 30, y: box.y, width: 20, height: box.height };
  await page.mouse.move(target.x + target.width / 2, target.y + target.height / 2);
  const hover = page.locator('.monaco-hover', { hasText: 'Response' }).first();
  await hover.waitFor({ timeout: 30_000 });
  assert.match(await hover.innerText(), /As text:[\s\S]*[A-Za-z]{4}/);
  assert.match(await hover.innerText(), /SW 90 00/);
  await page.mouse.move(5, 5);
});

test('item 5: the filter finds "READ BINARY" and says when nothing matches', { skip, timeout: 120_000 }, async () => {
  const field = log().locator('#filter input');
  await field.fill('READ BINARY');
  await log().locator('#log > .row[data-kind="exchange"] .apdu > .name', { hasText: 'READ BINARY' }).first().waitFor({ timeout: 10_000 });
  const names = await log().locator('#log > .row .apdu > .name').allInnerTexts();
  assert.ok(names.length > 0 && names.every((n) => n.trim() === 'READ BINARY'), `only READ BINARY rows: ${names}`);
  assert.ok(await log().locator('#nomatch').isHidden());
  await field.fill('UPDATE RECORD');
  await log().locator('#nomatch').filter({ hasText: /No rows match the filter \("UPDATE RECORD"\)/ }).waitFor({ timeout: 10_000 });
  await screenshot(wb.page, 'first-minutes-no-matches');
  await field.fill('');
  await log().locator('#nomatch').waitFor({ state: 'hidden', timeout: 10_000 });
});

test('item 4: expanding a row turns Follow off visibly; the next run comes into view and Follow is on again', { skip, timeout: 180_000 }, async () => {
  const { page } = wb;
  const select = log().locator('#log > .row[data-kind="exchange"]').filter({ hasText: '00 A4 04 00 07 F0 57 42 44 45 4D 4F' }).last();
  await select.locator(':scope > .apdu').click();
  await select.locator(':scope > .details').waitFor();
  assert.equal(await api(() => window.apduLog.follow()), false, 'Follow is off while a row is read');
  assert.equal((await log().locator('#follow').innerText()).trim(), 'Follow: off');
  const starts = await api(() => window.apduLog.count('scriptStarted'));
  await runHello(page);
  const deadline = Date.now() + 30_000;
  while (await api(() => window.apduLog.count('scriptStarted')) <= starts) {
    if (Date.now() > deadline) throw new Error('the second run did not reach the panel');
    await api(() => new Promise((r) => setTimeout(r, 100)));
  }
  while (!(await api(() => window.apduLog.inView('scriptEnded')))) {
    if (Date.now() > deadline) throw new Error('the new run is not in view');
    await api(() => new Promise((r) => setTimeout(r, 100)));
  }
  // The new run is what the log shows: its "Script started" row is in view, or (a run taller than a
  // bottom-panel log) its rows fill the view down to its end, with no row of the run before.
  const endsInView = await api(() => {
    const b = document.getElementById('scroller').getBoundingClientRect();
    return [...document.querySelectorAll('#log > .row[data-kind="scriptEnded"]')]
      .filter((e) => { const a = e.getBoundingClientRect(); return a.bottom > b.top + 1 && a.top < b.bottom - 1; }).length;
  });
  assert.ok(await api(() => window.apduLog.inView('scriptStarted')) || endsInView === 1,
    `the new run's "Script started" row is in view, or only the new run's rows are (${endsInView} "Script ended" rows in view)`);
  assert.equal(await api(() => window.apduLog.follow()), true);
  assert.equal((await log().locator('#follow').innerText()).trim(), 'Follow: on');
  await screenshot(page, 'first-minutes-second-run');
});

test('item 4: rows arriving below while Follow is off show "N new rows ↓"; a click goes there and follows', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  // The user scrolls the log up to an older run: Follow goes off.
  const size = await api(() => { const s = document.getElementById('scroller'); return { height: s.scrollHeight, view: s.clientHeight }; });
  assert.ok(size.height > size.view + 40, `the log is taller than its view (${JSON.stringify(size)})`);
  await api(() => { document.getElementById('scroller').scrollTop = 0; });
  const deadline = Date.now() + 15_000;
  while (await api(() => window.apduLog.follow())) {
    if (Date.now() > deadline) throw new Error('scrolling up did not turn Follow off');
    await api(() => new Promise((r) => setTimeout(r, 50)));
  }
  assert.equal((await log().locator('#follow').innerText()).trim(), 'Follow: off');
  assert.equal(await log().locator('#newRows').isVisible(), false, 'no marker before new rows');
  // A single line run (no "Script started" row, so Follow stays off): its row arrives below.
  const exchanges = await api(() => window.apduLog.count('exchange'));
  await page.locator('.tabs-container .tab[aria-label*="hello.apdu"]').first().click();
  await page.locator('.editor-instance .monaco-editor .codelens-decoration a', { hasText: /^Run line$/ }).first().click();
  const marker = log().locator('#newRows');
  await marker.waitFor({ state: 'visible', timeout: 30_000 });
  assert.match(await marker.innerText(), /^\d+ new rows? ↓$/);
  assert.ok(await api(() => window.apduLog.count('exchange')) > exchanges, 'the line\'s exchange arrived');
  assert.equal(await api(() => window.apduLog.follow()), false, 'a line run does not move the view');
  assert.equal(await api(() => window.apduLog.inView('exchange')), false, 'the new row is below the view');
  await screenshot(page, 'first-minutes-new-rows');
  // The marker goes to the new row and follows again.
  await marker.click();
  await marker.waitFor({ state: 'hidden', timeout: 10_000 });
  const until = Date.now() + 15_000;
  while (!(await api(() => window.apduLog.inView('exchange')))) {
    if (Date.now() > until) throw new Error('the new row did not come into view');
    await api(() => new Promise((r) => setTimeout(r, 50)));
  }
  assert.equal(await api(() => window.apduLog.follow()), true);
  assert.equal((await log().locator('#follow').innerText()).trim(), 'Follow: on');
});

