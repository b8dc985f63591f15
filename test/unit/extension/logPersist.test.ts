import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { LogStore } from '../../../extension/src/logStore';
import { LogPersistence, parseRowLine } from '../../../extension/src/logPersist';

const R = 'Workbench Simulator 00 00';
const exchange = (seq: number): ExchangeEntry => ({
  kind: 'exchange', seq, time: 1000 + seq, reader: R, command: '0020000104********', response: '9000',
  sw: '9000', swMeaning: 'Normal processing', swCategory: 'success', durationMs: 1,
});

const dirs: string[] = [];
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

function tmpFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-logpersist-'));
  dirs.push(dir);
  return path.join(dir, 'sub', 'apdu-log.jsonl');
}

test('rows are written in batches and read back by the next session, after its own generations', async () => {
  const file = tmpFile();
  const store = new LogStore(100);
  const p = new LogPersistence(file, store, (m) => assert.fail(m));
  store.newGeneration();
  store.addEntries([exchange(1), exchange(2)]);
  store.addManager('running', 'started', 5);
  await p.flush();
  store.addEntries([exchange(3)]);
  await p.flush();
  assert.equal(fs.readFileSync(file, 'utf8').trimEnd().split('\n').length, 4);
  p.dispose();

  const next = new LogStore(100);
  const q = new LogPersistence(file, next, (m) => assert.fail(m));
  assert.equal(q.load(), 4);
  assert.deepEqual(next.rows().map((r) => r.id), store.rows().map((r) => r.id));
  // The new helper's rows come after the restored ones, with ids that do not collide.
  const gen = next.newGeneration();
  assert.equal(gen, 2);
  const r = next.addEntries([exchange(1)]);
  assert.equal(r.reordered, false);
  assert.equal(next.rows().at(-1)?.id, '2:1');
  assert.equal(next.size, 5);
  // The persisted text holds masked PIN bytes only.
  assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /0020000104(?!\*)/);
  q.dispose();
});

test('the file stays bounded: trimming or clearing rewrites it whole', async () => {
  const file = tmpFile();
  const store = new LogStore(8);
  const p = new LogPersistence(file, store, (m) => assert.fail(m));
  store.newGeneration();
  for (let i = 0; i < 50; i++) {
    store.addEntries([exchange(i)]);
    await p.flush();
  }
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
  assert.ok(lines.length <= 10, `${lines.length} lines`);
  assert.equal(JSON.parse(lines.at(-1)!).id, '1:49');
  store.clear();
  await p.flush();
  assert.equal(fs.readFileSync(file, 'utf8'), '');
});

test('unreadable lines are skipped', () => {
  assert.equal(parseRowLine('not json'), undefined);
  assert.equal(parseRowLine('{"id":"1:1","time":1,"kind":"nonsense"}'), undefined);
  assert.equal(parseRowLine('{"id":1,"time":1,"kind":"echo"}'), undefined);
  assert.equal(parseRowLine('{"id":"1:1","time":1,"kind":"echo","message":"hi"}')?.kind, 'echo');
  const file = tmpFile();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '{"id":"3:1","time":1,"kind":"echo","message":"hi"}\ngarbage\n');
  const store = new LogStore(10);
  assert.equal(new LogPersistence(file, store, () => undefined).load(), 1);
  assert.equal(store.newGeneration(), 4);
});
