#!/usr/bin/env node
// The helper's CPU per APDU run after run (docs/benchmarks.md, tenth pass): the helper forked as the
// bench's vicc row forks it (bench/run.mjs helperViaVpcd: HELPER_EXEC_ARGV, IPC, a PIN key in its
// environment, the initializationOptions of the extension's own Config.helperOptions for a user with
// only the vpcd driver on), the 10,000-line file opened (didOpen, its diagnostics awaited), then the
// same runScript K times; per run the helper's utime + stime (/proc/PID/stat, all threads) from the
// request to its response and scriptEnded entry, in µs per APDU. Source trees alternate round by
// round (`--src DIR`, repeatable; default this checkout), so load falls on all alike.
//   node bench/helper-runs.mjs [--src DIR]... [--rounds 3] [--runs 6] [--card fast|vicc]
//        [--node-args "FLAGS"] [--gc]
// --node-args: the V8 options instead of HELPER_EXEC_ARGV; --gc: with --trace-gc --trace-deopt, and per
// run a * when a full collection (Mark-Compact) fell inside it, with the count of code deoptimized
// for "weak objects" (see the eighth pass). Prints; asserts nothing.
import * as esbuild from 'esbuild';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpuOf, start, stopAllNow, stopHelper } from './lib/procs.mjs';
import { prepareVicc } from '../scripts/refstack.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const rpc = require('vscode-jsonrpc/node');
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const trees = argv.flatMap((a, i) => (a === '--src' && argv[i + 1] ? [path.resolve(argv[i + 1])] : []));
if (!trees.length) trees.push(root);
const ROUNDS = Number(opt('--rounds', '3'));
const RUNS = Number(opt('--runs', '6'));
const CARD = opt('--card', 'fast');
const GC = argv.includes('--gc');
const HELPER_EXEC_ARGV = (() => {
  const m = /export const HELPER_EXEC_ARGV = (\[[^\]]*\]);/.exec(fs.readFileSync(path.join(root, 'extension', 'src', 'client.ts'), 'utf8'));
  return JSON.parse(m[1].replace(/'/g, '"'));
})();
const FLAGS = opt('--node-args') !== undefined ? opt('--node-args').split(/\s+/).filter(Boolean) : HELPER_EXEC_ARGV;
const N = 10_000;
const PORT = 37_100 + (process.pid % 400);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'helper-runs-'));
process.on('exit', () => { stopAllNow(); fs.rmSync(tmp, { recursive: true, force: true }); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** The helper (boot.ts + main.ts) and helper-options of `tree`, bundled as bench/run.mjs does. */
async function build(tree) {
  const out = path.join(root, 'node_modules', '.cache', `scard-helper-runs-${crypto.createHash('sha256').update(tree).digest('hex').slice(0, 8)}`);
  const common = { nodePaths: [path.join(root, 'node_modules')], outdir: out, outExtension: { '.js': '.cjs' }, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning' };
  await esbuild.build({ ...common, entryPoints: { server: path.join(tree, 'server/src/boot.ts'), helper: path.join(tree, 'server/src/main.ts') }, external: ['usb', 'koffi'], sourcemap: 'linked' });
  await esbuild.build({ ...common, entryPoints: { 'helper-options': path.join(root, 'bench/lib/helper-options.ts') }, alias: { vscode: path.join(root, 'bench/lib/vscode-settings.ts') } });
  return { name: path.basename(tree), server: path.join(out, 'server.cjs'), helperOptions: require(path.join(out, 'helper-options.cjs')).helperOptions };
}

function startCard(port) {
  if (CARD === 'vicc') {
    const env = { ...process.env, PYTHONPATH: prepareVicc(), PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
    return start('vicc', '/usr/bin/vicc', ['-t', 'iso7816', '-H', '127.0.0.1', '-P', String(port)], { env });
  }
  return start('fast-peer', process.execPath, [path.join(root, 'bench', 'fast-peer.mjs'), String(port), '--timeout-ms', '20000']);
}

const script = path.join(tmp, '10k.apdu');
fs.writeFileSync(script, Array.from({ length: N }, () => '00 A4 00 0C 02 3F 00').join('\n') + '\n');
const text = fs.readFileSync(script, 'utf8');
const uri = pathToFileURL(script).href;

/** One helper: K runs; µs per APDU of each, and which ones a full collection fell in. */
async function helperRuns(b, log) {
  const pinKey = crypto.randomBytes(32);
  const env = { ...process.env, SMARTCARD_PIN_KEY: pinKey.toString('base64') };
  delete env.PCSCLITE_CSOCK_NAME;
  const p = start('helper', process.execPath, [...FLAGS, ...(GC ? ['--trace-gc', '--trace-deopt'] : []), b.server, '--node-ipc'], { ipc: true, env, stdoutFile: log });
  const t0 = performance.now();
  const conn = rpc.createMessageConnection(new rpc.IPCMessageReader(p.child), new rpc.IPCMessageWriter(p.child));
  const perRun = new Map();
  const waiters = [];
  const diagnosed = new Set();
  let readers = [];
  let started = false;
  const settle = () => { for (const w of [...waiters]) if (w.test()) { waiters.splice(waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(); } };
  const until = (what, test, ms) => new Promise((resolve, reject) => {
    const w = { test, resolve, timer: setTimeout(() => reject(new Error(`helper: ${what} not within ${ms} ms: ${p.stderr.slice(-300)}`)), ms) };
    waiters.push(w);
    settle();
  });
  conn.onNotification('smartcard/started', (e) => { started = true; readers = e.readers; settle(); });
  conn.onNotification('smartcard/readersChanged', (e) => { readers = e.readers; settle(); });
  conn.onNotification('smartcard/runProgress', () => undefined);
  conn.onNotification('textDocument/publishDiagnostics', (e) => { diagnosed.add(e.uri); settle(); });
  conn.onNotification('smartcard/events', (e) => {
    for (const x of e.entries) {
      if (x.runId === undefined) continue;
      const r = perRun.get(x.runId) ?? { answered: 0, ended: false };
      perRun.set(x.runId, r);
      if (x.kind === 'exchange' && x.sw === '9000') r.answered++;
      if (x.kind === 'scriptEnded') r.ended = true;
    }
    settle();
  });
  conn.onError(() => undefined);
  conn.listen();
  let card;
  const us = [];
  const spans = [];
  try {
    const settings = { 'vpcd.enabled': true, 'vpcd.ports': [PORT], 'simulator.enabled': false, 'pcsc.enabled': false, 'usbCcid.enabled': false, 'pcscService.enabled': false };
    await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: b.helperOptions(settings, pinKey) });
    await conn.sendNotification('initialized', {});
    await until('"started"', () => started, 10_000);
    card = startCard(PORT);
    await until('the card', () => readers[0]?.card, 20_000);
    const reader = readers[0].name;
    conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'apdu', version: 1, text } });
    await until('the diagnostics', () => diagnosed.has(uri), 20_000);
    for (let k = 0; k < RUNS; k++) {
      const from = performance.now() - t0;
      const c0 = cpuOf(p.pid);
      const res = await conn.sendRequest('smartcard/runScript', { text, uri, reader });
      await until(`the end of run ${res.runId}`, () => perRun.get(res.runId)?.ended, 60_000);
      us.push((cpuOf(p.pid) - c0) / N);
      spans.push([from, performance.now() - t0]);
      if (!res.ok || perRun.get(res.runId).answered !== N) throw new Error(`run ${k + 1} failed: ${res.failure?.message ?? `${perRun.get(res.runId).answered} answers`}`);
    }
  } finally {
    await stopHelper(conn, p, card);
  }
  let note = '';
  if (GC) {
    // --trace-gc's times count from the isolate's start, a few ms after the spawn: close enough for runs of a second or more.
    const trace = fs.readFileSync(log, 'utf8');
    const full = [...trace.matchAll(/(\d+) ms: Mark-Compact/g)].map((m) => Number(m[1]));
    const weak = (trace.match(/reason: weak objects/g) ?? []).length;
    note = `  (* = a Mark-Compact inside the run; ${full.length} in all, ${weak} functions deoptimized for "weak objects")`;
    return { us, shown: us.map((x, k) => `${x.toFixed(0)}${full.some((t) => t >= spans[k][0] && t <= spans[k][1]) ? '*' : ''}`).join(' ') + note };
  }
  return { us, shown: us.map((x) => x.toFixed(0)).join(' ') };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const built = [];
for (const t of trees) built.push(await build(t));
const later = built.map(() => []);
console.log(`helper-runs: ${FLAGS.join(' ') || "V8's default flags"}; card ${CARD}; ${RUNS} runs of ${N} APDUs per helper; µs of helper CPU per APDU, run by run`);
for (let r = 0; r < ROUNDS; r++) {
  const order = built.map((_, i) => i);
  if (r % 2) order.reverse();
  for (const i of order) {
    const { us, shown } = await helperRuns(built[i], path.join(tmp, `helper-${i}-${r}.log`));
    later[i].push(...us.slice(1));
    console.log(`  ${built[i].name} (${trees[i]}), round ${r + 1}: ${shown}`);
  }
}
for (const [i, b] of built.entries()) console.log(`${b.name} (${trees[i]}): runs 2–${RUNS}, median ${median(later[i]).toFixed(1)} µs per APDU (${Math.min(...later[i]).toFixed(0)}–${Math.max(...later[i]).toFixed(0)}, n = ${later[i].length})`);
process.exit(0);
