// Two real libpcsclite clients (pyscard, test/support/py/pcsc_restart.py) around a restart of the
// daemon they talk to: one holds a context and a card handle, the other waits in
// SCardGetStatusChange. The same run for the workbench's service (a setting change, the helper or
// `scard serve` killed) and for pcscd (stopped, killed), so the results can be compared.
// Every wait is bounded; both clients are killed by pid at the end whatever happened.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { eachJsonLine } from './jsonLines';

const PY = '/usr/bin/python3'; // Debian's, which has pyscard
const SCRIPT = path.resolve('test/support/py/pcsc_restart.py');

export type Codes = Record<string, number | boolean | null>;

export interface RestartRun {
  /** The holder's first calls (all 0 when the daemon worked before the restart). */
  ready: Codes;
  /** The waiter's pending SCardGetStatusChange: its return code, and how long after the stop it came. */
  waited: number;
  /** The reader's dwEventState when `waited` is 0. */
  waitedState: number | null;
  waitedMsAfterStop: number;
  /** The waiter's later calls on its old context. */
  waiterAfter: Codes;
  /** The holder's calls on its old context and handle, after the daemon is back. */
  old: Codes;
  /** A new context on the daemon that is back: EstablishContext, ListReaders, Connect, Transmit. */
  fresh: Codes;
  /** Both clients' exit codes. */
  exits: [number | null, number | null];
}

interface Client {
  child: ChildProcessWithoutNullStreams;
  /** The next JSON line that has `key` (bounded). */
  line(key: string, ms: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  text(): string;
}

function client(role: 'hold' | 'wait', reader: string, env: NodeJS.ProcessEnv): Client {
  const child = spawn(PY, [SCRIPT, role, reader], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: Array<() => void> = [];
  let out = '';
  let err = '';
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  eachJsonLine(child.stdout, (o) => lines.push(o));
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code); for (const w of waiters.splice(0)) w(); }));
  const text = () => `${role}: stdout ${JSON.stringify(out)} stderr ${JSON.stringify(err.slice(-2000))}`;
  return {
    child,
    exited,
    text,
    line: (key, ms) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${key}" from the ${role} client within ${ms} ms (a hang); ${text()}`)), ms);
      const check = () => {
        const hit = lines.find((l) => key in l);
        if (hit) { clearTimeout(timer); resolve(hit); return; }
        if (child.exitCode !== null || child.signalCode !== null) { clearTimeout(timer); reject(new Error(`the ${role} client exited before "${key}"; ${text()}`)); return; }
        waiters.push(check);
      };
      check();
    }),
  };
}

/**
 * Starts the two clients on `reader` (the daemon `env` names), waits until both are in place,
 * then `stop()`s the daemon, waits for the waiter's pending call to come back (within
 * `pendingMs` of the stop), `start()`s it again and lets the holder call on its old context,
 * then on a new one.
 */
export async function aroundRestart(opts: {
  reader: string;
  env: NodeJS.ProcessEnv;
  stop: () => Promise<void>;
  start: () => Promise<void>;
  pendingMs?: number;
}): Promise<RestartRun> {
  const pendingMs = opts.pendingMs ?? 5000;
  const holder = client('hold', opts.reader, opts.env);
  let waiter: Client | null = null;
  try {
    const ready = (await holder.line('ready', 20_000)).ready as Codes;
    // The waiter starts once the holder is connected: the holder's connect changes the reader's state.
    waiter = client('wait', opts.reader, opts.env);
    await waiter.line('waiting', 30_000);
    // "waiting" is printed just before the call: give libpcsclite time to send it.
    await new Promise((r) => setTimeout(r, 500));
    const stopped = performance.now();
    // The daemon's stop may take a moment; the pending call may come back before it completes.
    const stopped_ = opts.stop();
    stopped_.catch(() => undefined); // awaited below; no unhandled rejection meanwhile
    const w = await waiter.line('waited', pendingMs);
    const waitedMsAfterStop = Math.round(performance.now() - stopped);
    await stopped_;
    waiter.child.stdin.write('after\n');
    const waiterAfter = (await waiter.line('after', pendingMs)).after as Codes;
    await opts.start();
    holder.child.stdin.write('after\n');
    const old = (await holder.line('old', pendingMs)).old as Codes;
    const fresh = (await holder.line('new', 20_000)).new as Codes;
    holder.child.stdin.end();
    waiter.child.stdin.end();
    const bounded = (p: Promise<number | null>) => Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    const exits: [number | null, number | null] = [await bounded(holder.exited), await bounded(waiter.exited)];
    return { ready, waited: w.waited as number, waitedState: (w.state as number | null) ?? null, waitedMsAfterStop, waiterAfter, old, fresh, exits };
  } finally {
    for (const c of [holder, waiter]) if (c && c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  }
}

/** libpcsclite's return codes the tests name (pcsclite.h). */
export const RV = {
  SUCCESS: 0,
  INVALID_HANDLE: 0x80100003,
  NO_SERVICE: 0x8010001d,
  COMM_ERROR: 0x80100013,
  SECURITY_VIOLATION: 0x8010006a,
  TIMEOUT: 0x8010000a,
} as const;

/** A return code's name for messages. */
export function rvName(rv: unknown): string {
  const e = Object.entries(RV).find(([, v]) => v === rv);
  return e ? e[0] : typeof rv === 'number' ? `0x${rv.toString(16)}` : String(rv);
}
