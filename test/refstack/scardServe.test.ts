// `scard serve` with real PC/SC programs nobody here wrote (Debian 12's libpcsclite
// 1.9.9 clients): scriptor gives the same responses as `scard run` for the same
// script, `opensc-tool -l / -a` list the simulator and its ATR, pyscard transmits,
// a VERIFY's PIN from a client appears nowhere in serve's output (text or JSON),
// the socket is 0600 in a 0700 folder, a folder of another user is refused, and the
// socket is gone after SIGTERM. Run under `flock /tmp/wb-refstack.lock`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExchangeEntry, LogEntry } from '../../server/src/protocol';
import { missingPart, requireCommands } from '../support/system';
import { SCARD, startServe, type Serve } from '../support/scardServe';

const PY = '/usr/bin/python3';
const CLIENT = path.resolve('test/refstack/py/pcsc_client.py');
const SIM_READER = 'Workbench Simulator 00 00';
const SIM_ATR = '3b:8b:81:31:fe:45:80:31:e0:f7:f0:57:42:44:45:4d:4f:c0';
const SCRIPT = path.resolve('examples/scriptor-compatible.apdu');
// A planted PIN nobody else uses: "918273" in ASCII.
const PIN_HEX = '393138323733';

const pyscard = spawnSync(PY, ['-c', 'import smartcard'], { stdio: 'ignore' }).status === 0;
const skip = requireCommands('scriptor', 'opensc-tool') || (pyscard ? false : 'python3-pyscard is missing; sudo npm run setup:system');
const execFileP = promisify(execFile);
// gpg and gpg-agent's scdaemon (Debian's gnupg, scdaemon).
const noGpg = requireCommands('gpg', 'gpgconf') || (fs.existsSync('/usr/lib/gnupg/scdaemon') ? false : missingPart('scdaemon is missing (gpg --card-status); sudo npm run setup:system'));

/** `scard serve ARGS` (test/support/scardServe.ts). */
function serve(args: string[], env: NodeJS.ProcessEnv = process.env, keepSocketVariable = false): Promise<Serve> {
  return startServe(args, { env, keepSocketVariable });
}

function clientEnv(socket: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PCSCLITE_CSOCK_NAME: socket };
  delete env.LD_LIBRARY_PATH;
  return env;
}

/** Response bytes (hex, no spaces) of every `< …` line of scriptor's output (long ones wrap). */
function scriptorResponses(out: string): string[] {
  return [...out.matchAll(/^< ((?:[0-9A-F]{2} ?)+(?:\n(?:[0-9A-F]{2} ?)+)*) : /gm)].map((m) => m[1].replace(/\s+/g, ''));
}

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-serve-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

describe('scard serve with real PC/SC clients', { skip }, () => {
  let s: Serve;
  before(async () => {
    // The default path: $XDG_RUNTIME_DIR/smartcard-workbench/pcscd.comm.
    s = await serve(['--verbose'], { ...process.env, XDG_RUNTIME_DIR: tmp });
  });
  after(async () => {
    if (s && s.p.exitCode === null) s.p.kill('SIGKILL');
  });

  test('the ready line names the default socket: 0600 in a 0700 folder', () => {
    assert.equal(s.socket, path.join(tmp, 'smartcard-workbench', 'pcscd.comm'));
    assert.equal(s.out().split('\n')[0], `export PCSCLITE_CSOCK_NAME=${s.socket}`);
    assert.equal(fs.statSync(path.dirname(s.socket)).mode & 0o777, 0o700);
    const st = fs.statSync(s.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('opensc-tool -l lists the simulator with its card; -a prints its ATR', async () => {
    const l = await execFileP('opensc-tool', ['-l'], { env: clientEnv(s.socket), timeout: 20_000 });
    assert.match(l.stdout, /^0\s+Yes\s+.*Workbench Simulator 00 00$/m, l.stdout + l.stderr);
    const a = await execFileP('opensc-tool', ['-a'], { env: clientEnv(s.socket), timeout: 20_000 });
    assert.equal(a.stdout.trim().split('\n').pop(), SIM_ATR, a.stdout + a.stderr);
  });

  test('scriptor through scard serve gives the same responses as scard run for the same script', async () => {
    const viaScriptor = await execFileP('scriptor', ['-r', SIM_READER, SCRIPT], { env: clientEnv(s.socket), timeout: 20_000 });
    const theirs = scriptorResponses(viaScriptor.stdout);
    assert.equal(theirs.length, 4, viaScriptor.stdout);
    const run = await execFileP(process.execPath, [SCARD, 'run', SCRIPT, '--json'], { timeout: 20_000 });
    const ours = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as LogEntry)
      .filter((e): e is ExchangeEntry => e.kind === 'exchange' && !e.auto).map((e) => e.response.toUpperCase());
    assert.deepEqual(theirs, ours);
    // And serve printed the client's exchanges.
    assert.match(s.out(), /> 00 A4 04 00 07 F0 57 42 44 45 4D 4F/);
  });

  test('pyscard transmits; the PIN of its VERIFY appears nowhere in serve\'s output, masked as **', async () => {
    const sel = await execFileP(PY, [CLIENT, 'select', SIM_READER], { env: clientEnv(s.socket), timeout: 20_000 });
    assert.equal(JSON.parse(sel.stdout.trim().split('\n')[0]).sw, '90 00', sel.stderr);
    const before = s.out().length;
    const v = await execFileP(PY, [CLIENT, 'select', SIM_READER, `0020000106${PIN_HEX}`], { env: clientEnv(s.socket), timeout: 20_000 });
    assert.match(JSON.parse(v.stdout.trim().split('\n')[0]).sw, /^63 C\d$/);
    await untilOutput(s, (o) => o.length > before && /> 00 20 00 01 06 /.test(o.slice(before)));
    const all = s.out() + s.err();
    assert.ok(!/39 ?31 ?38 ?32 ?37 ?33|918273/i.test(all), 'the PIN is in serve\'s output');
    assert.match(s.out().slice(before), /> 00 20 00 01 06 \*\* \*\* \*\* \*\* \*\* \*\*/);
  });

  test('each exchange line names the program that sent it: python3 (pid N), N being the pyscard process\'s pid', async () => {
    const before = s.out().length;
    const child = execFile(PY, [CLIENT, 'select', SIM_READER], { env: clientEnv(s.socket), timeout: 20_000 });
    const pid = child.pid;
    assert.ok(pid, 'the client started');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0);
    const mine = (o: string): string[] => o.slice(before).split('\n').filter((l) => l.startsWith('> ') && l.endsWith(`  [python3 (pid ${pid})]`));
    // The client's SELECT (and whatever else it sent) is printed with its name.
    await untilOutput(s, (o) => mine(o).some((l) => l.startsWith('> 00 A4 04 00 07 F0 57 42 44 45 4D 4F')));
    const exchanges = s.out().slice(before).split('\n').filter((l) => l.startsWith('> '));
    assert.deepEqual(exchanges.filter((l) => !mine(s.out()).includes(l)), [], 'every exchange line of this client names it');
  });

  test('gpg --card-status: gpg-agent\'s scdaemon reaches the simulator through the service and probes it for an OpenPGP card, under its own name', { skip: noGpg }, async () => {
    const home = path.join(tmp, 'gnupg');
    fs.mkdirSync(home, { mode: 0o700 });
    // scdaemon's own CCID driver would look for USB readers first; PC/SC only, as on a machine whose readers pcscd owns.
    fs.writeFileSync(path.join(home, 'scdaemon.conf'), 'disable-ccid\n');
    const env = { ...clientEnv(s.socket), GNUPGHOME: home };
    const before = s.out().length;
    try {
      // A fresh GNUPGHOME: gpg starts gpg-agent, and it scdaemon, with gpg's environment (the terminal's).
      const r = spawnSync('gpg', ['--batch', '--card-status'], { env, encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(r.status, 0, 'the simulator card is no OpenPGP card');
      assert.match(r.stderr, /OpenPGP card not available|selecting card failed/, r.stderr);
      await untilOutput(s, (o) => /> 00 A4 04 00 06 D2 76 00 01 24 01 +\[scdaemon \(pid \d+\)\]/.test(o.slice(before)));
    } finally {
      spawnSync('gpgconf', ['--kill', 'all'], { env, timeout: 10_000 });
    }
  });

  test('SIGTERM: serve ends with status 0 and the socket is gone', async () => {
    s.p.kill('SIGTERM');
    assert.equal(await bounded(s.exited, 10_000, 'serve did not exit after SIGTERM'), 0, s.err());
    assert.equal(fs.existsSync(s.socket), false);
  });
});

describe('scard serve --json', { skip }, () => {
  test('JSON Lines after the ready line; a client VERIFY\'s PIN is masked there too; SIGINT removes the socket', async () => {
    const s = await serve(['--json', '--socket', path.join(tmp, 'json', 'pcscd.comm')]);
    try {
      await execFileP(PY, [CLIENT, 'select', SIM_READER, `0020000106${PIN_HEX}`], { env: clientEnv(s.socket), timeout: 20_000 });
      await untilOutput(s, (o) => o.includes('"command":"0020000106'));
      const lines = s.out().trim().split('\n').slice(1).map((l) => JSON.parse(l) as LogEntry);
      const verify = lines.find((e): e is ExchangeEntry => e.kind === 'exchange' && e.command.startsWith('0020'));
      assert.equal(verify?.command, '0020000106************');
      assert.ok(!/39 ?31 ?38 ?32 ?37 ?33|918273/i.test(s.out() + s.err()));
      s.p.kill('SIGINT');
      assert.equal(await bounded(s.exited, 10_000, 'serve did not exit after SIGINT'), 0, s.err());
      assert.equal(fs.existsSync(s.socket), false);
    } finally {
      s.p.kill('SIGKILL');
    }
  });
});

describe('scard serve --pcsc started from a shell that already points PCSCLITE_CSOCK_NAME at it', { skip }, () => {
  test('--card T=0 and --usb: a client sees the T=0 card (its ATR, the 61 xx of T=0) and serve prints the exchange; --usb does not keep it from serving', async () => {
    const socket = path.join(tmp, 't0', 'pcscd.comm');
    const s = await serve(['--card', 'T=0', '--usb', '--socket', socket]);
    try {
      const sel = await execFileP(PY, [CLIENT, 'select', SIM_READER], { env: clientEnv(s.socket), timeout: 20_000 });
      const r = JSON.parse(sel.stdout.trim().split('\n')[0]);
      assert.equal(r.atr, '3b6b00008031e0f7f0574244454d4f', 'the T=0 simulator card\'s ATR (T=0 only)');
      assert.match(r.sw, /^61 [0-9A-F]{2}$/, `on T=0 the card's 61 xx reaches the client, as pcscd passes it (the client sends GET RESPONSE): ${sel.stderr}`);
      const a = await execFileP('opensc-tool', ['-a'], { env: clientEnv(s.socket), timeout: 20_000 });
      assert.match(a.stdout, /3b:6b:00:00:80:31:e0:f7:f0:57:42:44:45:4d:4f/i);
      await untilOutput(s, (o) => /> 00 A4 04 00 07 F0 57 42 44 45 4D 4F/.test(o) && /< 61 /.test(o));
    } finally {
      s.p.kill('SIGKILL');
    }
  });

  test('its own PC/SC driver leaves that socket for the system\'s (no loop): one simulator reader, the guard says so', async () => {
    const socket = path.join(tmp, 'loop', 'pcscd.comm');
    const s = await serve(['--pcsc', '--verbose', '--socket', socket], { ...process.env, PCSCLITE_CSOCK_NAME: socket }, true);
    try {
      await untilStderr(s, (e) => /PCSCLITE_CSOCK_NAME named the workbench's own PC\/SC service/.test(e));
      const l = await execFileP('opensc-tool', ['-l'], { env: clientEnv(s.socket), timeout: 20_000 });
      assert.equal((l.stdout.match(/Workbench Simulator/g) ?? []).length, 1, l.stdout);
    } finally {
      s.p.kill('SIGKILL');
    }
  });
});

describe('scard serve refuses a socket folder of another user', { skip: skip || (process.getuid?.() !== 0 ? 'needs root to chown a folder to another user' : false) }, () => {
  test('exit 1, the reason on stderr, no ready line', async () => {
    const folder = path.join(tmp, 'theirs');
    fs.mkdirSync(folder, { mode: 0o700 });
    fs.chownSync(folder, 65534, 65534);
    const r = spawnSync(process.execPath, [SCARD, 'serve', '--socket', path.join(folder, 'pcscd.comm')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /belongs to user 65534/);
  });
});

/** Resolves when serve's output satisfies `cond` (it prints in batches of 20 ms); bounded. */
function untilOutput(s: Serve, cond: (out: string) => boolean, ms = 10_000): Promise<void> {
  if (cond(s.out())) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { s.p.stdout!.off('data', check); reject(new Error(`serve's output never matched:\n${s.out()}`)); }, ms);
    const check = (): void => {
      if (!cond(s.out())) return;
      clearTimeout(timer);
      s.p.stdout!.off('data', check);
      resolve();
    };
    s.p.stdout!.on('data', check);
  });
}

/** Resolves when serve's stderr satisfies `cond` (stderr and stdout are separate pipes); bounded. */
function untilStderr(s: Serve, cond: (err: string) => boolean, ms = 10_000): Promise<void> {
  if (cond(s.err())) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { s.p.stderr!.off('data', check); reject(new Error(`serve's stderr never matched:\n${s.err()}`)); }, ms);
    const check = (): void => {
      if (!cond(s.err())) return;
      clearTimeout(timer);
      s.p.stderr!.off('data', check);
      resolve();
    };
    s.p.stderr!.on('data', check);
  });
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(what)), ms); })]).finally(() => clearTimeout(timer));
}
