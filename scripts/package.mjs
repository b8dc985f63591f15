// `npm run package`: a .vsix for this machine; `npm run package -- --all` one for every
// target below; `npm run package -- --target T` (repeatable) the ones named.
// Writes smartcard-workbench-T.vsix in the repository's root.
//
// koffi (PC/SC) and usb (USB CCID) ship their native code as one npm package per
// platform (@koromix/koffi-*, @node-usb/usb-*). Each .vsix carries the platform-free
// JavaScript of koffi and usb plus exactly its own target's two native packages, at the
// versions package-lock.json pins (tarballs checked against the lock's integrity, cached
// outside the repository), and no other platform's binaries. At run time koffi's and
// usb's own loaders pick those packages by process.platform / process.arch (and libc).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { cacheDir } from './code-server.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * VS Code's target names → the native packages each carries. `koffiBinaryDir` is the
 * folder kept inside koffi's package (koffi's Linux packages hold a glibc and a musl
 * build side by side; a package keeps only its own).
 */
export const TARGETS = {
  'win32-x64': { koffi: '@koromix/koffi-win32-x64', koffiBinaryDir: 'win32_x64', usb: '@node-usb/usb-win32-x64-msvc' },
  'win32-arm64': { koffi: '@koromix/koffi-win32-arm64', koffiBinaryDir: 'win32_arm64', usb: '@node-usb/usb-win32-arm64-msvc' },
  'darwin-x64': { koffi: '@koromix/koffi-darwin-x64', koffiBinaryDir: 'darwin_x64', usb: '@node-usb/usb-darwin-x64' },
  'darwin-arm64': { koffi: '@koromix/koffi-darwin-arm64', koffiBinaryDir: 'darwin_arm64', usb: '@node-usb/usb-darwin-arm64' },
  'linux-x64': { koffi: '@koromix/koffi-linux-x64', koffiBinaryDir: 'linux_x64', usb: '@node-usb/usb-linux-x64-gnu' },
  'linux-arm64': { koffi: '@koromix/koffi-linux-arm64', koffiBinaryDir: 'linux_arm64', usb: '@node-usb/usb-linux-arm64-gnu' },
  'alpine-x64': { koffi: '@koromix/koffi-linux-x64', koffiBinaryDir: 'musl_x64', usb: '@node-usb/usb-linux-x64-musl' },
  'alpine-arm64': { koffi: '@koromix/koffi-linux-arm64', koffiBinaryDir: 'musl_arm64', usb: '@node-usb/usb-linux-arm64-musl' },
};

/** Platform-free packages copied from node_modules (usb's one dependency is its types). */
const COMMON_PACKAGES = ['koffi', 'usb', '@types/w3c-web-usb'];

export function hostTarget() {
  const musl = process.platform === 'linux' && !process.report?.getReport().header.glibcVersionRuntime;
  const t = `${musl ? 'alpine' : process.platform}-${process.arch}`;
  return TARGETS[t] ? t : null;
}

export function vsixPath(target) {
  return path.join(root, `smartcard-workbench-${target}.vsix`);
}

/** The version, integrity and URL package-lock.json pins for a package. */
export function locked(name) {
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
  const entry = lock.packages[`node_modules/${name}`];
  if (!entry?.version || !entry.integrity) throw new Error(`package-lock.json pins no version/integrity for ${name}`);
  return { version: entry.version, integrity: entry.integrity };
}

function integrityOf(file) {
  return `sha512-${crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
}

/**
 * The registry tarball of name@version (the lock's), from the cache or fetched once
 * with `npm pack` (which itself prefers npm's own cache), checked against the lock's integrity.
 */
export function lockedTarball(name) {
  const { version, integrity } = locked(name);
  const dir = path.join(cacheDir(), 'npm');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (!fs.existsSync(file) || integrityOf(file) !== integrity) {
    const r = spawnSync('npm', ['pack', `${name}@${version}`, '--pack-destination', dir, '--prefer-offline', '--silent'], { encoding: 'utf8', shell: process.platform === 'win32' });
    if (r.status !== 0) throw new Error(`npm pack ${name}@${version} failed (the npm registry is needed once per package; then ${dir} holds it):\n${r.stderr}`);
  }
  const got = integrityOf(file);
  if (got !== integrity) throw new Error(`${file}: integrity ${got} is not package-lock.json's ${integrity}`);
  return file;
}

/** The files of a .tgz (ustar, as npm writes it) as { path → Buffer }, the `package/` prefix removed. */
export function untar(tgz) {
  const data = zlib.gunzipSync(fs.readFileSync(tgz));
  const files = new Map();
  let longName = null;
  for (let off = 0; off + 512 <= data.length;) {
    const header = data.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start, len) => header.subarray(start, start + len).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = null;
    const body = data.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') { // pax header: only its path matters here
      const m = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (m) longName = m[1];
      continue;
    }
    if (type !== '0' && type !== '7') continue;
    name = name.replace(/^[^/]+\//, '');
    files.set(name, Buffer.from(body));
  }
  return files;
}

function copyTree(from, to) {
  fs.cpSync(from, to, { recursive: true, dereference: true });
}

/** What .vscodeignore lets into the package outside node_modules (its `!` lines). */
function includedSources() {
  return fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8').split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('!') && !l.startsWith('!node_modules/'))
    .map((l) => l.slice(1).replace(/\/\*\*$/, ''));
}

/** Lays out one target's package folder: the built bundles and sources, then node_modules. */
function stage(target, built) {
  const t = TARGETS[target];
  const dir = path.join(root, 'out', 'package', target);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const rel of includedSources()) {
    const from = rel.startsWith('out/') ? path.join(built, path.relative('out', rel)) : path.join(root, rel);
    if (!fs.existsSync(from)) throw new Error(`${rel} is listed in .vscodeignore but missing`);
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    copyTree(from, path.join(dir, rel));
  }
  fs.copyFileSync(path.join(root, '.vscodeignore'), path.join(dir, '.vscodeignore'));
  for (const name of COMMON_PACKAGES) {
    const src = path.join(root, 'node_modules', name);
    const have = JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8')).version;
    const { version } = locked(name);
    if (have !== version) throw new Error(`node_modules/${name} is ${have}, package-lock.json pins ${version}: run npm ci`);
    copyTree(src, path.join(dir, 'node_modules', name));
  }
  for (const name of [t.koffi, t.usb]) {
    for (const [rel, bytes] of untar(lockedTarball(name))) {
      // koffi's Linux packages carry glibc and musl builds: keep this target's only.
      if (name === t.koffi && rel.includes('/') && !rel.startsWith(`${t.koffiBinaryDir}/`)) continue;
      const file = path.join(dir, 'node_modules', name, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, bytes);
    }
  }
  return dir;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Packages targets (staging and vsce, a few at a time: most of vsce's time is spent waiting on npm). */
export async function packageTargets(targets, log = console.log, { quiet = false } = {}) {
  const t0 = Date.now();
  const built = path.join(root, 'out', 'package', 'bundles');
  fs.rmSync(built, { recursive: true, force: true });
  // One production build for every target: the JavaScript is the same in each package.
  run(process.execPath, ['esbuild.mjs', '--production', `--outdir=${built}`], { cwd: root });
  const { createVSIX } = createRequire(import.meta.url)('@vscode/vsce');
  const one = async (target) => {
    const t1 = Date.now();
    const dir = stage(target, built);
    const out = vsixPath(target);
    fs.rmSync(out, { force: true });
    // Relative links stay relative: the README's screenshot is in docs/images (no repository URL to rewrite them to).
    await createVSIX({ cwd: dir, target, packagePath: out, rewriteRelativeLinks: false, allowMissingRepository: true });
    if (!process.env.SMARTCARD_KEEP_STAGING) fs.rmSync(dir, { recursive: true, force: true });
    const result = { target, file: out, size: fs.statSync(out).size, ms: Date.now() - t1 };
    log(`${path.basename(out).padEnd(40)} ${(result.size / 1024 / 1024).toFixed(2).padStart(6)} MB  ${(result.ms / 1000).toFixed(1)} s`);
    return result;
  };
  const results = [];
  const queue = [...targets];
  // vsce prints each package's file tree on the console; a test asks for quiet.
  const saved = { log: console.log, info: console.info, warn: console.warn };
  if (quiet) console.log = console.info = console.warn = () => {};
  try {
    await Promise.all(Array.from({ length: Math.min(3, queue.length) }, async () => {
      while (queue.length) results.push(await one(queue.shift()));
    }));
  } finally {
    Object.assign(console, saved);
  }
  fs.rmSync(built, { recursive: true, force: true });
  log(`${results.length} package(s) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return results.sort((a, b) => targets.indexOf(a.target) - targets.indexOf(b.target));
}

function parseArgs(argv) {
  const targets = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--all') targets.push(...Object.keys(TARGETS));
    else if (argv[i] === '--target') targets.push(argv[++i]);
    else if (argv[i].startsWith('--target=')) targets.push(argv[i].slice('--target='.length));
    else throw new Error(`unknown argument ${argv[i]} (use --all or --target T)`);
  }
  if (!targets.length) {
    const host = hostTarget();
    if (!host) throw new Error(`no package target for ${process.platform}-${process.arch}; use --target T`);
    targets.push(host);
  }
  const unknown = targets.filter((t) => !TARGETS[t]);
  if (unknown.length) throw new Error(`unknown target ${unknown.join(', ')}; targets: ${Object.keys(TARGETS).join(', ')}`);
  return [...new Set(targets)];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    await packageTargets(parseArgs(process.argv.slice(2)));
  } catch (err) {
    console.error(`npm run package: ${err.message}`);
    process.exit(1);
  }
}
