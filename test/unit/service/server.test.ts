// The PC/SC service's UNIX socket: where it lives, its permissions, refusing a
// folder that is not ours, no TCP anywhere, and bad clients losing only their own
// connection over a real socket. Backend: the simulator TEST DOUBLE.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultSocketPath, MAX_CLIENTS, MAX_UNREAD_REPLY_BYTES, prepareSocketFolder, SocketFolderError, startPcscServer, type PcscServer } from '../../../server/src/service/server';
import { PcscService } from '../../../server/src/service/session';
import { Command, encodeRequest } from '../../../server/src/service/wire';
import { SocketTransport, WireClient } from '../../support/pcscWireClient';
import { SimPcscBackend } from '../../support/simPcscBackend';

let tmp: string;
let service: PcscService;
let server: PcscServer;
const uid = process.getuid!();
const logWaiters: { re: RegExp; resolve: (line: string) => void }[] = [];
/** The next service log line matching `re` (bounded by the test runner's time-out). */
function nextLog(re: RegExp): Promise<string> {
  return new Promise((resolve) => logWaiters.push({ re, resolve }));
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-svc-'));
  service = new PcscService(await SimPcscBackend.create(), (_level, line) => {
    for (const w of logWaiters.splice(0)) {
      if (w.re.test(line)) w.resolve(line); else logWaiters.push(w);
    }
  });
  server = await startPcscServer(service, { socketPath: defaultSocketPath({ XDG_RUNTIME_DIR: tmp }) });
});
after(async () => {
  await server?.close();
  service?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function connect(): Promise<WireClient> {
  return new WireClient(await SocketTransport.connect(server.socketPath));
}

test('socket path: $XDG_RUNTIME_DIR/smartcard-workbench/pcscd.comm, else /tmp/smartcard-workbench-UID/pcscd.comm', () => {
  assert.equal(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000), '/run/user/1000/smartcard-workbench/pcscd.comm');
  assert.equal(defaultSocketPath({}, 1000), '/tmp/smartcard-workbench-1000/pcscd.comm');
  assert.equal(defaultSocketPath({ XDG_RUNTIME_DIR: 'relative' }, 7), '/tmp/smartcard-workbench-7/pcscd.comm');
});

test('the folder is 0700 and the socket 0600, a socket', () => {
  assert.equal(server.socketPath, path.join(tmp, 'smartcard-workbench', 'pcscd.comm'));
  assert.equal(fs.statSync(path.dirname(server.socketPath)).mode & 0o777, 0o700);
  const st = fs.lstatSync(server.socketPath);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
});

test('no TCP socket is open in this process (the service never listens on a port)', () => {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = fs.readlinkSync(`/proc/self/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
      if (m) inodes.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  assert.ok(inodes.size > 0, 'the UNIX socket itself is an fd');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      assert.ok(!inode || !inodes.has(inode), `this process holds a TCP socket (${table}: ${line.trim()})`);
    }
  }
});

test('a folder owned by someone else is refused; a symlink is refused; our own folder with loose mode is tightened', () => {
  const theirs = path.join(tmp, 'theirs');
  fs.mkdirSync(theirs, { mode: 0o700 });
  assert.throws(() => prepareSocketFolder(theirs, uid + 4242), (e) => e instanceof SocketFolderError && /belongs to user/.test(e.message));
  if (uid === 0) {
    fs.chownSync(theirs, 65534, 65534); // a real other owner, when the test may make one
    assert.throws(() => prepareSocketFolder(theirs), SocketFolderError);
  }
  const link = path.join(tmp, 'link');
  fs.symlinkSync(theirs, link);
  assert.throws(() => prepareSocketFolder(link), (e) => e instanceof SocketFolderError && /not a folder/.test(e.message));
  const loose = path.join(tmp, 'loose');
  fs.mkdirSync(loose, { mode: 0o755 });
  fs.chmodSync(loose, 0o755);
  prepareSocketFolder(loose);
  assert.equal(fs.statSync(loose).mode & 0o777, 0o700);
});

test('a second service on the same socket is refused; a stale socket file of a crashed one is replaced', async () => {
  await assert.rejects(startPcscServer(service, { socketPath: server.socketPath }), /already listens/);
  const stalePath = path.join(tmp, 'stale', 'pcscd.comm');
  fs.mkdirSync(path.dirname(stalePath), { mode: 0o700 });
  // A crashed service leaves its socket file behind with nobody listening: listen, then die by SIGKILL (no clean-up).
  const r = spawnSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))", stalePath]);
  assert.equal(r.signal, 'SIGKILL', String(r.stderr));
  assert.ok(fs.lstatSync(stalePath).isSocket());
  const second = await startPcscServer(service, { socketPath: stalePath });
  const c = new WireClient(await SocketTransport.connect(stalePath));
  assert.deepEqual(await c.version(5), { major: 4, minor: 5, rv: 0 });
  c.transport.end();
  await second.close();
  assert.ok(!fs.existsSync(stalePath), 'close() removes the socket');
  fs.writeFileSync(stalePath, 'not a socket');
  await assert.rejects(startPcscServer(service, { socketPath: stalePath }), /not a socket/);
});

test('at most MAX_CLIENTS connections at once (pcscd\'s 200): one more is closed, the others stay', { timeout: 30_000 }, async () => {
  const many = await Promise.all(Array.from({ length: MAX_CLIENTS }, () => connect()));
  const refused = nextLog(/clients already connected/);
  const extra = await connect();
  await refused;
  await extra.whenClosed();
  assert.deepEqual(await many[MAX_CLIENTS - 1].version(6), { major: 4, minor: 6, rv: 0 });
  const allGone = new Promise<void>((resolve) => {
    const off = server.onConnections((n) => { if (n === 0) { off(); resolve(); } });
  });
  for (const c of many) c.transport.end();
  await allGone; // the service has seen every one of them leave
});

test('over the socket: garbage, half a message then death, and a client that stops reading lose only their own connection', { timeout: 30_000 }, async () => {
  const good = await connect();
  const h = await good.open(6);
  assert.equal((await good.connect(h, 'Workbench Simulator 00 00')).rv, 0);

  const garbage = await connect();
  garbage.transport.write(Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7]));
  await garbage.whenClosed();

  const half = await connect();
  const halfSeen = nextLog(/left after 7 bytes of CMD_VERSION|left after 7 bytes of a header/);
  half.transport.write(encodeRequest(Command.CMD_VERSION, new Uint8Array(12)).subarray(0, 7));
  half.transport.end();
  await halfSeen;

  // 1,000 GET_READERS_STATE never read: ~2.9 MB of replies, past the 1 MB it may leave unread.
  const deaf = await connect();
  // A paused socket never sees its own end; the service's log line is the event to wait on.
  const dropped = nextLog(/bytes of replies unread/);
  (deaf.transport as SocketTransport).socket.pause();
  const one = encodeRequest(Command.CMD_GET_READERS_STATE);
  const many = new Uint8Array(one.length * 1000);
  for (let i = 0; i < 1000; i++) many.set(one, i * one.length);
  deaf.transport.write(many);
  assert.ok(1000 * 2944 > MAX_UNREAD_REPLY_BYTES * 2);
  assert.match(await dropped, new RegExp(`\\S+ \\(pid ${process.pid}\\): connection closed`));
  (deaf.transport as SocketTransport).socket.destroy();

  assert.deepEqual(await good.readerEvents(), { readerEvents: 2, rv: 0 });
  const t = await good.readersState6();
  assert.equal(t[0].readerSharing, 1, 'the good client\'s handle is still there, nobody else\'s');
  assert.equal(service.sessions.size, 1, 'only the good client\'s session is left');
});
