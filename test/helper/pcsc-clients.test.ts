// Issue 15, "who is using a reader": real pyscard processes (Debian's libpcsclite) connect
// to the helper's PC/SC service; the helper's reader snapshot lists each one by process
// name and pid (SO_PEERCRED, the pid python itself prints), with its share mode and
// whether it holds a transaction; the entry goes when the process dies; its exchanges in
// the APDU Log carry the same name. The workbench's own connections are listed too (the
// editor's Connect, an API caller), and a script's rows carry no client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import {
  ApiConnectRequest, ApiDisconnectRequest, EventsNotification, type LogEntry, PcscServiceStatusNotification, type PcscServiceStatus,
  type ReaderInfo, ReaderConnectRequest, ReaderDisconnectRequest, ReadersChangedNotification, type ReaderList, RunScriptRequest,
} from '../../server/src/protocol';
import { startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';

const PY = '/usr/bin/python3'; // Debian's, which has pyscard (python3 on PATH may be another)
const HOLDER = path.resolve('test/support/py/pcsc_holder.py');
const READER = 'Workbench Simulator 00 00';
const skip = spawnSync(PY, ['-c', 'import smartcard'], { stdio: 'ignore' }).status === 0 ? false
  : process.env.CI === 'true' ? assert.fail('python3-pyscard is missing (CI=true: a missing part fails the run)') : 'python3-pyscard is missing; sudo npm run setup:system';

let tmp: string;
let socket: string;
let helper: MemoryHelper;
const entries: LogEntry[] = [];
let readers: ReaderInfo[] = [];
let running = false;
const { changed, until } = notified();
const children = new Set<ChildProcessWithoutNullStreams>();

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-helper-clients-'));
  socket = path.join(tmp, 'smartcard-workbench', 'pcscd.comm');
  helper = await startMemoryHelper({
    helper: { drivers: [new SimulatorDriver()] },
    initializationOptions: { pcscService: { enabled: true, socketPath: socket } },
    handlers: (c) => {
      c.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { running = p.state === 'running'; changed(); });
      c.onNotification(ReadersChangedNotification.method, (p: ReaderList) => { readers = p.readers; changed(); });
      c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => { entries.push(...p.entries); changed(); });
      c.onNotification('window/logMessage', () => undefined);
    },
  });
  readers = helper.started.readers;
  await until(() => running);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await helper?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface Holder { child: ChildProcessWithoutNullStreams; pid: number; sw: string | null }

/** Starts a pyscard process holding the reader; resolves with the pid it printed once it holds it. */
function holder(share: 'shared' | 'exclusive' | 'direct', tx = false): Promise<Holder> {
  const env: NodeJS.ProcessEnv = { ...process.env, PCSCLITE_CSOCK_NAME: socket };
  delete env.LD_LIBRARY_PATH;
  const child = spawn(PY, [HOLDER, READER, share, ...(tx ? ['tx'] : [])], { env });
  children.add(child);
  child.on('close', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the ${share} holder did not connect within 20 s: ${out}${err}`)); }, 20_000);
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      const o = JSON.parse(line) as { pid: number; connected: number; sw?: string | null };
      if (o.connected !== 0) reject(new Error(`connect failed: ${line}`));
      else resolve({ child, pid: o.pid, sw: o.sw ?? null });
    });
    child.on('close', (code) => { clearTimeout(timer); reject(new Error(`the holder exited (${code}): ${out}${err}`)); });
  });
}

/** Waits until `check` holds, at most `ms`; the failure says what the reader listed then. */
async function within(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms; the reader listed ${JSON.stringify(sim()?.clients)} (connections ${sim()?.connections})`)), ms);
  });
  try {
    await Promise.race([until(check), late]);
  } finally {
    clearTimeout(timer);
  }
}

const sim = (): ReaderInfo => readers.find((r) => r.name === READER)!;
const clientsNow = () => sim()?.clients ?? [];

test('a pyscard process holding the reader exclusively in a transaction is listed as "python3 (pid N)", exclusive, in a transaction; its SELECT row carries that name; it goes when the process is killed', { skip, timeout: 60_000 }, async () => {
  const h = await holder('exclusive', true);
  assert.equal(h.sw, '9000');
  const name = `python3 (pid ${h.pid})`;
  const want = JSON.stringify([{ client: name, share: 'exclusive', transaction: true }]);
  await within(`${name} listed, exclusive, in a transaction`, () => JSON.stringify(clientsNow()) === want);
  const select = () => entries.find((e) => e.kind === 'exchange' && e.command.startsWith('00A4040007F0574244454D4F'));
  await within('the SELECT row', () => select() !== undefined);
  const row = select();
  assert.equal(row?.kind === 'exchange' ? row.client : undefined, name);

  h.child.kill('SIGKILL');
  await within(`${name} gone after SIGKILL`, () => !clientsNow().some((c) => c.client === name));
  assert.deepEqual(clientsNow(), []);
  assert.equal(sim().connections, 0);
});

test('two processes at once (shared, direct) and the workbench\'s own connections are each listed with who they are; the end of its transaction shows; each goes when it disconnects or exits', { skip, timeout: 60_000 }, async () => {
  // The workbench's own first: a connect waits behind another connection's transaction.
  await helper.client.sendRequest(ReaderConnectRequest.method, { reader: READER, share: 'shared' });
  const api = await helper.client.sendRequest(ApiConnectRequest.method, { client: 'acme.applet-tools', reader: READER }) as { handle: number };
  // The direct process first: pcscd's SCardConnect, direct ones included, waits for another handle's
  // transaction to end (winscard.c ~280–289, R49), so it could not connect beside the shared one's.
  const direct = await holder('direct');
  const shared = await holder('shared', true);
  const sharedName = `python3 (pid ${shared.pid})`;
  const directName = `python3 (pid ${direct.pid})`;
  const want = [
    { client: 'Connect (editor)', share: 'shared', transaction: false },
    { client: 'acme.applet-tools', share: 'shared', transaction: false },
    { client: directName, share: 'direct', transaction: false },
    { client: sharedName, share: 'shared', transaction: true },
  ];
  // Oldest first.
  await within('the four connections listed', () => JSON.stringify(clientsNow()) === JSON.stringify(want));

  // The SELECT rows of each process carry its own name.
  const shareds = entries.filter((e) => e.kind === 'exchange' && e.client === sharedName);
  assert.equal(shareds.length, 1, JSON.stringify(entries.filter((e) => e.kind === 'exchange').slice(-3)));
  // Its SCardEndTransaction shows at once; its disconnect takes it off the list.
  shared.child.stdin.write('endtx\n');
  await within(`${sharedName} out of its transaction`, () => clientsNow().some((c) => c.client === sharedName && !c.transaction));
  shared.child.stdin.write('end\n');
  await within(`${sharedName} gone after its disconnect`, () => !clientsNow().some((c) => c.client === sharedName));
  direct.child.stdin.end();
  await within(`${directName} gone at its exit`, () => !clientsNow().some((c) => c.client === directName));
  await helper.client.sendRequest(ApiDisconnectRequest.method, { client: 'acme.applet-tools', handle: api.handle });
  await helper.client.sendRequest(ReaderDisconnectRequest.method, { reader: READER });
  await within('nobody listed', () => clientsNow().length === 0);
});

test('a script run is listed as "script NAME.apdu" with its transaction while it runs; its exchanges carry no client', { skip, timeout: 30_000 }, async () => {
  const mark = entries.length;
  const text = 'transaction begin\n00 A4 04 00 07 F0 57 42 44 45 4D 4F\ndelay 4000\ntransaction end\n';
  const run = helper.client.sendRequest(RunScriptRequest.method, { text, reader: READER, uri: 'file:///work/examples/hold%20on.apdu' }) as Promise<{ ok: boolean }>;
  await within('the script listed in its transaction', () => JSON.stringify(clientsNow()) === JSON.stringify([{ client: 'script hold on.apdu', share: 'shared', transaction: true }]));
  const r = await run;
  assert.equal(r.ok, true);
  await within('nobody listed after the run', () => clientsNow().length === 0);
  await within('the script\'s exchange', () => entries.slice(mark).some((e) => e.kind === 'exchange'));
  for (const e of entries.slice(mark)) assert.equal('client' in e, false, JSON.stringify(e));
});
