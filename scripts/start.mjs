// `npm start`: build, then serve VS Code (code-server) in the browser with this
// extension loaded from the working tree and examples/ as the workspace.
//   PORT=8080 npm start      (falls back to a free port when taken)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, CODE_SERVER_VERSION, codeServerInstalled, ensureCodeServer, formatElapsed, startCodeServer, workbenchUrl } from './code-server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const tty = process.stdout.isTTY;
const paint = (code, text) => (tty ? `\u001b[${code}m${text}\u001b[0m` : text);

function step(msg) { console.log(`${paint(36, '›')} ${msg} ${paint(2, `(+${formatElapsed(Date.now() - started)})`)}`); }

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

step('building the extension, helper and webview (node esbuild.mjs)');
const build = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) { console.error('build failed; fix the errors above and run npm start again'); process.exit(1); }

step(codeServerInstalled()
  ? `code-server ${CODE_SERVER_VERSION} is installed in ${cacheDir()}`
  : `installing Node 24 and code-server ${CODE_SERVER_VERSION} into ${cacheDir()} (first run only, about 3-5 minutes)`);
try {
  await ensureCodeServer();
} catch (err) {
  console.error(`\ncode-server could not be installed: ${err.message}\nFix that and run npm start again; later starts reuse the cache.`);
  process.exit(1);
}

// Fresh editor state per run: settings, open editors and extension state do not leak between runs.
const runDir = path.join(cacheDir(), 'runs', `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
const userDataDir = path.join(runDir, 'user-data');
const extensionsDir = path.join(runDir, 'extensions');
fs.mkdirSync(userDataDir, { recursive: true });
fs.mkdirSync(extensionsDir, { recursive: true });
fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify({
  'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': false,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': 'off', // the current form: `false` is migrated, rewriting this file at start-up
  'telemetry.telemetryLevel': 'off',
}, null, 2));

const wanted = Number(process.env.PORT ?? 8080);
let port = wanted;
if (!(await portFree(wanted))) {
  port = await freePort();
  step(`port ${wanted} is taken; using ${port}`);
}

const workspace = path.join(root, 'examples');
step('starting code-server on 127.0.0.1');
const cs = await startCodeServer({ port, workspace, userDataDir, extensionsDir, quiet: false });
const url = workbenchUrl(cs.base, workspace, root);

step('ready');
console.log(`
  Smart Card Workbench is served at:

    ${paint(1, url)}

  (plain ${cs.base}/ opens VS Code without loading the extension from this folder)
  Open the "Smart Card" view in the activity bar; Ctrl-C stops the server.
`);

let stopping = false;
// Stopped by a signal: exit as a shell expects of it (130 for Ctrl-C, 143 for SIGTERM) once code-server is gone.
let signalStatus = 0;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  signalStatus = 128 + (signal === 'SIGINT' ? 2 : 15);
  console.log(`\n${signal}: stopping code-server (process group ${cs.child.pid})`);
  cs.stop();
  // The process group is gone when the child exits; a second signal forces it.
  setTimeout(() => { try { process.kill(-cs.child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000).unref();
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
cs.child.on('exit', (code, sig) => {
  if (!stopping) console.error(`code-server exited (${code ?? sig})`);
  fs.rmSync(runDir, { recursive: true, force: true });
  process.exit(stopping ? signalStatus : 1);
});
