// The PC/SC service with real libpcsclite clients nobody here wrote: Debian 12's
// own libpcsclite 1.9.9 (protocol 4:4) and the 2.3.3 (4:5) and 2.5.1 (4:6)
// clients built from ../shared/data/pcsc-lite by scripts/pcsclite.mjs, selected
// with LD_LIBRARY_PATH, reaching the service through PCSCLITE_CSOCK_NAME. The
// service's backend is the real one (server/src/service/managerBackend.ts): the
// reader manager over the simulator driver (one whose reader can be unplugged).
// The same pyscard scenarios then run against real pcscd + vpcd + vicc, and the
// two results are compared field by field, so a difference from pcscd is a failure.
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startPcscServer, type PcscServer } from '../../server/src/service/server';
import { PcscService } from '../../server/src/service/session';
import { Rv } from '../../server/src/service/wire';
import { rvOf } from '../../server/src/service/backend';
import { ManagerBackend } from '../../server/src/service/managerBackend';
import { ReaderManager } from '../../server/src/manager/manager';
import type { LogEntry } from '../../server/src/protocol';
import { formatEntry } from '../../server/src/script/trace';
import { parseScript } from '../../server/src/script/parser';
import { runScript } from '../../server/src/script/engine';
import { missingPart, missingPyscard, requireCommands } from '../support/system';
import { eachJsonLine } from '../support/jsonLines';
import { PluggableSimulator } from '../support/pluggableSimulator';
import { loadRefStack, type RefStack, type StackProcess } from './stack';

const PY = '/usr/bin/python3'; // Debian's, which has pyscard (python3 on PATH may be another)
const CLIENT = path.resolve('test/refstack/py/pcsc_client.py');
const SIM_READER = 'Workbench Simulator 00 00';
const VPCD_READER = 'Virtual PCD 00 00';

function missingSources(): string | false {
  const root = process.env.PCSCLITE_SOURCES ?? path.resolve('..', 'shared', 'data', 'pcsc-lite');
  return ['2.3.3', '2.5.1'].every((v) => fs.existsSync(path.join(root, v, 'meson.build'))) ? false : missingPart(`no pcsc-lite 2.3.3/2.5.1 sources in ${root} (set PCSCLITE_SOURCES)`);
}
const skip = requireCommands('gcc', 'meson', 'ninja', 'flex', 'pkg-config', 'pcsc_scan', 'opensc-tool', 'scriptor') || missingPyscard(PY) || missingSources();

interface Client { label: string; minor: number; libdir: string | null }
let clients: Client[] = [];
let tmp: string;
let sim: PluggableSimulator;
let manager: ReaderManager;
let backend: ManagerBackend;
let service: PcscService;
let server: PcscServer;
const serviceLog: string[] = [];
/** The APDU Log's entries (what the editor's log and `scard serve` show). */
const entries: LogEntry[] = [];
/** The simulator card in and out, the reader plugged and unplugged (what the test double did). */
const card = {
  insertCard: () => sim.insertCard(sim.keys[0]),
  removeCard: () => sim.removeCard(sim.keys[0]),
  setPlugged: (plugged: boolean) => sim.setPlugged(plugged),
};

before(async () => {
  if (skip) return;
  const url = pathToFileURL(path.resolve('scripts/pcsclite.mjs')).href;
  const { buildPcsclite } = (await import(url)) as { buildPcsclite(v: string): { libdir: string } };
  clients = [
    { label: 'Debian 12 libpcsclite 1.9.9', minor: 4, libdir: null },
    { label: 'pcsc-lite 2.3.3 client', minor: 5, libdir: buildPcsclite('2.3.3').libdir },
    { label: 'pcsc-lite 2.5.1 client', minor: 6, libdir: buildPcsclite('2.5.1').libdir },
  ];
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-pcscsvc-'));
  sim = new PluggableSimulator();
  manager = new ReaderManager([sim], { historySize: 0, log: (level, line) => serviceLog.push(`${level} [manager] ${line}`) });
  manager.onEntry((e) => entries.push(e));
  await manager.start();
  backend = new ManagerBackend(manager);
  service = new PcscService(backend, (level, line) => serviceLog.push(`${level} ${line}`));
  server = await startPcscServer(service, { socketPath: path.join(tmp, 'smartcard-workbench', 'pcscd.comm') });
});

after(async () => {
  await server?.close();
  service?.dispose();
  backend?.dispose();
  await manager?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * Resolves once a client is registered for reader state changes
 * (CMD_WAIT_READER_STATE_CHANGE): at once if one already is, else at the next registration.
 */
function nextRegistration(): Promise<void> {
  return new Promise((resolve) => {
    if (service.waitingCount > 0) {
      resolve();
      return;
    }
    const register = service.register.bind(service);
    service.register = (session) => {
      service.register = register;
      register(session);
      resolve();
    };
  });
}

/** The environment of a client program: which libpcsclite, which daemon. */
function clientEnv(c: Client, socket: string | null): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LD_LIBRARY_PATH;
  delete env.PCSCLITE_CSOCK_NAME;
  if (c.libdir) env.LD_LIBRARY_PATH = c.libdir;
  if (socket) env.PCSCLITE_CSOCK_NAME = socket;
  return env;
}

interface Run { lines: Record<string, unknown>[]; code: number | null; stderr: string }

/** Runs a program; `onLine` sees each JSON line as it comes (to trigger events). Bounded by `ms`. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, ms = 20_000, onLine?: (l: Record<string, unknown>) => void | Promise<void>, stdin?: string): Promise<Run & { stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const lines: Record<string, unknown>[] = [];
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: no exit within ${ms} ms\n${stdout}\n${stderr}`)); }, ms);
    p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    eachJsonLine(p.stdout, (o) => {
      lines.push(o);
      Promise.resolve(onLine?.(o)).catch((e) => { p.kill('SIGKILL'); reject(e); });
    });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('error', reject);
    p.on('close', (code) => { clearTimeout(timer); resolve({ lines, code, stderr, stdout }); });
    p.stdin.end(stdin ?? '');
  });
}

/** The protocol versions the service negotiated since `from` (proves which libpcsclite really ran). */
function negotiatedSince(from: number): string[] {
  return serviceLog.slice(from).map((l) => l.match(/protocol (4:\d)$/)?.[1]).filter((x): x is string => !!x);
}

type Step = { rv: number; changed: boolean; present: boolean; empty: boolean; counterDelta: number; atr: boolean };
/** What a watch run shows, without what differs by nature between readers (counter base, ATR bytes). */
function normalize(lines: Record<string, unknown>[]): { initial: Omit<Step, 'counterDelta'>; steps: Record<string, Step> } {
  const init = lines.find((l) => 'initial' in l)!.initial as Record<string, number | boolean>;
  let counter = init.counter as number;
  const steps: Record<string, Step> = {};
  for (const l of lines.filter((x) => 'step' in x)) {
    steps[l.step as string] = {
      rv: l.rv as number, changed: l.changed as boolean, present: l.present as boolean, empty: l.empty as boolean,
      counterDelta: (l.counter as number) - counter, atr: (l.atrLength as number) > 0,
    };
    counter = l.counter as number;
  }
  return {
    initial: { rv: init.rv as number, changed: init.changed as boolean, present: init.present as boolean, empty: init.empty as boolean, counterDelta: 0, atr: (init.atrLength as number) > 0 } as never,
    steps,
  };
}

/** The scenarios the comparison with pcscd runs: results per client label. */
const ours = new Map<string, { watch: ReturnType<typeof normalize>; timeout: Step; cancel: Step; resets: Record<string, unknown>[] }>();

describe('real libpcsclite clients against the workbench service (the reader manager and the simulator behind it)', { skip }, () => {
  for (const minor of [4, 5, 6]) {
    const c = () => clients.find((x) => x.minor === minor)!;
    describe(`protocol 4:${minor}`, () => {
      test('pcsc_scan -r lists "Workbench Simulator 00 00", over the client\'s own protocol version', async () => {
        const mark = serviceLog.length;
        const r = await run('pcsc_scan', ['-r'], clientEnv(c(), server.socketPath));
        assert.match(r.stdout, /0: Workbench Simulator 00 00/, `${c().label}: ${r.stdout}${r.stderr}`);
        assert.ok(negotiatedSince(mark).length > 0 && negotiatedSince(mark).every((v) => v === `4:${minor}`), `negotiated ${negotiatedSince(mark)}`);
      });

      test('opensc-tool -l / -a and scriptor over the client\'s own protocol version: the reader with its card, the ATR, the SELECT\'s 90 00', async () => {
        const env = clientEnv(c(), server.socketPath);
        const mark = serviceLog.length;
        const l = await run('opensc-tool', ['-l'], env);
        assert.match(l.stdout, /^0\s+Yes\s+.*Workbench Simulator 00 00$/m, `${c().label}: ${l.stdout}${l.stderr}`);
        const a = await run('opensc-tool', ['-a'], env);
        assert.equal(a.stdout.trim().split('\n').pop(), '3b:8b:81:31:fe:45:80:31:e0:f7:f0:57:42:44:45:4d:4f:c0', a.stdout + a.stderr);
        const sc = await run('scriptor', ['-r', SIM_READER], env, 20_000, undefined, '00 A4 04 00 07 F0 57 42 44 45 4D 4F\n');
        // scriptor wraps a long response over lines: the FCI, then its status word.
        assert.match(sc.stdout, /^< 6F [0-9A-F \n]*90 00 : Normal processing/m, `${c().label}: ${sc.stdout}${sc.stderr}`);
        assert.ok(negotiatedSince(mark).length > 0 && negotiatedSince(mark).every((v) => v === `4:${minor}`), `negotiated ${negotiatedSince(mark)}`);
      });

      test('pyscard smartcard.System.readers() and a SELECT of the demo application → 90 00', async () => {
        const env = clientEnv(c(), server.socketPath);
        const mark = serviceLog.length;
        const r = await run(PY, [CLIENT, 'readers'], env);
        assert.deepEqual(r.lines[0], { readers: [SIM_READER] }, r.stderr);
        const s = await run(PY, [CLIENT, 'select', SIM_READER], env);
        assert.equal(s.lines[0]?.sw, '90 00', s.stderr);
        assert.equal(s.lines[0]?.atr, '3b8b8131fe458031e0f7f0574244454d4fc0');
        assert.ok(negotiatedSince(mark).every((v) => v === `4:${minor}`));
        // A VERIFY through the service: the PIN (ASCII 9 8 7 6 1 5) reaches the card, never a log line.
        const markVerify = serviceLog.length;
        const markEntries = entries.length;
        const v = await run(PY, [CLIENT, 'select', SIM_READER, '0020000106393837363135'], env);
        assert.match(String(v.lines[0]?.sw), /^(63 C\d|69 8[23])$/, `a wrong PIN is refused by the card: ${v.stdout}${v.stderr}`);
        const logged = entries.slice(markEntries).flatMap((e) => [JSON.stringify(e), ...formatEntry(e)]).join('\n');
        const seen = serviceLog.slice(markVerify).join('\n') + logged + v.stdout + v.stderr;
        assert.ok(!/987615|39 ?38 ?37 ?36 ?31 ?35/i.test(seen), 'the PIN appears in the service log, the APDU Log or the client output');
        // The client's VERIFY is in the APDU Log, its data masked as a script PIN is.
        assert.ok(entries.slice(markEntries).some((e) => e.kind === 'exchange' && e.command === '0020000106************'), `no masked VERIFY in the APDU Log: ${logged}`);
      });

      // Issue 18 item 14: GetAttrib answers from the reader's facts, as pcscd passes an IFD handler's answers on.
      test('pyscard SCardGetAttrib on a direct connection: the simulator\'s facts; what it does not tell is SCARD_E_UNSUPPORTED_FEATURE', async () => {
        const r = await run(PY, [CLIENT, 'attribs', SIM_READER], clientEnv(c(), server.socketPath));
        assert.equal(r.lines[0]?.connect, 0, r.stderr);
        const text = (s: string) => Buffer.from(s + '\0').toString('hex');
        assert.deepEqual(r.lines[1]?.attribs, {
          VENDOR_NAME: text('Smart Card Workbench'), VENDOR_IFD_TYPE: text('Simulator'), VENDOR_IFD_VERSION: '00000100',
          // 0x8010001F: pcsc-lite's SCARD_E_UNSUPPORTED_FEATURE (pcscd's answer for a tag the IFD handler does not know).
          VENDOR_IFD_SERIAL_NO: 'rv 8010001F', CHANNEL_ID: 'rv 8010001F', MAX_IFSD: 'rv 8010001F', MAXINPUT: 'rv 8010001F', // CHANNEL_ID: R45
        }, r.stdout + r.stderr);
      });

      test('pyscard GetStatusChange sees an insertion and a removal triggered while it waits; a time-out; SCardCancel from another thread', async () => {
        const env = clientEnv(c(), server.socketPath);
        card.removeCard();
        const w = await run(PY, [CLIENT, 'watch', SIM_READER, 'insertion', 'removal'], env, 30_000, (l) => {
          if (l.waiting === 'insertion') card.insertCard();
          if (l.waiting === 'removal') card.removeCard();
        });
        assert.equal(w.code, 0, w.stderr);
        const watch = normalize(w.lines);
        assert.deepEqual(watch.steps.insertion, { rv: 0, changed: true, present: true, empty: false, counterDelta: 1, atr: true });
        assert.deepEqual(watch.steps.removal, { rv: 0, changed: true, present: false, empty: true, counterDelta: 1, atr: false });
        card.insertCard();
        await waitFor(() => manager.reader(SIM_READER).card?.powered === true && !manager.cardInitializing(SIM_READER), 'the card powered after insertion');
        const t = await run(PY, [CLIENT, 'timeout', SIM_READER, '300'], env);
        const timeout = t.lines.find((l) => l.step === 'timeout') as unknown as Step;
        assert.equal(timeout.rv, Rv.SCARD_E_TIMEOUT, t.stderr);
        const k = await run(PY, [CLIENT, 'cancel', SIM_READER], env);
        const cancel = k.lines.find((l) => l.step === 'cancel') as unknown as Step;
        assert.equal(cancel.rv, Rv.SCARD_E_CANCELLED, k.stderr);
        // Two handles: SCARD_W_RESET_CARD on every call of the others until their SCardReconnect; the
        // caller's own EndTransaction(RESET) marks it too (compared with pcscd below).
        const x = await run(PY, [CLIENT, 'resets', SIM_READER], env);
        assert.equal(x.code, 0, x.stderr);
        const RESET = Rv.SCARD_W_RESET_CARD;
        assert.deepEqual(x.lines.filter((l) => 'step' in l).map((l) => l.rv), [[0, 0], 0, 0, RESET, RESET, 0, 0, 0, 0, RESET, RESET, 0, 0], JSON.stringify(x.lines));
        ours.set(c().label, { watch, timeout: pick(timeout), cancel: pick(cancel), resets: x.lines });
      });

      test('pyscard GetStatusChange on the PnP notification reader sees the reader unplugged and plugged back', async () => {
        const env = clientEnv(c(), server.socketPath);
        // A 4:4 client detects PnP by counting readers from the start of its call, so a
        // change before it registered is missed (pcscd alike): trigger once it waits.
        const p = await run(PY, [CLIENT, 'pnp', 'unplug', 'plug'], env, 30_000, async (l) => {
          if (l.waiting === 'unplug') { await nextRegistration(); card.setPlugged(false); }
          if (l.waiting === 'plug') { await nextRegistration(); card.setPlugged(true); }
        });
        assert.equal(p.code, 0, p.stderr);
        const steps = p.lines.filter((l) => 'step' in l);
        assert.deepEqual(steps, [
          { step: 'unplug', rv: 0, changed: true, readers: [] },
          { step: 'plug', rv: 0, changed: true, readers: [SIM_READER] },
        ]);
      });

      test('a client killed mid-transaction: another client\'s BeginTransaction, refused while it held the card, then hears the reset until it reconnects, and gets the transaction', async () => {
        const env = clientEnv(c(), server.socketPath);
        const a = spawn(PY, [CLIENT, 'hold', SIM_READER], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        const b = spawn(PY, [CLIENT, 'begin', SIM_READER], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        try {
          // Both connected first: pcscd's SCardConnect (and ours) waits while a transaction is held.
          const al = jsonLines(a);
          const bl = jsonLines(b);
          assert.deepEqual(await al.next(), { connected: 0 });
          assert.deepEqual(await bl.next(), { connected: 0 });
          a.stdin!.write('\n');
          assert.deepEqual(await al.next(), { held: 0 });
          const refused = nextRefusedBegin();
          b.stdin!.write('\n');
          await refused; // B's library is polling BEGIN while A holds the reader
          assert.equal(manager.reader(SIM_READER).inTransaction, true);
          a.kill('SIGKILL');
          // pcscd's MSGRemoveContext resets the card of a transaction holder that died; B hears it until it reconnects.
          const r = { lines: [await bl.next(), await bl.next(), await bl.next(), await bl.next(), await bl.next()], stderr: '' };
          assert.deepEqual(r.lines, [{ begin: Rv.SCARD_W_RESET_CARD }, { begin: Rv.SCARD_W_RESET_CARD }, { reconnect: 0 }, { begin: 0 }, { done: 0 }], r.stderr);
          assert.equal(manager.reader(SIM_READER).inTransaction, false);
          await waitFor(() => manager.reader(SIM_READER).connections === 0, 'the handles released');
        } finally {
          a.kill('SIGKILL');
          b.kill('SIGKILL');
        }
      });

      test('a script run from the manager waits behind a client\'s exclusive connection, then runs', async () => {
        const env = clientEnv(c(), server.socketPath);
        const x = spawn(PY, [CLIENT, 'exclusive', SIM_READER], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        try {
          const lines = jsonLines(x);
          assert.deepEqual(await lines.next(), { exclusive: 0 });
          let settled = false;
          const mark = entries.length;
          const script = runScript(parseScript('00 A4 04 00 07 F0574244454D4F => 90 00\n'), { manager, reader: SIM_READER, askPin: () => Promise.reject(new Error('no PIN')) });
          void script.finally(() => { settled = true; });
          // The client still has the card: its SELECT goes through while the script waits.
          x.stdin.write('\n');
          assert.deepEqual(await lines.next(), { sw: '90 00', rv: 0 });
          assert.equal(settled, false, 'the script ran beside an exclusive connection');
          assert.equal(entries.slice(mark).filter((e) => e.kind === 'exchange').length, 1, 'only the client\'s exchange so far');
          x.stdin.end();
          assert.deepEqual(await lines.next(), { done: 0 });
          const result = await script;
          assert.equal(result.ok, true, JSON.stringify(result.failure));
          assert.equal(entries.slice(mark).filter((e) => e.kind === 'exchange').length, 2);
        } finally {
          x.kill('SIGKILL');
        }
      });

      if (minor >= 5) {
        test('pcsc-lite\'s own testpcsc runs to "PC/SC Test Completed Successfully"', async () => {
          const exe = path.join(c().libdir!, 'testpcsc');
          const r = await run(exe, [], clientEnv(c(), server.socketPath), 30_000, undefined, '1\n\n');
          assert.match(r.stdout, /PC\/SC Test Completed Successfully/, r.stdout.slice(-2000));
          assert.match(r.stdout, /SCardTransmit\s*: Command successful/);
        });
      }
    });
  }
});


/** Resolves at the next BeginTransaction the backend refuses with SCARD_E_SHARING_VIOLATION (bounded). */
function nextRefusedBegin(ms = 10_000): Promise<void> {
  const orig = backend.beginTransaction;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { backend.beginTransaction = orig; reject(new Error('no BeginTransaction was refused')); }, ms);
    backend.beginTransaction = async function (this: ManagerBackend, h) {
      try {
        return await orig.call(this, h);
      } catch (e) {
        if (rvOf(e) === Rv.SCARD_E_SHARING_VIOLATION) {
          backend.beginTransaction = orig;
          clearTimeout(timer);
          resolve();
        }
        throw e;
      }
    };
  });
}

/** A child's JSON lines one at a time; each next() is bounded. */
function jsonLines(p: ReturnType<typeof spawn>): { next(ms?: number): Promise<Record<string, unknown>> } {
  const queue: Record<string, unknown>[] = [];
  const waiters: Array<(l: Record<string, unknown>) => void> = [];
  let stderr = '';
  p.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  eachJsonLine(p.stdout!, (o) => {
    const w = waiters.shift();
    if (w) w(o); else queue.push(o);
  });
  return {
    next(ms = 15_000) {
      const q = queue.shift();
      if (q) return Promise.resolve(q);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line from the client within ${ms} ms: ${stderr}`)), ms);
        waiters.push((l) => { clearTimeout(timer); resolve(l); });
      });
    },
  };
}

/** Waits (bounded) until the manager's readers satisfy `cond`. */
function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`timed out waiting for ${what}`)); }, ms);
    const off = manager.onReadersChanged(() => {
      if (!cond()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

function pick(x: Step | Record<string, unknown>): Step {
  const s = x as Record<string, unknown>;
  return { rv: s.rv as number, changed: s.changed as boolean, present: s.present as boolean, empty: s.empty as boolean, counterDelta: 0, atr: (s.atrLength as number) > 0 };
}

/**
 * The pyscard scenarios against a pcscd with vpcd and vicc, compared with what the
 * same client saw from the workbench service. `socket`: the daemon's, or null for
 * the system default (/run/pcscd/pcscd.comm).
 */
async function compareWithPcscd(c: Client, socket: string | null, stack: RefStack, viccRef: { p: StackProcess | null }): Promise<void> {
  const mine = ours.get(c.label);
  assert.ok(mine, 'the workbench run of this client must come first (same file, earlier test)');
  const env = clientEnv(c, socket);
  // pcscd opens its socket before vpcd's readers are there: wait for them with \\?PnP?\Notification.
  const r = await run(PY, [CLIENT, 'readers', '2'], env);
  assert.deepEqual(r.lines[0], { readers: ['Virtual PCD 00 00', 'Virtual PCD 00 01'] }, r.stderr);
  const startVicc = () => { viccRef.p = stack.startVicc({ port: stack.VPCD_PORTS[0] }); };
  const stopVicc = async () => { await viccRef.p?.stop(); viccRef.p = null; };
  const w = await run(PY, [CLIENT, 'watch', VPCD_READER, 'insertion', 'removal'], env, 60_000, async (l) => {
    if (l.waiting === 'insertion') startVicc();
    if (l.waiting === 'removal') await stopVicc();
  });
  assert.equal(w.code, 0, w.stderr);
  const theirs = normalize(w.lines);
  assert.deepEqual(mine.watch.initial, theirs.initial, 'initial state (reader empty)');
  assert.deepEqual(mine.watch.steps, theirs.steps, 'insertion and removal as pcscd reports them');
  // The card back in for the time-out and cancel runs: started while a watch waits for it.
  await run(PY, [CLIENT, 'watch', VPCD_READER, 'insertion'], env, 30_000, (l) => { if (l.waiting === 'insertion') startVicc(); });
  const t = await run(PY, [CLIENT, 'timeout', VPCD_READER, '300'], env);
  assert.deepEqual(mine.timeout, pick(t.lines.find((l) => l.step === 'timeout')!), 'a time-out');
  const k = await run(PY, [CLIENT, 'cancel', VPCD_READER], env);
  assert.deepEqual(mine.cancel, pick(k.lines.find((l) => l.step === 'cancel')!), 'SCardCancel');
  const x = await run(PY, [CLIENT, 'resets', VPCD_READER], env);
  assert.deepEqual(mine.resets, x.lines, 'who hears SCARD_W_RESET_CARD, and until when');
  // Out again, and seen out by pcscd, before the next run starts from an empty reader. (This is the
  // next run's starting point, not a comparison: pcsc-lite 2.5.1's wait can end with 0x8010001F
  // while vpcd notices vicc going away, so the state is read again until it says empty.)
  const out = await run(PY, [CLIENT, 'watch', VPCD_READER, 'removal'], env, 30_000, async (l) => { if (l.waiting === 'removal') await stopVicc(); });
  let empty = out.lines.find((l) => l.step === 'removal')?.empty === true;
  const seen = [JSON.stringify(out.lines)];
  for (const until = Date.now() + 10_000; !empty && Date.now() < until;) {
    const now = await run(PY, [CLIENT, 'watch', VPCD_READER], env);
    seen.push(JSON.stringify(now.lines));
    empty = (now.lines[0]?.initial as Record<string, unknown> | undefined)?.empty === true;
    if (!empty) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(empty, `pcscd did not report the reader empty after vicc stopped: ${seen.join(' ')}`);
}

// Debian's pcscd 1.9.9 speaks 4:4: the 1.9.9 client, and the 2.5.1 client (which
// falls back to 4:4), reach it; the 2.3.3 client (4:5, no fall-back) cannot.
describe('the same pyscard scenarios against Debian\'s pcscd 1.9.9 + vpcd + vicc, compared', { skip: skip || requireCommands('pcscd', 'vicc') }, () => {
  let stack: RefStack;
  let pcscd: StackProcess | null = null;
  const vicc = { p: null as StackProcess | null };
  before(async () => {
    stack = await loadRefStack();
    pcscd = await stack.startPcscd();
  });
  after(async () => {
    await vicc.p?.stop();
    await pcscd?.stop();
  });

  for (const minor of [4, 6]) {
    test(`protocol 4:${minor} client: readers, insertion/removal, time-out, cancel and reset reporting match the workbench service's results`, { timeout: 90_000 }, async () => {
      await compareWithPcscd(clients.find((x) => x.minor === minor)!, null, stack, vicc);
    });
  }
});

// Each client against the pcscd of its own version (built by scripts/pcsclite.mjs
// with reader.conf support and a private socket), so 4:5 and 4:6 meet their own daemon.
for (const version of ['2.3.3', '2.5.1']) {
  const minor = version === '2.3.3' ? 5 : 6;
  describe(`the same pyscard scenarios against pcsc-lite ${version}'s own pcscd (4:${minor}) + vpcd + vicc, compared`, { skip: skip || requireCommands('vicc') }, () => {
    let stack: RefStack;
    let daemon: ReturnType<typeof spawn> | null = null;
    let socket = '';
    let log = '';
    const vicc = { p: null as StackProcess | null };
    before(async () => {
      stack = await loadRefStack();
      await stack.stopRecorded();
      const url = pathToFileURL(path.resolve('scripts/pcsclite.mjs')).href;
      const { buildPcscliteDaemon } = (await import(url)) as { buildPcscliteDaemon(v: string): { pcscd: string; socket: string } };
      const b = buildPcscliteDaemon(version);
      socket = b.socket;
      const conf = stack.prepare().conf;
      daemon = spawn(b.pcscd, ['-f', '-c', conf], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      daemon.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
      daemon.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
      // Ready when its socket accepts (bounded, like refstack.mjs waits for Debian's pcscd).
      const deadline = Date.now() + 10_000;
      while (!(await accepts(socket))) {
        if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`pcscd ${version} did not start:\n${log.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    });
    after(async () => {
      await vicc.p?.stop();
      if (daemon?.pid && daemon.exitCode === null) {
        const gone = new Promise((r) => daemon!.once('exit', r));
        process.kill(-daemon.pid, 'SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
        if (daemon.exitCode === null) process.kill(-daemon.pid, 'SIGKILL');
      }
    });

    test(`protocol 4:${minor} client: readers, insertion/removal, time-out, cancel and reset reporting match the workbench service's results`, { timeout: 90_000 }, async () => {
      assert.doesNotMatch(log, /Address already in use/, 'vpcd could not listen (another vpcd on 35963?)');
      await compareWithPcscd(clients.find((x) => x.minor === minor)!, socket, stack, vicc);
    });
  });
}

function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
