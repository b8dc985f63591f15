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
import { launchWorkbench, logFrame, missingPrerequisite, notification, root, runCommand, screenshot } from './support.mjs';

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
