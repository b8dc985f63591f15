#!/usr/bin/env node
// Builds pcsc-lite's client library, testpcsc and pcscd from the unmodified source
// trees in ../shared/data/pcsc-lite (see its SOURCE.md), out of tree, once per
// version, into ~/.cache/smartcard-workbench/pcsclite-VERSION. These are test peers:
// any libpcsclite program run with LD_LIBRARY_PATH=<that folder> speaks that
// version's client/daemon protocol (2.3.3: 4:5, 2.5.1: 4:6).
//   node scripts/pcsclite.mjs [2.3.3] [2.5.1]     build (default: both), print the folders
// As a library: PCSCLITE_VERSIONS, pcscliteSource(version), buildPcsclite(version).
// Needs Debian's meson, ninja-build, flex, pkg-config and gcc (npm run setup:system).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = import.meta.url ? path.dirname(fileURLToPath(import.meta.url)) : path.resolve('scripts');
/** Tree → the protocol its client speaks (winscard_msg.h PROTOCOL_VERSION_MAJOR:MINOR). */
export const PCSCLITE_VERSIONS = { '2.3.3': '4:5', '2.5.1': '4:6' };
export const CACHE_ROOT = process.env.PCSCLITE_CACHE ?? path.join(os.homedir(), '.cache', 'smartcard-workbench');

/** The source tree of one version: PCSCLITE_SOURCES, else ../shared/data/pcsc-lite next to the repository. */
export function pcscliteSource(version) {
  const candidates = [
    process.env.PCSCLITE_SOURCES && path.join(process.env.PCSCLITE_SOURCES, version),
    path.resolve(here, '..', '..', 'shared', 'data', 'pcsc-lite', version),
    path.join('/work/shared/data/pcsc-lite', version),
  ].filter(Boolean);
  const found = candidates.find((c) => fs.existsSync(path.join(c, 'meson.build')));
  if (!found) throw new Error(`pcsclite: no source tree for ${version} (looked in ${candidates.join(', ')}); set PCSCLITE_SOURCES`);
  return found;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) throw new Error(`pcsclite: ${cmd} could not run (${r.error.message}); install it with npm run setup:system`);
  if (r.status !== 0) throw new Error(`pcsclite: ${cmd} ${args.join(' ')} failed (${r.status}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  return r;
}

/**
 * Builds one version (seconds; a no-op when the folder is complete) and returns
 * { dir, libdir, testpcsc, pcscd, protocol }. A half-built folder from an
 * interrupted run is rebuilt from nothing.
 */
export function buildPcsclite(version) {
  return build(version, `pcsclite-${version}`, ['-Dserial=false']);
}

/**
 * The same version's pcscd as a reference daemon for the tests: with reader.conf
 * support (serial=true, for vpcd) and its socket in a private folder instead of
 * /run/pcscd, so it never meets the system's pcscd. Returns the build's fields plus
 * `socket` (pcscd's PCSCLITE_CSOCK_NAME is fixed at build time from ipcdir).
 */
export function buildPcscliteDaemon(version) {
  const dir = path.join(CACHE_ROOT, `pcsclite-${version}-daemon`);
  const ipcdir = path.join(dir, 'run');
  const b = build(version, `pcsclite-${version}-daemon`, ['-Dserial=true', `-Dipcdir=${ipcdir}`]);
  fs.mkdirSync(ipcdir, { recursive: true });
  return { ...b, socket: path.join(ipcdir, 'pcscd.comm') };
}

function build(version, name, options) {
  if (!(version in PCSCLITE_VERSIONS)) throw new Error(`pcsclite: unknown version ${version} (known: ${Object.keys(PCSCLITE_VERSIONS).join(', ')})`);
  const dir = path.join(CACHE_ROOT, name);
  const result = {
    dir,
    libdir: dir,
    testpcsc: path.join(dir, 'testpcsc'),
    pcscd: path.join(dir, 'pcscd'),
    protocol: PCSCLITE_VERSIONS[version],
  };
  const done = path.join(dir, '.built');
  if (fs.existsSync(done) && fs.existsSync(path.join(dir, 'libpcsclite.so.1'))) return result;
  const src = pcscliteSource(version);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  // Upstream's meson_options.txt is a git symlink to meson.options; the stored tree
  // keeps it as a 13-byte text file, and Debian 12's meson 1.0 reads only
  // meson_options.txt. Build from a copy (1.5 MB) whose meson_options.txt is the real file.
  const copy = path.join(CACHE_ROOT, `pcsclite-${version}-src`);
  fs.rmSync(copy, { recursive: true, force: true });
  fs.cpSync(src, copy, { recursive: true });
  run('chmod', ['-R', 'u+w', copy]); // the shared tree is read-only; the copy must be removable next time
  const opts = path.join(copy, 'meson_options.txt');
  if (fs.readFileSync(opts, 'utf8').trim() === 'meson.options') {
    fs.rmSync(opts, { force: true });
    fs.copyFileSync(path.join(copy, 'meson.options'), opts);
  }
  run('meson', ['setup', dir, copy, '-Dlibsystemd=false', '-Dlibudev=false', '-Dpolkit=false', '-Dusb=false', ...options]);
  run('ninja', ['-C', dir]);
  for (const f of ['libpcsclite.so.1', 'testpcsc', 'pcscd']) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`pcsclite: ${version} built but ${f} is missing in ${dir}`);
  }
  fs.writeFileSync(done, `${new Date().toISOString()} from ${src}\n`);
  return result;
}

const isMain = import.meta.url && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  for (const v of wanted.length ? wanted : Object.keys(PCSCLITE_VERSIONS)) {
    const t0 = Date.now();
    const b = buildPcsclite(v);
    console.log(`pcsc-lite ${v} (protocol ${b.protocol}): ${b.dir} (${Date.now() - t0} ms)`);
  }
}
