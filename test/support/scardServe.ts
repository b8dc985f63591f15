// `scard serve` as the tests start it: spawned from bin/scard.js, ready when its first stdout
// line is `export PCSCLITE_CSOCK_NAME=…` (the documented contract), stopped with SIGTERM and,
// past a deadline, SIGKILL. One place for what the refstack and helper tests of the PC/SC
// service each wrote again.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const SCARD = path.resolve('bin/scard.js');

export interface Serve {
  p: ChildProcess;
  /** The socket the ready line named. */
  socket: string;
  /** Everything serve printed so far on stdout / stderr. */
  out: () => string;
  err: () => string;
  /** Its exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Bounded; safe to call twice. */
  stop: (graceMs?: number) => Promise<void>;
}

export interface ServeOptions {
  /** The environment (default: this process's). PCSCLITE_CSOCK_NAME is removed unless keepSocketVariable. */
  env?: NodeJS.ProcessEnv;
  keepSocketVariable?: boolean;
  /** How long serve may take to print its ready line. */
  readyMs?: number;
}

/** Starts `scard serve ARGS`; resolves on its ready line, rejects (and kills it) on anything else. */
export function startServe(args: string[], opts: ServeOptions = {}): Promise<Serve> {
  const readyMs = opts.readyMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const env = { ...(opts.env ?? process.env) };
    if (!opts.keepSocketVariable) delete env.PCSCLITE_CSOCK_NAME;
    const p = spawn(process.execPath, [SCARD, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
    const stop = async (graceMs = 5000): Promise<void> => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, graceMs); })]);
      clearTimeout(timer);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    };
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`scard serve printed no line within ${readyMs} ms: ${err}`)); }, readyMs);
    p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    void exited.then((code) => { clearTimeout(timer); if (!out.includes('\n')) reject(new Error(`scard serve exited ${code}: ${err}`)); });
    p.stdout!.on('data', (d: Buffer) => {
      const first = !out.includes('\n');
      out += d.toString();
      if (first && out.includes('\n')) {
        clearTimeout(timer);
        const line = out.slice(0, out.indexOf('\n'));
        const m = /^export PCSCLITE_CSOCK_NAME=(\S+)$/.exec(line);
        if (!m) { p.kill('SIGKILL'); reject(new Error(`first line is not the export line: ${JSON.stringify(line)}`)); return; }
        resolve({ p, socket: m[1], out: () => out, err: () => err, exited, stop });
      }
    });
  });
}
