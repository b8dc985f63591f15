// The reference stack for the comparisons, private to the benchmark so it
// never disturbs a pcscd that tests or the user are running: pcscd runs in its
// own mount namespace with its own /run/pcscd (a temporary folder bound over
// it), with the TCP_NODELAY preload from scripts/refstack.mjs, and vpcd on our
// own ports. Clients reach it through PCSCLITE_CSOCK_NAME.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildPreload, prepareVicc } from '../../scripts/refstack.mjs';
import { canConnect, sleep, start } from './procs.mjs';

const VPCD_LIB = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';

/**
 * Starts a private pcscd whose vpcd listens on `port` (`Virtual PCD 00 00`)
 * and `port + 1` (`Virtual PCD 00 01`), on 127.0.0.1 only.
 */
export async function startPrivatePcscd({ port, noDelay = true }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-bench-pcscd-'));
  const run = path.join(dir, 'run');
  const conf = path.join(dir, 'reader.conf.d');
  fs.mkdirSync(run);
  fs.mkdirSync(conf);
  const hex = `0x${port.toString(16).toUpperCase()}`;
  fs.writeFileSync(path.join(conf, 'vpcd'), `FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:${hex}\nLIBPATH      ${VPCD_LIB}\nCHANNELID    ${hex}\n`);
  const env = { ...process.env, REFSTACK_BIND_LOOPBACK: '1', ...(noDelay ? { LD_PRELOAD: buildPreload() } : {}) };
  // unshare and sh both exec, so the PID we hold is pcscd's own.
  const proc = start('pcscd', 'unshare', ['-m', 'sh', '-c', `mount --bind '${run}' /run/pcscd && exec pcscd -f -c '${conf}'`], { env });
  const socket = path.join(run, 'pcscd.comm');
  const end = Date.now() + 10_000;
  let exited = false;
  proc.exited.then(() => { exited = true; });
  while (!(await canConnect(socket))) {
    if (exited || Date.now() > end) {
      await proc.stop();
      throw new Error(`private pcscd did not start (needs root for unshare -m): ${proc.stderr.slice(-800)}`);
    }
    await sleep(25);
  }
  return {
    pid: proc.pid,
    socket,
    /** Environment for PC/SC clients (pyscard, scriptor, koffi) of this pcscd. */
    env: { ...process.env, PCSCLITE_CSOCK_NAME: socket },
    async stop() {
      await proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts vicc (patched as scripts/refstack.mjs does) connecting to `port`. */
export function startVicc(port) {
  const env = { ...process.env, PYTHONPATH: prepareVicc(), PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
  return start('vicc', '/usr/bin/vicc', ['-t', 'iso7816', '-H', '127.0.0.1', '-P', String(port)], { env });
}

/** Starts the fast card peer (bench/fast-peer.mjs) connecting to `port`. */
export function startFastPeer(port) {
  return start('fast-peer', process.execPath, [path.resolve('bench/fast-peer.mjs'), String(port)]);
}

/** Starts the tagging card peer (bench/fast-peer.mjs --tagging) connecting to `port`. */
export function startTxPeer(port) {
  return start('tx-peer', process.execPath, [path.resolve('bench/fast-peer.mjs'), String(port), '--tagging']);
}
