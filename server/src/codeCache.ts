// How the helper's entry (boot.ts, out/server.js) runs the helper's bundle (out/helper.js, from main.ts) with
// V8's code cache, so that a start after the first one does not compile the bundle again. About a
// third of the helper's start is V8 compiling the ~0.5-0.9 MB bundle and the functions its start
// calls (docs/benchmarks.md, "Ninth pass"); with the cache that is a read and a check.
//
// Where: the folder the extension names in SMARTCARD_HELPER_CODE_CACHE (its global storage, which
// only the user can write); without it (the CLI, tests) nothing is cached. The folder is used only
// when it is a real folder of this user that nobody else can read or write (on POSIX), so no
// other account and no workspace can hand the helper code to run.
// What: one file per bundle, Node, architecture and V8 options: its name is a hash of all four, so
// a changed bundle never meets an old cache (V8 itself only compares the source's length). The
// file carries a SHA-256 of its payload, checked before V8 sees it: a torn or damaged file is
// refused, never given to the deserializer. Written once, 2 s after the start (by then it holds
// the functions the start compiled), through a temporary file and a rename; other versions' files
// beyond the newest three, and temporary files a killed helper left, are removed then.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { CODE_CACHE_ENV } from './protocol';
/** Where the helper's bundle leaves how its start went (main.ts logs it). */
export const CODE_CACHE_STATE = Symbol.for('smartcard-workbench.codeCache');
/** How long after the start the cache is written (the functions compiled by then are in it). */
export const CODE_CACHE_WRITE_MS = 2_000;
/** No cache file larger than this is read or written (the helper's is ~0.4-0.7 MB). */
const MAX_CACHE_BYTES = 64 * 1024 * 1024;
const MAGIC = Buffer.from('SCWCC1\n\0', 'latin1');
const HEADER = MAGIC.length + 32;
const PREFIX = 'helper-';
const SUFFIX = '.v8cache';
/** Cache files kept in the folder, this one included. */
const KEEP = 3;

/**
 * off: no folder named; unsafe: the folder is not this user's alone; cold: no cache for this
 * bundle yet; used: V8 took the cache; rejected: a file was there but failed our check or V8's.
 */
export type CodeCacheState = 'off' | 'unsafe' | 'cold' | 'used' | 'rejected';

export interface LoadResult {
  state: CodeCacheState;
  /** The cache file's path (when a folder is used). */
  file?: string;
  /** Writes the cache now if this start did not use one (what the timer does); true when written. */
  write(): boolean;
}

/** True when `dir` is (made) a real folder of this user, closed to others (POSIX). */
export function privateFolder(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return false;
    if (process.platform === 'win32') return true; // the user's profile; ACLs, not modes
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) return false;
    if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700); // ours: close it
    return (fs.lstatSync(dir).mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** The cache file's name for this bundle text (its UTF-8 bytes) under this Node, architecture and V8 options. */
export function cacheName(source: string | Buffer): string {
  const h = crypto.createHash('sha256');
  h.update(source);
  h.update(`\0${process.version}\0${process.arch}\0${process.execArgv.join(' ')}`);
  return `${PREFIX}${h.digest('hex').slice(0, 40)}${SUFFIX}`;
}

/** The payload of a cache file, or undefined when it is missing, not a plain file of ours, too big or damaged. */
export function readCache(file: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size < HEADER || st.size > MAX_CACHE_BYTES) return undefined;
    if (process.platform !== 'win32' && typeof process.getuid === 'function' && st.uid !== process.getuid()) return undefined;
    const all = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < st.size) {
      const n = fs.readSync(fd, all, got, st.size - got, got);
      if (n === 0) return undefined;
      got += n;
    }
    if (!all.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const payload = all.subarray(HEADER);
    const sum = crypto.createHash('sha256').update(payload).digest();
    return sum.equals(all.subarray(MAGIC.length, HEADER)) ? payload : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `payload` as `file` (temporary file, then rename); removes other versions beyond the newest KEEP and orphaned temporary files. */
export function writeCache(file: string, payload: Buffer): boolean {
  if (payload.length + HEADER > MAX_CACHE_BYTES) return false;
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
  try {
    const sum = crypto.createHash('sha256').update(payload).digest();
    fs.writeFileSync(tmp, Buffer.concat([MAGIC, sum, payload]), { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch {
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing to remove */ }
    return false;
  }
  try {
    // Other versions' files: the newest KEEP stay (a debug helper and a normal one, or two installed versions in two
    // windows, each keep theirs instead of deleting the other's), older ones go; so do temporary files a helper killed
    // mid-write left (review 11, B1/B2).
    const now = Date.now();
    const caches: Array<{ name: string; mtime: number }> = [];
    for (const n of fs.readdirSync(dir)) {
      const p = path.join(dir, n);
      if (n.startsWith(`.${PREFIX}`) && n !== path.basename(tmp)) {
        if (now - fs.lstatSync(p).mtimeMs > 60_000) fs.rmSync(p, { force: true });
      } else if (n !== path.basename(file) && n.startsWith(PREFIX) && n.endsWith(SUFFIX)) {
        caches.push({ name: n, mtime: fs.lstatSync(p).mtimeMs });
      }
    }
    caches.sort((a, b) => b.mtime - a.mtime);
    for (const c of caches.slice(KEEP - 1)) fs.rmSync(path.join(dir, c.name), { force: true });
  } catch { /* an old file left is harmless */ }
  return true;
}

/**
 * Runs the CommonJS file `bundle` as a module (its own `require`, `module`, `__filename`), with the
 * code cache of `cacheDir` when that folder is safe. The caller arranges when `write` runs.
 */
export function loadBundle(bundle: string, cacheDir: string | undefined): LoadResult {
  const raw = fs.readFileSync(bundle);
  const source = raw.toString('utf8');
  let state: CodeCacheState = 'off';
  let file: string | undefined;
  let cachedData: Buffer | undefined;
  if (cacheDir) {
    if (!privateFolder(cacheDir)) state = 'unsafe';
    else {
      file = path.join(cacheDir, cacheName(raw)); // the bytes: hashing them is faster than the text
      cachedData = readCache(file);
      state = cachedData ? 'used' : fs.existsSync(file) ? 'rejected' : 'cold';
    }
  }
  const script = new vm.Script(Module.wrap(source), { filename: bundle, ...(cachedData ? { cachedData } : {}) });
  if (cachedData && script.cachedDataRejected) state = 'rejected';
  const mod = new Module(bundle, require.main ?? undefined);
  mod.filename = bundle;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(bundle));
  const req = Module.createRequire(bundle);
  (globalThis as Record<symbol, unknown>)[CODE_CACHE_STATE] = state;
  const fn = script.runInThisContext() as (exports: unknown, require: NodeRequire, module: Module, filename: string, dirname: string) => void;
  fn.call(mod.exports, mod.exports, req, mod, bundle, path.dirname(bundle));
  mod.loaded = true;
  let written = false;
  return {
    state, ...(file ? { file } : {}),
    write: () => {
      if (written || !file || state === 'used' || state === 'unsafe') return false;
      written = true;
      return writeCache(file, script.createCachedData());
    },
  };
}

/** The helper's start: out/helper.js beside this file (out/helper.cjs for the bench's .cjs bundles). */
export function boot(): void {
  const dir = process.env[CODE_CACHE_ENV];
  delete process.env[CODE_CACHE_ENV]; // no child process needs it
  const bundle = path.join(__dirname, `helper${path.extname(__filename)}`);
  const loaded = loadBundle(bundle, dir || undefined);
  if (loaded.file && loaded.state !== 'used') setTimeout(() => loaded.write(), CODE_CACHE_WRITE_MS).unref();
}
