#!/usr/bin/env node
// The reader side's work per APDU, alternating source trees run by run (issue 17): CPU µs per APDU
// (the process; with --threads also its main thread and V8's workers) and bytes allocated per APDU
// (the sum of --trace-gc-nvp's `allocated=` between two forced collections around the loop).
//   node bench/apdu-cost.mjs [--src DIR]... [--mode vpcd|sim] [--n 40000] [--reps 5] [--cold]
// Each --src DIR is a tree whose server/src is measured (default: this one); vpcd mode runs the
// engine + manager + vpcd driver with bench/fast-peer.mjs and the trace printed to a file, as the
// bench's harness; sim mode is a Connection.transmit loop on the simulator. The machine is shared:
// compare medians of alternating runs; bytes per APDU hardly move between runs.
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
const mode = opt('--mode', 'vpcd');
const N = Number(opt('--n', '40000'));
const REPS = Number(opt('--reps', '5'));
const cold = argv.includes('--cold');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'apdu-cost-'));

async function bundle(tree, i) {
  const ours = path.join(root, 'server', 'src');
  const outfile = path.join(tmp, `cost-${i}.cjs`);
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

async function once(file, alloc) {
  const port = await freePort();
  const args = mode === 'vpcd' ? ['vpcd', String(port), String(N), path.join(tmp, 'trace.txt')] : ['sim', String(N)];
  const h = spawn(process.execPath, [...(alloc ? ['--expose-gc', '--trace-gc-nvp'] : []), file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COLD: cold ? '1' : '0' } });
  let out = '';
  let err = '';
  let peer;
  h.stdout.on('data', (d) => { out += d; });
  h.stderr.on('data', (d) => {
    err += d;
    if (mode === 'vpcd' && !peer && err.includes('LISTENING')) peer = spawn(process.execPath, [path.join(root, 'bench', 'fast-peer.mjs'), String(port)], { stdio: 'ignore' });
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
const files = [];
for (let i = 0; i < trees.length; i++) files.push(await bundle(trees[i], i));
const results = trees.map(() => ({ cpu: [], main: [], workers: [], bytes: [] }));
for (let rep = 0; rep < REPS; rep++) {
  for (let i = 0; i < trees.length; i++) {
    const r = await once(files[i], false);
    results[i].cpu.push(r.cpuUs); results[i].main.push(r.mainThreadUs); results[i].workers.push(r.workerThreadsUs);
    if (rep === 0) results[i].bytes.push((await once(files[i], true)).bytes);
  }
}
const f = (xs) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
console.log(`mode ${mode}${cold ? ' (cold)' : ''}, ${N} APDUs × ${REPS} runs, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (let i = 0; i < trees.length; i++) {
  const r = results[i];
  console.log(`${trees[i]}: CPU ${f(r.cpu)} µs/APDU (main thread ${f(r.main)}, V8 workers ${f(r.workers)}); ${Math.round(r.bytes[0])} bytes allocated/APDU`);
}
fs.rmSync(tmp, { recursive: true, force: true });
