// Many clients on one reader: the per-reader FIFO and transactions must keep a
// transaction's APDUs together AS THE CARD SEES THEM, lose no response, give
// every response to the caller that sent the command, and let everyone finish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScript } from '../../../server/src/script/parser';
import { runScript } from '../../../server/src/script/engine';
import { toHex } from '../../../server/src/util/hex';
import { SELECT_BIG_EF, simulatorManager, taggedRead, tagOf } from './support';

const CLIENTS = 8;
const PER_CLIENT = 1000;
const TX = 10;

test(`${CLIENTS} clients × ${PER_CLIENT} APDUs in transactions of ${TX}: no interleaving on the card, no lost or misrouted response, all finish`, async (t) => {
  const { manager, name, card } = await simulatorManager();
  t.after(() => manager.stop());
  const setup = await manager.connect(name);
  assert.equal((await setup.transmit(SELECT_BIG_EF)).sw, 0x9000);
  await setup.disconnect();
  card().historyLimit = CLIENTS * PER_CLIENT + 100;
  card().history.length = 0;

  let completed = 0;
  const finishedAt: number[] = [];
  const misrouted: string[] = [];
  const client = async (c: number) => {
    const conn = await manager.connect(name);
    for (let tx = 0; tx < PER_CLIENT / TX; tx++) {
      await conn.beginTransaction();
      const batch: Array<Promise<void>> = [];
      for (let k = 0; k < TX; k++) {
        const i = tx * TX + k;
        const offset = c * 64 + (i % 64);
        const p = conn.transmit(taggedRead(c, i, offset)).then((r) => {
          completed++;
          const want = `${toHex(Uint8Array.of(offset & 0xff))}9000`;
          if (toHex(r.response) !== want) misrouted.push(`client ${c} #${i}: got ${toHex(r.response)}, want ${want}`);
        });
        // Odd clients pipeline the whole transaction; even ones wait for each response.
        if (c % 2) batch.push(p); else await p;
      }
      await Promise.all(batch);
      await conn.endTransaction();
    }
    finishedAt[c] = completed;
    await conn.disconnect();
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));

  assert.deepEqual(misrouted, []);
  assert.equal(completed, CLIENTS * PER_CLIENT, 'every promise resolved');

  // The card's side: every tagged command once, each client's in order, each transaction contiguous.
  const seen = card().history.map(tagOf);
  assert.equal(seen.length, CLIENTS * PER_CLIENT);
  const next = new Array<number>(CLIENTS).fill(0);
  const firstPos = new Map<string, number>();
  seen.forEach((tag, pos) => {
    assert.ok(tag, `history[${pos}] is not a tagged command`);
    assert.equal(tag.index, next[tag.client], `client ${tag.client}: command ${tag.index} reached the card out of order`);
    next[tag.client]++;
    const key = `${tag.client}/${Math.floor(tag.index / TX)}`;
    if (tag.index % TX === 0) firstPos.set(key, pos);
    else assert.equal(pos - firstPos.get(key)!, tag.index % TX, `transaction ${key} was interleaved at history[${pos}]`);
  });
  assert.deepEqual(next, new Array(CLIENTS).fill(PER_CLIENT));

  // Fairness: when did each client finish, counted in completed APDUs of all clients?
  const spread = Math.max(...finishedAt) - Math.min(...finishedAt);
  t.diagnostic(`finish points (APDUs completed overall when each client finished): ${finishedAt.join(', ')}; spread ${spread} of ${completed}`);
  assert.ok(finishedAt.every((f) => f > 0));
  assert.equal(manager.reader(name).connections, 0, 'every connection closed');
  assert.equal(manager.reader(name).inTransaction, false);
});

test('the same clients WITHOUT transactions do interleave on the card (the check above can fail)', async (t) => {
  const { manager, name, card } = await simulatorManager();
  t.after(() => manager.stop());
  const setup = await manager.connect(name);
  await setup.transmit(SELECT_BIG_EF);
  await setup.disconnect();
  card().historyLimit = 1000;
  await Promise.all([0, 1].map(async (c) => {
    const conn = await manager.connect(name);
    for (let i = 0; i < 50; i++) await conn.transmit(taggedRead(c, i, c * 64 + i));
    await conn.disconnect();
  }));
  const clients = card().history.map((h) => tagOf(h)?.client);
  let switches = 0;
  for (let i = 1; i < clients.length; i++) if (clients[i] !== clients[i - 1]) switches++;
  assert.ok(switches > 10, `expected the two clients to alternate, saw ${switches} switches`);
});

test('two scripts run at once on one reader with transaction begin/end never interleave inside a transaction', async (t) => {
  const { manager, name, card } = await simulatorManager();
  t.after(() => manager.stop());
  const setup = await manager.connect(name);
  await setup.transmit(SELECT_BIG_EF);
  await setup.disconnect();
  card().historyLimit = 10_000;
  // Each script: 20 transactions of 25 tagged READ BINARYs, each checked with an expectation.
  const script = (c: number) => parseScript([
    'repeat 20',
    '  transaction begin',
    '  repeat 25',
    `    00 B0 00 ${(c * 64).toString(16).padStart(2, '0')} 03 ${c.toString(16).padStart(2, '0')} 00 00 01 => ${(c * 64).toString(16).padStart(2, '0')} 90 00`,
    '  end',
    '  transaction end',
    'end',
  ].join('\n'));
  const [a, b] = await Promise.all([1, 2].map((c) => runScript(script(c), { manager, reader: name })));
  assert.equal(a.ok, true, a.failure?.message);
  assert.equal(b.ok, true, b.failure?.message);
  assert.equal(a.commands + b.commands, 1000);
  const clients = card().history.map((h) => tagOf(h)!.client);
  assert.equal(clients.length, 1000);
  // Runs of one client's commands are whole transactions (multiples of 25).
  let run = 1;
  const runs: number[] = [];
  for (let i = 1; i <= clients.length; i++) {
    if (i < clients.length && clients[i] === clients[i - 1]) run++;
    else { runs.push(run); run = 1; }
  }
  assert.ok(runs.every((r) => r % 25 === 0), `a transaction was split: runs ${runs.filter((r) => r % 25).join(', ')}`);
  assert.ok(runs.length > 2, 'the two scripts took turns');
  assert.equal(manager.reader(name).connections, 0);
});
