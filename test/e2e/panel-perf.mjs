// The APDU Log with 100,000 real rows: filled by a script on the simulator, then measured
// inside the webview (requestAnimationFrame deltas and 'longtask' entries while scrolling
// top to bottom). Shared by test/e2e/apdu-log-100k.test.mjs (prints) and bench/run.mjs
// (the "panel" rows). Not a test file itself. Timings are returned, never asserted.
import fs from 'node:fs';
import path from 'node:path';
import { logFrame, openFile, runCommand } from './support.mjs';

export const FIRST = 'first row of the 100k run';
export const LAST = 'last row of the 100k run';

/** A script of `n` exchanges between two echo rows that mark the ends. */
export function writeScript(dir, n = 100_000) {
  const file = path.join(dir, 'panel100k.apdu');
  fs.writeFileSync(file, `echo "${FIRST}"\nrepeat ${n}\n  00 A4 00 0C 02 3F 00 => 90 00\nend\necho "${LAST}"\n`);
  return path.basename(file);
}

/** runCommand, once the quick input of the command before has closed (a closing one is inert); tried again once. */
async function command(page, title) {
  const widget = page.locator('.quick-input-widget');
  await widget.waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
  await runCommand(page, title).catch(async () => {
    await page.keyboard.press('Escape');
    await widget.waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
    await runCommand(page, title);
  });
}

/** `fn(body, arg)` evaluated in the webview. */
const model = (log, fn, arg) => log.locator('body').evaluate(fn, arg);

/** Waits (polling the panel's model, not sleeping blindly) until `fn(body, arg)` is true in the webview. */
export async function waitInPanel(log, fn, arg, timeout = 300_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await model(log, fn, arg).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`the panel did not reach the state in ${timeout} ms`);
    await model(log, () => new Promise((r) => setTimeout(r, 250))).catch(() => undefined);
  }
}

/** Runs the script from the editor with the panel open; returns the time from Enter to the panel holding every row. */
export async function fill(page, scriptName, n = 100_000) {
  // Quick Open right after start-up can meet a closing (inert) quick input: try again once.
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
  await openFile(page, scriptName).catch(async () => {
    await page.keyboard.press('Escape');
    await openFile(page, scriptName);
  });
  await command(page, 'Smart Card: Show APDU Log');
  const log = logFrame(page);
  await log.locator('#scroller').waitFor({ timeout: 30_000 });
  await page.locator('.tabs-container .tab', { hasText: scriptName }).first().click();
  const t0 = performance.now();
  await command(page, 'Smart Card: Run APDU Script');
  // The panel's model tells when every row is in (and whether the run passed); no sleeping.
  await waitInPanel(log, (_, [last, want]) => window.apduLog.pending() === 0 && window.apduLog.count('echo', last) > 0
    && window.apduLog.count('scriptEnded') > 0 && window.apduLog.count('exchange') >= want, [LAST, n]);
  const inPanelMs = performance.now() - t0;
  if (!(await model(log, () => window.apduLog.count('scriptEnded', 'script passed')))) throw new Error('the 100k script did not pass');
  return { inPanelMs };
}

/**
 * Closes the panel and opens it again: time until its newest row is on screen (the whole history
 * sent again). `whileClosed` (a profile's hook) runs between the two, outside the time.
 */
export async function reopen(page, whileClosed) {
  const log = logFrame(page);
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).click();
  await command(page, 'View: Close Editor');
  await page.locator('.tabs-container .tab', { hasText: 'APDU Log' }).waitFor({ state: 'detached' });
  await whileClosed?.();
  const t0 = performance.now();
  await command(page, 'Smart Card: Show APDU Log');
  await log.locator('#log > .row[data-kind="echo"]', { hasText: LAST }).waitFor({ timeout: 120_000 });
  return performance.now() - t0;
}

/**
 * Inside the webview: top, then one jump per frame down to the bottom (each frame shows rows
 * never rendered before), recording frame times; then the rows at the top and at the bottom.
 */
export async function scrollThrough(page, frames = 600) {
  const log = logFrame(page);
  return log.locator('#scroller').evaluate(async (sc, frameCount) => {
    const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r(performance.now())));
    const settle = async () => { for (let i = 0; i < 4; i++) await nextFrame(); };
    const rowsText = () => [...document.querySelectorAll('#log > .row')].map((e) => e.textContent ?? '');
    sc.scrollTop = 0;
    await settle();
    const top = rowsText();
    const longTasks = [];
    let observer;
    try {
      observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) longTasks.push(e.duration); });
      observer.observe({ type: 'longtask' });
    } catch { /* no longtask support */ }
    window.apduLog.work();
    const step = Math.max(1, (sc.scrollHeight - sc.clientHeight) / frameCount);
    const deltas = [];
    let last = await nextFrame();
    const t0 = last;
    while (sc.scrollTop + sc.clientHeight < sc.scrollHeight - 1) {
      sc.scrollTop = Math.min(sc.scrollTop + step, sc.scrollHeight);
      const now = await nextFrame();
      deltas.push(now - last);
      last = now;
      if (deltas.length > frameCount * 3) break;
    }
    const totalMs = last - t0;
    const work = window.apduLog.work();
    await settle();
    observer?.disconnect();
    const bottom = rowsText();
    const sorted = [...deltas].sort((a, b) => a - b);
    return {
      frames: deltas.length,
      totalMs,
      maxFrameMs: sorted.at(-1) ?? 0,
      p95FrameMs: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0,
      medianFrameMs: sorted[Math.floor(sorted.length / 2)] ?? 0,
      longTasks: longTasks.length,
      maxLongTaskMs: Math.max(0, ...longTasks),
      domRows: document.querySelectorAll('#log .row').length,
      /** The panel's own code per frame (the rest of a frame is the browser's style, layout, paint and GC). */
      ownMaxMs: work.maxMs,
      ownMeanMs: work.frames ? work.totalMs / work.frames : 0,
      scrollHeight: sc.scrollHeight,
      top,
      bottom,
    };
  }, frames);
}

/**
 * The control for the panel's scroll: inside the same webview (code-server serves webviews from the
 * workbench's origin: one renderer process and V8 heap with the workbench), a scroller with nothing
 * in it but its height, over the panel, scrolled with the same number of jumps. Long frames here
 * come from the process the panel shares (collections, the workbench), not from the panel's rows.
 */
export async function scrollEmpty(frame, frameCount, height) {
  return frame.locator('body').evaluate(async (body, [frames, h]) => {
    const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r(performance.now())));
    const sc = document.createElement('div');
    sc.style.cssText = 'position:fixed;inset:0;overflow-y:scroll;z-index:2147483647;background:Canvas';
    const tall = document.createElement('div');
    tall.style.height = `${h}px`;
    sc.appendChild(tall);
    body.appendChild(sc);
    const longTasks = [];
    let observer;
    try {
      observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) longTasks.push(e.duration); });
      observer.observe({ type: 'longtask' });
    } catch { /* no longtask support */ }
    try {
      for (let i = 0; i < 4; i++) await nextFrame();
      const step = Math.max(1, (sc.scrollHeight - sc.clientHeight) / frames);
      const deltas = [];
      let last = await nextFrame();
      while (sc.scrollTop + sc.clientHeight < sc.scrollHeight - 1 && deltas.length < frames * 3) {
        sc.scrollTop = Math.min(sc.scrollTop + step, sc.scrollHeight);
        const now = await nextFrame();
        deltas.push(now - last);
        last = now;
      }
      const sorted = deltas.sort((a, b) => a - b);
      return { frames: sorted.length, maxFrameMs: sorted.at(-1) ?? 0, p95FrameMs: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0, longTasks: longTasks.length };
    } finally {
      observer?.disconnect();
      sc.remove();
    }
  }, [frameCount, height]);
}

export const fmt = (ms) => `${Math.round(ms)} ms`;
