// The `scard` command's contract, spawned as users run it (bin/scard.js → out/cli.js):
// unknown options and bad values exit 2 with the usage line; help exits 0; invalid
// ATRs exit non-zero; an interrupted run says so and exits 130 (SIGINT) / 143
// (SIGTERM), never "passed"; an ambiguous --reader glob is refused with the matches.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { freePort } from '../support/net';

const SCARD = path.resolve('bin/scard.js');
let dir: string;
let hello: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-cli-'));
  hello = path.join(dir, 'hello.apdu');
  fs.writeFileSync(hello, '00 84 00 00 08 => * 90 00\n');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function scard(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCARD, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, SCARD_PIN: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const USAGE = /^usage:$/m;

test('unknown options and options of another command exit 2 with the usage line', () => {
  for (const args of [
    ['run', 'HELLO', '--raeder', 'foo'],
    ['--raeder', 'foo', 'run', 'HELLO'],
    ['readers', '-x'],
    ['atr', '3B00', '--watch'],
    ['run', 'HELLO', '--json=yes'],
    ['readers', '--reader'],
  ]) {
    const r = scard(...args.map((a) => (a === 'HELLO' ? hello : a)));
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, USAGE, args.join(' '));
    assert.match(r.stderr, /^scard: /m, args.join(' '));
    assert.doesNotMatch(r.stdout, /passed/, args.join(' '));
  }
  assert.match(scard('run', hello, '--raeder', 'foo').stderr, /unknown option '--raeder'/);
  assert.match(scard('atr', '3B00', '--watch').stderr, /'--watch' is not an option of 'scard atr'/);
  assert.match(scard('run', hello, '--json=yes').stderr, /'--json' takes no value/);
});

test('help: --help, -h and help exit 0 with the usage on stdout; no command exits 2', () => {
  for (const args of [['--help'], ['-h'], ['help'], ['run', '--help'], ['atr', '-h']]) {
    const r = scard(...args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, USAGE, args.join(' '));
  }
  const none = scard();
  assert.equal(none.status, 2);
  assert.match(none.stderr, USAGE);
});

test('version: --version, -V and version print the package version on stdout and exit 0; extra words exit 2', () => {
  const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };
  for (const args of [['--version'], ['-V'], ['version']]) {
    const r = scard(...args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, `scard ${pkg.version} (Smart Card Workbench; Node.js ${process.version}, ${process.platform}-${process.arch})\n`, args.join(' '));
    assert.equal(r.stderr, '', args.join(' '));
  }
  const extra = scard('version', 'now');
  assert.equal(extra.status, 2);
  assert.match(extra.stderr, /scard version takes no arguments/);
  assert.match(extra.stderr, USAGE);
  const mixed = scard('run', hello, '--version');
  assert.equal(mixed.status, 2, 'a version flag is not an option of run');
  assert.match(mixed.stderr, /'--version' is not an option of 'scard run'/);
});

test('bad values exit 2 with the usage line: --card, --simulator-pin (4–12 digits), --vpcd, --wait-card', () => {
  for (const args of [
    ['--card', 'T=2'],
    ['--simulator-pin', 'abc'],
    ['--simulator-pin', '123'],
    ['--simulator-pin', '1234567890123'],
    ['--simulator-pin', '12 34'],
    ['--vpcd', 'x'],
    ['--wait-card', '-5'],
  ]) {
    const r = scard('run', hello, ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, USAGE, args.join(' '));
    assert.doesNotMatch(r.stdout, /passed/, args.join(' '));
  }
  assert.match(scard('run', hello, '--simulator-pin', 'abc').stderr, /4 to 12 digits/);
  assert.doesNotMatch(scard('run', hello, '--simulator-pin', 'abc').stderr, /abc/, 'the rejected PIN is not echoed');
  for (const pin of ['1234', '123456789012']) assert.equal(scard('run', hello, '--simulator-pin', pin).status, 0, pin);
});

test('scard atr: an invalid ATR (TS 00, wrong TCK, truncated) exits 1 saying why; over 33 bytes exits 2', () => {
  const good = scard('atr', '3B8B8131FE458031E0F7F0574244454D4FC0');
  assert.equal(good.status, 0, good.stderr);
  for (const [atr, why] of [
    ['00', /TS is 00/],
    ['3B8B8131FE458031E0F7F0574244454D4FC1', /TCK is C1/],
    ['3B0212', /truncated/],
  ] as const) {
    for (const json of [false, true]) {
      const r = scard('atr', atr, ...(json ? ['--json'] : []));
      assert.equal(r.status, 1, `${atr}: ${r.stderr}`);
      assert.match(r.stderr, /^scard: the ATR is not valid: /m, atr);
      assert.match(r.stderr, why, atr);
      if (json) assert.ok(JSON.parse(r.stdout).errors.length > 0, 'the JSON still carries the decode and its errors');
    }
  }
  const long = scard('atr', '3B' + '00'.repeat(33));
  assert.equal(long.status, 2, long.stderr);
  assert.match(long.stderr, /at most 33 bytes.*34/);
  assert.match(long.stderr, USAGE);
});

test('a failure names the line once: file:12: expected …, not file:12: line 12: …', () => {
  const r = scard('run', path.resolve('examples/fails-on-purpose.apdu'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /fails-on-purpose\.apdu:12: expected/);
  assert.doesNotMatch(r.stderr, /:12: line 12/);
});

/** Starts a long run, sends `signal` after its first trace line, and returns how it ended. */
async function interrupted(script: string, signal: NodeJS.Signals, json = false): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const file = path.join(dir, `long-${signal}-${json}.apdu`);
  fs.writeFileSync(file, script);
  const child = spawn(process.execPath, [SCARD, 'run', file, ...(json ? ['--json'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let sent = false;
  child.stderr!.on('data', (d) => { stderr += d; });
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    stdout += l + '\n';
    if (!sent && /> |"exchange"/.test(l)) { sent = true; child.kill(signal); }
  });
  const deadline = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, sig] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(deadline);
  assert.ok(sent, `the run printed a trace line before ending: ${stdout.slice(0, 300)} ${stderr}`);
  return { code, signal: sig, stdout, stderr };
}

test('SIGINT during a long run: "interrupted", exit 130, never "passed"', async () => {
  const r = await interrupted('repeat 100000\n00 84 00 00 08\nend\n', 'SIGINT');
  assert.equal(r.code, 130, `${r.signal} ${r.stderr}`);
  assert.match(r.stderr, /interrupted \(SIGINT\)/);
  assert.doesNotMatch(r.stdout + r.stderr, /passed/);
});

test('SIGTERM during a delay: "interrupted", exit 143, never "passed"; --json ends with an interrupted result', async () => {
  const r = await interrupted('00 84 00 00 08\ndelay 60000\n00 84 00 00 08\n', 'SIGTERM');
  assert.equal(r.code, 143, `${r.signal} ${r.stderr}`);
  assert.match(r.stderr, /interrupted \(SIGTERM\)/);
  assert.doesNotMatch(r.stdout + r.stderr, /passed/);
  const j = await interrupted('00 84 00 00 08\ndelay 60000\n', 'SIGTERM', true);
  assert.equal(j.code, 143, j.stderr);
  const result = JSON.parse(j.stdout.trim().split('\n').pop()!);
  assert.equal(result.kind, 'result');
  assert.equal(result.ok, false);
  assert.equal(result.interrupted, 'SIGTERM');
});

test('--reader: an exact name works; a glob matching several readers is refused with the matches, from the option and from a script connect', async () => {
  const port = String(await freePort());
  const exact = scard('run', hello, '--reader', 'Workbench Simulator 00 00', '--vpcd', port);
  assert.equal(exact.status, 0, exact.stderr);
  const one = scard('run', hello, '--reader', 'workbench*', '--vpcd', port);
  assert.equal(one.status, 0, one.stderr);
  const ambiguous = scard('run', hello, '--reader', '*', '--vpcd', port);
  assert.equal(ambiguous.status, 1, ambiguous.stderr);
  assert.match(ambiguous.stderr, /'\*' matches 2 readers: 'Workbench Simulator 00 00', 'Virtual PCD [^']*'/);
  assert.doesNotMatch(ambiguous.stdout, /passed/);
  const inScript = path.join(dir, 'connect.apdu');
  fs.writeFileSync(inScript, 'connect "*"\n00 84 00 00 08\n');
  const fromScript = scard('run', inScript, '--vpcd', port);
  assert.equal(fromScript.status, 1, fromScript.stderr);
  assert.match(fromScript.stderr, /connect\.apdu:1: .*'\*' matches 2 readers/);
});

// pcscd powers a card nobody uses down after 5 s (R77; the extension's smartcard.readerManager.idlePowerOff);
// `--idle-power-off SECONDS` sets it for scard run / test / readers / serve, 0 keeps idle cards powered.
const VERIFY_THEN_IDLE = (ms: number, after: string) => `00 20 00 01 04 31 32 33 34 => 90 00\ndisconnect leave\ndelay ${ms}\n00 20 00 01 => ${after}\n`;

test('--idle-power-off: bad values exit 2 saying what it takes', () => {
  for (const v of ['-1', 'abc', '', '1e3', '5s', '86401', 'Infinity', 'NaN', '0x10']) {
    const r = scard('run', hello, '--idle-power-off', v);
    assert.equal(r.status, 2, `${JSON.stringify(v)}: ${r.stderr}`);
    assert.match(r.stderr, /--idle-power-off takes seconds, 0 \(keep idle cards powered\) to 86400/, JSON.stringify(v));
    assert.match(r.stderr, USAGE);
  }
  assert.match(scard('atr', '3B00', '--idle-power-off', '1').stderr, /'--idle-power-off' is not an option of 'scard atr'/);
  assert.match(scard('serve', '--idle-power-off').stderr, /--idle-power-off needs a value/);
});

test('scard run --idle-power-off 0.2: a card left alone between two connections of a run is powered down, the next line meets a reset card', () => {
  const file = path.join(dir, 'idle.apdu');
  fs.writeFileSync(file, VERIFY_THEN_IDLE(1500, '63 C3'));
  const r = scard('run', file, '--idle-power-off', '0.2');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^# card powered down \(unused for 0\.2 s\): Workbench Simulator 00 00$/m);
  assert.match(r.stdout, /# passed/);
});

test('scard run --idle-power-off 0 keeps an idle card powered past pcscd\'s 5 s: the PIN stays verified', () => {
  const file = path.join(dir, 'kept.apdu');
  fs.writeFileSync(file, VERIFY_THEN_IDLE(5600, '90 00'));
  const r = scard('run', file, '--idle-power-off', '0');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /powered down|powered off/);
});

test('scard serve --idle-power-off 0.3: the card nobody connects to is powered down after 0.3 s, said in the JSON trace', async () => {
  const socket = path.join(dir, 'serve-idle', 'pcscd.comm');
  const p = spawn(process.execPath, [SCARD, 'serve', '--socket', socket, '--json', '--idle-power-off', '0.3'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  try {
    const lines = readline.createInterface({ input: p.stdout });
    const found = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no idle power-down within 15 s: ${err}`)), 15_000);
      p.on('close', (code) => { clearTimeout(timer); reject(new Error(`scard serve exited (${code}) before the idle power-down: ${err}`)); });
      let first = true;
      lines.on('line', (l) => {
        if (first) { first = false; assert.equal(l, `export PCSCLITE_CSOCK_NAME=${socket}`); return; }
        const e = JSON.parse(l) as Record<string, unknown>;
        if (e.kind === 'cardUnpowered') { clearTimeout(timer); resolve(e); }
      });
    });
    assert.equal(found.idle, true);
    assert.equal(found.idleMs, 300);
  } finally {
    p.kill('SIGTERM');
  }
  assert.equal(await exited, 0, err);
});
