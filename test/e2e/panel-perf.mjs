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

/**
 * The second control (information, the bench's panel-profile `--cheapest`): the cheapest list that
 * shows what the panel shows. In the same webview, over the panel, a scroller of the panel's height
 * with a plain virtualized list in it: as many pooled rows as the panel has in its DOM, each two
 * lines (a div of the time, reader, line and timing, three spaces apart, and one of the APDU) written with textContent
 * only, in the panel's row font, size, line height, padding and border (read from a row of the
 * panel), no spans, no colours, no attributes; the list moved by one transform per jump, no
 * layout read back. Scrolled by the same jumps, each row showing a text it never showed before
 * (the panel's rows' texts with a time made from the row's number). What is left in a
 * frame here is what rendering 25 new rows per frame costs in this workbench.
 */
export async function scrollCheapest(frame, frameCount, height, variant = 'plain') {
  return frame.locator('body').evaluate(async (body, [frames, h, variant]) => {
    const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r(performance.now())));
    const model = document.querySelector('#log > .row.exchange');
    const cs = getComputedStyle(model);
    const metaSize = getComputedStyle(model.querySelector('.meta')).fontSize;
    const rowH = model.offsetHeight;
    const metaText = [...model.querySelector('.meta').children].filter((e) => !e.hidden && e.textContent).map((e) => e.textContent).join('   ');
    const apduText = model.querySelector('.apdu').textContent;
    const poolSize = document.querySelectorAll('#log > .row').length;
    const sc = document.createElement('div');
    sc.style.cssText = `position:fixed;inset:0;overflow-y:scroll;z-index:2147483647;background:${getComputedStyle(document.body).backgroundColor};color:${cs.color}`;
    const tall = document.createElement('div');
    tall.style.cssText = `height:${h}px;position:relative`;
    const list = document.createElement('div');
    list.style.cssText = 'position:absolute;top:0;left:0;right:0;padding:0 10px;will-change:transform';
    tall.appendChild(list);
    sc.appendChild(tall);
    const lineCss = 'white-space:pre;overflow:hidden';
    const rows = [];
    // variant 'clone': the pool is copies of a row of the panel (its elements, classes and CSS), of
    // which only the time's two text nodes are written per jump (as the panel's refill does for a
    // run's rows, whose other fields repeat): the panel's DOM without the panel's script.
    const clones = [];
    for (let i = 0; variant === 'clone' && i < poolSize; i++) {
      const row = model.cloneNode(true);
      row.classList.remove('active');
      list.appendChild(row);
      const t = row.querySelector('.time');
      clones.push([t.firstChild, t.lastChild]);
    }
    for (let i = 0; variant === 'plain' && i < poolSize; i++) {
      const row = document.createElement('div');
      row.style.cssText = `height:${rowH - 7}px;padding:3px 0;border-bottom:${cs.borderBottom};font-family:${cs.fontFamily};font-size:${cs.fontSize};line-height:${cs.lineHeight}`;
      const a = document.createElement('div');
      a.style.cssText = `${lineCss};font-size:${metaSize}`;
      const b = document.createElement('div');
      b.style.cssText = lineCss;
      row.append(a, b);
      list.appendChild(row);
      rows.push([a, b]);
    }
    body.appendChild(sc);
    const clock = /\d\d:\d\d:\d\d\.\d{3}/;
    const two = (v) => String(v).padStart(2, '0');
    const timeOf = (n) => `13:${two(Math.floor(n / 60_000) % 60)}:${two(Math.floor(n / 1000) % 60)}.${String(n % 1000).padStart(3, '0')}`;
    const render = () => {
      // The panel's overscan (8 rows above the view), the list kept inside the scroller's height.
      const first = Math.max(0, Math.min(Math.floor(sc.scrollTop / rowH) - 8, Math.floor(h / rowH) - poolSize));
      list.style.transform = `translateY(${first * rowH}px)`;
      for (let i = 0; i < clones.length; i++) {
        const t = timeOf(first + i);
        clones[i][0].data = t.slice(0, 8);
        clones[i][1].data = t.slice(8);
      }
      for (let i = 0; i < rows.length; i++) {
        const n = first + i;
        rows[i][0].textContent = metaText.replace(clock, timeOf(n));
        rows[i][1].textContent = apduText;
      }
    };
    try {
      render();
      for (let i = 0; i < 4; i++) await nextFrame();
      const step = Math.max(1, (sc.scrollHeight - sc.clientHeight) / frames);
      const deltas = [];
      let last = await nextFrame();
      while (sc.scrollTop + sc.clientHeight < sc.scrollHeight - 1 && deltas.length < frames * 3) {
        sc.scrollTop = Math.min(sc.scrollTop + step, sc.scrollHeight);
        render();
        const now = await nextFrame();
        deltas.push(now - last);
        last = now;
      }
      const sorted = deltas.sort((a, b) => a - b);
      return { frames: sorted.length, maxFrameMs: sorted.at(-1) ?? 0, p95FrameMs: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0, rows: poolSize, rowH, viewPx: sc.clientHeight, metaText, apduText };
    } finally {
      sc.remove();
    }
  }, [frameCount, height, variant]);
}

export const fmt = (ms) => `${Math.round(ms)} ms`;
