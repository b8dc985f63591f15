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
  // Card answers are the user's alone, whatever the umask: the file 0600, its folder 0700.
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
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
  assert.equal(fs.existsSync(file), false, 'Clear removes the stored file');
});

test('Clear removes the stored file, also when the extension host goes right after (dispose)', async () => {
  const file = tmpFile();
  const store = new LogStore(100);
  const p = new LogPersistence(file, store, (m) => assert.fail(m));
  store.newGeneration();
  store.addEntries([exchange(1), exchange(2)]);
  await p.flush();
  assert.ok(fs.existsSync(file));
  store.clear();
  p.dispose(); // before the delayed write: dispose does it
  assert.equal(fs.existsSync(file), false);
  assert.equal(fs.existsSync(`${file}.tmp`), false);
  // A new row after Clear starts a new file.
  const q = new LogPersistence(file, store, (m) => assert.fail(m));
  store.addEntries([exchange(3)]);
  await q.flush();
  assert.equal(fs.readFileSync(file, 'utf8').trimEnd().split('\n').length, 1);
  q.dispose();
});

test('smartcard.log.persist false: stop() deletes the file and nothing is written afterwards; on again, everything is written', async () => {
  const file = tmpFile();
  const store = new LogStore(100);
  const p = new LogPersistence(file, store, (m) => assert.fail(m));
  store.newGeneration();
  store.addEntries([exchange(1)]);
  await p.flush();
  assert.ok(fs.existsSync(file));
  store.addEntries([exchange(2)]); // pending: must not be written after stop
  await p.stop();
  assert.equal(fs.existsSync(file), false, 'turning persistence off removes the stored log');
  store.addEntries([exchange(3)]);
  store.clear();
  store.addEntries([exchange(4)]);
  p.dispose();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(fs.existsSync(file), false, 'nothing is written while off');
  assert.equal(fs.existsSync(path.dirname(file)) ? fs.readdirSync(path.dirname(file)).length : 0, 0, 'no temporary file either');
  // On again: the rows the store holds are written whole.
  const q = new LogPersistence(file, store, (m) => assert.fail(m));
  q.saveAll();
  await q.flush();
  assert.deepEqual(fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l).id), ['1:4']);
  q.dispose();
});

test('removeStoredLog deletes a file left from a session that persisted (persist turned off meanwhile)', async () => {
  const file = tmpFile();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '{"id":"1:1","time":1,"kind":"echo","message":"hi"}\n');
  assert.equal(await LogPersistence.removeStoredLog(file), true);
  assert.equal(fs.existsSync(file), false);
  assert.equal(await LogPersistence.removeStoredLog(file), false, 'nothing to remove');
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
