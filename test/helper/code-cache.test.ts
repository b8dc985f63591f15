// V8's code cache of the helper's bundle (server/src/codeCache.ts, boot.ts): a later start uses what
// an earlier one compiled, and nothing but this user's own, intact cache of this very bundle is ever
// handed to V8 — a changed bundle, a damaged or torn file, a folder or file of someone else, a link.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { forkHelperProcess } from '../support/forkHelper';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMessageConnection, IPCMessageReader, IPCMessageWriter } from 'vscode-jsonrpc/node';
import { cacheName, CODE_CACHE_STATE, loadBundle, privateFolder, readCache, writeCache } from '../../server/src/codeCache';
import { CODE_CACHE_ENV } from '../../server/src/protocol';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-code-cache-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** A bundle like esbuild's: CommonJS, a relative require, module.exports, __filename, enough functions to cache. */
function fixture(marker = 'A'): { dir: string; bundle: string; cache: string } {
  const dir = path.join(tmp, `case${++n}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'dep.js'), 'module.exports = { twice: (x) => 2 * x };\n');
  const fns = Array.from({ length: 200 }, (_, i) => `function f${i}(x) { return x.map((y) => y + ${i}).filter((y) => y % 3).reduce((a, b) => a + b, 0); }`).join('\n');
  fs.writeFileSync(path.join(dir, 'helper.js'), `${fns}
const dep = require('./dep.js');
module.exports = { marker: '${marker}', file: __filename, dir: __dirname, value: dep.twice(f7([1, 2, 3])), same: module.exports === exports };
`);
  return { dir, bundle: path.join(dir, 'helper.js'), cache: path.join(dir, 'cache') };
}

test('the bundle runs as a CommonJS module: its own require, module, exports, __filename; no folder: no cache', () => {
  const f = fixture();
  const r = loadBundle(f.bundle, undefined);
  assert.equal(r.state, 'off');
  assert.equal(r.write(), false, 'nothing to write without a folder');
  assert.equal(fs.existsSync(f.cache), false);
  // The module is not in require.cache (it is run, not required): read its exports through a second bundle.
  const probe = path.join(f.dir, 'probe.js');
  fs.writeFileSync(probe, `${fs.readFileSync(f.bundle, 'utf8')}\nglobalThis.__wbProbe = module.exports;\n`);
  loadBundle(probe, undefined);
  const got = (globalThis as { __wbProbe?: Record<string, unknown> }).__wbProbe;
  assert.deepEqual(got, { marker: 'A', file: probe, dir: f.dir, value: 36, same: true });
  assert.equal((globalThis as Record<symbol, unknown>)[CODE_CACHE_STATE], 'off');
});

test('first start cold, written once (0600 in a 0700 folder), the next start uses it', () => {
  const f = fixture();
  const first = loadBundle(f.bundle, f.cache);
  assert.equal(first.state, 'cold');
  assert.equal(first.write(), true);
  assert.equal(first.write(), false, 'written once');
  const files = fs.readdirSync(f.cache);
  assert.deepEqual(files, [path.basename(first.file!)]);
  if (process.platform !== 'win32') {
    assert.equal(fs.statSync(f.cache).mode & 0o777, 0o700);
    assert.equal(fs.statSync(first.file!).mode & 0o777, 0o600);
  }
  const second = loadBundle(f.bundle, f.cache);
  assert.equal(second.state, 'used', 'V8 took the cache');
  assert.equal(second.write(), false, 'a used cache is not written again');
  assert.equal((globalThis as Record<symbol, unknown>)[CODE_CACHE_STATE], 'used');
});

test('a changed bundle of the same length never meets the old cache (V8 compares only the length); the old file goes', () => {
  const f = fixture('A');
  const a = loadBundle(f.bundle, f.cache);
  a.write();
  const before = fs.readFileSync(f.bundle, 'utf8');
  fs.writeFileSync(f.bundle, before.replace("marker: 'A'", "marker: 'B'"));
  assert.equal(fs.statSync(f.bundle).size, Buffer.byteLength(before));
  assert.notEqual(cacheName(fs.readFileSync(f.bundle, 'utf8')), cacheName(before));
  const b = loadBundle(f.bundle, f.cache);
  assert.equal(b.state, 'cold', 'not the old bundle\'s cache');
  assert.notEqual(b.file, a.file);
  b.write();
  assert.deepEqual(fs.readdirSync(f.cache).sort(), [path.basename(a.file!), path.basename(b.file!)].sort(), 'the other version\'s file is kept (a debug helper and a normal one each keep theirs)');
});

test('the folder keeps the newest three versions; temporary files a killed helper left go after a minute', () => {
  const f = fixture();
  fs.mkdirSync(f.cache, { mode: 0o700 });
  const old = (name: string, ageS: number) => {
    const p = path.join(f.cache, name);
    fs.writeFileSync(p, 'x');
    const t = new Date(Date.now() - ageS * 1000);
    fs.utimesSync(p, t, t);
  };
  old('helper-aaaa.v8cache', 300);
  old('helper-bbbb.v8cache', 200);
  old('helper-cccc.v8cache', 100);
  old('.helper-aaaa.v8cache.123.beef', 120); // left by a helper killed mid-write
  old('.helper-bbbb.v8cache.456.cafe', 5); // another helper writing right now
  old('notes.txt', 1000); // not ours
  const r = loadBundle(f.bundle, f.cache);
  assert.equal(r.write(), true);
  assert.deepEqual(fs.readdirSync(f.cache).sort(), ['.helper-bbbb.v8cache.456.cafe', path.basename(r.file!), 'helper-bbbb.v8cache', 'helper-cccc.v8cache', 'notes.txt'].sort());
});

test('a damaged, torn, huge or linked cache file is refused before V8 sees it, the bundle still runs, and it is written anew', () => {
  const f = fixture();
  const first = loadBundle(f.bundle, f.cache);
  first.write();
  const file = first.file!;
  const good = fs.readFileSync(file);
  const cases: Array<[string, () => void]> = [
    ['a flipped byte in the payload', () => { const b = Buffer.from(good); b[b.length - 100] ^= 0xff; fs.writeFileSync(file, b); }],
    ['a flipped byte in the checksum', () => { const b = Buffer.from(good); b[12] ^= 0x01; fs.writeFileSync(file, b); }],
    ['torn: half the file', () => fs.writeFileSync(file, good.subarray(0, good.length >> 1))],
    ['empty', () => fs.writeFileSync(file, '')],
    ['another format', () => fs.writeFileSync(file, Buffer.concat([Buffer.from('NOTOURS!'), good.subarray(8)]))],
    ['larger than 64 MB', () => { fs.writeFileSync(file, good); fs.truncateSync(file, 65 * 1024 * 1024); }],
    ['a symbolic link to a good copy', () => { const copy = path.join(f.dir, 'copy.v8cache'); fs.writeFileSync(copy, good); fs.rmSync(file); fs.symlinkSync(copy, file); }],
  ];
  for (const [what, spoil] of cases) {
    spoil();
    const r = loadBundle(f.bundle, f.cache);
    assert.equal(r.state, 'rejected', what);
    assert.equal(r.write(), true, `${what}: written anew`);
    assert.equal(fs.lstatSync(file).isFile(), true, `${what}: a plain file again`);
    assert.equal(loadBundle(f.bundle, f.cache).state, 'used', `${what}: the new one is used`);
  }
});

test('a folder that is not this user\'s alone is not used: a link, a file; an open folder of ours is closed first', { skip: process.platform === 'win32' && 'POSIX modes' }, () => {
  const f = fixture();
  const real = path.join(f.dir, 'real');
  fs.mkdirSync(real, { mode: 0o700 });
  fs.symlinkSync(real, f.cache);
  assert.equal(privateFolder(f.cache), false, 'a symbolic link');
  assert.equal(loadBundle(f.bundle, f.cache).state, 'unsafe');
  assert.equal(loadBundle(f.bundle, f.cache).write(), false, 'nothing written through the link');
  assert.deepEqual(fs.readdirSync(real), []);
  const asFile = path.join(f.dir, 'file');
  fs.writeFileSync(asFile, '');
  assert.equal(loadBundle(f.bundle, asFile).state, 'unsafe', 'a file');
  const open = path.join(f.dir, 'open');
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o777);
  assert.equal(privateFolder(open), true, 'ours: closed');
  assert.equal(fs.statSync(open).mode & 0o777, 0o700);
  if (process.getuid?.() === 0) {
    // Someone else's folder (as root, CI's user, a folder can be given away).
    const theirs = path.join(f.dir, 'theirs');
    fs.mkdirSync(theirs, { mode: 0o700 });
    fs.chownSync(theirs, 65534, 65534);
    assert.equal(loadBundle(f.bundle, theirs).state, 'unsafe', 'another user\'s folder');
    assert.deepEqual(fs.readdirSync(theirs), []);
  }
});

/** The product's helper (out/server.js → out/helper.js), forked as the extension forks it; its log lines. */
async function forkedHelper(cacheDir: string | undefined) {
  const child = forkHelperProcess(__dirname, { [CODE_CACHE_ENV]: cacheDir });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const conn = createMessageConnection(new IPCMessageReader(child), new IPCMessageWriter(child));
  const lines: string[] = [];
  conn.onNotification('window/logMessage', (p: { message: string }) => { lines.push(p.message); });
  const started = new Promise<{ readers: Array<{ name: string }> }>((resolve) => conn.onNotification('smartcard/started', resolve));
  conn.onError(() => undefined);
  conn.listen();
  await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: { simulator: { card: 'T=1' }, pcsc: { enabled: false }, usbCcid: { enabled: false } } });
  conn.sendNotification('initialized', {});
  const timer = setTimeout(() => child.kill(), 20_000);
  const s = await started;
  clearTimeout(timer);
  const stop = async () => { conn.dispose(); child.kill(); await exited; };
  return { lines, readers: s.readers.map((r) => r.name), stop };
}

test('the real helper: cold first start, the cache written within seconds, the next start says it used it and works the same', async () => {
  const dir = path.join(tmp, 'helper-cache');
  const first = await forkedHelper(dir);
  assert.ok(first.lines.some((l) => l.includes('reader manager started with 1 reader(s) (code cache: cold)')), first.lines.join('\n'));
  const deadline = Date.now() + 10_000;
  const files = () => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((x) => x.endsWith('.v8cache')) : []);
  while (!files().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await first.stop();
  assert.equal(files().length, 1, 'one cache file written');
  const second = await forkedHelper(dir);
  await second.stop();
  assert.ok(second.lines.some((l) => l.includes('(code cache: used)')), second.lines.join('\n'));
  assert.deepEqual(second.readers, first.readers);
  // A cache that passes our checksum but that V8 made for another script (its sanity check: the
  // source's length; the flags): V8 refuses it, the helper starts all the same and writes it anew.
  // (In a fresh process: within one process V8 may answer a second compile from memory.)
  const f = fixture();
  const made = loadBundle(f.bundle, f.cache);
  made.write();
  const file = path.join(dir, files()[0]);
  assert.equal(writeCache(file, readCache(made.file!)!), true);
  const refused = await forkedHelper(dir);
  assert.ok(refused.lines.some((l) => l.includes('(code cache: rejected)')), refused.lines.join('\n'));
  assert.deepEqual(refused.readers, first.readers);
  const rewritten = Date.now() + 10_000;
  while (readCache(file)?.equals(readCache(made.file!)!) && Date.now() < rewritten) await new Promise((r) => setTimeout(r, 100));
  await refused.stop();
  const again = await forkedHelper(dir);
  await again.stop();
  assert.ok(again.lines.some((l) => l.includes('(code cache: used)')), again.lines.join('\n'));
  const off = await forkedHelper(undefined);
  await off.stop();
  assert.ok(off.lines.some((l) => l.includes('reader manager started with 1 reader(s) (code cache: off)')), off.lines.join('\n'));
});
