// The product's helper bundle (out/server.js), forked with IPC as the extension forks it: no PIN key and no
// PC/SC socket variable inherited from the test's own environment; its stderr piped for the test to read.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/**
 * `outTestDir`: the running test's own folder under out/test (its __dirname); `set`: variables to set, an
 * undefined one removed.
 */
export function forkHelperProcess(outTestDir: string, set: Record<string, string | undefined> = {}): ChildProcess {
  const server = path.join(outTestDir, '..', '..', 'server.js');
  const env = { ...process.env };
  delete env.SMARTCARD_PIN_KEY;
  delete env.PCSCLITE_CSOCK_NAME;
  for (const [k, v] of Object.entries(set)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return fork(server, ['--node-ipc'], { execArgv: [], env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
}
