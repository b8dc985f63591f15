// Shared by the real-VS-Code tests: code-server + Debian Chromium driven by playwright-core.
// Recipe and measurements: ../shared/docs/real-vscode.md. Not a test file itself.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CODE_SERVER_VERSION, codeServerInstalled, ensureCodeServer, startCodeServer, workbenchUrl } from '../../scripts/code-server.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const resultsDir = path.join(root, 'test-results');

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

/**
 * Why the suite cannot run (a string: skip outside CI), or false. Under CI=true a
 * missing part throws, so the run fails instead of passing without testing anything.
 */
export function missingPrerequisite() {
  const missing = [];
  if (!fs.existsSync(CHROMIUM)) missing.push(`Chromium (${CHROMIUM}; install it with: sudo npm run setup:system)`);
  if (!process.env.CODE_SERVER_ENTRY && !codeServerInstalled()) missing.push(`code-server ${CODE_SERVER_VERSION} (npm test installs it; or: node scripts/code-server.mjs, about 5 minutes once)`);
  let playwright = true;
  try { fs.accessSync(path.join(root, 'node_modules', 'playwright-core')); } catch { playwright = false; }
  if (!playwright) missing.push('playwright-core (npm ci)');
  // SMARTCARD_SERVER_MODULE: the extension runs that helper instead of out/server.js (purpose-built test helpers).
  for (const f of ['out/extension.js', process.env.SMARTCARD_SERVER_MODULE ?? 'out/server.js', 'out/webview.js', 'out/toolkit.min.js']) {
    if (!fs.existsSync(path.resolve(root, f))) missing.push(`${f} (build it with: npm run build)`);
  }
  if (!missing.length) return false;
  const msg = `real VS Code tests need ${missing.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: a missing part fails the run)`);
  return msg;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** Console messages of code-server without network; anything else is reported. */
const HARMLESS = [
  /vsda/i, /github/i, /gallery/i, /marketplace/i, /ERR_INTERNET_DISCONNECTED|ERR_NAME_NOT_RESOLVED|ERR_CONNECTION_REFUSED|ERR_PROXY/i,
  /Failed to load resource: the server responded with a status of 404/i, /update\.code\.visualstudio\.com/i,
  /\[Extension Host\] (?!.*smartcard)/i, /An iframe which has both allow-scripts and allow-same-origin/i,
  /webWorkerExtensionHost|web worker extension host/i, /Ignoring fetching additional builtin extensions/i,
  /vscode-unpkg|default.*\.net|openvsx|open-vsx/i, /Not allowed to load local resource/i,
  /Content Security Policy of your site blocks the use of 'eval'/i,
];
export const isHarmless = (text) => HARMLESS.some((re) => re.test(text));

/**
 * Starts code-server with fresh state under a temp folder, and Chromium on the
 * workbench with this extension loaded from the working tree.
 */
export async function launchWorkbench({ workspace, settings = {}, machineSettings, env = {}, name = 'e2e', vsix, workspaceTrust = false, extraExtensions = [] }) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `smartcard-${name}-`));
  const dirs = Object.fromEntries(['userData', 'extensions', 'config', 'data', 'cache', 'profile'].map((d) => [d, path.join(tmp, d)]));
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  fs.mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  fs.writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), JSON.stringify({
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    // workspaceTrust: VS Code's Workspace Trust on, the folder opens untrusted (Restricted Mode) without a startup dialog.
    ...(workspaceTrust
      ? { 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.banner': 'always' }
      : { 'security.workspace.trust.enabled': false }),
    'extensions.autoCheckUpdates': false,
    // VS Code 1.139's value (an enum of 'on' and 'off'): `false` (the older form) is migrated at start-up, and that
    // rewrite of settings.json runs the extension host's save participants, whose 1750 ms time-out a loaded CI machine
    // can hit (console error "Aborted onWillSaveTextDocument-event after 1750ms").
    'extensions.autoUpdate': 'off',
    'telemetry.telemetryLevel': 'off',
    'window.commandCenter': false,
    'workbench.enableExperiments': false,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    'git.enabled': false,
    ...settings,
  }, null, 2));
  // Machine-scoped settings (smartcard.pcsc.library): code-server takes them from the remote
  // machine's settings (the Settings editor's "Remote" tab), not from User/settings.json.
  // pcscd's idle power-down (R77, 5 s by default) is off unless a test sets it: it changes the Readers
  // view and adds a log row 5 s after a card's last use, which took hovers and "newest row" checks of
  // tests about other things by surprise on a slow machine. idle-power.test.mjs is the test of it.
  fs.mkdirSync(path.join(dirs.userData, 'Machine'), { recursive: true });
  fs.writeFileSync(path.join(dirs.userData, 'Machine', 'settings.json'), JSON.stringify({
    'smartcard.readerManager.idlePowerOff': 0,
    ...(machineSettings ?? {}),
  }, null, 2));
  const xdg = { XDG_CONFIG_HOME: dirs.config, XDG_DATA_HOME: dirs.data, XDG_CACHE_HOME: dirs.cache };
  if (vsix) {
    // Installed like a user would (offline, from the file), instead of loaded from the working tree.
    const { node, entry } = await ensureCodeServer();
    const r = spawnSync(node, [entry, '--extensions-dir', dirs.extensions, '--user-data-dir', dirs.userData, '--install-extension', vsix],
      { encoding: 'utf8', env: { ...process.env, ...xdg }, timeout: 120_000 });
    if (r.status !== 0) throw new Error(`installing ${vsix} failed: ${r.stdout}${r.stderr}`);
  }
  // `extraExtensions`: more extension folders installed beside this one (a second extension using its
  // API), copied into the extensions folder as `publisher.name-version` the way an install leaves them
  // (the workbench URL's payload holds one extensionDevelopmentPath: code-server keeps the last).
  for (const dir of extraExtensions) {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    fs.cpSync(dir, path.join(dirs.extensions, `${m.publisher}.${m.name}-${m.version}`), { recursive: true });
  }
  const port = await freePort();
  const cs = await startCodeServer({ port, workspace, userDataDir: dirs.userData, extensionsDir: dirs.extensions, env: { ...xdg, ...env }, workspaceTrust });
  const { chromium } = await import('playwright-core');
  let context;
  try {
    context = await chromium.launchPersistentContext(dirs.profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 860 }, env: { ...process.env, ...xdg },
    });
  } catch (err) {
    cs.stop();
    throw err;
  }
  const page = context.pages()[0] ?? await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error' && !isHarmless(m.text())) consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => { if (!isHarmless(String(e))) consoleErrors.push(String(e)); });
  const url = vsix ? `${cs.base}/?folder=${encodeURIComponent(workspace)}` : workbenchUrl(cs.base, workspace, root);
  try {
    await page.goto(url);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.activitybar').waitFor({ timeout: 30_000 });
    // The extension's contributions are registered once its view container shows.
    await page.locator('.activitybar .action-item a[aria-label^="Smart Card"]').waitFor({ timeout: 60_000 });
  } catch (err) {
    // A workbench that never came up: stop what was started, or the test process (and the e2e lock) waits on it forever.
    fs.mkdirSync(resultsDir, { recursive: true });
    await page.screenshot({ path: path.join(resultsDir, `${name}-launch-failed.png`) }).catch(() => undefined);
    await context.close().catch(() => undefined);
    cs.stop();
    throw err;
  }
  const browserPid = chromiumPid(dirs.profile);
  return {
    page, context, cs, tmp, url, consoleErrors,
    /** `keep: true` leaves the temp folder for the caller to read (and remove) after everything stopped. */
    async close({ keep = false } = {}) {
      // Chromium first (it holds connections to code-server), then the code-server process group.
      await context.close().catch(() => undefined);
      if (browserPid) { try { process.kill(browserPid, 'SIGKILL'); } catch { /* closed by context.close() */ } }
      cs.stop();
      await new Promise((r) => (cs.child.exitCode !== null || cs.child.signalCode !== null ? r() : cs.child.once('exit', r)));
      if (!keep) fs.rmSync(tmp, { recursive: true, force: true });
    },
    /** PIDs of this workbench's helper processes (descendants of its code-server running `module`), not other tests'. */
    helperPids(module = path.join(root, 'out/server.js')) {
      return descendants(cs.child.pid).filter((pid) => {
        try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(module); } catch { return false; }
      });
    },
  };
}

/** Every live descendant of `pid` (from /proc). */
export function descendants(pid) {
  const children = new Map();
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(p));
    } catch { /* process ended meanwhile */ }
  }
  const out = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) { const p = queue.shift(); out.push(p); queue.push(...(children.get(p) ?? [])); }
  return out;
}

/** The PID of the Chromium we launched: our child process whose command line names its profile folder. */
function chromiumPid(profile) {
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(profile)) return Number(pid);
    } catch { /* process ended meanwhile */ }
  }
  return undefined;
}

/** The next keys go to the workbench's own document, not to a webview's frame that holds the focus. */
const blurWebview = (page) => page.evaluate(() => { if (document.activeElement?.tagName === 'IFRAME') document.activeElement.blur(); }).catch(() => undefined);

/**
 * Opens a quick input with `key` and types `text` into it, asked again until `row` shows (or `timeout` ms
 * passed): the palette lists commands of extensions still being registered late, and a quick input can
 * close under us (a view revealed by a run takes the focus; a closing quick input is inert for a moment;
 * a key pressed while a webview that just opened holds the focus can be lost). Leaves it open on `row`.
 */
export async function quickInputShowing(page, key, text, row, timeout) {
  const input = page.locator('.quick-input-widget input');
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      await page.keyboard.press(key);
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(text, { timeout: 5000 });
      await row.waitFor({ timeout: 5000 });
      return input;
    } catch (err) {
      await page.keyboard.press('Escape').catch(() => undefined);
      if (Date.now() > deadline) throw err;
      await blurWebview(page);
    }
  }
}

/** Runs a command from the palette (F1) by its title. */
export async function runCommand(page, title, timeout = 30_000) {
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  const input = await quickInputShowing(page, 'F1', `>${title}`, row, timeout);
  await input.press('Enter');
  // The palette is done when it closes, or when the command reuses the widget (an input box).
  await page.waitForFunction(() => {
    const w = document.querySelector('.quick-input-widget');
    const i = w?.querySelector('input');
    return !w || getComputedStyle(w).display === 'none' || !i || !i.value.startsWith('>');
  }, undefined, { timeout: 10_000 }).catch(() => undefined);
}

/**
 * Waits for a notification matching `re` in the notification center and returns its text.
 * (code-server 4.139 headless announces notifications without showing toasts, so the center is read.)
 */
export async function notification(page, re, timeout = 30_000) {
  const center = page.locator('.notifications-center');
  const item = center.locator('.notification-list-item', { hasText: re }).first();
  const deadline = Date.now() + timeout;
  for (;;) {
    if (!(await center.isVisible())) await runCommand(page, 'Notifications: Show Notifications');
    try {
      await item.waitFor({ timeout: Math.max(1000, Math.min(5000, deadline - Date.now())) });
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        // Say what was there instead: an error notification explains most time-outs.
        const seen = await center.locator('.notification-list-item').allInnerTexts().catch(() => []);
        err.message += `\nnotifications shown instead: ${seen.length ? seen.map((t) => JSON.stringify(t.replace(/\s+/g, ' '))).join(', ') : 'none'}`;
        throw err;
      }
    }
  }
  const text = await item.innerText();
  // Clearing all also closes the center; the next call then sees only new notifications.
  await runCommand(page, 'Notifications: Clear All Notifications');
  if (await center.isVisible()) await page.keyboard.press('Escape');
  return text;
}

/** Opens a workspace file with Quick Open (Ctrl+P); a CI run once waited 30 s on a Ctrl+P that never arrived. */
export async function openFile(page, name, timeout = 60_000) {
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first();
  const input = await quickInputShowing(page, 'Control+P', name, row, timeout);
  await input.press('Enter');
  await page.locator(`.tabs-container .tab[aria-label*="${name}"]`).first().waitFor();
  await page.locator('.editor-instance .monaco-editor .view-lines').first().waitFor();
}

/**
 * The APDU Log's document, in the bottom panel or beside the editor: the webview is two iframes
 * deep, told apart from the workbench's own webviews (the Welcome page's media) by its extension.
 */
export const LOG_IFRAME = 'iframe.webview.ready[src*="extensionId=smartcard-workbench.smartcard-workbench"]';
export function logFrame(page) {
  return page.frameLocator(LOG_IFRAME).frameLocator('iframe#active-frame');
}

export async function screenshot(page, name, { docs = false } = {}) {
  fs.mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.png`);
  await page.screenshot({ path: file });
  if (docs) {
    fs.mkdirSync(path.join(root, 'docs', 'images'), { recursive: true });
    fs.copyFileSync(file, path.join(root, 'docs', 'images', `${name}.png`));
  }
  return file;
}

/**
 * Answers "Export APDU Log"'s questions once it was started (panel button or palette), or
 * starts it with `start` (then again if the format pick closes before it is answered): the
 * format, then the file in code-server's simple save dialog (a path in a quick input).
 * Returns the notification that says where, and the file's text.
 */
export async function answerExport(page, format, file, start) {
  const pick = page.locator('.quick-input-list .monaco-list-row', { hasText: format }).first();
  if (start) await startAndPick(page, start, pick);
  else {
    await pick.waitFor({ timeout: 30_000 });
    await pick.click({ timeout: 30_000 });
  }
  await page.waitForFunction(() => /apdu-log\.(txt|jsonl)/.test(document.querySelector('.quick-input-widget input')?.value ?? ''), undefined, { timeout: 20_000 });
  const input = page.locator('.quick-input-widget input');
  await input.fill(file);
  // The dialog reads the folder as the path is typed and may ignore an Enter meanwhile: press it
  // again while the dialog still shows our path.
  for (let i = 0; i < 5; i++) {
    await input.press('Enter');
    const closed = await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 3000 }).then(() => true, () => false);
    if (closed || (await input.inputValue().catch(() => '')) !== file) break;
  }
  const note = await notification(page, /APDU Log exported/, 30_000);
  return { note, text: fs.readFileSync(file, 'utf8') };
}

/**
 * A card for the vpcd reader on `port`: bench/fast-peer.mjs, answering 90 00 to everything. It
 * connects (a card insertion) once the helper listens; `peer.connected` settles then, or rejects
 * with its output if it ends first; `peer.output` holds what it printed.
 */
export function startFastPeer(port) {
  const peer = spawn(process.execPath, [path.join(root, 'bench', 'fast-peer.mjs'), String(port), '--timeout-ms', '120000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  peer.output = '';
  peer.connected = new Promise((resolve, reject) => {
    peer.stdout.on('data', (d) => { peer.output += d; if (peer.output.includes('connected')) resolve(); });
    peer.stderr.on('data', (d) => { peer.output += d; });
    peer.once('exit', (code) => reject(new Error(`the vpcd peer ended (${code}) before connecting: ${peer.output}`)));
  });
  peer.connected.catch(() => undefined);
  return peer;
}

/**
 * Starts a command that asks with a quick pick (`start`) and clicks `row` in it. A quick pick closes
 * when it loses the focus (a webview that was just clicked, revealed or read can take it back as the
 * pick opens): then the command is started again, up to `tries` times. A CI run once saw Select
 * Reader's pick found, then gone before the click, and waited 30 s on it.
 */
export async function startAndPick(page, start, row, tries = 3) {
  for (let i = 0; ; i++) {
    await start();
    try {
      await row.waitFor({ timeout: 10_000 });
      await row.click({ timeout: 5000 });
      return;
    } catch (err) {
      if (i >= tries - 1) throw err;
      await page.keyboard.press('Escape').catch(() => undefined);
      await blurWebview(page);
    }
  }
}

/** Smart Card: Select Reader, answered with the reader whose row holds `name`. */
export async function selectReader(page, name) {
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first();
  await startAndPick(page, () => runCommand(page, 'Smart Card: Select Reader'), row);
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
}
