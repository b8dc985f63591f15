// Who is on the other end of the PC/SC service's socket (issue 15): SO_PEERCRED through
// libc's getsockopt, the process name from /proc (argv[0] when comm is cut at 15
// characters), "client#N" where nothing tells, and a client of another user refused
// (the socket is 0600; this is the check behind the modes). Real processes, a real socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { peerCredentials, peerLabel, processName, socketFd } from '../../../server/src/service/peer';
import { startPcscServer, type PcscServer } from '../../../server/src/service/server';
import { PcscService } from '../../../server/src/service/session';
import { Command, encodeRequest } from '../../../server/src/service/wire';
import { SimPcscBackend } from '../../support/simPcscBackend';
import { missingPart } from '../../support/system';

/** Real client processes: Debian's python3 (a minimal Debian has none). */
const PY = '/usr/bin/python3';
const noPython = fs.existsSync(PY) ? false : missingPart('missing /usr/bin/python3 (the real client processes of these tests); sudo npm run setup:system');
let tmp: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-peer-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A UNIX socket server; resolves with the accepted socket of the first client. */
function acceptOne(socketPath: string): { server: net.Server; accepted: Promise<net.Socket> } {
  let resolve!: (s: net.Socket) => void;
  const accepted = new Promise<net.Socket>((r) => { resolve = r; });
  const server = net.createServer((s) => resolve(s));
  server.listen(socketPath);
  return { server, accepted };
}

test('SO_PEERCRED gives the pid, uid and gid of a python3 client, and /proc its name: "python3 (pid N)"', { skip: noPython }, async () => {
  const sock = path.join(tmp, 'a.sock');
  const { server, accepted } = acceptOne(sock);
  await new Promise((r) => server.once('listening', r));
  const child = spawn(PY, ['-c', `import os,socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(${JSON.stringify(sock)})\nprint(os.getpid(), flush=True)\nsys.stdin.read()`]);
  const pid = await new Promise<number>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
  const s = await accepted;
  try {
    const creds = peerCredentials(s);
    assert.deepEqual(creds, { pid, uid: process.getuid!(), gid: process.getgid!() });
    assert.equal(peerLabel(creds, 'client#1'), `python3 (pid ${pid})`);
  } finally {
    child.stdin.end();
    s.destroy();
    server.close();
  }
});

test('a name longer than the kernel\'s 15-character comm comes whole from argv[0]; a gone process or no credentials gives the fallback', { skip: noPython }, async () => {
  // A copy of sleep under a long name: comm is cut to 15 characters, argv[0] is not.
  const long = path.join(tmp, 'card-personalisation-tool');
  fs.copyFileSync('/bin/sleep', long);
  fs.chmodSync(long, 0o755);
  const child = spawn(long, ['30']);
  try {
    // libuv's spawn returns once the exec has happened: comm is already the new program's.
    await new Promise((r) => child.once('spawn', r));
    assert.equal(fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim(), 'card-personalis');
    assert.equal(processName(child.pid!), 'card-personalisation-tool');
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(processName(0x7ffffffe), null);
  assert.equal(peerLabel({ pid: 0x7ffffffe, uid: 0, gid: 0 }, 'client#7'), 'process (pid 2147483646)');
  assert.equal(peerLabel(null, 'client#7'), 'client#7');
  assert.equal(socketFd({}), null);
  assert.equal(peerCredentials({}), null);
});

test('a process name with control characters is shown without them', () => {
  const proc = path.join(tmp, 'proc');
  fs.mkdirSync(path.join(proc, '42'), { recursive: true });
  fs.writeFileSync(path.join(proc, '42', 'comm'), 'evil\u001b[31mred\n');
  assert.equal(processName(42, proc), 'evil[31mred');
});

/** A program's stdout and stderr (the service in this process must keep running meanwhile: no spawnSync). */
function output(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args);
    let text = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd}: no exit within 20 s: ${text}`)); }, 20_000);
    p.stdout.on('data', (b: Buffer) => { text += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { text += b.toString(); });
    p.on('close', () => { clearTimeout(timer); resolve(text); });
  });
}

const asRoot = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }).status === 0;
test('a client of another user is refused and logged, as pcscd refuses an unauthorized client; the service goes on', { skip: noPython || (asRoot ? false : 'needs root and setpriv to run a client as another user') }, async () => {
  const lines: string[] = [];
  const service = new PcscService(await SimPcscBackend.create(), (_l, line) => lines.push(line));
  // A folder others can traverse and a socket anyone may open: as if the modes had been loosened.
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-peer-other-'));
  fs.chmodSync(base, 0o711);
  let server: PcscServer | undefined;
  try {
    server = await startPcscServer(service, { socketPath: path.join(base, 'smartcard-workbench', 'pcscd.comm') });
    fs.chmodSync(path.dirname(server.socketPath), 0o711);
    fs.chmodSync(server.socketPath, 0o666);
    const version = Buffer.from(encodeRequest(Command.CMD_VERSION, new Uint8Array([4, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]))).toString('hex');
    const py = `import socket\ns=socket.socket(socket.AF_UNIX)\ns.connect(${JSON.stringify(server.socketPath)})\ns.sendall(bytes.fromhex('${version}'))\nprint('REPLY', len(s.recv(64)))`;
    const other = await output('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', PY, '-c', py]);
    assert.match(other, /REPLY 0|Connection reset|Broken pipe/, other);
    assert.ok(lines.some((l) => /refused a client of user 65534 \(pid \d+\)/.test(l)), lines.join('\n'));
    // This user's clients still get served.
    const mine = await output(PY, ['-c', py]);
    assert.match(mine, /REPLY 12/, mine);
  } finally {
    await server?.close();
    service.dispose();
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('review 7: C1 controls (NEL), line and paragraph separators and bidi overrides are dropped from a process name; the cut never splits a surrogate pair', () => {
  const proc = path.join(tmp, 'proc7');
  fs.mkdirSync(path.join(proc, '43'), { recursive: true });
  // A name that would forge a log line (NEL, U+2028) and reverse what follows it (RLO, LRI … PDI).
  fs.writeFileSync(path.join(proc, '43', 'comm'), 'ok\u0085forged\u2028line\u2029\u202egnp.exe\u2066x\u2069\u009b\n');
  assert.equal(processName(43, proc), 'okforgedlinegnp.exex');
  // 63 characters, then an astral one (two UTF-16 units) across the 64-unit cut.
  fs.mkdirSync(path.join(proc, '44'), { recursive: true });
  fs.writeFileSync(path.join(proc, '44', 'comm'), `${'a'.repeat(63)}\u{1F512}tail\n`);
  const name = processName(44, proc)!;
  assert.ok(!/[\ud800-\udbff]$/.test(name), `no lone high surrogate at the end: ${JSON.stringify(name.slice(-2))}`);
  assert.equal(name, 'a'.repeat(63));
});

test('review 7: argv[0] is read from the first 4 KB of /proc/PID/cmdline, not the whole argv', (t) => {
  const proc = path.join(tmp, 'proc7b');
  fs.mkdirSync(path.join(proc, '45'), { recursive: true });
  fs.writeFileSync(path.join(proc, '45', 'comm'), 'card-personalis\n');
  fs.writeFileSync(path.join(proc, '45', 'cmdline'), Buffer.concat([Buffer.from('/opt/card-personalisation-tool\0'), Buffer.alloc(2 * 1024 * 1024, 0x41)]));
  const whole = t.mock.method(fs, 'readFileSync');
  assert.equal(processName(45, proc), 'card-personalisation-tool');
  const cmdlineReads = whole.mock.calls.filter((c) => String(c.arguments[0]).endsWith('cmdline'));
  assert.deepEqual(cmdlineReads.length, 0, 'cmdline is not read whole with readFileSync');
});
