// Where the APDU Log's long frames go: fills the panel with 100,000 rows as the bench's panel row
// does (test/e2e/panel-perf.mjs), then scrolls it top to bottom under a Chromium trace and prints
// the trace events of the frames over 40 ms (GC, layout, style, script) and the JS heap in use.
// Needs the e2e lock: flock /tmp/wb-e2e.lock node bench/panel-profile.mjs [--rows N] [--gc-before-reopen]
// --gc-before-reopen: a full collection after the run and the panel's close, so that what the
// heap holds before the scroll is the live heap plus the reopen's own garbage (the history sent again).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as support from '../test/e2e/support.mjs';
import * as perf from '../test/e2e/panel-perf.mjs';

const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const N = Number(arg('--rows', '100000'));
const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-profile-panel-'));
const script = perf.writeScript(workspace, N);
const wb = await support.launchWorkbench({ workspace, name: 'profile-panel', settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false, 'smartcard.log.location': 'editor' } });
try {
  const { page } = wb;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.filter((m) => /JSHeap/.test(m.name)).map((m) => [m.name, Math.round(m.value / 1e6)]));
  await perf.fill(page, script, N);
  console.log('heap after the run (MB):', await heap());
  const reopened = await perf.reopen(page, process.argv.includes('--gc-before-reopen') ? async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    console.log('heap after a full collection, panel closed (MB):', await heap());
  } : undefined);
  console.log(`reopen: newest row shown after ${Math.round(reopened)} ms`);
  console.log('heap before scroll (MB):', await heap());
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => { for (const ev of e.value) events.push(ev); });
  const done = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', { categories: 'devtools.timeline,v8.gc,blink.gc,disabled-by-default-devtools.timeline.frame,v8', transferMode: 'ReportEvents' });
  const s = await perf.scrollThrough(page);
  await cdp.send('Tracing.end');
  await done;
  console.log(`scroll: ${s.frames} frames, max ${s.maxFrameMs.toFixed(1)} ms, p95 ${s.p95FrameMs.toFixed(1)} ms, own mean ${s.ownMeanMs.toFixed(1)} / max ${s.ownMaxMs.toFixed(1)} ms`);
  console.log('heap after scroll (MB):', await heap());
  // Complete events (ph X) by name: count, total and longest, main threads of renderers only.
  const threads = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [`${e.pid}:${e.tid}`, e.args.name]));
  const main = events.filter((e) => e.ph === 'X' && e.dur && /CrRendererMain/.test(threads.get(`${e.pid}:${e.tid}`) ?? ''));
  const by = new Map();
  for (const e of main) {
    const b = by.get(e.name) ?? { n: 0, total: 0, max: 0 };
    b.n++; b.total += e.dur / 1000; b.max = Math.max(b.max, e.dur / 1000);
    by.set(e.name, b);
  }
  const top = [...by].filter(([, b]) => b.max >= 2).sort((a, b) => b[1].max - a[1].max).slice(0, 25);
  console.log('renderer main thread events (longest first): name  count  total ms  max ms');
  for (const [name, b] of top) console.log(`  ${name.padEnd(40)} ${String(b.n).padStart(6)} ${b.total.toFixed(1).padStart(9)} ${b.max.toFixed(1).padStart(7)}`);
  const gc = events.filter((e) => /GC|Collect|Mark|Sweep|Scavenge/i.test(e.name) && e.dur >= 10_000).sort((a, b) => b.dur - a.dur).slice(0, 15);
  console.log('GC events ≥ 10 ms (all threads):');
  for (const e of gc) console.log(`  ${e.name} ${(e.dur / 1000).toFixed(1)} ms on ${threads.get(`${e.pid}:${e.tid}`)} ${JSON.stringify(e.args?.data ?? e.args ?? {}).slice(0, 160)}`);
} finally {
  await wb.close();
  fs.rmSync(workspace, { recursive: true, force: true });
}
