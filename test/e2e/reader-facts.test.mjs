// Issue 18 item 14, in real VS Code with examples/ open: the simulator reader's Details show what the
// reader says about itself (vendor, model, IFD version), its PC/SC features by name, and tooltips
// that explain the numbers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchWorkbench, missingPrerequisite, root, screenshot } from './support.mjs';

const READER = 'Workbench Simulator 00 00';
const skip = missingPrerequisite();
let wb;

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'reader-facts',
    // The simulated PIN pad: the reader announces FEATURE_VERIFY_PIN_DIRECT at the first power-up.
    settings: { 'smartcard.simulator.pinpad': true, 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false },
  });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'reader-facts-end').catch(() => undefined);
  await wb?.close();
});

const row = (page, text, level) => page.locator(`.monaco-list-row${level ? `[aria-level="${level}"]` : ''}`, { hasText: text }).first();

/** Hovers a row and returns the text of the tooltip that matches `re`. */
async function tooltipOf(page, rowLocator, re) {
  await page.mouse.move(0, 0);
  await rowLocator.hover();
  const hover = page.locator('.monaco-hover, .custom-hover, .workbench-hover', { hasText: re }).first();
  await hover.waitFor({ timeout: 15_000 });
  return hover.innerText();
}

test('Details show the reader\'s vendor, model, IFD version and PC/SC features, each explained in its tooltip', { skip, timeout: 120_000 }, async () => {
  const { page } = wb;
  await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').click();
  await row(page, READER, 2).waitFor({ timeout: 30_000 });
  // The card was powered at insertion (its ATR shows), so the feature list has been read.
  await row(page, /ATR 3B/, 3).waitFor({ timeout: 30_000 });
  await row(page, 'Details', 3).click();
  const vendor = row(page, 'vendor', 4);
  await vendor.waitFor({ timeout: 15_000 });
  assert.match(await vendor.innerText(), /vendor\s*Smart Card Workbench/);
  assert.match(await row(page, 'model', 4).innerText(), /model\s*Simulator/);
  const version = row(page, 'IFD version', 4);
  assert.match(await version.innerText(), /IFD version\s*0\.1\.0/);
  const feature = row(page, 'PC/SC feature', 4);
  assert.match(await feature.innerText(), /VERIFY_PIN_DIRECT \(0x42330006\)/);
  await screenshot(page, 'reader-facts-details');

  assert.match(await tooltipOf(page, version, /as the driver reports it/), /IFD version 0\.1\.0 \(0x00010000, as the driver reports it\)/);
  assert.match(await tooltipOf(page, row(page, 'events', 4), /insertions\/removals/), /events: \d+ — card insertions\/removals seen since the reader appeared/);
  assert.match(await tooltipOf(page, feature, /PIN pad/), /the PIN never reaches the computer/);
  assert.match(await tooltipOf(page, row(page, 'reader facts', 4), /reader facts/), /no T=1 blocks/);
  await screenshot(page, 'reader-facts-tooltip');
});
