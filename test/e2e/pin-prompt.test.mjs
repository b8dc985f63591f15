// Issue 18 item 11, on the README's path (examples/ open, verify-pin.apdu, the simulator, the log
// where it opens by default): the PIN box's title names the PIN once with the reader and the line,
// its prompt says the tries the script's own query just read ("2 tries left" after 63 C2) and
// does not repeat the label; the log calls that VERIFY without data a retry-counter query, not a
// failed verification; the automatic retry check does not send the query the script just sent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, notification, openFile, root, runCommand, screenshot } from './support.mjs';

const skip = missingPrerequisite();
let wb;
const LABEL = 'User PIN (simulator: 1234)';

before(async () => {
  if (skip) return;
  wb = await launchWorkbench({
    workspace: path.join(root, 'examples'), name: 'pin-prompt',
    settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false },
  });
}, { timeout: 120_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'pin-prompt-end').catch(() => undefined);
  await wb?.close();
});

const api = (fn, arg) => logFrame(wb.page).locator('body').evaluate(fn, arg);

/** Runs verify-pin.apdu and answers its PIN box with `pin`; returns what the box said. */
async function runAnswering(page, pin) {
  const tab = page.locator('.tabs-container .tab[aria-label*="verify-pin.apdu"]').first();
  if (await tab.count()) await tab.click();
  else await openFile(page, 'verify-pin.apdu');
  await runCommand(page, 'Smart Card: Run APDU Script');
  const box = page.locator('.quick-input-widget');
  const input = box.locator('input[type="password"]');
  await input.waitFor({ state: 'visible', timeout: 30_000 });
  const title = (await box.locator('.quick-input-title').innerText()).trim();
  const prompt = (await box.locator('.quick-input-message').innerText()).trim();
  await input.fill(pin);
  await input.press('Enter');
  await box.waitFor({ state: 'hidden', timeout: 15_000 });
  return { title, prompt };
}

/** Exchange rows in the log (the model, not only the rows drawn) whose text contains `text`. */
const exchanges = (text) => api((b, t) => window.apduLog.count('exchange', t), text);

test('a wrong PIN, then the next run\'s box says "2 tries left" once, with the label once', { skip, timeout: 180_000 }, async () => {
  const { page } = wb;
  const first = await runAnswering(page, '9999');
  assert.equal(first.title, `${LABEL} — Workbench Simulator 00 00, verify-pin.apdu:9`);
  assert.match(first.prompt, /^3 tries left\. /);
  assert.ok(!first.prompt.includes('User PIN'), `the prompt does not repeat the label: ${first.prompt}`);
  await notification(page, /Script failed at line 9/, 60_000);

  const second = await runAnswering(page, '1234');
  assert.equal(second.title, `${LABEL} — Workbench Simulator 00 00, verify-pin.apdu:9`);
  assert.match(second.prompt, /^2 tries left\. The PIN goes to the card only/);
  assert.equal(second.title.split('User PIN').length - 1, 1, 'the title names the PIN once');
  assert.ok(!second.prompt.includes('User PIN'), `the prompt does not repeat the label: ${second.prompt}`);
  await notification(page, /Script passed/, 60_000);
  // The PIN typed never shows in the log.
  assert.equal(await exchanges('31 32 33 34'), 0, 'the PIN is not in the log');
  assert.equal(await exchanges('39 39 39 39'), 0, 'the wrong PIN is not in the log');
  await screenshot(page, 'pin-prompt-log');
});

test('the log calls the VERIFY without data a retry-counter query, and no automatic check repeats it', { skip, timeout: 60_000 }, async () => {
  // Both runs: the script's own query (line 7) answered 63 C3, then 63 C2.
  assert.equal(await exchanges('Retry counter: 3 tries left'), 1);
  assert.equal(await exchanges('Retry counter: 2 tries left'), 1);
  const queries = await exchanges('\n> 00 20 00 01\n');
  assert.equal(queries, 2, 'one query per run: the script\'s own');
  assert.equal(await exchanges('PIN retry counter check (automatic)'), 0, 'no automatic query after the script\'s own');
  // No VERIFY without data is called a failed verification.
  const texts = await api(() => {
    const out = [];
    for (const el of document.querySelectorAll('#log .row[data-kind="exchange"]')) out.push(el.innerText);
    return out;
  });
  for (const t of texts.filter((x) => /00 20 00 01(?! 04)/.test(x))) assert.doesNotMatch(t, /Verification failed/, t);
  // The wrong PIN's VERIFY (with data) is the failed verification.
  assert.equal(await exchanges('Verification failed'), 1);
});

test('no unexpected errors in the browser console', { skip }, () => {
  assert.deepEqual(wb.consoleErrors.filter((e) => !/^Script failed at line/.test(e)), []);
});
