// The helper's log stream (`smartcard/events`) as the extension receives it: entries go out in
// batches (by size or a short time after the first one, not once per event-loop turn, which with a
// vpcd card is once per APDU), and always before anything that must follow them: a run's rows and
// its scriptEnded before the run's response, everything before the helper stops.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { forkHelperProcess } from '../support/forkHelper';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { createMessageConnection, IPCMessageReader, IPCMessageWriter } from 'vscode-jsonrpc/node';
import { EventsNotification, type LogEntry, PcscServiceStatusNotification, type PcscServiceStatus, RunScriptRequest, type RunScriptResult as RunResult } from '../../server/src/protocol';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';
import { SocketTransport, WireClient } from '../support/pcscWireClient';
import { connectInstantPeer, freeLoopbackPort } from '../support/instantVpcdPeer';

const APDU = '00 A4 00 0C 02 3F 00';
const stops: Array<() => unknown> = [];
after(async () => { for (const s of stops.reverse()) await s(); });

/** A helper whose notifications are recorded in arrival order, next to the responses the test awaited. */
async function recordingHelper(options: Parameters<typeof startMemoryHelper>[0] = {}) {
  const entries: LogEntry[] = [];
  let notifications = 0;
  let service = 'stopped';
  const n = notified();
  const helper: MemoryHelper = await startMemoryHelper({
    ...options,
    handlers: (c) => {
      c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => {
        notifications++;
        entries.push(...p.entries);
        n.changed();
      });
      c.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { service = p.state; n.changed(); });
    },
  });
  stops.push(() => helper.stop());
  return { helper, entries, notifications: () => notifications, service: () => service, until: n.until };
}

const ofRun = (entries: LogEntry[], runId: number) => entries.filter((e) => (e as { runId?: number }).runId === runId);

test('simulator: a run\'s exchange rows and its scriptEnded all arrive before its runScript response', async () => {
  const h = await recordingHelper({ initializationOptions: { simulator: { card: 'T=1' } } });
  for (const n of [1, 3, 200]) {
    const res: RunResult = await h.helper.client.sendRequest(RunScriptRequest.method, { text: `repeat ${n}\n${APDU}\nend\n` });
    assert.equal(res.ok, true);
    // Read at the moment the response is handled: nothing of the run may still be on its way.
    const mine = ofRun(h.entries, res.runId);
    assert.equal(mine.filter((e) => e.kind === 'exchange').length, n, `all ${n} exchange rows before the response`);
    assert.equal(mine.at(-1)?.kind, 'scriptEnded', 'the run\'s scriptEnded before the response');
  }
});

test('vpcd peer: 5,000 APDUs give far fewer smartcard/events notifications than APDUs, rows stream during the run, and all precede the response', async () => {
  const port = await freeLoopbackPort();
  const h = await recordingHelper({ helper: { drivers: [createVpcdDriver({ ports: [port] })] } });
  const peer: net.Socket = connectInstantPeer(port);
  stops.push(() => peer.destroy());
  await h.until(() => h.entries.some((e) => e.kind === 'cardInserted'));
  const reader = h.entries.find((e) => e.kind === 'cardInserted')!.reader;
  const N = 5000;
  const notes0 = h.notifications();
  let rowsBeforeResponse = 0;
  const firstRow = h.until(() => h.entries.some((e) => e.kind === 'exchange')).then(() => { rowsBeforeResponse = h.entries.filter((e) => e.kind === 'exchange').length; });
  const res: RunResult = await h.helper.client.sendRequest(RunScriptRequest.method, { text: `repeat ${N}\n${APDU}\nend\n`, reader });
  await firstRow;
  assert.equal(res.ok, true, res.failure?.message);
  const atResponse = ofRun(h.entries, res.runId);
  await h.until(() => ofRun(h.entries, res.runId).some((e) => e.kind === 'scriptEnded'));
  const notes = h.notifications() - notes0;
  // One notification per APDU was the old behaviour (one per event-loop turn); batches of up to
  // 1,000 entries or 16 ms give a few per 1,000 APDUs at this rate.
  assert.ok(notes <= N / 20, `${notes} smartcard/events notifications for ${N} APDUs (at most ${N / 20} expected)`);
  assert.equal(atResponse.filter((e) => e.kind === 'exchange').length, N, 'every exchange row before the response');
  assert.equal(atResponse.at(-1)?.kind, 'scriptEnded', 'the scriptEnded before the response');
  const mine = ofRun(h.entries, res.runId);
  assert.ok(rowsBeforeResponse > 0, 'rows arrive while the run goes on');
  const seqs = mine.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'rows in order');
});

test('a single exchange with nothing after it (a PC/SC client\'s transmit: no request, no response) shows within one batch time and slack', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-batching-'));
  stops.push(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const socket = path.join(tmp, 'pcscd.comm');
  const h = await recordingHelper({ helper: { drivers: [new SimulatorDriver()] }, initializationOptions: { pcscService: { enabled: true, socketPath: socket } } });
  await h.until(() => h.service() === 'running');
  const c = new WireClient(await SocketTransport.connect(socket));
  stops.push(() => c.transport.end());
  const hContext = await c.open(4);
  const conn = await c.connect(hContext, 'Workbench Simulator 00 00');
  assert.equal(conn.rv, 0, 'connect');
  for (let i = 0; i < 3; i++) {
    const before = h.entries.filter((e) => e.kind === 'exchange').length;
    const { s } = await c.transmit(conn.hCard as number, Uint8Array.from([0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00]), conn.dwActiveProtocol as number);
    assert.equal(s.rv, 0, 'transmitted');
    const t0 = performance.now();
    await h.until(() => h.entries.filter((e) => e.kind === 'exchange').length > before);
    const ms = performance.now() - t0;
    // 16 ms after the entry, plus slack for a slow shared CI machine; far below the 100 ms at which
    // the Readers view's transaction update would flush the batch anyway.
    assert.ok(ms < 16 + 60, `the row arrived ${ms.toFixed(0)} ms after the client had its answer`);
  }
});

/** The product's helper bundle forked with IPC as the extension forks it; its notifications recorded. */
async function forkedHelper(initializationOptions: unknown) {
  const child = forkHelperProcess(__dirname);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  stops.push(() => { if (child.exitCode === null && child.signalCode === null) child.kill(); });
  const conn = createMessageConnection(new IPCMessageReader(child), new IPCMessageWriter(child));
  stops.push(() => conn.dispose());
  const entries: LogEntry[] = [];
  const n = notified();
  let started = false;
  conn.onNotification('smartcard/started', () => { started = true; n.changed(); });
  conn.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => { entries.push(...p.entries); n.changed(); });
  let service = 'stopped';
  conn.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { service = p.state; n.changed(); });
  conn.onError(() => undefined);
  conn.listen();
  await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions });
  conn.sendNotification('initialized', {});
  await n.until(() => started);
  return { conn, entries, until: n.until, exited, service: () => service };
}

test('a real helper process: an exit with no shutdown before it (the client went away) still sends the rows a PC/SC client just made', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-batching-exit-'));
  stops.push(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const socket = path.join(tmp, 'pcscd.comm');
  const h = await forkedHelper({ simulator: { card: 'T=1' }, pcsc: { enabled: false }, pcscService: { enabled: true, socketPath: socket } });
  await h.until(() => h.service() === 'running');
  const c = new WireClient(await SocketTransport.connect(socket));
  stops.push(() => c.transport.end());
  const hContext = await c.open(4);
  const conn = await c.connect(hContext, 'Workbench Simulator 00 00');
  assert.equal(conn.rv, 0, 'connect');
  const before = h.entries.filter((e) => e.kind === 'exchange').length;
  const { s } = await c.transmit(conn.hCard as number, Uint8Array.from([0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00]), conn.dwActiveProtocol as number);
  assert.equal(s.rv, 0, 'transmitted');
  h.conn.sendNotification('exit'); // at once: the row is still in the helper's batch
  await h.exited;
  assert.equal(h.entries.filter((e) => e.kind === 'exchange').length, before + 1, 'the exchange row arrived before the helper exited');
});

test('a real helper process: shutdown then exit at once loses nothing of a run the shutdown cancelled', async () => {
  const h = await forkedHelper({ simulator: { card: 'T=1' }, pcsc: { enabled: false } });
  const run = h.conn.sendRequest(RunScriptRequest.method, { text: `repeat 1000000\n${APDU}\nend\n` }).catch(() => undefined);
  await h.until(() => h.entries.some((e) => e.kind === 'exchange'));
  const runId = (h.entries.find((e) => e.kind === 'exchange') as { runId: number }).runId;
  await h.conn.sendRequest('shutdown');
  h.conn.sendNotification('exit');
  assert.equal(await h.exited, 0);
  void run;
  const mine = ofRun(h.entries, runId);
  assert.equal(mine.at(-1)?.kind, 'scriptEnded', `the cancelled run's scriptEnded arrived before the helper exited (last: ${mine.at(-1)?.kind}, ${mine.length} entries)`);
  const seqs = h.entries.map((e) => e.seq);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `no entry lost between seq ${seqs[i - 1]} and ${seqs[i]}`);
});
