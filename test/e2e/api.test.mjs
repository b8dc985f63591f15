// Issue 16 in real VS Code: a second extension (test/e2e/fixtures/api-client, plain JS, with
// `extensionDependencies` on the workbench) loaded beside the workbench uses its public API from
// a command it contributes: it lists the simulator, transmits SELECT (90 00), sees the card's
// removal made with the workbench's own "Remove Simulator Card", runs hello.apdu; the APDU Log
// shows its rows under its id.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const READER = 'Workbench Simulator 00 00';
const CLIENT = 'fixtures.api-client';
const skip = missingPrerequisite();
let wb;
const results = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-api-')), 'results.json');

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'api',
    // T=0: the SELECT's data comes back through the reader manager's GET RESPONSE.
    settings: { 'smartcard.simulator.card': 'T=0', 'smartcard.log.location': 'editor', 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false },
    extraExtensions: [path.join(root, 'test/e2e/fixtures/api-client')],
    env: { API_CLIENT_RESULTS: results },
  });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'api-end').catch(() => undefined);
  await wb?.close();
  fs.rmSync(path.dirname(results), { recursive: true, force: true });
});

const read = () => JSON.parse(fs.readFileSync(results, 'utf8'));

test('another extension uses the API: simulator listed, SELECT 90 00, removal seen, hello.apdu run, its rows in the APDU Log', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'API Client: Exercise the Smart Card API');
  await notification(page, /API client: SELECT answered 9000; waiting for the card to be removed/, 90_000);
  let r = read();
  assert.equal(r.apiVersion, 1);
  assert.equal(r.extensionId, CLIENT);
  assert.ok(r.readers.some((x) => x.name === READER && x.driver === 'simulator' && x.card), JSON.stringify(r.readers));
  assert.equal(r.select.sw, '9000');
  assert.match(r.select.data, /^6F/, 'the FCI, fetched for the caller by GET RESPONSE');
  assert.equal(r.select.protocol, 0);
  assert.match(r.selectMeaning, /success|normal|completed/i);
  assert.equal(r.refusals.unknownReader.code, 'NO_READER');
  assert.match(r.refusals.unknownReader.message, /No Such Reader 00 00/);
  assert.equal(r.refusals.badHex.code, 'BAD_REQUEST');
  assert.match(r.refusals.badHex.message, /not hex: 'Z'/);

  // The workbench's own command removes the card; the other extension hears it.
  await runCommand(page, 'Smart Card: Remove Simulator Card');
  await notification(page, /API client: saw the card removed from Workbench Simulator 00 00/, 60_000);
  r = read();
  assert.equal(r.removal.kind, 'removed');
  assert.equal(r.removal.reader, READER);
  assert.equal(r.afterRemoval.code, 'CARD_REMOVED', 'its connection fails clearly after the removal');

  await runCommand(page, 'Smart Card: Insert Simulator Card');
  await notification(page, /API client: hello\.apdu passed: line 6 9000, line 9 9000, line 12 9000, line 15 9000/, 90_000);
  r = read();
  assert.equal(r.insertion.kind, 'inserted');
  assert.equal(r.hello.ok, true);
  assert.equal(r.hello.reader, READER);
  assert.equal(r.hello.commands, 4);
  assert.equal(r.error, undefined);

  // The APDU Log: the API's SELECT and the script's rows carry the extension's id.
  await runCommand(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  const select = log.locator(`[data-kind="exchange"][data-client="${CLIENT}"]`, { hasText: /00 A4 04 00 07 F0 57/ }).first();
  await select.waitFor({ timeout: 30_000 });
  assert.match(await select.locator(':scope > .meta .client').innerText(), new RegExp(CLIENT.replace('.', '\\.')));
  const started = log.locator(`[data-kind="scriptStarted"][data-client="${CLIENT}"]`, { hasText: 'hello.apdu' });
  await started.first().waitFor({ timeout: 30_000 });
  await log.locator(`[data-kind="scriptEnded"][data-client="${CLIENT}"][data-ok="true"]`).first().waitFor({ timeout: 30_000 });
  const mine = await log.locator(`[data-kind="exchange"][data-client="${CLIENT}"]`).count();
  assert.ok(mine >= 5, `the SELECT and hello.apdu's four commands are logged under ${CLIENT} (saw ${mine})`);
  assert.equal(await log.locator('[data-kind="exchange"]:not([data-client])').count(), 0, 'nothing else sent APDUs');
  await screenshot(page, 'api-client-log', { docs: true });
});

test('a connection held across a reader manager restart fails clearly, at once, instead of hanging', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await runCommand(page, 'API Client: Hold a Connection');
  await notification(page, /API client: holding a connection to Workbench Simulator 00 00 \(GET CHALLENGE 9000\)/, 60_000);
  const log = logFrame(page);
  const running = log.locator('[data-kind="manager"][data-state="running"]');
  const before = await running.count();
  await runCommand(page, 'Smart Card: Restart Reader Manager');
  await running.nth(before).waitFor({ timeout: 60_000 });
  await runCommand(page, 'API Client: Use the Held Connection');
  const text = await notification(page, /API client: held connection (refused|answered)/, 60_000);
  assert.match(text, /refused with MANAGER_RESTARTED after \d+ ms: The reader manager restarted since this connection to 'Workbench Simulator 00 00' was opened, so it is gone\. Connect again\./);
});

test('in an untrusted workspace the API runs no script: runScript is refused with UNTRUSTED_WORKSPACE, nothing is sent', { skip, timeout: 180_000 }, async () => {
  // Its own workbench, in Restricted Mode (the fixture declares untrusted support, so it is enabled there).
  const untrusted = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'api-untrusted', workspaceTrust: true,
    settings: { 'smartcard.log.location': 'editor', 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false },
    extraExtensions: [path.join(root, 'test/e2e/fixtures/api-client')],
  });
  try {
    const { page } = untrusted;
    await runCommand(page, 'API Client: Run hello.apdu');
    const text = await notification(page, /API client: runScript (refused|answered)/, 60_000);
    assert.match(text, /refused with UNTRUSTED_WORKSPACE: APDU scripts do not run in an untrusted workspace\. Trust the workspace to run them\./);
    await runCommand(page, 'Smart Card: Show APDU Log');
    const log = logFrame(page);
    await log.locator('[data-kind="manager"][data-state="running"]').first().waitFor({ timeout: 60_000 });
    assert.equal(await log.locator('[data-kind="scriptStarted"], [data-kind="exchange"]').count(), 0, 'no script started, no APDU sent');
  } finally {
    await screenshot(untrusted.page, 'api-untrusted-end').catch(() => undefined);
    await untrusted.close();
  }
});

// Issue 15: the client filter beside the reader filter, on the rows of the first test (the API
// client's SELECT and hello.apdu) and of hello.apdu run from the editor (the workbench's own).
test('the client filter: one client\'s rows, or the workbench\'s own; combined with the text filter; kept across a reload', { skip, timeout: 240_000 }, async () => {
  const { page } = wb;
  const log = logFrame(page);
  await runCommand(page, 'Smart Card: Show APDU Log');
  const own = await log.locator('[data-kind="scriptEnded"]:not([data-client])').count();
  await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  await log.locator('[data-kind="scriptEnded"][data-ok="true"]:not([data-client])').nth(own).waitFor({ timeout: 60_000 });

  const client = log.locator('#client');
  await client.waitFor({ state: 'visible', timeout: 10_000 });
  const options = await client.locator('option').allInnerTexts();
  assert.deepEqual(options.slice(0, 2), ['All clients', 'workbench']);
  assert.ok(options.includes(CLIENT), `the API client is offered: ${options}`);
  const shownExchanges = () => log.locator('#log > .row[data-kind="exchange"]').evaluateAll((els) => els.map((e) => e.dataset.client ?? ''));

  await client.selectOption({ label: CLIENT });
  await log.locator('#log > .row[data-kind="exchange"]').first().waitFor();
  let seen = await shownExchanges();
  assert.ok(seen.length >= 5, `the API client's SELECT and hello.apdu's four commands (saw ${seen.length})`);
  assert.deepEqual([...new Set(seen)], [CLIENT], 'only its rows');

  await client.selectOption({ label: 'workbench' });
  await log.locator('#log > .row[data-kind="exchange"]:not([data-client])').first().waitFor();
  seen = await shownExchanges();
  assert.ok(seen.length >= 4, `hello.apdu run from the editor (saw ${seen.length})`);
  assert.deepEqual([...new Set(seen)], [''], 'only rows no client made');

  // With the text filter: the GET CHALLENGEs of the client chosen only (both sent one).
  const challenges = () => log.locator('#log > .row[data-kind="exchange"]').evaluateAll((els) => els.map((e) => `${e.dataset.client ?? 'workbench'} ${/00 84 00 00 08/.test(e.textContent) ? 'GET CHALLENGE' : e.textContent}`));
  await log.locator('#filter input').fill('00 84 00 00 08');
  await waitUntil(async () => (await challenges()).join() === 'workbench GET CHALLENGE', 'the workbench\'s one GET CHALLENGE alone');
  await client.selectOption({ label: CLIENT });
  await waitUntil(async () => { const c = await challenges(); return c.length > 0 && c.every((x) => x === `${CLIENT} GET CHALLENGE`); }, `only ${CLIENT}'s GET CHALLENGEs`);
  await log.locator('#filter input').fill('');

  // The choice is kept with the panel's state.
  await runCommand(page, 'Developer: Reload Window');
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).waitFor({ timeout: 60_000 });
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).click();
  const restored = logFrame(page);
  await restored.locator('#log > .row[data-kind="exchange"]').first().waitFor({ timeout: 60_000 });
  assert.equal(await restored.locator('#client').inputValue(), CLIENT, 'the client filter was kept');
  assert.deepEqual([...new Set(await restored.locator('#log > .row[data-kind="exchange"]').evaluateAll((els) => els.map((e) => e.dataset.client ?? '')))], [CLIENT]);
  await restored.locator('#client').selectOption({ value: '' });
  await screenshot(page, 'api-client-filter');
});

/** Polls a condition of the page for up to 15 s. */
async function waitUntil(check, what) {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
