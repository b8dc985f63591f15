// `npm run package -- --all`: one .vsix per VS Code target, each with exactly its own
// koffi and usb native binaries (the versions package-lock.json pins, byte for byte the
// registry's), the same JavaScript in every one, and koffi's and usb's own loaders
// picking that target's binaries when the helper runs there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS, hostTarget, locked, lockedTarball, packageTargets, untar, vsixPath } from '../../scripts/package.mjs';
import { describeBinary, unzip } from './archive.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const targets = Object.keys(TARGETS);

/** What each target's two binaries must be. */
const EXPECTED = {
  'win32-x64': { format: 'PE32+', machine: 'x86-64', kind: 'DLL' },
  'win32-arm64': { format: 'PE32+', machine: 'ARM64', kind: 'DLL' },
  'darwin-x64': { format: 'Mach-O 64', machine: 'x86_64' },
  'darwin-arm64': { format: 'Mach-O 64', machine: 'arm64' },
  'linux-x64': { format: 'ELF64', machine: 'x86-64', kind: 'shared object', libc: 'glibc' },
  'linux-arm64': { format: 'ELF64', machine: 'AArch64', kind: 'shared object', libc: 'glibc' },
  'alpine-x64': { format: 'ELF64', machine: 'x86-64', kind: 'shared object', libc: 'musl' },
  'alpine-arm64': { format: 'ELF64', machine: 'AArch64', kind: 'shared object', libc: 'musl' },
};
/** process.platform / process.arch / libc on a machine of each target. */
const RUNS_ON = {
  'win32-x64': ['win32', 'x64', ''], 'win32-arm64': ['win32', 'arm64', ''],
  'darwin-x64': ['darwin', 'x64', ''], 'darwin-arm64': ['darwin', 'arm64', ''],
  'linux-x64': ['linux', 'x64', 'glibc'], 'linux-arm64': ['linux', 'arm64', 'glibc'],
  'alpine-x64': ['linux', 'x64', 'musl'], 'alpine-arm64': ['linux', 'arm64', 'musl'],
};
/** A package holding a second platform's binaries would pass this (each pair is ~1 MB compressed). */
const MAX_VSIX_BYTES = 2 * 1024 * 1024;

const NATIVE_DIRS = /^extension\/node_modules\/(@koromix|@node-usb)\//;
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

let results;
const packages = new Map(); // target → Map(name → bytes)
let unpacked;

before(async () => {
  assert.deepEqual(Object.keys(EXPECTED).sort(), [...targets].sort(), 'every target has its expectation');
  results = await packageTargets(targets, () => {}, { quiet: true });
  for (const t of targets) packages.set(t, unzip(fs.readFileSync(vsixPath(t))));
  unpacked = fs.mkdtempSync(path.join(os.tmpdir(), 'scw-vsix-'));
}, { timeout: 600_000 });

after(() => {
  for (const t of targets) fs.rmSync(vsixPath(t), { force: true });
  if (unpacked) fs.rmSync(unpacked, { recursive: true, force: true });
});

test('--all writes one package per target, each marked with its target and small', (t) => {
  assert.deepEqual(results.map((r) => r.target), targets);
  const table = [];
  for (const r of results) {
    const manifest = packages.get(r.target).get('extension.vsixmanifest').toString('utf8');
    assert.match(manifest, new RegExp(`TargetPlatform="${r.target}"`), `${r.target}: the manifest names its target`);
    assert.ok(r.size < MAX_VSIX_BYTES, `${r.target}: ${r.size} bytes, over ${MAX_VSIX_BYTES}`);
    table.push(`${path.basename(r.file).padEnd(40)} ${(r.size / 1024 / 1024).toFixed(2)} MB`);
  }
  t.diagnostic(`sizes:\n${table.join('\n')}`);
});

for (const target of targets) {
  test(`${target}: exactly its own koffi and usb binaries, ${EXPECTED[target].format} ${EXPECTED[target].machine}${EXPECTED[target].libc ? ` ${EXPECTED[target].libc}` : ''}, at the locked versions`, () => {
    const files = packages.get(target);
    const { koffi, usb, koffiBinaryDir } = TARGETS[target];
    const natives = [...files.keys()].filter((n) => n.endsWith('.node')).sort();
    assert.equal(natives.length, 2, `${target}: two native binaries, found ${natives.join(', ')}`);
    assert.ok(natives.some((n) => n.startsWith(`extension/node_modules/${koffi}/${koffiBinaryDir}/`)), `${target}: koffi's ${koffiBinaryDir} binary in ${natives}`);
    assert.ok(natives.some((n) => n.startsWith(`extension/node_modules/${usb}/`)), `${target}: ${usb}'s binary in ${natives}`);
    const nativePackages = new Set([...files.keys()].filter((n) => NATIVE_DIRS.test(n)).map((n) => n.split('/').slice(2, 4).join('/')));
    assert.deepEqual([...nativePackages].sort(), [koffi, usb].sort(), `${target}: no other platform's package`);

    for (const n of natives) {
      const d = describeBinary(files.get(n));
      for (const [k, v] of Object.entries(EXPECTED[target])) assert.equal(d[k], v, `${target}: ${n} ${k} is ${d[k]}${d.needed ? ` (needs ${d.needed.join(', ')})` : ''}`);
    }

    // Pinned: the lock's version, every file byte for byte the integrity-checked registry tarball's.
    for (const name of [koffi, usb]) {
      const shipped = JSON.parse(files.get(`extension/node_modules/${name}/package.json`).toString('utf8')).version;
      assert.equal(shipped, locked(name).version, `${name}: package-lock.json's version`);
      const tarball = untar(lockedTarball(name));
      for (const [n, bytes] of files) {
        if (!n.startsWith(`extension/node_modules/${name}/`)) continue;
        const rel = n.slice(`extension/node_modules/${name}/`.length);
        assert.ok(tarball.has(rel), `${name}/${rel} comes from the registry's tarball`);
        assert.equal(sha(bytes), sha(tarball.get(rel)), `${name}/${rel} is the registry's bytes`);
      }
    }
  });
}

/** Names whose contents differ between two packages, or that only one of them has. */
function differences(a, b) {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((n) => !a.has(n) || !b.has(n) || sha(a.get(n)) !== sha(b.get(n))).sort();
}

test('the JavaScript is identical in every package; only the per-target native packages differ', () => {
  const js = (t) => new Map([...packages.get(t)].filter(([n]) => /\.(c|m)?js$/.test(n) && !NATIVE_DIRS.test(n)));
  const first = js(targets[0]);
  for (const n of ['extension/out/extension.js', 'extension/out/server.js', 'extension/out/helper.js', 'extension/out/cli.js', 'extension/out/webview.js', 'extension/node_modules/koffi/index.cjs', 'extension/node_modules/usb/dist/index.js']) {
    assert.ok(first.has(n), `${n} is in the package`);
  }
  for (const t of targets.slice(1)) assert.deepEqual(differences(js(t), first), [], `JavaScript of ${t} vs ${targets[0]}`);
  // The rest too, outside the native folders; the manifest and the content-type list name the target and its file types.
  const rest = (t) => new Map([...packages.get(t)].filter(([n]) => !NATIVE_DIRS.test(n) && n !== 'extension.vsixmanifest' && n !== '[Content_Types].xml'));
  for (const t of targets.slice(1)) assert.deepEqual(differences(rest(t), rest(targets[0])), [], `${t} vs ${targets[0]}`);
});

function unpack(target) {
  const dir = path.join(unpacked, target);
  for (const [n, bytes] of packages.get(target)) {
    if (!n.startsWith('extension/')) continue;
    const file = path.join(dir, n);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, bytes);
  }
  return path.join(dir, 'extension');
}

function loadAs(dir, [platform, arch, libc]) {
  const r = spawnSync(process.execPath, [path.join(here, 'load-as.cjs'), dir, platform, arch, libc], { encoding: 'utf8' });
  return { ok: r.status === 0, picked: r.status === 0 ? JSON.parse(r.stdout) : null, stderr: r.stderr };
}

for (const target of targets) {
  test(`${target}: on its platform, koffi's and usb's loaders pick the package's two binaries`, () => {
    const dir = unpack(target);
    const r = loadAs(dir, RUNS_ON[target]);
    assert.ok(r.ok, r.stderr);
    const natives = [...packages.get(target).keys()].filter((n) => n.endsWith('.node')).map((n) => n.slice('extension/'.length)).sort();
    assert.deepEqual([...r.picked].sort(), natives);
  });
}

test('a package run on another platform finds no binary there (the loaders go by platform, not by what is present)', () => {
  const dir = unpack('linux-x64');
  const r = loadAs(dir, RUNS_ON['win32-x64']);
  assert.ok(!r.ok, `linux-x64's package loaded as win32-x64: ${JSON.stringify(r.picked)}`);
});

test(`this machine's package (${hostTarget()}) really loads koffi and usb`, { skip: !TARGETS[hostTarget()] && `no package for ${process.platform}-${process.arch}` }, () => {
  const dir = unpack(hostTarget());
  const script = `
    const r = require('module').createRequire(${JSON.stringify(path.join(dir, 'out', 'server.js'))});
    const koffi = r('koffi'); const usb = r('usb');
    process.stdout.write(JSON.stringify({ int: koffi.sizeof('int'), pointer: koffi.sizeof('void *'), webusb: typeof usb.webusb.getDevices, koffiFile: r.resolve('koffi') }));`;
  const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const got = JSON.parse(out.stdout);
  assert.deepEqual({ int: got.int, pointer: got.pointer, webusb: got.webusb }, { int: 4, pointer: 8, webusb: 'function' });
  assert.ok(got.koffiFile.startsWith(dir), `koffi came from the package: ${got.koffiFile}`);
});

test(`this machine's package (${hostTarget()}) starts its helper: server.js runs helper.js with the code cache`, { skip: !TARGETS[hostTarget()] && `no package for ${process.platform}-${process.arch}` }, async () => {
  const dir = unpack(hostTarget());
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-package-cache-'));
  const env = { ...process.env, SMARTCARD_HELPER_CODE_CACHE: cache };
  delete env.PCSCLITE_CSOCK_NAME;
  // JSON-RPC over Node's IPC channel, as vscode-languageclient speaks it (one message object per send).
  const child = fork(path.join(dir, 'out', 'server.js'), ['--node-ipc'], { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.on('data', (b) => { stderr += b; });
  const log = [];
  try {
    const started = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no smartcard/started within 20 s; stderr: ${stderr}`)), 20_000);
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the helper exited (${code}): ${stderr}`)); });
      child.on('message', (m) => {
        if (m.id === 1) child.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
        if (m.method === 'window/logMessage') log.push(m.params.message);
        if (m.method === 'smartcard/started') { clearTimeout(timer); resolve(m.params); }
      });
      child.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: { pcsc: { enabled: false }, usbCcid: { enabled: false } } } });
    });
    assert.deepEqual(started.readers.map((r) => r.name), ['Workbench Simulator 00 00']);
    assert.ok(log.some((l) => l.includes('(code cache: cold)')), log.join('\n'));
  } finally {
    child.kill();
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
