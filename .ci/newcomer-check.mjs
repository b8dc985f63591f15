// CI: the browser half of the newcomer check (.ci/newcomer.sh). Given the URL `npm start`
// printed, checks what a newcomer sees first: the workbench loads, the Smart Card view lists
// the simulator reader, hello.apdu runs from the palette and the APDU Log shows `90 00`.
//   node .ci/newcomer-check.mjs URL
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, logFrame, openFile, runCommand } from '../test/e2e/support.mjs';

const READER = 'Workbench Simulator 00 00';
const url = process.argv[2];
if (!url || !/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) {
  console.error('usage: node .ci/newcomer-check.mjs URL (the URL npm start printed)');
  process.exit(2);
}
const t0 = Date.now();
const say = (msg) => console.log(`newcomer check (+${((Date.now() - t0) / 1000).toFixed(1)} s): ${msg}`);

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'newcomer-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 860 },
});
let ok = false;
const page = context.pages()[0] ?? await context.newPage();
try {
  say(`opening ${url}`);
  await page.goto(url);
  await page.locator('.monaco-workbench').waitFor({ timeout: 120_000 });
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').waitFor({ timeout: 120_000 });
  say('the workbench loaded with the Smart Card view container');

  await runCommand(page, 'Focus on Readers View', 60_000);
  await page.locator('.monaco-list-row', { hasText: READER }).waitFor({ timeout: 60_000 });
  say(`the Readers view lists ${READER}`);

  await openFile(page, 'hello.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  const log = logFrame(page);
  const end = log.locator('[data-kind="scriptEnded"]').first();
  await end.waitFor({ timeout: 60_000 });
  assert.equal(await end.getAttribute('data-ok'), 'true', `hello.apdu passed (the log says: ${await end.innerText()})`);
  const exchange = log.locator('[data-kind="exchange"][data-sw="9000"]').first();
  await exchange.waitFor({ timeout: 30_000 });
  const text = await exchange.innerText();
  assert.match(text, /90 00/, 'the APDU Log shows the status word 90 00');
  say(`hello.apdu ran from the palette; the APDU Log shows: ${text.replace(/\s+/g, ' ').trim().slice(0, 100)}`);
  ok = true;
} finally {
  if (!ok) {
    const shot = path.join(os.tmpdir(), `newcomer-check-${process.pid}.png`);
    await page.screenshot({ path: shot }).then(() => say(`failed; the page as it was: ${shot}`), () => undefined);
  }
  await context.close().catch(() => undefined);
  fs.rmSync(profile, { recursive: true, force: true });
}
say('passed');
