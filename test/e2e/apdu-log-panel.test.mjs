// The APDU Log panel in real VS Code: an exchange expands into its decoded command, TLV tree
// and status word; filters by reader and status-word class; pause and resume; export as a
// text trace (from the panel, with its filters) and as JSON Lines (from the palette), read
// back from disk; and the panel with its rows after "Developer: Reload Window".
// Two readers: the simulator, and a vpcd reader with bench/fast-peer.mjs as its card.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { answerExport, freePort, launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot, selectReader, startFastPeer } from './support.mjs';

const skip = missingPrerequisite();
const SIM = 'Workbench Simulator';
const VPCD = 'Virtual PCD';
let wb;
let ws;
let peer;

before(async () => {
  if (skip) return;
  ws = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-panel-ws-'));
  for (const f of ['hello.apdu', 'fails-on-purpose.apdu']) fs.copyFileSync(path.join(root, 'examples', f), path.join(ws, f));
  fs.writeFileSync(path.join(ws, 'peer.apdu'), '# The vpcd peer answers 90 00 to everything.\n00 A4 04 00 02 3F 00 => 90 00\n00 B0 00 00 04 => 90 00\n');
  const port = await freePort();
  wb = await launchWorkbench({ workspace: ws, name: 'apdu-log-panel', settings: {
    'smartcard.log.location': 'editor', // the log as an editor tab: restored with its filter after a reload
    'smartcard.vpcd.enabled': true,
    'smartcard.vpcd.ports': [port],
    'smartcard.pcsc.enabled': false,
    'smartcard.usbCcid.enabled': false,
  } });
  // A card for the vpcd reader: it connects (a card insertion) once the helper listens.
  peer = startFastPeer(port);
}, { timeout: 180_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'apdu-log-panel-end').catch(() => undefined);
  await wb?.close();
  if (peer && peer.exitCode === null) peer.kill('SIGTERM');
  if (ws) fs.rmSync(ws, { recursive: true, force: true });
});

async function runScript(page, file, expect = /Script passed/) {
  // A script already open is brought forward in its own group (the panel stays visible beside it).
  const tab = page.locator(`.tabs-container .tab[aria-label*="${file}"]`).first();
  if (await tab.count()) await tab.click();
  else await openFile(page, file);
  await runCommand(page, 'Smart Card: Run APDU Script');
  return notification(page, expect, 60_000);
}

/** The format quick pick, then the save dialog; the notification must say where. */
async function exportAs(page, format, file, start) {
  const { note, text } = await answerExport(page, format, file, start);
  assert.ok(note.includes(file), `the notification says where: ${note}`);
  return text;
}

/** Waits until the panel's row model (not only the DOM) holds a row of this kind with this text. */
async function waitModel(log, kind, text, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (!(await log.locator('body').evaluate((_, [k, t]) => window.apduLog.count(k, t), [kind, text]))) {
    if (Date.now() > deadline) throw new Error(`no ${kind} row with ${text} in the panel`);
    await log.locator('body').evaluate(() => new Promise((r) => setTimeout(r, 200)));
  }
}

const topRows = (log, kind = 'exchange') => log.locator(`#log > .row[data-kind="${kind}"]`);

test('an exchange expands into its decoded command, response TLV, status word and timing; Enter collapses it', { skip, timeout: 180_000 }, async () => {
  const { page } = wb;
  await selectReader(page, SIM);
  await runScript(page, 'hello.apdu');
  const log = logFrame(page);
  const select = topRows(log).filter({ hasText: '00 A4 04 00 07 F0 57 42 44 45 4D 4F' }).last();
  await select.waitFor();
  await select.locator(':scope > .apdu').click();
  const details = select.locator(':scope > .details');
  await details.locator('[data-field="ins"]').waitFor();
  assert.match(await details.locator('[data-field="ins"]').innerText(), /A4 — SELECT/);
  assert.match(await details.locator('[data-field="cla"]').innerText(), /00 — interindustry, channel 0/);
  assert.match(await details.locator('[data-field="p1"]').innerText(), /04/);
  assert.match(await details.locator('[data-field="lc"]').innerText(), /7/);
  assert.match(await details.locator('[data-field="data"]').innerText(), /F0 57 42 44 45 4D 4F/);
  assert.match(await details.locator('[data-field="le"]').innerText(), /256/);
  assert.match(await details.locator('[data-field="case"]').innerText(), /case 4S/);
  const fci = details.locator('[data-field="tlv"] li[data-tag="6F"]').first();
  assert.match(await fci.innerText(), /File control information \(FCI\)/);
  assert.ok(await fci.locator('li[data-tag="84"]').count() >= 1, 'the DF name is nested under the FCI');
  assert.match(await details.locator('[data-field="sw"]').innerText(), /90 00 — Normal processing/);
  assert.match(await details.locator('[data-field="timing"]').innerText(), /ms at \d\d:\d\d:\d\d\.\d{3} on Workbench Simulator/);
  assert.equal(await select.getAttribute('aria-expanded'), 'true');
  await screenshot(page, 'apdu-log-expanded', { docs: true });
  // Keyboard: the clicked row has the focus; Enter collapses it.
  await select.press('Enter');
  await details.waitFor({ state: 'detached' });
  assert.equal(await select.getAttribute('aria-expanded'), 'false');
});

test('filters: by reader (readers seen) and by status-word class; an export from the panel keeps the filter', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  await peer.connected;
  await waitModel(logFrame(page), 'cardInserted', VPCD);
  await selectReader(page, VPCD);
  await runScript(page, 'peer.apdu');
  await selectReader(page, SIM);
  await runScript(page, 'fails-on-purpose.apdu', /Script failed/);
  await runCommand(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  const options = await log.locator('#reader option').allInnerTexts();
  const vpcd = options.find((o) => o.includes(VPCD));
  assert.ok(vpcd, `the vpcd reader is offered: ${options}`);
  assert.ok(options.some((o) => o.includes(SIM)));

  await log.locator('#reader').selectOption({ label: vpcd });
  await topRows(log).filter({ hasText: '00 A4 04 00 02 3F 00' }).first().waitFor();
  const readers = await log.locator('#log > .row[data-reader]').evaluateAll((els) => els.map((e) => e.dataset.reader));
  assert.ok(readers.length >= 2);
  for (const r of readers) assert.equal(r, vpcd);
  await log.locator('#reader').selectOption({ value: '' });

  // Errors only: success and warning off.
  await log.locator('#swSuccess').click();
  await log.locator('#swWarning').click();
  assert.equal(await log.locator('#swSuccess').getAttribute('aria-pressed'), 'false');
  await topRows(log).first().waitFor();
  const classes = await topRows(log).evaluateAll((els) => els.map((e) => `${e.dataset.sw} ${e.className}`));
  assert.ok(classes.length >= 1, 'the failed READ BINARY is shown');
  for (const c of classes) assert.match(c, /sw-error/, c);

  // Export from the panel: the whole log of the extension, with the panel's filter.
  await log.locator('#export').click();
  const file = path.join(ws, 'errors-only.txt');
  const text = await exportAs(page, 'Text trace', file);
  assert.match(text, /^# APDU Log exported .*: \d+ rows?\n/);
  assert.match(text, /> 00 B0 00 00 00\n< 69 82 : Security status not satisfied/, 'the failed READ BINARY with its SW meaning');
  assert.doesNotMatch(text, /: Normal processing/, 'no successful exchange in an errors-only export');
  assert.match(text, /\(\d+\.\d+ ms\)/, 'timing on each exchange');
  assert.match(await log.locator('#state').innerText(), new RegExp(`Exported \\d+ rows? to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  await log.locator('#swSuccess').click();
  await log.locator('#swWarning').click();
});

test('pause holds the view while rows arrive, and says how many; resume shows them', { skip, timeout: 180_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  await runCommand(page, 'Smart Card: Show APDU Log');
  await log.locator('#pause').click();
  const lastBefore = await log.locator('#log > .row').last().getAttribute('data-id');
  await runScript(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Show APDU Log');
  const arrived = log.locator('#arrived');
  await arrived.filter({ hasText: /Paused: [1-9]\d* new rows?/ }).waitFor();
  assert.equal(await log.locator('#log > .row').last().getAttribute('data-id'), lastBefore, 'the view held still');
  await log.locator('#pause').click();
  await log.locator('#log > .row').last().filter({ hasText: 'Script passed' }).waitFor();
  assert.notEqual(await log.locator('#log > .row').last().getAttribute('data-id'), lastBefore);
  assert.equal(await arrived.isVisible(), false);
});

test('export from the palette as JSON Lines: every row the extension holds, one object per line', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  const inPanel = await log.locator('body').evaluate(() => window.apduLog.rows());
  const file = path.join(ws, 'all.jsonl');
  const text = await exportAs(page, 'JSON Lines', file, () => runCommand(page, 'Smart Card: Export APDU Log'));
  const rows = text.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, inPanel, 'the export holds what the panel holds');
  assert.ok(rows.every((r) => typeof r.id === 'string' && typeof r.kind === 'string' && typeof r.time === 'number'));
  assert.ok(rows.some((r) => r.kind === 'exchange' && r.reader.includes(VPCD)));
  assert.ok(rows.some((r) => r.kind === 'exchange' && r.reader.includes(SIM) && r.sw === '6982'));
  assert.ok(rows.some((r) => r.kind === 'cardPowered'), 'events are in the same timeline');
});

test('after "Developer: Reload Window" the panel comes back with its rows and its filter', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  await runCommand(page, 'Smart Card: Show APDU Log');
  await log.locator('#reader').selectOption({ label: (await log.locator('#reader option').allInnerTexts()).find((o) => o.includes(SIM)) });
  const before = Number(await log.locator('#count').innerText());
  assert.ok(before >= 10);
  await runCommand(page, 'Developer: Reload Window');
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).waitFor({ timeout: 60_000 });
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).click();
  const restored = logFrame(page);
  await topRows(restored).filter({ hasText: '00 A4 04 00 07 F0 57 42 44 45 4D 4F' }).first().waitFor({ timeout: 60_000 });
  assert.ok(Number(await restored.locator('#count').innerText()) >= before, 'the exchanges of before the reload');
  assert.match(await restored.locator('#reader').inputValue(), new RegExp(SIM), 'the reader filter was kept');
  const readers = await restored.locator('#log > .row[data-reader]').evaluateAll((els) => els.map((e) => e.dataset.reader));
  for (const r of readers) assert.match(r, new RegExp(SIM));
  await restored.locator('#reader').selectOption({ value: '' });
});
