// ReaderInfo.clients (issue 15, "who is using a reader"): one entry per connection, oldest
// first, named by its client (an extension, a PC/SC program) or its label (a script, the
// editor), with its share mode and whether it holds the transaction by its own begin; a
// PC/SC client's exclusive hold alone is not a transaction; at most MAX_READER_CLIENTS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import { MAX_READER_CLIENTS } from '../../../server/src/protocol';

const READER = 'Workbench Simulator 00 00';

async function started(): Promise<ReaderManager> {
  const m = new ReaderManager([new SimulatorDriver()], { historySize: 0 });
  await m.start();
  return m;
}

test('each connection is listed by who holds it, oldest first; its own transaction shows, an exclusive hold alone does not', async () => {
  const m = await started();
  try {
    assert.deepEqual(m.reader(READER).clients, []);
    const editor = await m.connect(READER, { label: 'Connect (editor)' });
    const api = await m.connect(READER, { client: 'acme.applet-tools', label: 'ignored' });
    const bare = await m.connect(READER);
    const drop = m.addDirectUser(READER, 'opensc-tool (pid 12)');
    await api.beginTransaction();
    assert.deepEqual(m.reader(READER).clients, [
      { client: 'Connect (editor)', share: 'shared', transaction: false },
      { client: 'acme.applet-tools', share: 'shared', transaction: true },
      { client: `connection ${bare.id}`, share: 'shared', transaction: false },
      { client: 'opensc-tool (pid 12)', share: 'direct', transaction: false },
    ]);
    await api.endTransaction();
    drop();
    for (const c of [editor, api, bare]) await c.disconnect();
    assert.deepEqual(m.reader(READER).clients, []);

    // A PC/SC client's exclusive connection holds the queue as a transaction of depth 1 (managerBackend.ts).
    const pcsc = await m.connect(READER, { share: 'exclusive', client: 'python3 (pid 4711)', exclusiveHold: true, keepsIdleTransaction: true });
    await pcsc.beginTransaction();
    assert.deepEqual(m.reader(READER).clients, [{ client: 'python3 (pid 4711)', share: 'exclusive', transaction: false }]);
    await pcsc.beginTransaction();
    assert.deepEqual(m.reader(READER).clients, [{ client: 'python3 (pid 4711)', share: 'exclusive', transaction: true }]);
    await pcsc.endTransaction();
    assert.equal(m.reader(READER).clients![0].transaction, false);
    await pcsc.disconnect();
  } finally {
    await m.stop();
  }
});

test(`at most ${MAX_READER_CLIENTS} entries; the rest are counted in moreClients`, async () => {
  const m = await started();
  try {
    const conns = [];
    for (let i = 0; i < MAX_READER_CLIENTS + 8; i++) conns.push(await m.connect(READER, { client: `client ${i}` }));
    const info = m.reader(READER);
    assert.equal(info.connections, MAX_READER_CLIENTS + 8);
    assert.equal(info.clients!.length, MAX_READER_CLIENTS);
    assert.equal(info.clients![0].client, 'client 0');
    assert.equal(info.moreClients, 8);
    for (const c of conns.slice(0, 8)) await c.disconnect();
    assert.equal(m.reader(READER).moreClients, undefined);
    assert.equal(m.reader(READER).clients![0].client, 'client 8');
    for (const c of conns.slice(8)) await c.disconnect();
  } finally {
    await m.stop();
  }
});

test('a transaction beginning and ending is a change the Readers view hears, marked as one PC/SC\'s reader table need not hear', async () => {
  const m = await started();
  try {
    const c = await m.connect(READER, { label: 'script a.apdu' });
    const changes: string[] = [];
    const off = m.onReadersChanged((what) => changes.push(what));
    await c.beginTransaction();
    assert.deepEqual(changes, ['transactions'], 'begin');
    await c.endTransaction();
    assert.deepEqual(changes, ['transactions', 'transactions'], 'end');
    off();
    await c.disconnect();
  } finally {
    await m.stop();
  }
});
