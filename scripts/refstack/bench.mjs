#!/usr/bin/env node
// Measures the reference stack against our drivers and prints a table
// (a benchmark prints; tests never assert timings).
//   node scripts/refstack/bench.mjs [seconds per row, default 2]
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startPcscd, startVicc, VPCD_PORTS } from '../refstack.mjs';

const seconds = Number(process.argv[2] ?? 2);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'refstack-bench-'));
const entry = path.join(tmp, 'entry.ts');
fs.writeFileSync(entry, `export { createPcscDriver } from '${path.resolve('server/src/drivers/pcsc/driver')}';\nexport { createVpcdDriver } from '${path.resolve('server/src/drivers/vpcd/driver')}';\n`);
await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', outfile: path.join(tmp, 'drivers.cjs'), external: ['koffi'], logLevel: 'warning', nodePaths: [path.resolve('node_modules')] });
const require = createRequire(path.resolve('package.json'));
const koffiPath = require.resolve('koffi');
const Module = createRequire(import.meta.url)('node:module');
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (req, ...rest) { return req === 'koffi' ? koffiPath : origResolve.call(this, req, ...rest); };
const { createPcscDriver, createVpcdDriver } = createRequire(import.meta.url)(path.join(tmp, 'drivers.cjs'));

function sink() {
  const waiters = [];
  const fire = (kind, key) => { for (const w of waiters.splice(0)) if (w.kind === kind && w.key === key) w.resolve(); else waiters.push(w); };
  return {
    next: (kind, key) => new Promise((resolve) => waiters.push({ kind, key, resolve })),
    slotAdded: () => {}, slotRemoved: (k) => fire('slotRemoved', k),
    cardInserted: (k) => fire('cardInserted', k), cardRemoved: (k) => fire('cardRemoved', k), log: () => {},
  };
}

const SELECT = Uint8Array.from([0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00]);
async function rate(driver, key) {
  await driver.powerOn(key, 'cold');
  let n = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) { await driver.transmit(key, SELECT, 1); n++; }
  return Math.round(n / seconds);
}

const rows = [];

/** vicc connects (insertion time), the APDU rate, vicc killed (removal time): one table row. */
async function measure(label, d, s, key, viccOptions) {
  const t0 = performance.now();
  const ins = s.next('cardInserted', key);
  const vicc = startVicc(viccOptions);
  await ins;
  const tIns = performance.now() - t0;
  const r = await rate(d, key);
  const rem = s.next('cardRemoved', key);
  const t1 = performance.now();
  await vicc.stop();
  await rem;
  rows.push([label, r, Math.round(tIns), Math.round(performance.now() - t1)]);
}

async function viaPcscd(noDelay) {
  const pcscd = await startPcscd({ noDelay, apduLog: false });
  const s = sink();
  const d = createPcscDriver();
  try {
    await d.start(s);
    await measure(`PC/SC driver → pcscd${noDelay ? ' (TCP_NODELAY preload)' : ' (stock)'} → vpcd → vicc`, d, s, 'Virtual PCD 00 00', { port: VPCD_PORTS[0] });
  } finally {
    await d.stop();
    await pcscd.stop();
  }
}

async function direct() {
  const port = 35990 + (process.pid % 20);
  const s = sink();
  const d = createVpcdDriver({ ports: [port] });
  await d.start(s);
  try {
    await measure('vpcd driver → vicc (no pcscd)', d, s, `vpcd:${port}`, { port, host: '127.0.0.1' });
  } finally {
    await d.stop();
  }
}

try {
  await direct();
  await viaPcscd(true);
  await viaPcscd(false);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log('| path | SELECT APDU/s | vicc start → insertion event (ms) | vicc kill → removal event (ms) |');
console.log('|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
