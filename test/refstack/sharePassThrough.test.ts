// Share modes pass through to the system's readers (issue 15): the real system pcscd
// with vpcd + vicc, `scard serve --pcsc --no-simulator` on its own socket (started
// from a shell whose PCSCLITE_CSOCK_NAME names that socket: the loop guard must send
// its own libpcsclite to the system's pcscd), and two pyscard programs: one a client
// of the workbench's service, one talking to the system pcscd directly, as any other
// program of the machine does. The direct one runs with PCSCLITE_NO_BLOCKING so
// libpcsclite answers SCARD_E_SHARING_VIOLATION instead of polling until it clears.
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireCommands } from '../support/system';
import { loadRefStack, unlessExited, type RefStack, type StackProcess } from './stack';

const SCARD = path.resolve('bin/scard.js');
const PY = '/usr/bin/python3'; // Debian's, which has pyscard
const CLIENT = path.resolve('test/refstack/py/pcsc_client.py');
const SYSTEM_READER = 'Virtual PCD 00 00';
const SHARING_VIOLATION = 0x8010000b;
const RESET_CARD = 0x80100068;

const pyscard = spawnSync(PY, ['-c', 'import smartcard'], { stdio: 'ignore' }).status === 0;
const skip = requireCommands('pcscd', 'vicc') || (pyscard ? false : 'python3-pyscard is missing; sudo npm run setup:system');

let stack: RefStack;
let pcscd: StackProcess | null = null;
let vicc: StackProcess | null = null;
let tmp: string;
let serve: ChildProcessWithoutNullStreams | null = null;
let serveOut = '';
let serveErr = '';
let socket: string;
/** The system reader as the workbench's service names it. */
let served: string;

/** Bounded: `p`, or a failure naming `what` after `ms`. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} (within ${ms} ms)`)), ms); })]).finally(() => clearTimeout(timer));
}

/** A pyscard `session` (pcsc_client.py): one connection, one stdin line per call, one JSON line per answer. */
class Session {
  private readonly lines: Record<string, unknown>[] = [];
  private waiter: (() => void) | null = null;
  private stderr = '';
  readonly exited: Promise<number | null>;
  private constructor(private readonly p: ChildProcessWithoutNullStreams, readonly label: string) {
    let partial = '';
    p.stdout.on('data', (b: Buffer) => {
      partial += b.toString();
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line.startsWith('{')) this.lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      this.waiter?.();
    });
    p.stderr.on('data', (b: Buffer) => { this.stderr += b.toString(); });
    this.exited = new Promise((r) => p.on('close', (code) => { this.waiter?.(); r(code); }));
  }

  /** `to`: the workbench's service (its socket) or the system pcscd directly (null). */
  static start(label: string, to: string | null, reader: string, share: 'shared' | 'exclusive' | 'direct'): Session {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.LD_LIBRARY_PATH;
    delete env.PCSCLITE_CSOCK_NAME;
    if (to) env.PCSCLITE_CSOCK_NAME = to;
    else env.PCSCLITE_NO_BLOCKING = '1';
    return new Session(spawn(PY, [CLIENT, 'session', reader, share], { env, stdio: ['pipe', 'pipe', 'pipe'] }), label);
  }

  /** The next answer (bounded). */
  async next(): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 15_000;
    while (!this.lines.length) {
      if (this.p.exitCode !== null || Date.now() > deadline) throw new Error(`${this.label}: no answer (exit ${this.p.exitCode}): ${this.stderr}`);
      await bounded(new Promise<void>((r) => { this.waiter = r; }), Math.max(1, deadline - Date.now()), `${this.label}: no answer`).catch(() => undefined);
      this.waiter = null;
    }
    return this.lines.shift()!;
  }

  /** Answers already printed and not yet read. */
  get pending(): number { return this.lines.length; }

  send(op: string): void { this.p.stdin.write(`${op}\n`); }

  async call(op: string): Promise<Record<string, unknown>> {
    this.send(op);
    return this.next();
  }

  /** Ends stdin: the program releases its context (a connection still open goes with it) and exits. */
  async end(): Promise<void> {
    this.p.stdin.end();
    assert.deepEqual(await this.next(), { done: 0 }, `${this.label}: ${this.stderr}`);
    assert.equal(await bounded(this.exited, 15_000, `${this.label} did not exit`), 0, this.stderr);
  }

  kill(): void { if (this.p.exitCode === null) this.p.kill('SIGKILL'); }
}

/** `scard serve` printed a line matching `re` (bounded). */
function untilServe(re: RegExp, what: string): Promise<void> {
  return bounded(new Promise<void>((resolve) => {
    const check = (): void => { if (re.test(serveOut)) { serve?.stdout.off('data', check); resolve(); } };
    serve!.stdout.on('data', check);
    check();
  }), 20_000, `${what}: ${serveErr}`);
}

/**
 * R74's client steps: a client (`to`: the service's socket, or null for the system pcscd) connects to `reader` in `share`
 * mode; an outside program of the machine (always on the system pcscd) connects shared and resets the card; the client's
 * SCardStatus / SCardGetAttrib before and after, its SCardReconnect(LEAVE), and both again. Each step's return code.
 */
async function outsideReset(to: string | null, reader: string, share: 'direct' | 'shared'): Promise<[string, unknown][]> {
  const steps: [string, unknown][] = [];
  const w = Session.start(`${to ? 'service' : 'pcscd'} client, ${share} handle`, to, reader, share);
  const d = Session.start('outside program', null, SYSTEM_READER, 'shared');
  const step = async (label: string, op: string): Promise<void> => { steps.push([label, (await w.call(op))[op]]); };
  try {
    steps.push(['connect', (await w.next()).connect]);
    await step('status', 'status');
    await step('getattrib', 'getattrib');
    assert.deepEqual(await d.next(), { connect: 0 }, 'the outside program connects');
    assert.deepEqual(await d.call('reset'), { reset: 0 }, 'the outside program\'s SCardReconnect(RESET)');
    await step('status after the outside reset', 'status');
    await step('getattrib after the outside reset', 'getattrib');
    await step('status again', 'status');
    await step('reconnect (LEAVE)', 'reconnect');
    await step('status after the reconnect', 'status');
    await step('getattrib after the reconnect', 'getattrib');
    await d.end();
    await w.end();
  } finally { d.kill(); w.kill(); }
  return steps;
}

/**
 * R90's client steps: an outside program of the machine (always on the system pcscd) holds the system reader exclusively;
 * a client (`to`: the service's socket, or null for the system pcscd) connects DIRECT beside it (pcscd refuses every
 * connect then, DIRECT included: winscard.c 279–283); the outside program lets go; the client connects DIRECT again and
 * looks; a second outside program's exclusive connect beside that direct handle (pcscd counts it in the reader's sharing,
 * ~480; the service's watch does). Each step's return code.
 */
async function outsideExclusive(to: string | null, reader: string): Promise<[string, unknown][]> {
  const steps: [string, unknown][] = [];
  const who = to ? 'service client' : 'pcscd client';
  const d = Session.start('outside program, exclusive', null, SYSTEM_READER, 'exclusive');
  try {
    assert.deepEqual(await d.next(), { connect: 0 }, 'the outside program holds the reader exclusively (nothing of the workbench\'s in pcscd)');
    const w = Session.start(`${who}, direct handle beside it`, to, reader, 'direct');
    try {
      steps.push(['direct connect beside the exclusive hold', (await w.next()).connect]);
      await w.end();
    } finally { w.kill(); }
    assert.deepEqual(await d.call('disconnect'), { disconnect: 0 });
    await d.end();
  } finally { d.kill(); }
  const w = Session.start(`${who}, direct handle after`, to, reader, 'direct');
  try {
    steps.push(['direct connect after the outside program let go', (await w.next()).connect]);
    steps.push(['status', (await w.call('status')).status]);
    const e = Session.start('outside program, exclusive beside the direct handle', null, SYSTEM_READER, 'exclusive');
    try {
      steps.push(['an outside exclusive connect beside the direct handle', (await e.next()).connect]);
      await e.end();
    } finally { e.kill(); }
    steps.push(['disconnect', (await w.call('disconnect')).disconnect]);
    await w.end();
  } finally { w.kill(); }
  return steps;
}

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-share-'));
  stack = await loadRefStack();
  pcscd = await stack.startPcscd({ apduLog: false });
  socket = path.join(tmp, 'smartcard-workbench', 'pcscd.comm');
  // Started from a workbench terminal: PCSCLITE_CSOCK_NAME names serve's own socket.
  serve = spawn(process.execPath, [SCARD, 'serve', '--pcsc', '--no-simulator', '--json', '--socket', socket],
    { env: { ...process.env, PCSCLITE_CSOCK_NAME: socket }, stdio: ['pipe', 'pipe', 'pipe'] });
  serve.stdout.on('data', (b: Buffer) => { serveOut += b.toString(); });
  serve.stderr.on('data', (b: Buffer) => { serveErr += b.toString(); });
  await untilServe(/^export PCSCLITE_CSOCK_NAME=/m, 'serve printed no ready line');
  // The card: vicc connects to pcscd's vpcd; the workbench sees it through the system pcscd.
  vicc = stack.startVicc({ port: stack.VPCD_PORTS[0] });
  await unlessExited(untilServe(/"kind":"cardPowered"/, 'the workbench never saw the card in the system reader'), vicc, 'vicc connecting to pcscd');
  const powered = serveOut.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { kind: string; reader: string }).find((e) => e.kind === 'cardPowered');
  served = powered!.reader;
});

after(async () => {
  serve?.kill('SIGTERM');
  if (serve && serve.exitCode === null) await bounded(new Promise((r) => serve!.on('exit', r)), 10_000, 'serve did not exit').catch(() => serve?.kill('SIGKILL'));
  await vicc?.stop();
  await pcscd?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('share modes pass through to a system reader (system pcscd + vpcd + vicc, scard serve --pcsc)', { skip }, () => {
  test('the loop guard sent serve\'s own libpcsclite to the system pcscd: the service lists the system reader', () => {
    assert.match(served, /^Virtual PCD/, serveOut);
  });

  test('a service client\'s exclusive connection: a program of the machine gets SCARD_E_SHARING_VIOLATION, shared or exclusive; after the disconnect it connects exclusively', async () => {
    const w = Session.start('service client', socket, served, 'exclusive');
    try {
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.equal((await w.call('transmit')).transmit, 0);
      for (const share of ['shared', 'exclusive'] as const) {
        const d = Session.start(`direct ${share}`, null, SYSTEM_READER, share);
        try {
          assert.deepEqual(await d.next(), { connect: SHARING_VIOLATION }, `a ${share} connect beside the workbench client's exclusive one`);
          await d.end();
        } finally { d.kill(); }
      }
      // The client's disconnect answers once the workbench has let go of the card in pcscd.
      assert.deepEqual(await w.call('disconnect'), { disconnect: 0 });
      const d = Session.start('direct exclusive, after', null, SYSTEM_READER, 'exclusive');
      try {
        assert.deepEqual(await d.next(), { connect: 0 }, 'the outside program\'s turn after the disconnect');
        assert.equal((await d.call('transmit')).transmit, 0);
        assert.deepEqual(await d.call('disconnect'), { disconnect: 0 });
        await d.end();
      } finally { d.kill(); }
      await w.end();
    } finally { w.kill(); }
  });

  test('a service client\'s transaction holds SCardBeginTransaction in the system pcscd: the outside program\'s transmit is refused until it ends', async () => {
    // The outside program connects first: pcscd lets a connect wait (not fail) while a transaction is open.
    const d = Session.start('direct shared', null, SYSTEM_READER, 'shared');
    const w = Session.start('service client', socket, served, 'shared');
    try {
      assert.deepEqual(await d.next(), { connect: 0 });
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.deepEqual(await w.call('begin'), { begin: 0 });
      assert.deepEqual(await d.call('transmit'), { transmit: SHARING_VIOLATION, sw: null }, 'the outside transmit inside the workbench client\'s transaction');
      assert.equal((await w.call('transmit')).transmit, 0);
      assert.deepEqual(await w.call('end'), { end: 0 });
      assert.equal((await d.call('transmit')).transmit, 0, 'after the transaction');
      await d.end();
      await w.end();
    } finally { d.kill(); w.kill(); }
  });

  test('the reverse: an outside program holds the system reader exclusively; a service client\'s connect gets SCARD_E_SHARING_VIOLATION, as from pcscd; after it leaves, the client connects', async () => {
    const d = Session.start('direct exclusive', null, SYSTEM_READER, 'exclusive');
    try {
      assert.deepEqual(await d.next(), { connect: 0 }, 'the workbench is idle: it holds no connection in pcscd');
      for (const share of ['exclusive', 'shared'] as const) {
        const w = Session.start(`service client ${share}`, socket, served, share);
        try {
          assert.deepEqual(await w.next(), { connect: SHARING_VIOLATION }, `a ${share} connect of a service client`);
          await w.end();
        } finally { w.kill(); }
      }
      assert.deepEqual(await d.call('disconnect'), { disconnect: 0 });
      await d.end();
    } finally { d.kill(); }
    const w = Session.start('service client exclusive, after', socket, served, 'exclusive');
    try {
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.equal((await w.call('transmit')).transmit, 0);
      await w.end();
    } finally { w.kill(); }
  });

  // R90: pcscd refuses a DIRECT connect too while another program holds the reader exclusively (winscard.c 279–283); the
  // service learns it from its watch's own SCardConnect(DIRECT). The same client steps against pcscd and the service.
  test('R90: an outside program holds the system reader exclusively: a service client\'s DIRECT connect answers as the same connect on pcscd (SCARD_E_SHARING_VIOLATION), and connects once it let go', async () => {
    const onPcscd = await outsideExclusive(null, SYSTEM_READER);
    // Not vacuous: pcscd refuses the direct connect, accepts it after, and the direct handle keeps the next program out.
    assert.deepEqual(onPcscd, [
      ['direct connect beside the exclusive hold', SHARING_VIOLATION], ['direct connect after the outside program let go', 0], ['status', 0],
      ['an outside exclusive connect beside the direct handle', SHARING_VIOLATION], ['disconnect', 0],
    ], `pcscd alone: ${JSON.stringify(onPcscd)}`);
    const onService = await outsideExclusive(socket, served);
    assert.deepEqual(onService, onPcscd, `the service client, step by step, as the same client on pcscd: ${JSON.stringify(onService)}`);
  });

  test('an outside program resets the card: SCARD_W_RESET_CARD reaches the service client (until its SCardReconnect), then it goes on', async () => {
    const w = Session.start('service client', socket, served, 'shared');
    const d = Session.start('direct shared', null, SYSTEM_READER, 'shared');
    try {
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.equal((await w.call('transmit')).transmit, 0);
      assert.deepEqual(await d.next(), { connect: 0 });
      assert.deepEqual(await d.call('reset'), { reset: 0 });
      assert.deepEqual(await w.call('transmit'), { transmit: RESET_CARD, sw: null }, 'the first call after the outside reset');
      assert.deepEqual(await w.call('transmit'), { transmit: RESET_CARD, sw: null }, 'again, until SCardReconnect (as pcscd)');
      assert.deepEqual(await w.call('reconnect'), { reconnect: 0 });
      assert.equal((await w.call('transmit')).transmit, 0, 'after the reconnect');
      await d.end();
      await w.end();
    } finally { d.kill(); w.kill(); }
  });

  // R74: another program's reset through the system pcscd marks every handle of the reader (RFSetReaderEventState, winscard.c
  // 582), a SCARD_SHARE_DIRECT one too; SCardStatus and SCardGetAttrib look (RFCheckReaderEventState, winscard.c 1290, 1397)
  // and answer SCARD_W_RESET_CARD until the handle's SCardReconnect clears it (813). The same client steps run against the
  // system pcscd directly and against the service: pcscd's answers are the expected ones.
  for (const share of ['direct', 'shared'] as const) {
    test(`R74: an outside program resets the card (SCardReconnect RESET through the system pcscd): a service client's ${share} handle answers SCardStatus / SCardGetAttrib as the same handle on pcscd does`, async () => {
      const onPcscd = await outsideReset(null, SYSTEM_READER, share);
      // Not vacuous: pcscd tells the handle, status and attribute alike, until its reconnect.
      assert.deepEqual(onPcscd.slice(3, 6), [
        ['status after the outside reset', RESET_CARD], ['getattrib after the outside reset', RESET_CARD], ['status again', RESET_CARD],
      ], `pcscd alone: ${JSON.stringify(onPcscd)}`);
      const onService = await outsideReset(socket, served, share);
      assert.deepEqual(onService, onPcscd, `the service client, step by step, as the same client on pcscd: ${JSON.stringify(onService)}`);
    });
  }

  // R74's watch is a SCARD_SHARE_DIRECT handle of the driver's in the system pcscd, which counts it in the reader's sharing
  // (winscard.c ~480): the driver lets go of it for an exclusive hold, or a client's only direct handle could not become
  // exclusive (pcscd allows that to the reader's last handle, winscard.c ~748–766), and takes it again after. Not compared
  // with pcscd alone: Debian's pcscd 1.9.9 keeps the lock of a DIRECT handle reconnected EXCLUSIVE after it reconnects to
  // SHARED or DIRECT (the next program's SCardConnect waits for ever; measured with these steps), and 2.5.1's source does
  // the same (RFUnlockSharing refuses the last level while the reader is still exclusive, readerfactory.c 1085–1090;
  // winscard.c 772–801). The service does not copy that lock-up: the expected answers are those of a pcscd that gives
  // the lock back with the exclusive share (R89 is the driver's side of the same rule).
  test('R74: a service client\'s direct handle reconnects EXCLUSIVE (the outside program refused), then DIRECT again: the outside program connects, and its reset is heard', async () => {
    const w = Session.start('service client, direct handle', socket, served, 'direct');
    try {
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.deepEqual(await w.call('to-exclusive'), { 'to-exclusive': 0 }, 'the reader\'s only handle becomes exclusive');
      const held = Session.start('outside program, beside the exclusive handle', null, SYSTEM_READER, 'shared');
      try {
        assert.deepEqual(await held.next(), { connect: SHARING_VIOLATION });
        await held.end();
      } finally { held.kill(); }
      assert.deepEqual(await w.call('to-direct'), { 'to-direct': 0 });
      const d = Session.start('outside program', null, SYSTEM_READER, 'shared');
      try {
        assert.deepEqual(await d.next(), { connect: 0 }, 'the reader is not left locked');
        assert.deepEqual(await d.call('reset'), { reset: 0 });
        await d.end();
      } finally { d.kill(); }
      assert.deepEqual(await w.call('status'), { status: RESET_CARD }, 'the watch was taken again after the exclusive hold');
      assert.deepEqual(await w.call('reconnect'), { reconnect: 0 });
      assert.deepEqual(await w.call('status'), { status: 0 });
      await w.end();
    } finally { w.kill(); }
  });

  // Fourth review F1's twin against the real system pcscd: pcscd's SCardConnect waits while hLockId is set, whatever the
  // share mode (winscard.c 287–295), so a connect of the driver's own under its own transaction would leave the system
  // reader locked for every program until pcscd restarts. The first R62/R63 did that here (the watch connection).
  test('F1: a service client begins, reconnects its handle to DIRECT, ends: the outside program is held off in between and transmits after (the system reader is not left locked)', async () => {
    const d = Session.start('direct shared', null, SYSTEM_READER, 'shared');
    const w = Session.start('service client', socket, served, 'shared');
    try {
      assert.deepEqual(await d.next(), { connect: 0 });
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.deepEqual(await w.call('begin'), { begin: 0 });
      assert.deepEqual(await w.call('to-direct'), { 'to-direct': 0 });
      assert.deepEqual(await w.call('status'), { status: 0 });
      assert.deepEqual(await d.call('transmit'), { transmit: SHARING_VIOLATION, sw: null }, 'the transaction survives the share change, in the system pcscd too');
      assert.deepEqual(await w.call('end'), { end: 0 }, 'End answered');
      assert.deepEqual(await d.call('transmit'), { transmit: 0, sw: '61 0C' }, 'the outside program after the End: the reader is free');
      // A new program of the machine can connect (pcscd's connect would wait for ever on a lock left behind).
      const e = Session.start('direct shared, after', null, SYSTEM_READER, 'shared');
      try {
        assert.deepEqual(await e.next(), { connect: 0 });
        await e.end();
      } finally { e.kill(); }
      assert.deepEqual(await w.call('to-shared'), { 'to-shared': 0 });
      assert.equal((await w.call('transmit')).transmit, 0);
      await d.end();
      await w.end();
    } finally { d.kill(); w.kill(); }
  });

  // pcscd's SCardBeginTransaction locks the reader for any handle (RFLockSharing, readerfactory.c 1061), a SCARD_SHARE_DIRECT
  // one too: a service client's transaction on a DIRECT handle of a system reader is the system pcscd's transaction (R73;
  // until round 8 a known difference, pinned here with the outside transmit answered 0).
  test('a service client\'s transaction on a DIRECT handle holds off the outside program in the system pcscd (SCARD_E_SHARING_VIOLATION) until its End; nothing of ours is left locked', async () => {
    const d = Session.start('direct shared', null, SYSTEM_READER, 'shared');
    const w = Session.start('service client, direct handle', socket, served, 'direct');
    try {
      assert.deepEqual(await d.next(), { connect: 0 });
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.deepEqual(await w.call('begin'), { begin: 0 });
      assert.deepEqual(await w.call('status'), { status: 0 });
      assert.deepEqual(await d.call('transmit'), { transmit: SHARING_VIOLATION, sw: null }, 'the outside transmit inside the direct handle\'s transaction, as pcscd answers it');
      assert.deepEqual(await w.call('end'), { end: 0 });
      assert.deepEqual(await d.call('transmit'), { transmit: 0, sw: '61 0C' }, 'after the End');
      // A new program of the machine connects (pcscd's connect would wait for ever on a lock left behind).
      const e = Session.start('direct shared, after', null, SYSTEM_READER, 'shared');
      try {
        assert.deepEqual(await e.next(), { connect: 0 });
        await e.end();
      } finally { e.kill(); }
      await d.end();
      await w.end();
    } finally { d.kill(); w.kill(); }
  });

  // The reverse: the outside program holds the transaction; the service client's Begin on its DIRECT handle waits, as
  // pcscd's SCardBeginTransaction makes it wait, and gets the transaction once the outside program ends its own (R73).
  test('an outside program\'s transaction: a service client\'s Begin on a DIRECT handle waits for its End, then holds the outside program off in turn', async () => {
    const d = Session.start('direct shared', null, SYSTEM_READER, 'shared');
    const w = Session.start('service client, direct handle', socket, served, 'direct');
    try {
      assert.deepEqual(await d.next(), { connect: 0 });
      assert.deepEqual(await w.next(), { connect: 0 });
      assert.deepEqual(await d.call('begin'), { begin: 0 });
      w.send('begin');
      assert.deepEqual(await d.call('transmit'), { transmit: 0, sw: '61 0C' }, 'the outside program still holds its transaction');
      assert.equal(w.pending, 0, 'the client\'s Begin has not been answered inside the outside transaction');
      assert.deepEqual(await d.call('end'), { end: 0 });
      assert.deepEqual(await w.next(), { begin: 0 }, 'the client\'s Begin, once the outside transaction ended');
      assert.deepEqual(await d.call('transmit'), { transmit: SHARING_VIOLATION, sw: null }, 'now the outside program is held off');
      assert.deepEqual(await w.call('end'), { end: 0 });
      assert.deepEqual(await d.call('transmit'), { transmit: 0, sw: '61 0C' });
      await d.end();
      await w.end();
    } finally { d.kill(); w.kill(); }
  });

  // Last: it ends with the card removed (vicc stopped).
  test('a script\'s `connect … exclusive` (scard run --pcsc) holds the system reader exclusively: a program of the machine and a client of another workbench\'s service are refused', async () => {
    const script = path.join(tmp, 'exclusive.apdu');
    fs.writeFileSync(script, `connect "${served}" exclusive\n00 A4 00 00 02 3F 00\necho "held"\nwait removal 30000\necho "gone"\n`);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.PCSCLITE_CSOCK_NAME;
    const run = spawn(process.execPath, [SCARD, 'run', script, '--pcsc', '--no-simulator'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    run.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((r) => run.on('close', (code) => r(code)));
    try {
      await bounded(new Promise<void>((resolve) => {
        run.stdout.on('data', (b: Buffer) => { out += b.toString(); if (/held/.test(out)) resolve(); });
      }), 20_000, `the script never held the reader: ${out}${err}`);
      const d = Session.start('direct shared', null, SYSTEM_READER, 'shared');
      try {
        assert.deepEqual(await d.next(), { connect: SHARING_VIOLATION }, 'a program of the machine beside the script\'s exclusive connection');
        await d.end();
      } finally { d.kill(); }
      const w = Session.start('client of serve', socket, served, 'shared');
      try {
        assert.deepEqual(await w.next(), { connect: SHARING_VIOLATION }, 'a client of another workbench process (scard serve)');
        await w.end();
      } finally { w.kill(); }
      await vicc?.stop();
      vicc = null;
      assert.equal(await bounded(exited, 20_000, 'the script did not end after the removal'), 0, out + err);
      assert.match(out, /gone/);
    } finally {
      if (run.exitCode === null) run.kill('SIGKILL');
    }
  });
});
