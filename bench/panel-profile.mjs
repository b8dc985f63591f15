// Where the APDU Log's long frames go: fills the panel with 100,000 rows as the bench's panel row
// does (test/e2e/panel-perf.mjs), then scrolls it top to bottom under a Chromium trace and prints
// the trace events of the frames over 40 ms (GC, layout, style, script) and the JS heap in use;
// then scrolls it again under V8's sampling heap profiler (every allocation, also those already
// collected) and prints what the panel's own code allocated per jump, with the DOM's node count;
// then a short scroll under Blink's invalidation tracking: why style and layout redo elements.
// Needs the e2e lock: flock /tmp/wb-e2e.lock node bench/panel-profile.mjs [--rows N] [--gc-before-reopen] [--sample-reopen] [--root DIR] [--save FILE] [--threads [--cheapest] [--threads-only] [--css RULES [--pairs N]]]
// --cheapest (with --threads): the second control, the plainest list showing the panel's rows
// (test/e2e/panel-perf.mjs, scrollCheapest), and copies of the panel's own row with only their time
// written, each twice, alternating with the panel's scroll; and, after the traced scroll, the same
// trace of the cheapest list: the main thread's CPU per jump by phase, panel against it.
// --threads-only: stop after those scrolls. --css RULES: a CSS variant added to the panel against the
// panel as built, alternately in one workbench, --pairs N (3) pairs, then stop.
// --gc-before-reopen: a full collection after the run and the panel's close, so that what the
// heap holds before the scroll is the live heap plus the reopen's own garbage (the history sent again).
// --root DIR: another checkout, built (its out/, its test/e2e helpers): main's build against a
// branch's, one after the other, with the same measurement.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const N = Number(arg('--rows', '100000'));
const root = path.resolve(arg('--root', path.join(import.meta.dirname, '..')));
const support = await import(pathToFileURL(path.join(root, 'test/e2e/support.mjs')).href);
const perf = await import(pathToFileURL(path.join(root, 'test/e2e/panel-perf.mjs')).href);
console.log(`build: ${root}`);
const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-profile-panel-'));
const script = perf.writeScript(workspace, N);
const THREADS_ONLY = Symbol('threads only');
const wb = await support.launchWorkbench({ workspace, name: 'profile-panel', settings: { 'smartcard.pcsc.enabled': false, 'smartcard.usbCcid.enabled': false, 'smartcard.log.location': 'editor' } });
try {
  const { page } = wb;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.filter((m) => /JSHeap/.test(m.name)).map((m) => [m.name, Math.round(m.value / 1e6)]));
  const domNodes = async () => (await cdp.send('Memory.getDOMCounters')).nodes;
  await perf.fill(page, script, N);
  console.log('heap after the run (MB):', await heap());
  // --sample-reopen: what the reopen allocates (every allocation sampled, also those collected
  // since), by function, whichever script: the garbage a major collection in the scroll then meets.
  const sampleReopen = process.argv.includes('--sample-reopen');
  const reopened = await perf.reopen(page, async () => {
    if (process.argv.includes('--gc-before-reopen')) {
      await cdp.send('HeapProfiler.collectGarbage');
      console.log('heap after a full collection, panel closed (MB):', await heap());
    }
    if (sampleReopen) {
      await cdp.send('HeapProfiler.enable');
      await cdp.send('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
  });
  console.log(`reopen: newest row shown after ${Math.round(reopened)} ms`);
  if (sampleReopen) {
    const { profile } = await cdp.send('HeapProfiler.stopSampling');
    const self = new Map();
    let total = 0;
    const walk = (node, path) => {
      const here = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').pop()}:${node.callFrame.lineNumber + 1}`;
      total += node.selfSize;
      if (node.selfSize) self.set(`${path} > ${here}`, (self.get(`${path} > ${here}`) ?? 0) + node.selfSize);
      for (const c of node.children) walk(c, here);
    };
    walk(profile.head, '');
    // By script, each allocation counted once, to the innermost script of its stack that is the
    // panel's (webview.js), the webview host's (index.html: the message relay), or else the workbench's.
    const byScript = new Map();
    const group = (node, owner) => {
      const url = node.callFrame.url;
      const here = /webview\.js/.test(url) ? 'panel (webview.js)' : /index\.html/.test(url) ? 'webview host (index.html)' : /workbench\.js/.test(url) ? 'workbench (workbench.js)' : owner;
      if (node.selfSize) byScript.set(here, (byScript.get(here) ?? 0) + node.selfSize);
      for (const c of node.children) group(c, here);
    };
    group(profile.head, 'other (V8, DevTools, toolkit)');
    console.log(`reopen allocated ${(total / 1e6).toFixed(1)} MB in the renderer (sampled); by script: ${[...byScript].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${(v / 1e6).toFixed(2)} MB`).join(', ')}`);
    console.log('the largest, by caller > function:');
    for (const [k, v] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 20)) console.log(`  ${(v / 1e6).toFixed(2).padStart(7)} MB  ${k.slice(0, 150)}`);
  }
  // --threads: where the machine's CPU goes during the scroll, and during the control (an empty
  // scroller, same frames, as the bench's), by process and thread of this run's Chromium and
  // code-server (every descendant of this process; /proc utime + stime), before the traced scroll.
  if (process.argv.includes('--threads')) {
    const tick = 1000 / 100; // ms per clock tick (USER_HZ)
    const sample = () => {
      const out = new Map();
      for (const pid of support.descendants(process.pid)) {
        let comm = '';
        try { comm = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').find((a) => a.startsWith('--type=')) ?? fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { continue; }
        let tids = [];
        try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch { continue; }
        for (const tid of tids) {
          try {
            const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
            const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
            const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
            out.set(`${pid}:${tid}`, { who: `${comm.replace('--type=', '')} ${pid} / ${name}`, ticks: Number(f[11]) + Number(f[12]) });
          } catch { /* ended */ }
        }
      }
      return out;
    };
    const during = async (label, fn) => {
      const a = sample();
      const t0 = performance.now();
      const r = await fn();
      const wall = performance.now() - t0;
      const b = sample();
      const rows = [];
      let sum = 0;
      for (const [k, v] of b) { const d = (v.ticks - (a.get(k)?.ticks ?? 0)) * tick; if (d > 0) { rows.push([v.who, d]); sum += d; } }
      rows.sort((x, y) => y[1] - x[1]);
      console.log(`${label}: ${Math.round(wall)} ms wall, ${r.frames} frames, max frame ${r.maxFrameMs.toFixed(1)} ms, p95 ${r.p95FrameMs.toFixed(1)} ms, CPU of this run's processes ${Math.round(sum)} ms (${(sum / wall).toFixed(2)} cores, ${(sum / r.frames).toFixed(1)} ms per jump); by thread (total, per jump):`);
      for (const [who, d] of rows.slice(0, 14)) console.log(`  ${String(Math.round(d)).padStart(6)} ms ${(d / r.frames).toFixed(2).padStart(6)}  ${who}`);
      return r;
    };
    const s0 = await during('scroll (600 jumps)', () => perf.scrollThrough(page));
    // The control as the bench runs it (this checkout's, when --root names one from before it was shared).
    const own = await import('../test/e2e/panel-perf.mjs');
    const scrollEmpty = perf.scrollEmpty ?? own.scrollEmpty;
    await during('control (an empty scroller, same frames)', () => scrollEmpty(support.logFrame(page), s0.frames, s0.scrollHeight));
    if (process.argv.includes('--threads-only') && !process.argv.includes('--cheapest') && !arg('--css')) throw THREADS_ONLY;
    // --css RULES [--pairs N]: a CSS variant of the panel (a <style> added to its document) against the
    // panel as built, alternately in this workbench, N pairs (3 unless told): only these scrolls.
    if (arg('--css')) {
      const style = (on) => support.logFrame(page).locator('body').evaluate((_, [css, add]) => {
        document.getElementById('panel-profile-variant')?.remove();
        if (add) document.head.append(Object.assign(document.createElement('style'), { id: 'panel-profile-variant', textContent: css }));
      }, [arg('--css'), on]);
      for (let i = 0; i < Number(arg('--pairs', '3')); i++) {
        await style(true);
        await during(`variant ${i + 1} (${arg('--css')})`, () => perf.scrollThrough(page));
        await style(false);
        await during(`as built ${i + 1}`, () => perf.scrollThrough(page));
      }
      throw THREADS_ONLY;
    }
    // --cheapest: the second control, the plainest list showing the same rows (panel-perf.mjs's
    // scrollCheapest), then the panel and it once more each: two runs of each for their spread.
    if (process.argv.includes('--cheapest')) {
      const cheapest = () => own.scrollCheapest(support.logFrame(page), s0.frames, s0.scrollHeight);
      const c = await during('cheapest list (pooled plain rows, textContent only, same frames)', cheapest);
      console.log(`  (${c.rows} rows of ${c.rowH} px in a view of ${c.viewPx} px: "${c.metaText}" / "${c.apduText}")`);
      await during('scroll again (600 jumps)', () => perf.scrollThrough(page));
      await during('cheapest list again', cheapest);
      // The panel's own row elements (copies), only their time written: the panel's DOM without its script.
      const clone = () => own.scrollCheapest(support.logFrame(page), s0.frames, s0.scrollHeight, 'clone');
      await during('copies of the panel\'s row, time written only', clone);
      await during('scroll, third', () => perf.scrollThrough(page));
      await during('copies of the panel\'s row, again', clone);
      // --threads-only: nothing after these scrolls (no trace, no sampled scroll).
      if (process.argv.includes('--threads-only')) throw THREADS_ONLY;
    }
  }
  console.log('heap before scroll (MB):', await heap());
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => { for (const ev of e.value) events.push(ev); });
  const done = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', { categories: 'devtools.timeline,v8.gc,blink.gc,disabled-by-default-devtools.timeline.frame,v8', transferMode: 'ReportEvents' });
  const s = await perf.scrollThrough(page);
  await cdp.send('Tracing.end');
  await done;
  // --save FILE: the scroll's trace events as JSON (for a closer look afterwards, e.g. in DevTools' Performance panel).
  if (arg('--save')) { fs.writeFileSync(arg('--save'), JSON.stringify({ traceEvents: events })); console.log(`trace saved: ${arg('--save')}`); }
  console.log(`scroll: ${s.frames} frames, max ${s.maxFrameMs.toFixed(1)} ms, p95 ${s.p95FrameMs.toFixed(1)} ms, own mean ${s.ownMeanMs.toFixed(1)} / max ${s.ownMaxMs.toFixed(1)} ms`);
  console.log('heap after scroll (MB):', await heap());
  // Complete events (ph X) by name: count, total and longest, main threads of renderers only.
  const threads = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [`${e.pid}:${e.tid}`, e.args.name]));
  const onMain = (e) => /CrRendererMain/.test(threads.get(`${e.pid}:${e.tid}`) ?? '');
  const main = events.filter((e) => e.ph === 'X' && e.dur && onMain(e));
  const by = new Map();
  for (const e of main) {
    const b = by.get(e.name) ?? { n: 0, total: 0, max: 0 };
    b.n++; b.total += e.dur / 1000; b.max = Math.max(b.max, e.dur / 1000);
    by.set(e.name, b);
  }
  const top = [...by].filter(([, b]) => b.max >= 2).sort((a, b) => b[1].max - a[1].max).slice(0, 30);
  console.log('renderer main thread events (longest first): name  count  total ms  max ms');
  for (const [name, b] of top) console.log(`  ${name.padEnd(48)} ${String(b.n).padStart(6)} ${b.total.toFixed(1).padStart(9)} ${b.max.toFixed(1).padStart(7)}`);
  // The rendering work per frame in CPU time (the events' thread time, `tdur`: what the renderer's
  // main thread ran, without the time it waited for a core, so less moved by the machine's load):
  // medians and 95th percentiles over the scroll's frames, and what style and layout redid.
  const pct = (xs, p) => { const v = [...xs].sort((a, b) => a - b); return v.length ? v[Math.min(v.length - 1, Math.floor(v.length * p))] : 0; };
  // Paint events nest (a layer's paint inside the document's): the outermost ones only.
  const outer = (name) => { const evs = main.filter((e) => e.name === name); return evs.filter((e) => !evs.some((o) => o !== e && o.ts <= e.ts && o.ts + o.dur >= e.ts + e.dur && o.dur > e.dur)); };
  const cpuLine = (name) => {
    const evs = name === 'Paint' ? outer('Paint') : main.filter((e) => e.name === name);
    const t = evs.map((e) => (e.tdur ?? e.dur) / 1000);
    return `  ${name.padEnd(16)} ${String(evs.length).padStart(5)} events, CPU ms median ${pct(t, 0.5).toFixed(2).padStart(6)}, p95 ${pct(t, 0.95).toFixed(2).padStart(6)}, total ${t.reduce((a, b) => a + b, 0).toFixed(0).padStart(5)}`;
  };
  console.log('rendering work on the renderer main thread during the scroll (thread time):');
  for (const name of ['FireAnimationFrame', 'UpdateLayoutTree', 'Layout', 'PrePaint', 'Paint', 'Layerize']) console.log(cpuLine(name));
  // --cheapest: the same phases per frame for the panel's traced scroll and for the cheapest list's
  // (traced the same way, right after), main thread's CPU time per jump.
  if (process.argv.includes('--cheapest')) {
    const phases = ['FireAnimationFrame', 'UpdateLayoutTree', 'Layout', 'PrePaint', 'Paint', 'Layerize', 'HitTest', 'Commit', 'UpdateLayer'];
    const perJump = (evs, frames) => {
      const m = evs.filter((e) => e.ph === 'X' && e.dur && onMain(e));
      const outerOf = (name) => { const x = m.filter((e) => e.name === name); return x.filter((e) => !x.some((o) => o !== e && o.ts <= e.ts && o.ts + o.dur >= e.ts + e.dur && o.dur > e.dur)); };
      return Object.fromEntries(phases.map((n) => [n, outerOf(n).reduce((t, e) => t + (e.tdur ?? e.dur), 0) / 1000 / frames]));
    };
    const mark0 = events.length;
    const cDone = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
    await cdp.send('Tracing.start', { categories: 'devtools.timeline,v8.gc,blink.gc,disabled-by-default-devtools.timeline.frame,v8', transferMode: 'ReportEvents' });
    const own = await import('../test/e2e/panel-perf.mjs');
    const c = await own.scrollCheapest(support.logFrame(page), s.frames, s.scrollHeight);
    await cdp.send('Tracing.end');
    await cDone;
    // Its events taken out of the panel's (what follows reads the panel's scroll only).
    const cEvents = events.splice(mark0);
    if (arg('--save')) { fs.writeFileSync(`${arg('--save')}.cheapest.json`, JSON.stringify({ traceEvents: cEvents })); console.log(`cheapest list's trace saved: ${arg('--save')}.cheapest.json`); }
    const a = perJump(events, s.frames);
    const b = perJump(cEvents, c.frames);
    console.log(`renderer main thread, CPU ms per jump by phase (outermost events), panel (max frame ${s.maxFrameMs.toFixed(1)} ms) / cheapest list (max frame ${c.maxFrameMs.toFixed(1)} ms):`);
    for (const n of phases) console.log(`  ${n.padEnd(20)} ${a[n].toFixed(2).padStart(6)} / ${b[n].toFixed(2).padStart(6)}`);
  }
  const layouts = main.filter((e) => e.name === 'Layout');
  const styles = main.filter((e) => e.name === 'UpdateLayoutTree');
  console.log(`  layout: dirty objects per layout median ${pct(layouts.map((e) => e.args?.beginData?.dirtyObjects ?? 0), 0.5)}, p95 ${pct(layouts.map((e) => e.args?.beginData?.dirtyObjects ?? 0), 0.95)}; total objects ${pct(layouts.map((e) => e.args?.beginData?.totalObjects ?? 0), 0.5)}; style: elements per update median ${pct(styles.map((e) => e.args?.elementCount ?? 0), 0.5)}, p95 ${pct(styles.map((e) => e.args?.elementCount ?? 0), 0.95)}`);
  const gc = events.filter((e) => /GC|Collect|Mark|Sweep|Scavenge/i.test(e.name) && e.dur >= 10_000).sort((a, b) => b.dur - a.dur).slice(0, 15);
  console.log('GC events ≥ 10 ms (all threads):');
  for (const e of gc) console.log(`  ${e.name} ${(e.dur / 1000).toFixed(1)} ms on ${threads.get(`${e.pid}:${e.tid}`)} ${JSON.stringify(e.args?.data ?? e.args ?? {}).slice(0, 160)}`);
  // The longest frames: the gaps between one animation frame callback's start and the next, and
  // what ran on the renderer's main thread inside each (events of 2 ms or more, outermost first).
  const frames = main.filter((e) => e.name === 'FireAnimationFrame').sort((a, b) => a.ts - b.ts);
  const gaps = [];
  for (let k = 1; k < frames.length; k++) gaps.push({ from: frames[k - 1].ts, to: frames[k].ts });
  gaps.sort((a, b) => (b.to - b.from) - (a.to - a.from));
  const gcs = events.filter((e) => e.ph === 'X' && onMain(e) && /^(MajorGC|MinorGC|V8\.GC_MARK_COMPACTOR|V8\.GC_SCAVENGER|BlinkGC\.AtomicPause.*|CppGC.*)$/.test(e.name));
  console.log(`scavenges on the main thread during the scroll: ${gcs.filter((e) => e.name === 'MinorGC').length}, major collections: ${gcs.filter((e) => e.name === 'MajorGC').length}`);
  console.log('the five longest frames (callback start to the next), with what ran in them:');
  for (const g of gaps.slice(0, 5)) {
    console.log(`  ${((g.to - g.from) / 1000).toFixed(1)} ms`);
    const inside = main.filter((e) => e.ts >= g.from && e.ts < g.to && e.dur >= 2000).sort((a, b) => a.ts - b.ts);
    // Style and layout say how much they did (elements, layout objects) and for which frame (the
    // webview's document or the workbench's: one renderer runs both in code-server).
    const what = (e) => {
      const a = e.args ?? {};
      if (e.name === 'UpdateLayoutTree') return `${a.elementCount ?? ''} elements, frame ${a.beginData?.frame ?? '?'}`;
      if (e.name === 'Layout') return `${a.beginData?.dirtyObjects ?? ''}/${a.beginData?.totalObjects ?? ''} objects, frame ${a.beginData?.frame ?? '?'}`;
      if (e.name === 'FireAnimationFrame') return `frame ${a.data?.frame ?? '?'}`;
      return a.data?.type ?? '';
    };
    // Wall time, and in brackets the thread's CPU time in it: the rest is the thread waiting for a core.
    for (const e of inside.slice(0, 25)) console.log(`    +${((e.ts - g.from) / 1000).toFixed(1).padStart(6)} ${e.name.padEnd(48)} ${(e.dur / 1000).toFixed(1)} ms (CPU ${((e.tdur ?? e.dur) / 1000).toFixed(1)}) ${what(e)}`);
    const busy = inside.filter((e) => !inside.some((o) => o !== e && o.ts <= e.ts && o.ts + o.dur >= e.ts + e.dur)).reduce((t, e) => t + (e.tdur ?? e.dur), 0);
    console.log(`    CPU time of the renderer's main thread in this frame (outermost events of 2 ms or more): ${(busy / 1000).toFixed(1)} ms`);
  }
  // What one jump allocates: the same scroll again, every allocation sampled (also those collected
  // since), the bytes whose stack runs through the panel's own script, per frame; and the DOM's nodes.
  const nodesBefore = await domNodes();
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const again = await perf.scrollThrough(page);
  const { profile } = await cdp.send('HeapProfiler.stopSampling');
  const nodesAfter = await domNodes();
  let ours = 0;
  let all = 0;
  const byFn = new Map();
  const walk = (node, inOurs) => {
    const here = inOurs || /webview\.js/.test(node.callFrame.url);
    all += node.selfSize;
    if (here) {
      ours += node.selfSize;
      const key = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').pop()}:${node.callFrame.lineNumber + 1}`;
      byFn.set(key, (byFn.get(key) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, here);
  };
  walk(profile.head, false);
  console.log(`second scroll (sampled): ${again.frames} frames; allocated by the panel's script ${(ours / 1e6).toFixed(2)} MB (${Math.round(ours / again.frames)} bytes per jump), by everything in the renderer ${(all / 1e6).toFixed(2)} MB; DOM nodes ${nodesBefore} → ${nodesAfter}`);
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${k.padEnd(60)} ${(v / 1e3).toFixed(0).padStart(8)} KB`);
  // Why style and layout redo rows: a short scroll (100 jumps) under Blink's invalidation tracking,
  // the reasons counted (a row element "inserted into tree" is restyled and laid out whole).
  const mark = events.length;
  const traced = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', { categories: 'devtools.timeline,disabled-by-default-devtools.timeline.invalidationTracking', transferMode: 'ReportEvents' });
  await perf.scrollThrough(page, 100);
  await cdp.send('Tracing.end');
  await traced;
  const inval = events.slice(mark);
  const reasons = new Map();
  for (const e of inval) {
    if (!/InvalidationTracking$/.test(e.name)) continue;
    const d = e.args?.data ?? {};
    const key = `${e.name.replace('InvalidationTracking', '')}: ${d.reason ?? ''} (${d.nodeName ?? ''})`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const counts = inval.filter((e) => e.name === 'UpdateLayoutTree' && onMain(e)).map((e) => e.args?.elementCount ?? 0);
  console.log(`short scroll (100 jumps) under invalidation tracking: elements restyled per style update: max ${Math.max(0, ...counts)}, ${counts.filter((c) => c > 100).length} update(s) over 100; most frequent reasons:`);
  for (const [k, n] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${String(n).padStart(7)} ${k.slice(0, 110)}`);
} catch (e) {
  if (e !== THREADS_ONLY) throw e;
} finally {
  await wb.close();
  fs.rmSync(workspace, { recursive: true, force: true });
}
