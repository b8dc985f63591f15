// Processes the benchmarks start: each in its own process group, stopped by
// its PID (SIGTERM, then SIGKILL), every one of them also when the run fails.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const running = new Map(); // pid → { child, what }

/** `stdoutFile`: stdout goes to that file instead of a pipe this process must drain (for long traces). */
export function start(what, cmd, args, { env, stdin = 'ignore', ipc = false, stdoutFile } = {}) {
  const outFd = stdoutFile ? fs.openSync(stdoutFile, 'w') : 'pipe';
  const child = spawn(cmd, args, { env: env ?? process.env, detached: true, stdio: [stdin, outFd, 'pipe', ...(ipc ? ['ipc'] : [])] });
  if (stdoutFile) fs.closeSync(outFd);
  if (child.pid === undefined) throw new Error(`bench: could not start ${cmd}`);
  running.set(child.pid, { child, what });
  let stdout = '';
  let stderr = '';
  const lineWaiters = [];
  // Bounded, but large enough for a 10,000-APDU trace with its result line whole.
  const keep = (s, more) => (s.length > 64_000_000 ? s.slice(-32_000_000) : s) + more;
  const check = () => {
    for (const w of [...lineWaiters]) {
      const hit = w.re.exec(w.stream === 'out' ? stdout : stderr);
      if (hit) { lineWaiters.splice(lineWaiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(hit); }
    }
  };
  child.stdout?.on('data', (b) => { stdout = keep(stdout, b.toString()); check(); });
  child.stderr.on('data', (b) => { stderr = keep(stderr, b.toString()); check(); });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child.pid);
    for (const w of lineWaiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`${what} exited (${code ?? signal}) before printing ${w.re}: ${stderr.slice(-500)}`)); }
    resolve({ code, signal });
  }));
  return {
    pid: child.pid,
    child,
    exited,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    /** Resolves with the match once stdout (or stderr) matches `re`; rejects after `ms`. */
    waitFor(re, ms = 10_000, stream = 'out') {
      return new Promise((resolve, reject) => {
        const w = { re, stream, resolve, reject, timer: setTimeout(() => { lineWaiters.splice(lineWaiters.indexOf(w), 1); reject(new Error(`${what}: no ${re} within ${ms} ms; stderr: ${stderr.slice(-500)}`)); }, ms) };
        lineWaiters.push(w);
        check();
      });
    },
    stop: () => stop(child.pid),
  };
}

/** Stops one process group we started: SIGTERM, SIGKILL after 2 s. */
export async function stop(pid) {
  const entry = running.get(pid);
  if (!entry) return;
  const gone = new Promise((r) => entry.child.once('exit', r));
  try { process.kill(-pid, 'SIGTERM'); } catch { /* already gone */ }
  const t = setTimeout(() => { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }, 2000);
  await Promise.race([gone, new Promise((r) => setTimeout(r, 4000))]);
  clearTimeout(t);
  running.delete(pid);
}

export async function stopAll() {
  await Promise.all([...running.keys()].map(stop));
}

/** Last-resort clean-up when the run is interrupted: kill what is left, by PID. */
export function stopAllNow() {
  for (const pid of running.keys()) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  running.clear();
}

/** Runs a command to its end (killed after `timeoutMs`) and times it. */
export async function run(what, cmd, args, { env, timeoutMs = 60_000, stdoutFile } = {}) {
  const t0 = performance.now();
  const p = start(what, cmd, args, { env, stdoutFile });
  const timer = setTimeout(() => { void p.stop(); }, timeoutMs);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${what} failed (${code ?? signal}${signal === 'SIGTERM' ? `, timed out after ${timeoutMs} ms` : ''}): ${p.stderr.slice(-800) || p.stdout.slice(-800)}`);
  return { stdout: stdoutFile ? fs.readFileSync(stdoutFile, 'utf8') : p.stdout, stderr: p.stderr, wallMs };
}

export function canConnect(socketPath) {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Clock ticks per second of /proc's CPU times. */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** utime + stime of a process (all its threads), in µs. */
export function cpuOf(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1e6;
}

/** Stops a forked helper as VS Code does: shutdown, then exit (each bounded), then by its PID if it did not go; then its card. */
export async function stopHelper(conn, p, card) {
  await Promise.race([conn.sendRequest('shutdown').then(() => conn.sendNotification('exit')), sleep(3000)]).catch(() => undefined);
  await Promise.race([p.exited, sleep(3000)]);
  conn.dispose();
  await p.stop();
  await card?.stop();
}
