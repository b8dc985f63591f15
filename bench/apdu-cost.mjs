#!/usr/bin/env node
// The reader side's work per APDU, alternating source trees run by run (issue 17): CPU µs per APDU
// (the process; with --threads also its main thread and V8's workers) and bytes allocated per APDU
// (the sum of --trace-gc-nvp's `allocated=` between two forced collections around the loop).
//   node bench/apdu-cost.mjs [--src DIR]... [--node-args "FLAGS"]... [--mode vpcd|sim|serve] [--card fast|vicc]
//                            [--n 40000] [--reps 5] [--cold] [--curve 1000] [--warm 10000] [--json]
// Each --src DIR is a tree whose server/src is measured (default: this one); vpcd mode runs the
// engine + manager + vpcd driver with bench/fast-peer.mjs and the trace printed to a file, as the
// bench's harness; sim mode is a Connection.transmit loop on the simulator. The machine is shared:
// compare medians of alternating runs; bytes per APDU hardly move between runs.
// --node-args "FLAGS" (repeatable; '' for none): Node/V8 options to compare, alternating like trees.
// --card vicc: vpcd mode with vsmartcard's vicc as the card (as the bench's vicc row; on a free port,
// so no lock is needed) instead of bench/fast-peer.mjs. --curve W: also CPU µs per APDU in windows of
// W APDUs through the run (median per window), which shows how long a fresh process takes to warm up.
// serve mode: `scard serve` (the tree's CLI, or a built CLI given as --src DIR/out/cli.js; simulator, its
// trace to a file, as the bench's svc rows) under pyscard's transmit loop (bench/py/serve_cost.py):
// --warm APDUs, then --n measured, the service's CPU from /proc and its heap allocation from
// v8.GCProfiler (bench/lib/alloc-preload.cjs) over exactly those, with pyscard's wall time per APDU (--json: serve's trace as JSON Lines).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const srcs = argv.flatMap((a, i) => (a === '--src' ? [path.resolve(argv[i + 1])] : []));
const trees = srcs.length ? srcs : [root];
const nodeArgSets = argv.flatMap((a, i) => (a === '--node-args' ? [argv[i + 1].split(' ').filter(Boolean)] : []));
const variants = trees.flatMap((tree, t) => (nodeArgSets.length ? nodeArgSets : [[]]).map((args) => ({ tree, t, args })));
const mode = opt('--mode', 'vpcd');
const N = Number(opt('--n', '40000'));
const REPS = Number(opt('--reps', '5'));
const cold = argv.includes('--cold');
const card = opt('--card', 'fast');
const curve = Number(opt('--curve', '0'));
const WARM = Number(opt('--warm', '10000'));
const JSON_TRACE = argv.includes('--json');
const PY = '/usr/bin/python3'; // Debian's, which has pyscard
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'apdu-cost-'));

async function bundle(tree, i) {
  const ours = path.join(root, 'server', 'src');
  const outfile = path.join(tmp, `cost-${i}.cjs`);
  if (mode === 'serve') {
    if (tree.endsWith('.js')) return tree; // a CLI bundle already built (e.g. DIR/out/cli.js)
    await esbuild.build({
      entryPoints: [path.join(tree, 'server', 'src', 'cli.ts')], outfile, bundle: true, platform: 'node', target: 'node20',
      format: 'cjs', external: ['usb', 'koffi'], logLevel: 'warning', nodePaths: [path.join(root, 'node_modules')],
    });
    return outfile;
  }
  await esbuild.build({
    entryPoints: [path.join(root, 'bench', 'lib', 'apdu-cost.ts')], outfile, bundle: true, platform: 'node', target: 'node20',
    format: 'cjs', external: ['usb', 'koffi'], logLevel: 'warning', nodePaths: [path.join(root, 'node_modules')],
    plugins: [{
      name: 'src-redirect',
      setup(b) {
        b.onResolve({ filter: /^\./ }, (args) => {
          const abs = path.resolve(args.resolveDir, args.path);
          if (!abs.startsWith(ours + path.sep) || tree === root) return undefined;
          const base = path.join(tree, 'server', 'src', path.relative(ours, abs));
          const hit = [base, `${base}.ts`, path.join(base, 'index.ts')].find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
          return hit ? { path: hit } : undefined;
        });
      },
    }],
  });
  return outfile;
}

/** A free TCP port on loopback. */
async function freePort() {
  const net = await import('node:net');
  return new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
}

/** `scard serve` from `file` under pyscard's loop: the service's CPU, heap and pyscard's wall time per APDU. */
async function onceServe(file) {
  const dir = fs.mkdtempSync(path.join(tmp, 'serve-'));
  const socket = path.join(dir, 'pcscd.comm');
  const traceFile = path.join(dir, 'trace.txt');
  const env = { ...process.env };
  delete env.PCSCLITE_CSOCK_NAME;
  const outFd = fs.openSync(traceFile, 'w');
  const h = spawn(process.execPath, ['--require', path.join(root, 'bench', 'lib', 'alloc-preload.cjs'), file, 'serve', '--socket', socket, ...(JSON_TRACE ? ['--json'] : [])], { stdio: ['ignore', outFd, 'pipe'], env });
  fs.closeSync(outFd);
  let err = '';
  h.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => h.on('exit', resolve));
  const end = Date.now() + 10_000;
  while (!fs.readFileSync(traceFile, 'utf8').startsWith('export ')) {
    if (h.exitCode !== null || Date.now() > end) throw new Error(`scard serve did not start: ${err.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const py = spawn(PY, [path.join(root, 'bench', 'py', 'serve_cost.py'), 'Workbench Simulator 00 00', String(WARM), String(N), '00A4000C023F00', String(h.pid), String(os.constants.signals.SIGUSR2)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, PCSCLITE_CSOCK_NAME: socket } });
  let out = '';
  let pyErr = '';
  py.stdout.on('data', (d) => { out += d; });
  py.stderr.on('data', (d) => { pyErr += d; });
  const code = await new Promise((resolve) => py.on('exit', resolve));
  h.kill('SIGTERM');
  const serveCode = await exited;
  if (code !== 0) throw new Error(`serve_cost.py failed (${code}): ${pyErr.slice(-500)}`);
  if (serveCode !== 0) throw new Error(`scard serve exited ${serveCode}: ${err.slice(-500)}`);
  const r = JSON.parse(out.trim().split('\n').pop());
  const alloc = /^ALLOC (\d+)$/m.exec(err);
  const lines = fs.readFileSync(traceFile, 'utf8').split('\n').length - 2;
  const perApdu = JSON_TRACE ? 1 : 2;
  if (lines < perApdu * (WARM + N)) throw new Error(`the trace has ${lines} lines, not ${perApdu * (WARM + N)}`);
  fs.rmSync(dir, { recursive: true, force: true });
  return { cpuUs: (r.service_cpu_ms * 1000) / N, wallUs: (r.loop_ms * 1000) / N, clientUs: (r.client_cpu_ms * 1000) / N, bytes: alloc ? Number(alloc[1]) / N : NaN };
}

let viccPath;
function startCard(port) {
  if (card === 'fast') return spawn(process.execPath, [path.join(root, 'bench', 'fast-peer.mjs'), String(port)], { stdio: 'ignore' });
  // vicc exits by itself when the reader side closes the socket; killed below otherwise.
  const env = { ...process.env, PYTHONPATH: viccPath, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
  return spawn('/usr/bin/vicc', ['-t', 'iso7816', '-H', '127.0.0.1', '-P', String(port)], { stdio: 'ignore', env });
}

async function once(file, alloc, nodeArgs) {
  const port = await freePort();
  const args = mode === 'vpcd' ? ['vpcd', String(port), String(N), path.join(tmp, 'trace.txt')] : ['sim', String(N)];
  const h = spawn(process.execPath, [...nodeArgs, ...(alloc ? ['--expose-gc', '--trace-gc-nvp'] : []), file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COLD: cold ? '1' : '0', CURVE: String(curve) } });
  let out = '';
  let err = '';
  let peer;
  h.stdout.on('data', (d) => { out += d; });
  h.stderr.on('data', (d) => {
    err += d;
    if (mode === 'vpcd' && !peer && err.includes('LISTENING')) peer = startCard(port);
  });
  const code = await new Promise((resolve) => h.on('exit', resolve));
  peer?.kill();
  const m = /^RESULT (.*)$/m.exec(out);
  if (code !== 0 || !m) throw new Error(`apdu-cost failed (${code}): ${err.slice(-500)}`);
  const res = JSON.parse(m[1]);
  if (alloc) {
    const between = out.split('MARK begin')[1].split('MARK end')[0];
    res.bytes = [...between.matchAll(/allocated=(\d+)/g)].reduce((s, x) => s + Number(x[1]), 0) / N;
  }
  return res;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
if (card === 'vicc') viccPath = (await import('../scripts/refstack.mjs')).prepareVicc();
const files = [];
for (let i = 0; i < trees.length; i++) files.push(await bundle(trees[i], i));
const results = variants.map(() => ({ cpu: [], user: [], sys: [], main: [], workers: [], bytes: [], curve: [], wall: [], client: [] }));
for (let rep = 0; rep < REPS && mode === 'serve'; rep++) {
  for (let i = 0; i < variants.length; i++) {
    const r = await onceServe(files[variants[i].t]);
    results[i].cpu.push(r.cpuUs); results[i].wall.push(r.wallUs); results[i].client.push(r.clientUs); results[i].bytes.push(r.bytes);
  }
}
for (let rep = 0; rep < REPS && mode !== 'serve'; rep++) {
  for (let i = 0; i < variants.length; i++) {
    const v = variants[i];
    const r = await once(files[v.t], false, v.args);
    results[i].cpu.push(r.cpuUs); results[i].user.push(r.userUs); results[i].sys.push(r.systemUs); if (r.curve) results[i].curve.push(r.curve); results[i].main.push(r.mainThreadUs); results[i].workers.push(r.workerThreadsUs);
    if (rep === 0) results[i].bytes.push((await once(files[v.t], true, v.args)).bytes);
  }
}
const f = (xs) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
console.log(`mode ${mode}${mode === 'vpcd' ? ` (card: ${card})` : ''}${cold ? ' (cold)' : ''}${JSON_TRACE ? ' (--json)' : ''}, ${N} APDUs × ${REPS} runs, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (let i = 0; i < variants.length; i++) {
  const r = results[i];
  if (mode === 'serve') {
    console.log(`${variants[i].tree}: service CPU ${f(r.cpu)} µs/APDU; ${f(r.bytes.map((x) => Math.round(x)))} bytes allocated/APDU; pyscard wall ${f(r.wall)} µs/APDU, client CPU ${f(r.client)} µs/APDU`);
    continue;
  }
  console.log(`${variants[i].tree}${variants[i].args.length ? ` [${variants[i].args.join(' ')}]` : ''}: CPU ${f(r.cpu)} µs/APDU (user ${f(r.user)}, kernel ${f(r.sys)}; main thread ${f(r.main)}, V8 workers ${f(r.workers)}); ${Math.round(r.bytes[0])} bytes allocated/APDU`);
  if (r.curve.length) console.log(`  CPU µs/APDU per ${curve} APDUs (median of ${r.curve.length}): ${r.curve[0].map((_, w) => median(r.curve.map((c) => c[w])).toFixed(0)).join(' ')}`);
}
fs.rmSync(tmp, { recursive: true, force: true });
