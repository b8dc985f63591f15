#!/usr/bin/env node
// The real reference smart card stack: pcscd + vpcd + vicc (docs/reference-stack.md).
//   node scripts/refstack.mjs start [--vicc N] [--any-address]   pcscd + N vicc (default 1), detached
//   node scripts/refstack.mjs stop                               stops what `start` (or a test) recorded
//   node scripts/refstack.mjs status
// As a library: startPcscd(opts), startVicc(opts), stopRecorded(), prepare().
// Every process runs in its own process group and is stopped by PID; PIDs are
// recorded in the cache folder so leftovers from a crashed run are stopped next time.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Bundled into a CommonJS test, import.meta is empty: fall back to the repository's scripts folder.
const here = import.meta.url ? path.dirname(fileURLToPath(import.meta.url)) : path.resolve('scripts');
export const CACHE_DIR = process.env.REFSTACK_CACHE ?? path.join(os.homedir(), '.cache', 'smartcard-workbench', 'refstack');
export const PCSCD_SOCKET = process.env.PCSCLITE_CSOCK_NAME ?? '/run/pcscd/pcscd.comm';
/** The two readers of pcscd's vpcd: `Virtual PCD 00 00` on 35963 and `Virtual PCD 00 01` on 35964. */
export const VPCD_PORTS = [35963, 35964];
export const VICC_ATR = '3B 95 13 81 01 80 73 FF 01 00 0B';
const VICC_PACKAGE = '/usr/lib/python3/site-packages/virtualsmartcard/virtualsmartcard';
const CRYPTODOME = '/usr/lib/python3/dist-packages/Cryptodome';
const VPCD_LIB = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';
const PIDS_FILE = path.join(CACHE_DIR, 'pids.json');

/**
 * Python 3 bytes/str bugs in Debian's vicc 3.3, fixed in a private copy of the
 * package with small targeted edits. Each edit must match exactly once, so a
 * different vicc version fails loudly instead of running half-patched.
 */
export const VICC_PATCHES = [
  {
    file: 'TLVutils.py',
    why: 'pack() joins a bytes object as if it were a list: every SELECT answering with FCI/FCP crashes vicc',
    from: '    return b"".join(result)\n',
    to: '    return result\n',
  },
  {
    file: 'SmartcardSAM.py',
    why: 'change_reference_data() strips str NULs from bytes and answers str: CHANGE REFERENCE DATA crashes vicc',
    from: '        data = data.replace("\\0", "")  # Strip NULL characters\n        self.PIN = data\n        return SW["NORMAL"], ""\n',
    to: '        data = data.replace(b"\\0", b"")  # Strip NULL characters\n        self.PIN = data\n        return SW["NORMAL"], b""\n',
  },
];

function hashOf(...parts) {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 12);
}

/** Builds the TCP_NODELAY / loopback-bind preload once per source version. */
export function buildPreload() {
  const src = path.join(here, 'refstack', 'nodelay-preload.c');
  const out = path.join(CACHE_DIR, `nodelay-preload-${hashOf(fs.readFileSync(src))}.so`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', tmp, src, '-ldl'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`refstack: building the TCP_NODELAY preload failed (${r.error?.message ?? r.stderr.trim()}); install gcc with npm run setup:system`);
  }
  fs.renameSync(tmp, out);
  return out;
}

/** Makes the PYTHONPATH folder for a working vicc: Crypto symlink + patched package copy. */
export function prepareVicc() {
  if (!fs.existsSync(VICC_PACKAGE)) throw new Error(`refstack: vicc's Python package is missing (${VICC_PACKAGE}); run npm run setup:system`);
  const dir = path.join(CACHE_DIR, `pylib-${hashOf(JSON.stringify(VICC_PATCHES), fs.readFileSync(path.join(VICC_PACKAGE, 'TLVutils.py')))}`);
  if (fs.existsSync(path.join(dir, '.done'))) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(CRYPTODOME, path.join(dir, 'Crypto'));
  const pkg = path.join(dir, 'virtualsmartcard');
  fs.cpSync(VICC_PACKAGE, pkg, { recursive: true, filter: (p) => !p.includes('__pycache__') });
  for (const p of VICC_PATCHES) {
    const file = path.join(pkg, p.file);
    const text = fs.readFileSync(file, 'utf8');
    const count = text.split(p.from).length - 1;
    if (count !== 1) throw new Error(`refstack: vicc patch for ${p.file} matched ${count} times (expected 1); this vicc version differs from 3.3`);
    fs.writeFileSync(file, text.replace(p.from, p.to));
  }
  fs.writeFileSync(path.join(dir, '.done'), '');
  return dir;
}

/** Writes a reader.conf.d folder with only vpcd (no serial twin readers). */
export function writeReaderConf() {
  const dir = path.join(CACHE_DIR, 'reader.conf.d');
  fs.mkdirSync(dir, { recursive: true });
  // DEVICENAME /dev/null:<port> = vpcd listens (vicc connects); port 0x8C7B = 35963, the next slot 35964.
  fs.writeFileSync(path.join(dir, 'vpcd'), `FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x8C7B\nLIBPATH      ${VPCD_LIB}\nCHANNELID    0x8C7B\n`);
  return dir;
}

export function prepare() {
  return { preload: buildPreload(), pylib: prepareVicc(), conf: writeReaderConf() };
}

// ---- PID records -----------------------------------------------------------

function readPids() {
  try { return JSON.parse(fs.readFileSync(PIDS_FILE, 'utf8')); } catch { return []; }
}
function writePids(list) {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  fs.writeFileSync(PIDS_FILE, JSON.stringify(list, null, 1));
}
function record(entry) { writePids([...readPids().filter((e) => e.pid !== entry.pid), entry]); }
function unrecord(pid) { writePids(readPids().filter((e) => e.pid !== pid)); }

/** True when `pid` is alive and its command line still names `what` (guards against PID reuse). */
function isOurs(pid, what) {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    return cmd.includes(what);
  } catch { return false; }
}

function alive(pid) {
  try { process.kill(pid, 0); } catch { return false; }
  try { return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; }
}

async function waitGone(pid, ms) {
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

/** Stops one recorded process group: SIGTERM, then SIGKILL after `graceMs`. */
async function killGroup(pid, graceMs = 3000) {
  try { process.kill(-pid, 'SIGTERM'); } catch { /* already gone */ }
  if (await waitGone(pid, graceMs)) return;
  try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  await waitGone(pid, 2000);
}

/** Stops every process a previous run recorded and left behind. */
export async function stopRecorded() {
  const stopped = [];
  for (const e of readPids()) {
    if (isOurs(e.pid, e.what)) { await killGroup(e.pid); stopped.push(e); }
    unrecord(e.pid);
  }
  return stopped;
}

// ---- processes --------------------------------------------------------------

function launch(what, cmd, args, { env, logFile, onOutput, detached = false, extra = {} }) {
  const out = logFile ? fs.openSync(logFile, 'a') : 'pipe';
  const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', out, out] });
  if (logFile) fs.closeSync(out);
  if (child.pid === undefined) throw new Error(`refstack: could not start ${cmd}`);
  record({ pid: child.pid, what, ...extra });
  let lines = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => { unrecord(child.pid); resolve({ code, signal }); }));
  if (!logFile) {
    const take = (b) => {
      lines += b.toString();
      if (lines.length > 200_000) lines = lines.slice(-100_000);
      onOutput?.(b.toString());
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
  }
  if (detached) child.unref();
  return {
    pid: child.pid,
    exited,
    output: () => lines,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) await killGroup(child.pid);
      unrecord(child.pid);
      if (!detached) await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
    },
  };
}

function canConnect(socketPath) {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Waits until something accepts on `socketPath` (pcscd creates it once reader.conf readers exist). */
async function waitForSocket(socketPath, ms, exited) {
  let gone = false;
  exited.then(() => { gone = true; });
  const end = Date.now() + ms;
  while (Date.now() < end && !gone) {
    if (await canConnect(socketPath)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(gone ? 'refstack: pcscd exited during start-up' : `refstack: pcscd did not open ${socketPath} within ${ms} ms`);
}

/**
 * Starts pcscd in the foreground (`-f -a`) with the TCP_NODELAY preload and a
 * vpcd-only reader.conf.d. `anyAddress: false` (default) keeps vpcd on 127.0.0.1;
 * `noDelay: false` leaves out the preload (stock behaviour, for comparison).
 */
export async function startPcscd(opts = {}) {
  const { anyAddress = false, noDelay = true, apduLog = true, debug = false, detached = false, logFile, onOutput, timeoutMs = 10000 } = opts;
  if (!fs.existsSync('/usr/sbin/pcscd') && spawnSync('sh', ['-c', 'command -v pcscd']).status !== 0) {
    throw new Error('refstack: pcscd is not installed; run npm run setup:system');
  }
  await stopRecorded();
  if (await canConnect(PCSCD_SOCKET)) {
    throw new Error(`refstack: another pcscd already answers on ${PCSCD_SOCKET}; stop it first (systemctl stop pcscd.socket pcscd, or node scripts/refstack.mjs stop)`);
  }
  const conf = writeReaderConf();
  // noDelay: false runs stock pcscd (for comparison; vpcd then listens on all addresses).
  const env = noDelay ? { ...process.env, LD_PRELOAD: buildPreload(), REFSTACK_BIND_LOOPBACK: anyAddress ? '0' : '1' } : { ...process.env };
  const args = ['-f', '-c', conf, ...(apduLog ? ['-a'] : []), ...(debug ? ['-d'] : [])];
  const proc = launch('pcscd', 'pcscd', args, { env, logFile, onOutput, detached });
  try {
    await waitForSocket(PCSCD_SOCKET, timeoutMs, proc.exited);
  } catch (e) {
    await proc.stop();
    throw new Error(`${e.message}\n${proc.output().slice(-2000)}`);
  }
  return proc;
}

/**
 * Starts a vicc card emulator (patched, see VICC_PATCHES) connecting to a vpcd:
 * pcscd's (port 35963/35964) or our vpcd driver's. Resolves once it runs; the
 * caller waits for the card event on its side.
 */
export function startVicc(opts = {}) {
  const { port = VPCD_PORTS[0], host = '127.0.0.1', type = 'iso7816', reversed = false, verbose = false, detached = false, logFile, onOutput } = opts;
  if (!fs.existsSync('/usr/bin/vicc')) throw new Error('refstack: vicc is not installed; run npm run setup:system');
  const pylib = prepareVicc();
  const env = { ...process.env, PYTHONPATH: pylib, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
  const args = ['-t', type, '-H', host, '-P', String(port), ...(reversed ? ['-R'] : []), ...(verbose ? ['-v'] : [])];
  // /usr/bin/vicc, not `python3 vicc`: python3 on PATH may be another interpreter.
  return launch('vicc', '/usr/bin/vicc', args, { env, logFile, onOutput, detached, extra: { port } });
}

// ---- CLI -------------------------------------------------------------------

async function cli(argv) {
  const cmd = argv[0] ?? 'status';
  if (cmd === 'start') {
    const n = Number(argv[argv.indexOf('--vicc') + 1] ?? 1);
    const count = argv.includes('--vicc') ? n : 1;
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    for (const e of await stopRecorded()) console.log(`stopped the previous ${e.what} (pid ${e.pid})`);
    const pcscd = await startPcscd({ detached: true, anyAddress: argv.includes('--any-address'), logFile: path.join(CACHE_DIR, 'pcscd.log') });
    console.log(`pcscd pid ${pcscd.pid} (log ${path.join(CACHE_DIR, 'pcscd.log')})`);
    for (let i = 0; i < count && i < VPCD_PORTS.length; i++) {
      const v = startVicc({ port: VPCD_PORTS[i], detached: true, logFile: path.join(CACHE_DIR, `vicc-${VPCD_PORTS[i]}.log`) });
      console.log(`vicc pid ${v.pid} -> Virtual PCD 00 0${i} (port ${VPCD_PORTS[i]})`);
    }
    console.log('stop with: node scripts/refstack.mjs stop');
  } else if (cmd === 'stop') {
    const stopped = await stopRecorded();
    console.log(stopped.length ? stopped.map((e) => `stopped ${e.what} pid ${e.pid}`).join('\n') : 'nothing recorded was running');
  } else if (cmd === 'status') {
    const list = readPids().filter((e) => isOurs(e.pid, e.what));
    console.log(list.length ? list.map((e) => `${e.what} pid ${e.pid}${e.port ? ` port ${e.port}` : ''}`).join('\n') : 'not running');
    console.log(`pcscd socket ${PCSCD_SOCKET}: ${(await canConnect(PCSCD_SOCKET)) ? 'answering' : 'not answering'}`);
  } else if (cmd === 'prepare') {
    console.log(JSON.stringify(prepare(), null, 1));
  } else {
    console.error('usage: node scripts/refstack.mjs start [--vicc N] [--any-address] | stop | status | prepare');
    process.exitCode = 2;
  }
}

if (import.meta.url && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli(process.argv.slice(2)).catch((e) => { console.error(e.message); process.exitCode = 1; });
}
