// Issue 15, "Measured": 64 clients × 1,000 APDUs on one reader with transactions through
// `scard serve`: no interleaving, no loss. The bench times the same run
// (bench/run.mjs, row "64 clients"); this test asserts its correctness. The clients are
// real pyscard processes (Debian's libpcsclite), the card is `bench/fast-peer.mjs --tagging` on the
// service's vpcd driver: it answers each tagged APDU with the tag of the APDU before,
// so a client sees another client's APDU inside its own transaction as a wrong tag,
// and it counts every tagged APDU it was sent. Run under `flock /tmp/wb-refstack.lock`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../support/net';

const SCARD = path.resolve('bin/scard.js');
const PY = '/usr/bin/python3';
const CLIENT = path.resolve('bench/py/tx_client.py');
const LOOP = path.resolve('bench/py/transmit_loop.py');
const PEER = path.resolve('bench/fast-peer.mjs');
const READER = 'Virtual PCD 00 00';
const CLIENTS = 64;
const APDUS = 1000;
const PER_TRANSACTION = 10;

const pyscard = spawnSync(PY, ['-c', 'import smartcard'], { stdio: 'ignore' }).status === 0;
const skip = pyscard ? false : 'python3-pyscard is missing; sudo npm run setup:system';
if (!pyscard && process.env.CI === 'true') throw new Error('python3-pyscard is missing (CI=true: a missing part fails the run)');

interface Proc {
  p: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
  /** Resolves with the match once stdout matches `re` (bounded). */
  line: (re: RegExp, ms: number) => Promise<RegExpExecArray>;
}

const started: ChildProcess[] = [];

function launch(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdin: 'pipe' | 'ignore' = 'ignore'): Proc {
  const p = spawn(cmd, args, { env, stdio: [stdin, 'pipe', 'pipe'] });
  started.push(p);
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); for (const w of [...waiters]) w(); });
  p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => p.on('close', (code) => { for (const w of [...waiters]) w(); r(code); }));
  const line = (re: RegExp, ms: number) => new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`${path.basename(args[0] ?? cmd)}: no ${re} within ${ms} ms; stdout ${out.slice(-300)}; stderr ${err.slice(-300)}`)); }, ms);
    const check = (): void => {
      const m = re.exec(out);
      if (m) { clearTimeout(timer); waiters.delete(check); resolve(m); } else if (p.exitCode !== null) {
        clearTimeout(timer); waiters.delete(check); reject(new Error(`${path.basename(args[0] ?? cmd)} exited ${p.exitCode} before ${re}: ${err.slice(-300)}`));
      }
    };
    waiters.add(check);
    check();
  });
  return { p, out: () => out, err: () => err, exited, line };
}

let tmp: string;
let serve: Proc;
let peer: Proc;
let clientEnv: NodeJS.ProcessEnv;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-serve-tx-'));
  const port = await freePort();
  const env = { ...process.env };
  delete env.PCSCLITE_CSOCK_NAME;
  serve = launch(process.execPath, [SCARD, 'serve', '--socket', path.join(tmp, 's', 'pcscd.comm'), '--no-simulator', '--vpcd', String(port)], env);
  const socket = (await serve.line(/^export PCSCLITE_CSOCK_NAME=(\S+)$/m, 15_000))[1];
  clientEnv = { ...process.env, PCSCLITE_CSOCK_NAME: socket };
  delete clientEnv.LD_LIBRARY_PATH;
  peer = launch(process.execPath, [PEER, String(port), '--tagging'], process.env);
  await peer.line(/^connected$/m, 10_000);
  // The card is in once a plain APDU goes through (bounded: the insertion is one event away).
  const end = Date.now() + 10_000;
  for (;;) {
    const r = spawnSync(PY, [LOOP, READER, '1', '00A4000C023F00'], { env: clientEnv, encoding: 'utf8', timeout: 5000 });
    if (r.status === 0) break;
    if (Date.now() > end) throw new Error(`no card in ${READER} within 10 s: ${r.stderr.slice(-300)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
});

after(async () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test(`${CLIENTS} pyscard clients × ${APDUS} APDUs in transactions on one reader through scard serve: no interleaving, no loss`, { skip, timeout: 240_000 }, async () => {
  const clients: Proc[] = [];
  for (let i = 0; i < CLIENTS; i++) clients.push(launch(PY, [CLIENT, READER, String(i), String(APDUS), String(PER_TRANSACTION)], clientEnv, 'pipe'));
  await Promise.all(clients.map((c) => c.line(/"connected": true/, 60_000)));
  for (const c of clients) c.p.stdin!.end('go\n');
  const results = await Promise.all(clients.map(async (c, i) => {
    const m = await c.line(/^\{"id".*"answered".*\}$/m, 180_000);
    return { i, ...(JSON.parse(m[0]) as { answered: number; interleaved: number; errorCount: number; errors: string[] }) };
  }));
  for (const r of results) {
    assert.deepEqual({ client: r.i, answered: r.answered, interleaved: r.interleaved, errors: r.errors },
      { client: r.i, answered: APDUS, interleaved: 0, errors: [] }, `client ${r.i}`);
  }
  // The card saw each tagged APDU once: nothing lost, nothing sent twice.
  peer.p.kill('SIGTERM');
  const count = JSON.parse((await peer.line(/^\{"tagged":\d+\}$/m, 5000))[0]) as { tagged: number };
  assert.equal(count.tagged, CLIENTS * APDUS);
  serve.p.kill('SIGTERM');
  assert.equal(await serve.exited, 0, serve.err());
});
