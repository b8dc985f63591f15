// The `scard` CLI and the engine on the real stack:
//  - `scard run` through our vpcd driver to vicc gives the same responses as
//    scriptor through pcscd + vpcd to vicc, for the same unchanged scriptor script;
//  - `scard readers --watch --json` prints card events as JSON lines;
//  - two scripts started together on one real reader do not interleave.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { requireCommands } from '../support/system';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import type { ExchangeEntry, LogEntry } from '../../server/src/protocol';
import { runScript } from '../../server/src/script/engine';
import { parseScript } from '../../server/src/script/parser';
import { freePort, loadRefStack, type RefStack, type StackProcess } from './stack';

const skip = requireCommands('pcscd', 'vicc', 'scriptor');
const SCARD = path.resolve('bin/scard.js');
let stack: RefStack;
const started: StackProcess[] = [];
let dir: string;

// A plain scriptor script (commands that vicc answers without crashing).
const SCRIPT = [
  '# scriptor script, unchanged',
  '00 A4 00 00 02 3F 00',
  '00C000000C',
  '00 A4 00 0C 02 3F 00',
  '00 20 01 00 04 31 32 33 34',
  '00 84 00 00 \\',
  '08',
  '00 CA 01 00 00',
  'reset',
  '00 B0 00 00 04',
].join('\n') + '\n';
const RANDOM = new Set([4]); // the GET CHALLENGE response (index among responses)

before(async () => {
  if (skip) return;
  stack = await loadRefStack();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-refstack-'));
  fs.writeFileSync(path.join(dir, 'script.apdu'), SCRIPT);
});

after(async () => {
  for (const p of started.reverse()) await p.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const shape = (r: string, i: number) => (RANDOM.has(i) ? `${r.split(' ').length} bytes, SW ${r.slice(-5)}` : r);

test('scard run via our vpcd driver gives the same responses as scriptor via pcscd', { skip }, async () => {
  const pcscd = await stack.startPcscd();
  started.push(pcscd);
  const v1 = stack.startVicc({ port: stack.VPCD_PORTS[0] });
  started.push(v1);
  // scriptor waits for nothing: give pcscd's 400 ms card poll time by retrying briefly.
  let scriptorOut = '';
  for (let i = 0; i < 20 && !scriptorOut.includes('< '); i++) {
    try {
      scriptorOut = (await promisify(execFile)('scriptor', ['-r', 'Virtual PCD 00 00', path.join(dir, 'script.apdu')], { timeout: 20_000 })).stdout;
    } catch { await new Promise((r) => setTimeout(r, 250)); }
  }
  await v1.stop();
  await pcscd.stop();
  const viaScriptor = scriptorOut.split('\n').filter((l) => l.startsWith('< ') && !l.startsWith('< OK')).map((l) => l.slice(2).split(' : ')[0].trim());
  assert.equal(viaScriptor.length, 7, scriptorOut);

  const port = await freePort();
  const run = spawn(process.execPath, [SCARD, 'run', path.join(dir, 'script.apdu'), '--vpcd', String(port), '--no-simulator', '--wait-card', '20000', '--json', '--verbose'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  readline.createInterface({ input: run.stdout! }).on('line', (l) => lines.push(l));
  let stderr = '';
  // vicc does not retry a refused connection: start it once our driver listens.
  const listening = new Promise<void>((resolve) => run.stderr!.on('data', (d) => {
    stderr += d;
    if (stderr.includes('reader added: Virtual PCD 00 00')) resolve();
  }));
  await listening;
  const v2 = stack.startVicc({ port, host: '127.0.0.1' });
  started.push(v2);
  const code: number = await new Promise((resolve) => run.on('exit', (c) => resolve(c ?? -1)));
  await v2.stop();
  assert.equal(code, 0, stderr);
  const entries = lines.map((l) => JSON.parse(l) as LogEntry & { kind: string });
  const viaScard = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange').map((e) => e.response.match(/../g)!.join(' '));
  assert.deepEqual(viaScard.map(shape), viaScriptor.map(shape));
  assert.ok(entries.some((e) => e.kind === 'cardReset'), 'the reset line reset the card');
  // The script's literal VERIFY: its answer as scriptor's, its PIN `**` in our trace (R88).
  assert.ok(entries.some((e) => e.kind === 'exchange' && (e as ExchangeEntry).command === `0020010004${'**'.repeat(4)}`), 'the VERIFY is masked');
  assert.ok(!lines.join('\n').includes('31323334'), 'no PIN in the trace');
});

test('scard readers --watch --json prints card insertion and removal as JSON lines', { skip }, async () => {
  const port = await freePort();
  const watch = spawn(process.execPath, [SCARD, 'readers', '--watch', '--json', '--vpcd', String(port), '--no-simulator'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const rl = readline.createInterface({ input: watch.stdout! });
  const seen: Array<{ kind: string; reader?: string; eventCount?: number }> = [];
  const waiters: Array<() => void> = [];
  rl.on('line', (l) => { seen.push(JSON.parse(l)); for (const w of waiters.splice(0)) w(); });
  const until = (kind: string) => new Promise<void>((resolve) => {
    const check = () => (seen.some((e) => e.kind === kind) ? resolve() : waiters.push(check));
    check();
  });
  try {
    await until('ready');
    assert.deepEqual(seen.filter((e) => e.kind === 'reader').map((e) => e.reader ?? (e as { name?: string }).name), ['Virtual PCD 00 00']);
    const vicc = stack.startVicc({ port, host: '127.0.0.1' });
    started.push(vicc);
    await until('cardInserted');
    await vicc.stop();
    await until('cardRemoved');
    const ins = seen.find((e) => e.kind === 'cardInserted')!;
    const rem = seen.find((e) => e.kind === 'cardRemoved')!;
    assert.equal(ins.reader, 'Virtual PCD 00 00');
    assert.equal(rem.eventCount, (ins.eventCount ?? 0) + 1, 'the per-reader event counter counts');
  } finally {
    watch.kill('SIGTERM');
    await new Promise((r) => watch.on('exit', r));
  }
});

test('two scripts started together on one real reader finish and do not interleave inside transactions', { skip }, async () => {
  const port = await freePort();
  const m = new ReaderManager([createVpcdDriver({ ports: [port] })]);
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  const vicc = stack.startVicc({ port, host: '127.0.0.1' });
  started.push(vicc);
  try {
    await m.waitForCard('Virtual PCD 00 00', true, 20_000);
    const script = (le: string) => parseScript(`repeat 5\ntransaction begin\nrepeat 10\n00 84 00 00 ${le} => * 90 00\nend\ntransaction end\nend`);
    const [a, b] = await Promise.all([runScript(script('08'), { manager: m }), runScript(script('08'), { manager: m })]);
    assert.equal(a.ok, true, a.failure?.message);
    assert.equal(b.ok, true, b.failure?.message);
    const order = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange').map((e) => e.runId);
    assert.equal(order.length, 100);
    // In blocks of 10 (one transaction), every exchange belongs to one run.
    for (let i = 0; i < 100; i += 10) assert.equal(new Set(order.slice(i, i + 10)).size, 1, `transaction block at ${i}: ${order.slice(i, i + 10)}`);
    assert.ok(new Set(order.slice(0, 50)).size === 2 || new Set(order.slice(50)).size === 2, 'both runs made progress in turn');
  } finally {
    await vicc.stop();
    await m.stop();
  }
});
