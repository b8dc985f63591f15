// What pcscd answers around card events and another client's transaction, and the workbench service the
// same (reliability R45–R49): one pyscard client (Debian 12's libpcsclite 1.9.9) runs the same scenarios
// against the service (the reader manager over the simulator) and against Debian's pcscd + vpcd + vicc,
// and the return codes are compared call by call, so a difference from pcscd is a failing test.
// - events: a shared and a direct handle through a card removal, failed reconnects, a new card, and the
//   direct handle's own resets (SCardReconnect DIRECT/RESET, UNPOWER, DIRECT → SHARED with RESET);
// - two clients: while one holds a transaction, another's SCardConnect (shared, and direct) waits for its end;
// - transactions on a direct handle, and a transaction kept across SCardReconnect to DIRECT and back (R50);
// - refused arguments of SCardReconnect (EJECT), SCardDisconnect and SCardEndTransaction, and SCardSetAttrib (R99).
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports, pcscd the machine-wide socket).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import type { PcscServer } from '../../server/src/service/server';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { missingPyscard, requireCommands } from '../support/system';
import { loadRefStack, type RefStack, type StackProcess } from './stack';
import { clientEnv as env, startServiceStack, type ServiceStack } from './serviceStack';

const PY = '/usr/bin/python3';
const EVENTS = path.resolve('test/refstack/py/pcsc_events.py');
const CLIENT = path.resolve('test/refstack/py/pcsc_client.py');
const SIM_READER = 'Workbench Simulator 00 00';
const VPCD_READER = 'Virtual PCD 00 00';
const skip = requireCommands('pcscd', 'vicc') || missingPyscard(PY);

type Line = Record<string, unknown>;

/** A client process: its JSON lines as they come, a bounded wait for one, and its stdin. */
class Client {
  readonly lines: Line[] = [];
  private readonly p: ChildProcessWithoutNullStreams;
  private stderr = '';
  private waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: NodeJS.ProcessEnv, private readonly onLine?: (l: Line) => void | Promise<void>) {
    this.p = spawn(PY, [EVENTS, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.p.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!text.startsWith('{')) continue;
        const l = JSON.parse(text) as Line;
        this.lines.push(l);
        void Promise.resolve(this.onLine?.(l)).catch((e) => { this.stderr += `onLine: ${String(e)}\n`; this.p.kill('SIGKILL'); });
        for (const w of this.waiters.filter((x) => x.pred(l))) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(l); }
      }
    });
    this.p.stderr.on('data', (b: Buffer) => { this.stderr += b.toString(); });
    this.exited = new Promise((resolve) => this.p.on('close', resolve));
  }

  /** The first line (already seen or to come) that `pred` accepts, within `ms`. */
  line(pred: (l: Line) => boolean, what: string, ms = 15_000): Promise<Line> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms; lines ${JSON.stringify(this.lines)} ${this.stderr}`)), ms);
      this.waiters.push({ pred, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    });
  }

  send(text: string): void { this.p.stdin.write(text + '\n'); }
  end(): void { this.p.stdin.end(); }
  kill(): void { if (this.p.exitCode === null) this.p.kill('SIGKILL'); }
  get errors(): string { return this.stderr; }
}

/** The events scenario: removal and insertion done by `remove` / `insert` when the client asks for them. */
async function events(reader: string, e: NodeJS.ProcessEnv, remove: () => unknown, insert: () => unknown): Promise<Line[]> {
  const c = new Client(['events', reader], e, async (l) => {
    if (l.waiting === 'removal') await remove();
    if (l.waiting === 'insertion') await insert();
  });
  try {
    const code = await Promise.race([c.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`events: no exit within 60 s: ${JSON.stringify(c.lines)} ${c.errors}`)), 60_000))]);
    assert.equal(code, 0, c.errors);
    return c.lines.filter((l) => 'step' in l);
  } finally { c.kill(); }
}

/**
 * Two clients: one holds a transaction while another connects (shared, then direct). Returns what was seen:
 * whether the connect had answered while the transaction was held (after three round trips of the holder),
 * and its answer after the end.
 */
async function connectDuringTransaction(reader: string, e: NodeJS.ProcessEnv, share: 'shared' | 'direct'): Promise<Line> {
  const holder = new Client(['hold', reader], e);
  let other: Client | null = null;
  try {
    assert.equal((await holder.line((l) => 'began' in l, 'the holder\'s transaction')).began, 0, holder.errors);
    other = new Client(['connect', reader, share], e);
    await other.line((l) => 'connecting' in l, 'the other client calls SCardConnect');
    for (let i = 0; i < 3; i++) {
      const n = holder.lines.length;
      holder.send('transmit');
      assert.equal((await holder.line((l) => 'transmit' in l && holder.lines.indexOf(l) >= n, 'the holder transmits')).transmit, 0);
    }
    const answeredDuring = other.lines.some((l) => 'connect' in l);
    holder.send('end');
    assert.equal((await holder.line((l) => 'ended' in l, 'the holder ends')).ended, 0);
    const after = await other.line((l) => 'connect' in l, 'the other client\'s connect after the end');
    holder.end();
    return { share, answeredDuring, connect: after.connect };
  } finally {
    holder.kill();
    other?.kill();
  }
}

const ours: { events?: Line[]; connect: Line[]; transactions?: Line[]; direct?: Line[]; arguments?: Line[] } = { connect: [] };

/** A scenario that needs nothing from the test: its step lines. */
async function scenario(args: string[], e: NodeJS.ProcessEnv): Promise<Line[]> {
  const c = new Client(args, e);
  try {
    const code = await Promise.race([c.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${args[0]}: no exit within 30 s: ${JSON.stringify(c.lines)} ${c.errors}`)), 30_000))]);
    assert.equal(code, 0, c.errors);
    return c.lines.filter((l) => 'step' in l);
  } finally { c.kill(); }
}

describe('the workbench service (reader manager + simulator) with Debian\'s libpcsclite client', { skip }, () => {
  let sim: SimulatorDriver;
  let stack: ServiceStack | undefined;
  let server: PcscServer;
  before(async () => {
    sim = new SimulatorDriver({ readers: 1 });
    stack = await startServiceStack([sim], 'wb-pcscevents-');
    server = stack.server;
  });
  after(async () => {
    await stack?.stop();
  });

  test('events: a shared and a direct handle through a removal, a new card and the direct handle\'s resets', { timeout: 90_000 }, async () => {
    ours.events = await events(SIM_READER, env(server.socketPath), () => sim.removeCard('sim:0'), () => sim.insertCard('sim:0'));
    const rv = (step: string) => ours.events!.filter((l) => l.step === step).map((l) => l.rv);
    // What this file's comparison below checks against pcscd; here the values the service must give by itself.
    assert.deepEqual(rv('channel id'), [0x8010001f], 'CHANNEL_ID: not supported (R45)');
    assert.deepEqual(rv('direct status'), [0x80100069, 0], 'the direct handle hears the removal (R47), and after its reconnect nothing');
    assert.deepEqual(rv('shared reconnect LEAVE'), [0x8010000c, 0, 0, 0], 'reconnect LEAVE with no card: SCARD_E_NO_SMARTCARD (R46)');
  });

  test('transactions on a direct handle, and across SCardReconnect to DIRECT and back', { timeout: 60_000 }, async () => {
    ours.transactions = await scenario(['transactions', SIM_READER], env(server.socketPath));
    const rv = (step: string) => ours.transactions!.find((l) => l.step === step)?.rv;
    assert.deepEqual([rv('direct begin'), rv('shared refused during it'), rv('other refused (held by the direct handle)'), rv('end')], [0, true, true, 0], JSON.stringify(ours.transactions));
  });

  test('SCardTransmit on direct handles: sent to the card when the PCI names the reader\'s protocol or RAW (R59)', { timeout: 60_000 }, async () => {
    ours.direct = await scenario(['direct', SIM_READER], env(server.socketPath));
    const step = (name: string) => ours.direct!.find((l) => l.step === name);
    assert.deepEqual(step('direct transmit, the card\'s protocol'), { step: 'direct transmit, the card\'s protocol', rv: 0, sw: true }, JSON.stringify(ours.direct));
    assert.equal(step('direct transmit, the other protocol')?.rv, 0x8010000f, 'SCARD_E_PROTO_MISMATCH');
    assert.equal(step('direct transmit after its reset, the old protocol')?.rv, 0x8010000f, 'cardProtocol UNDEFINED after the reset');
  });

  test('refused arguments (SCardReconnect EJECT, unknown share modes and dispositions) change nothing; SCardSetAttrib as a reader driver refuses it', { timeout: 60_000 }, async () => {
    ours.arguments = await scenario(['arguments', SIM_READER], env(server.socketPath));
    const rv = (step: string) => ours.arguments!.find((l) => l.step === step)?.rv;
    assert.equal(rv('reconnect EJECT'), 0x80100011, `SCARD_E_INVALID_VALUE: ${JSON.stringify(ours.arguments)}`);
    assert.equal(rv('the other handle: no reset, no removal'), 0);
    assert.equal(rv('the transaction is still held'), 0);
    assert.equal(ours.arguments!.find((l) => l.step === 'set attrib')?.refused, true);
    assert.equal(rv('set attrib after the other\'s reset'), 0x80100068, 'SCARD_W_RESET_CARD');
  });

  for (const share of ['shared', 'direct'] as const) {
    test(`two clients: SCardConnect (${share}) during another client's transaction waits for its end`, { timeout: 60_000 }, async () => {
      const r = await connectDuringTransaction(SIM_READER, env(server.socketPath), share);
      ours.connect.push(r);
      assert.deepEqual(r, { share, answeredDuring: false, connect: 0 });
    });
  }
});

describe('the same client against Debian\'s pcscd 1.9.9 + vpcd + vicc: the same answers', { skip }, () => {
  let stack: RefStack;
  let pcscd: StackProcess | null = null;
  let vicc: StackProcess | null = null;
  const startVicc = () => { vicc = stack.startVicc({ port: stack.VPCD_PORTS[0] }); };
  const stopVicc = async () => { await vicc?.stop(); vicc = null; };
  before(async () => {
    stack = await loadRefStack();
    pcscd = await stack.startPcscd();
    // pcscd opens its socket before vpcd's readers are there; then a card in, seen by pcscd.
    const readers = await run([CLIENT, 'readers', '2']);
    assert.equal(readers.code, 0, readers.stderr);
    const inserted = await run([CLIENT, 'watch', VPCD_READER, 'insertion'], (l) => { if (l.waiting === 'insertion') startVicc(); });
    assert.equal(inserted.code, 0, inserted.stderr);
  });
  after(async () => {
    await stopVicc();
    await pcscd?.stop();
  });

  test('events: the same return codes, call by call, as the workbench service gave', { timeout: 90_000 }, async () => {
    assert.ok(ours.events, 'the workbench run comes first (same file, earlier test)');
    const theirs = await events(VPCD_READER, env(null), stopVicc, startVicc);
    assert.deepEqual(ours.events, theirs);
  });

  test('transactions on a direct handle, and across SCardReconnect to DIRECT and back: as the workbench service', { timeout: 60_000 }, async () => {
    assert.ok(ours.transactions, 'the workbench run comes first');
    assert.deepEqual(await scenario(['transactions', VPCD_READER], env(null)), ours.transactions);
  });

  test('SCardTransmit on direct handles: the same return codes as the workbench service', { timeout: 60_000 }, async () => {
    assert.ok(ours.direct, 'the workbench run comes first');
    assert.deepEqual(await scenario(['direct', VPCD_READER], env(null)), ours.direct);
  });

  test('refused arguments and SCardSetAttrib: the same return codes as the workbench service', { timeout: 60_000 }, async () => {
    assert.ok(ours.arguments, 'the workbench run comes first');
    assert.deepEqual(await scenario(['arguments', VPCD_READER], env(null)), ours.arguments);
  });

  test('two clients: SCardConnect (shared, then direct) during another client\'s transaction, as the workbench service', { timeout: 60_000 }, async () => {
    assert.equal(ours.connect.length, 2, 'the workbench runs come first');
    const theirs = [await connectDuringTransaction(VPCD_READER, env(null), 'shared'), await connectDuringTransaction(VPCD_READER, env(null), 'direct')];
    assert.deepEqual(theirs, ours.connect);
  });
});

/** pcsc_client.py (the other refstack client) to completion, within 30 s. */
function run(args: string[], onLine?: (l: Line) => void): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PY, args, { env: env(null), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let buf = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${args.join(' ')}: no exit within 30 s ${stderr}`)); }, 30_000);
    p.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (text.startsWith('{')) onLine?.(JSON.parse(text) as Line);
      }
    });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stderr }); });
  });
}
