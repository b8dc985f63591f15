// pcsc-lite's own pcscd of a version built from ../shared (scripts/pcsclite.mjs: reader.conf
// support, a private socket), started in the foreground for one describe block and stopped by its
// process group: the refstack tier's "the same client against that version's own pcscd" blocks.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface BuiltPcscd {
  /** Its private client socket (PCSCLITE_CSOCK_NAME for the clients of this version). */
  socket: string;
  /** Everything it printed so far. */
  log(): string;
  stop(): Promise<void>;
}

/** Starts `version`'s pcscd with the reader.conf `conf`; fails in 10 s with its last output when it does not listen. */
export async function startBuiltPcscd(version: string, conf: string): Promise<BuiltPcscd> {
  const url = pathToFileURL(path.resolve('scripts/pcsclite.mjs')).href;
  const { buildPcscliteDaemon } = (await import(url)) as { buildPcscliteDaemon(v: string): { pcscd: string; socket: string } };
  const b = buildPcscliteDaemon(version);
  let log = '';
  const daemon = spawn(b.pcscd, ['-f', '-c', conf], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  daemon.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  daemon.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const stop = async (): Promise<void> => {
    if (!daemon.pid || daemon.exitCode !== null) return;
    const gone = new Promise((r) => daemon.once('exit', r));
    process.kill(-daemon.pid, 'SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
    if (daemon.exitCode === null) process.kill(-daemon.pid, 'SIGKILL');
  };
  const deadline = Date.now() + 10_000;
  while (!(await accepts(b.socket))) {
    if (Date.now() > deadline || daemon.exitCode !== null) {
      await stop();
      throw new Error(`pcscd ${version} did not start:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { socket: b.socket, log: () => log, stop };
}

function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
