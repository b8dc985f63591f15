// The APDU Log with 100,000 real rows (a `repeat 100000` script on the simulator, run from
// the editor with the panel open): every row reachable by scrolling, the DOM holding only
// the rows in view. Time to render, max and p95 frame while scrolling are PRINTED, not asserted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchWorkbench, logFrame, missingPrerequisite, screenshot } from './support.mjs';
import { FIRST, LAST, fill, fmt, reopen, scrollThrough, writeScript } from './panel-perf.mjs';

const skip = missingPrerequisite();
const N = 100_000;
let wb;
let ws;

before(async () => {
  if (skip) return;
  ws = fs.mkdtempSync(path.join(os.tmpdir(), 'smartcard-100k-ws-'));
  writeScript(ws, N);
  wb = await launchWorkbench({ workspace: ws, name: 'apdu-log-100k', settings: {
    'smartcard.log.location': 'editor', // reopen() closes the log's editor tab
    'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false,
  } });
}, { timeout: 180_000 });

after(async () => {
  if (wb) await screenshot(wb.page, 'apdu-log-100k-end').catch(() => undefined);
  await wb?.close();
  if (ws) fs.rmSync(ws, { recursive: true, force: true });
});

test('100,000 rows: all reachable by scrolling, few in the DOM; timings printed', { skip, timeout: 900_000 }, async () => {
  const { page } = wb;
  const filled = await fill(page, 'panel100k.apdu', N);
  const log = logFrame(page);
  assert.ok(await log.locator('body').evaluate(() => window.apduLog.rows()) >= N + 2, 'the panel holds every row');
  assert.ok(Number(await log.locator('#count').innerText()) >= N);
  const renderMs = await reopen(page);
  const s = await scrollThrough(page);
  console.log(`# APDU Log, ${N.toLocaleString('en-US')} rows: all rows in the panel ${fmt(filled.inPanelMs)} after Run, `
    + `time to render on reopening ${fmt(renderMs)}; scrolling top to bottom in ${s.frames} frames (${fmt(s.totalMs)}): `
    + `max frame ${s.maxFrameMs.toFixed(1)} ms, p95 ${s.p95FrameMs.toFixed(1)} ms, median ${s.medianFrameMs.toFixed(1)} ms, `
    + `${s.longTasks} long task(s) (longest ${s.maxLongTaskMs.toFixed(0)} ms); the panel's own code per frame: mean ${s.ownMeanMs.toFixed(1)} ms, `
    + `max ${s.ownMaxMs.toFixed(1)} ms; ${s.domRows} rows in the DOM`);
  // The rows at the ends are reachable: the first script row at the top, the last at the bottom.
  assert.ok(s.top.some((t) => t.includes(FIRST)), `the first rows are shown at the top: ${s.top.slice(0, 3)}`);
  assert.ok(s.bottom.some((t) => t.includes(LAST)), `the last rows are shown at the bottom: ${s.bottom.slice(-3)}`);
  assert.ok(s.bottom.at(-1).includes('Script passed'), 'the newest row is the last one shown');
  assert.ok(s.domRows < 200, `the DOM holds ${s.domRows} rows, not ${N}`);
  assert.ok(s.scrollHeight > N * 10, 'the scroll range stands for every row');
  // A jump renders the rows in view and few more: the overscan's rows (out of view) come in the
  // frame after, once the scroll stops. Counted in the jump's own frame, right after the panel's
  // frame callback (ours is asked for by a scroll listener added after the panel's: it runs after).
  const rows = await log.locator('#scroller').evaluate(async (sc) => {
    const nextFrame = () => new Promise((r) => requestAnimationFrame(r));
    const count = () => document.querySelectorAll('#log > .row').length;
    const during = [];
    let visible = 0;
    const afterPanel = () => requestAnimationFrame(() => {
      during.push(count());
      visible = [...document.querySelectorAll('#log > .row')].filter((e) => { const r = e.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; }).length;
    });
    sc.scrollTop = 0;
    for (let i = 0; i < 4; i++) await nextFrame();
    sc.addEventListener('scroll', afterPanel, { passive: true });
    try {
      const step = (sc.scrollHeight - sc.clientHeight) / 40;
      // A jump, and a frame without one: the overscan comes back before the next jump. Each jump
      // made from a task after the frames (made inside a frame callback, the panel's callback of
      // that same frame would already see it).
      for (let i = 0; i < 20; i++) {
        sc.scrollTop += step;
        await nextFrame();
        await nextFrame();
        await new Promise((r) => setTimeout(r, 0));
      }
    } finally { sc.removeEventListener('scroll', afterPanel); }
    for (let i = 0; i < 4; i++) await nextFrame();
    return { during, visible, settled: count() };
  });
  const most = Math.max(...rows.during);
  assert.ok(most <= rows.visible + 4, `a jump's frame rendered ${most} rows for ${rows.visible} in view (${rows.during.join(' ')}), settled ${rows.settled}`);
  assert.ok(rows.settled >= rows.visible + 8, `after the scroll stops the overscan is rendered: ${rows.settled} rows for ${rows.visible} in view`);
  // A frame per scroll jump arms no timer of its own: the panel's fallback for throttled frames
  // (a 50 ms timer beside requestAnimationFrame) is one timer at a time, not one more task per frame.
  const jumps = 100;
  const armed = await log.locator('#scroller').evaluate(async (sc, n) => {
    const nextFrame = () => new Promise((r) => requestAnimationFrame(r));
    const native = window.setTimeout;
    let count = 0;
    window.setTimeout = (fn, ms, ...rest) => { if (ms === 50) count++; return native(fn, ms, ...rest); };
    try {
      sc.scrollTop = 0;
      await nextFrame();
      const step = (sc.scrollHeight - sc.clientHeight) / n;
      for (let i = 0; i < n; i++) { sc.scrollTop += step; await nextFrame(); }
      await nextFrame();
    } finally { window.setTimeout = native; }
    return count;
  }, jumps);
  assert.ok(armed <= jumps / 2, `${armed} fallback timers armed in ${jumps} frames of scrolling`);
});
