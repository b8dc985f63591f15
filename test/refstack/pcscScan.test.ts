// Issue 15: "Debian's pcsc_scan (lists the readers; sees insertion and removal)". pcsc_scan 1.6.2 in its
// watching mode (not -r; -n: no ATR analysis) against `scard serve --vpcd PORT --no-simulator` while the
// scripted vpcd card (test/refstack/scriptedCard.ts) is inserted (connects to vpcd) and removed
// (disconnects); first against pcscd + vpcd and the same card. pcsc_scan's output must show the
// reader, the card inserted with its ATR and then removed, and the two runs' reader lists and event
// sequences (card state and ATR of `Virtual PCD 00 00`, repeats folded; not the timestamps, nor the
// event numbers, which equal pcscd's today but depend on timing) must be equal. Every wait is bounded; pcsc_scan is killed by its
// pid. Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireCommands } from '../support/system';
import { startServe, type Serve } from '../support/scardServe';
import { ATR, ScriptedCard } from './scriptedCard';
import { clientEnv } from './serviceStack';
import { freePort, loadRefStack, type RefStack, type StackProcess } from './stack';

const READER = 'Virtual PCD 00 00';
const SPACED_ATR = ATR.toString('hex').toUpperCase().match(/../g)!.join(' ');
const skip = requireCommands('pcscd', 'pcsc_scan', 'stdbuf');

/** One event block of pcsc_scan's output: ` Reader 0: NAME` / `  Event number: N` / `  Card state: …` / `  ATR: …`. */
interface ScanEvent { reader: string; event: number; state: string; atr: string | null }

/** The event blocks in pcsc_scan's output, in order (colour codes removed; timestamps are not kept). */
function scanEvents(out: string): ScanEvent[] {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '');
  const events: ScanEvent[] = [];
  const re = /^ Reader \d+: (.+)\n {2}Event number: (\d+)\n {2}Card state: (.*?)\s*\n(?: {2}ATR: ([0-9A-F ]+)\n)?/gm;
  for (const m of text.matchAll(re)) events.push({ reader: m[1], event: Number(m[2]), state: m[3].replace(/,\s*$/, ''), atr: m[4]?.trim() ?? null });
  return events;
}

interface Scan { p: ChildProcess; out: () => string; until(cond: (events: ScanEvent[]) => boolean, what: string, ms?: number): Promise<void>; kill(): Promise<void> }

/** Starts `pcsc_scan -n` (line-buffered through stdbuf: its stdout is a pipe), `-t 60` as a last bound. */
function startScan(env: NodeJS.ProcessEnv): Scan {
  const p = spawn('stdbuf', ['-oL', 'pcsc_scan', '-n', '-t', '60'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: Array<() => void> = [];
  const exited = new Promise<void>((resolve) => p.on('exit', () => { resolve(); for (const w of waiters.splice(0)) w(); }));
  const take = (b: Buffer) => { out += b.toString(); for (const w of waiters.splice(0)) w(); };
  p.stdout!.on('data', take);
  p.stderr!.on('data', take);
  return {
    p,
    out: () => out,
    until: (cond, what, ms = 10_000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pcsc_scan did not show ${what} within ${ms} ms:\n${out}`)), ms);
      const check = () => {
        if (cond(scanEvents(out))) { clearTimeout(timer); resolve(); return; }
        if (p.exitCode !== null || p.signalCode !== null) { clearTimeout(timer); reject(new Error(`pcsc_scan exited before ${what}:\n${out}`)); return; }
        waiters.push(check);
      };
      check();
    }),
    async kill() {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); // by its pid (stdbuf execs pcsc_scan)
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}

const last = (events: ScanEvent[]) => events.at(-1);
const inserted = (e?: ScanEvent) => !!e && /Card inserted/.test(e.state);
const removed = (e?: ScanEvent) => !!e && /Card removed/.test(e.state);

/**
 * pcsc_scan watching `READER` while the card goes in and out: its events from the first (no card)
 * to the removal, with what the output looked like.
 */
async function scanInsertRemove(env: NodeJS.ProcessEnv, port: number): Promise<{ events: ScanEvent[]; out: string }> {
  const card = new ScriptedCard();
  const scan = startScan(env);
  try {
    await scan.until((es) => es.some((e) => e.reader === READER && removed(e)), `"${READER}" with no card`);
    await card.insert(port);
    await scan.until((es) => inserted(last(es)) && last(es)!.atr !== null, 'the card inserted with its ATR');
    // Let a state that follows the insertion (the card powered, …) show before the removal.
    await new Promise((r) => setTimeout(r, 1000));
    await card.remove();
    await scan.until((es) => removed(last(es)) && es.some(inserted), 'the card removed after its insertion');
    await new Promise((r) => setTimeout(r, 500));
    return { events: scanEvents(scan.out()), out: scan.out() };
  } finally {
    await card.remove();
    await scan.kill();
  }
}

/** The sequence as compared: state and ATR per event, repeats of the same state folded. */
function sequence(events: ScanEvent[]): string[] {
  const s = events.filter((e) => e.reader === READER).map((e) => `${e.state}${e.atr ? ` | ATR ${e.atr}` : ''}`);
  return s.filter((x, i) => i === 0 || x !== s[i - 1]);
}

/** The reader list pcsc_scan prints first (`0: Virtual PCD 00 00`, …). */
function listed(out: string): string[] {
  return [...out.matchAll(/^(\d+: .+)$/gm)].map((m) => m[1]);
}

function assertInsertRemove(r: { events: ScanEvent[]; out: string }, who: string): void {
  assert.match(r.out, new RegExp(`^\\d+: ${READER}$`, 'm'), `${who}: the reader is listed\n${r.out}`);
  const mine = r.events.filter((e) => e.reader === READER);
  const firstIn = mine.findIndex(inserted);
  assert.ok(firstIn > 0 && removed(mine[0]), `${who}: no card, then the card inserted\n${r.out}`);
  assert.equal(mine[firstIn].atr, SPACED_ATR, `${who}: the insertion shows the card's ATR\n${r.out}`);
  assert.ok(removed(mine.at(-1)), `${who}: the card removed at the end\n${r.out}`);
  assert.equal(mine.at(-1)!.atr, null, `${who}: no ATR once removed\n${r.out}`);
  for (let i = 1; i < mine.length; i++) assert.ok(mine[i].event > mine[i - 1].event, `${who}: event numbers grow\n${r.out}`);
}

let tmp: string;
let stack: RefStack;
const results: Record<string, { events: ScanEvent[]; out: string }> = {};
before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-pcscscan-'));
  stack = await loadRefStack();
});
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

describe('pcsc_scan against pcscd + vpcd, then scard serve --vpcd, the same card', { skip }, () => {
  test('pcscd + vpcd: pcsc_scan lists the reader, shows the card inserted with its ATR, then removed', async (t) => {
    let pcscd: StackProcess | null = null;
    try {
      pcscd = await stack.startPcscd({ apduLog: false });
      const r = await scanInsertRemove(clientEnv(null), stack.VPCD_PORTS[0]);
      results.pcscd = r;
      t.diagnostic(JSON.stringify(sequence(r.events)));
      assertInsertRemove(r, 'pcscd');
    } finally {
      await pcscd?.stop();
    }
  });

  test('scard serve --vpcd PORT --no-simulator: the same, and the same event sequence as pcscd\'s', async (t) => {
    let serve: Serve | null = null;
    try {
      // Two vpcd readers, as pcscd's reader.conf has: the same reader list on both sides.
      const port = await freePort();
      const port2 = await freePort();
      serve = await startServe(['--no-simulator', '--vpcd', `${port},${port2}`, '--socket', path.join(tmp, 'serve', 'pcscd.comm')]);
      const r = await scanInsertRemove(clientEnv(serve.socket), port);
      t.diagnostic(JSON.stringify(sequence(r.events)));
      assertInsertRemove(r, 'scard serve');
      assert.ok(results.pcscd, 'pcscd\'s run is missing');
      assert.deepEqual(listed(r.out), listed(results.pcscd.out), 'the readers pcsc_scan listed: scard serve (actual) vs pcscd (expected)');
      assert.deepEqual(sequence(r.events), sequence(results.pcscd.events), `scard serve (actual) vs pcscd (expected)\n--- serve:\n${r.out}\n--- pcscd:\n${results.pcscd.out}`);
    } finally {
      await serve?.stop();
    }
  });
});
