// Java's javax.smartcardio (Debian's OpenJDK 17, its PC/SC provider over libpcsclite),
// a client nobody here wrote, against `scard serve` and against Debian's pcscd + vpcd,
// with the same card behind both: a small scripted card speaking the vpcd protocol
// (SELECT answers 61 0C, READ BINARY with a wrong Le answers 6C 08), connected to
// `scard serve --vpcd` and to pcscd's vpcd in turn. test/refstack/java/SmartcardioClient.java
// (compiled here with javac into a temp folder) lists terminals, waits for the card with
// time-outs, connects with "*", "T=1" and "T=0", transmits (smartcardio does GET RESPONSE
// and the 6Cxx resend itself), holds a transaction, disconnects with a reset and sees the
// removal; its JSON lines and the APDUs the card received are compared field by field, so a
// difference from pcscd is a failure. Java runs with Debian's libpcsclite 1.9.9 (4:4) and,
// through sun.security.smartcardio.library (+ LD_LIBRARY_PATH for its libpcsclite_real.so.1),
// with the 2.3.3 (4:5) and 2.5.1 (4:6) clients built by scripts/pcsclite.mjs; the pcscd side is
// Debian's 1.9.9 (for the 1.9.9 and 2.5.1 clients, the latter falling back to 4:4) and each
// version's own pcscd.
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { missingPart, missingPyscard, requireCommands } from '../support/system';
import { startServe, type Serve } from '../support/scardServe';
import { freePort } from '../support/net';
import { startBuiltPcscd, type BuiltPcscd } from '../support/builtPcscd';
import { loadRefStack, type RefStack, type StackProcess } from './stack';
import { ATR, BINARY, FCI, ScriptedCard } from './scriptedCard';

const PY = '/usr/bin/python3';
const PY_CLIENT = path.resolve('test/refstack/py/pcsc_client.py');
const JAVA_SRC = path.resolve('test/refstack/java/SmartcardioClient.java');
const READER = 'Virtual PCD 00 00';
/** Debian's OpenJDK 17 (openjdk-17-jdk-headless) when there, else whatever `java` is on PATH. */
const JDK = (fs.existsSync('/usr/lib/jvm') ? fs.readdirSync('/usr/lib/jvm', { withFileTypes: true }) : []).map((d) => path.join('/usr/lib/jvm', d.name, 'bin'))
  .find((d) => /java-17-openjdk-[a-z0-9]+$/.test(path.dirname(d)) && fs.existsSync(path.join(d, 'javac')));
const JAVA = JDK ? path.join(JDK, 'java') : 'java';
const JAVAC = JDK ? path.join(JDK, 'javac') : 'javac';

function missingSources(): string | false {
  const root = process.env.PCSCLITE_SOURCES ?? path.resolve('..', 'shared', 'data', 'pcsc-lite');
  const has = (r: string) => ['2.3.3', '2.5.1'].every((v) => fs.existsSync(path.join(r, v, 'meson.build')));
  if (has(root) || has('/work/shared/data/pcsc-lite')) return false;
  return missingPart(`no pcsc-lite 2.3.3/2.5.1 sources in ${root} (set PCSCLITE_SOURCES)`);
}
const skip = requireCommands('java', 'javac', 'gcc', 'meson', 'ninja', 'flex', 'pkg-config') || missingSources() || missingPyscard(PY, 'the pcscd side waits for its readers with it');

let tmp: string;
let classes: string;
/** libpcsclite.so.1 of each pcsc-lite version built from ../shared (scripts/pcsclite.mjs). */
const libraries = new Map<string, string>();
before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-java-'));
  classes = path.join(tmp, 'classes');
  const r = spawnSync(JAVAC, ['-d', classes, JAVA_SRC], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `javac failed: ${r.stdout}${r.stderr}${r.error ?? ''}`);
  const url = pathToFileURL(path.resolve('scripts/pcsclite.mjs')).href;
  const { buildPcsclite } = (await import(url)) as { buildPcsclite(v: string): { libdir: string } };
  for (const v of ['2.3.3', '2.5.1']) libraries.set(v, path.join(buildPcsclite(v).libdir, 'libpcsclite.so.1'));
});
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

/** Which libpcsclite smartcardio loads (sun.security.smartcardio.library), and the protocol it speaks. */
interface Client { label: string; version: string | null; minor: number }
const CLIENTS: Client[] = [
  { label: 'Debian 12 libpcsclite 1.9.9', version: null, minor: 4 },
  { label: 'pcsc-lite 2.3.3 client', version: '2.3.3', minor: 5 },
  { label: 'pcsc-lite 2.5.1 client', version: '2.5.1', minor: 6 },
];

interface JavaRun { steps: Record<string, unknown>[]; cardSaw: string[]; stderr: string }

/** Runs the Java client against `socket` (null: the system's pcscd); inserts/removes the card when it waits. */
function runJava(c: Client, socket: string | null, card: ScriptedCard, port: number, props: string[] = []): Promise<JavaRun> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PCSCLITE_CSOCK_NAME;
  delete env.LD_LIBRARY_PATH;
  if (socket) env.PCSCLITE_CSOCK_NAME = socket;
  // pcsc-lite 2.x's libpcsclite.so.1 only forwards to libpcsclite_real.so.1, which it dlopens by
  // name: LD_LIBRARY_PATH makes that the build's own (the negotiated version is checked below).
  if (c.version) env.LD_LIBRARY_PATH = path.dirname(libraries.get(c.version)!);
  const lib = c.version ? [`-Dsun.security.smartcardio.library=${libraries.get(c.version)}`] : [];
  const from = card.seen.length;
  return new Promise((resolve, reject) => {
    const p = spawn(JAVA, [...lib, ...props, '-cp', classes, 'SmartcardioClient', READER], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const steps: Record<string, unknown>[] = [];
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`java did not finish within 90 s:\n${stdout}\n${stderr}`)); }, 90_000);
    let partial = '';
    let chain: Promise<void> = Promise.resolve();
    p.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      partial += b.toString();
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const o = JSON.parse(line) as Record<string, unknown>;
        if (o.waiting === 'insertion') chain = chain.then(() => card.insert(port));
        else if (o.waiting === 'removal') chain = chain.then(() => card.remove());
        else steps.push(o);
      }
    });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      void chain.then(() => {
        if (code !== 0) reject(new Error(`java exited ${code}:\n${stdout}\n${stderr}`));
        else resolve({ steps, cardSaw: card.seen.slice(from), stderr });
      }, reject);
    });
  });
}

/** What must hold on either side (pcscd's or ours), beyond being equal. */
function assertSmartcardio(r: JavaRun, label: string): void {
  const step = (name: string) => r.steps.find((s) => s.step === name) ?? assert.fail(`${label}: no step ${name}: ${JSON.stringify(r.steps)}`);
  assert.equal(step('waitForCardPresentTimeout').value, false, label);
  assert.equal(step('waitForCardPresent').value, true, label);
  assert.equal(step('connectAny').atr, ATR.toString('hex').toUpperCase(), label);
  assert.equal(step('connectAny').protocol, 'T=1', label);
  assert.equal(step('transmitSelect').response, `${FCI.toString('hex').toUpperCase()}9000`, `${label}: smartcardio fetched the FCI itself`);
  assert.equal(step('transmitWrongLe').response, `${BINARY.toString('hex').toUpperCase()}9000`, `${label}: smartcardio resent with Le from 6C 08`);
  assert.equal(step('waitForCardAbsent').value, true, label);
  assert.equal(step('done').ok, true, label);
  // The card saw smartcardio's own GET RESPONSE and its resend: nobody between fetched for it.
  assert.deepEqual(r.cardSaw.slice(0, 4), ["00A4040007F0574244454D4F", "00C000000C", "00B0000000", "00B0000008"], label);
}

/** smartcardio without its own GET RESPONSE / 6Cxx handling (both protocols). */
const RAW = ['-Dsun.security.smartcardio.t0GetResponse=false', '-Dsun.security.smartcardio.t1GetResponse=false'];

/** The workbench's results, per client label, for the comparison with pcscd. */
const ours = new Map<string, { run: JavaRun; raw: JavaRun }>();

describe('Java smartcardio against scard serve (vpcd driver, the scripted card)', { skip }, () => {
  let serve: Serve | null = null;
  let socket = '';
  let port = 0;
  before(async () => {
    port = await freePort();
    const port2 = await freePort();
    // Two vpcd readers and no simulator: the same reader list as pcscd's vpcd.
    serve = await startServe(['--no-simulator', '--verbose', '--vpcd', `${port},${port2}`, '--socket', path.join(tmp, 'serve', 'pcscd.comm')]);
    socket = serve.socket;
  });
  after(async () => { await serve?.stop(); });

  for (const c of CLIENTS) {
    test(`${c.label}: terminals, waits with time-outs, connect, GET RESPONSE / 6Cxx by smartcardio, exclusive, reset, removal`, { timeout: 120_000 }, async () => {
      const mark = serve!.err().length;
      const run = await runJava(c, socket, new ScriptedCard(), port);
      // With smartcardio's GET RESPONSE off, the client sees the card's 61 0C and 6C 08 as they are.
      const raw = await runJava(c, socket, new ScriptedCard(), port, RAW);
      ours.set(c.label, { run, raw }); // compared with pcscd's below, even when a check here fails
      // The library asked for really ran: every context spoke its protocol version.
      const versions = [...serve!.err().slice(mark).matchAll(/protocol (4:\d)$/gm)].map((m) => m[1]);
      assert.ok(versions.length > 0 && versions.every((v) => v === `4:${c.minor}`), `negotiated ${versions.join(', ')}`);
      assertSmartcardio(run, `${c.label} → scard serve`);
      assert.equal(raw.steps.find((s) => s.step === 'transmitSelect')?.response, '610C');
      assert.equal(raw.steps.find((s) => s.step === 'transmitWrongLe')?.response, '6C08');
      // serve printed the client's exchanges, as the APDU Log shows them.
      assert.match(serve!.out(), /> 00 A4 04 00 07 F0 57 42 44 45 4D 4F/);
    });
  }
});

/** The same runs against a pcscd (`socket`; null: Debian's, /run/pcscd/pcscd.comm), compared with ours. */
async function compareWithPcscd(c: Client, socket: string | null, port: number): Promise<void> {
  const mine = ours.get(c.label);
  assert.ok(mine, 'the workbench run of this client must come first (same file, earlier test)');
  const run = await runJava(c, socket, new ScriptedCard(), port);
  assert.deepEqual(mine.run.steps, run.steps, 'smartcardio\'s view, step by step');
  assertSmartcardio(run, `${c.label} → pcscd`);
  assert.deepEqual(mine.run.cardSaw, run.cardSaw, 'the APDUs the card received');
  const raw = await runJava(c, socket, new ScriptedCard(), port, RAW);
  assert.deepEqual(mine.raw.steps, raw.steps, 'with smartcardio\'s GET RESPONSE off');
  assert.deepEqual(mine.raw.cardSaw, raw.cardSaw, 'the APDUs the card received, GET RESPONSE off');
}

/** Waits (bounded) until a pcscd shows vpcd's two readers (it opens its socket before they are there). */
function untilVpcdReaders(socket: string | null, version: string | null): void {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PCSCLITE_CSOCK_NAME;
  delete env.LD_LIBRARY_PATH;
  if (socket) env.PCSCLITE_CSOCK_NAME = socket;
  if (version) env.LD_LIBRARY_PATH = path.dirname(libraries.get(version)!); // pyscard over that version's client
  const r = spawnSync(PY, [PY_CLIENT, 'readers', '2'], { encoding: 'utf8', timeout: 20_000, env });
  assert.match(r.stdout, /Virtual PCD 00 01/, r.stdout + r.stderr);
}

// Debian's pcscd 1.9.9 speaks 4:4: the 1.9.9 client and the 2.5.1 client (which falls back
// to 4:4) reach it; the 2.3.3 client (4:5, no fall-back) meets its own daemon below.
describe('the same Java program against Debian\'s pcscd 1.9.9 + vpcd (the same scripted card), compared', { skip: skip || requireCommands('pcscd') }, () => {
  let stack: RefStack;
  let pcscd: StackProcess | null = null;
  before(async () => {
    stack = await loadRefStack();
    pcscd = await stack.startPcscd();
    untilVpcdReaders(null, null);
  });
  after(async () => { await pcscd?.stop(); });

  for (const c of CLIENTS.filter((x) => x.minor !== 5)) {
    test(`${c.label}: every step and every APDU the card saw match the workbench service's`, { timeout: 120_000 }, async () => {
      await compareWithPcscd(c, null, stack.VPCD_PORTS[0]);
    });
  }
});

// Each built client against the pcscd of its own version (scripts/pcsclite.mjs: reader.conf
// support, a private socket), so 4:5 and 4:6 meet their own daemon too.
for (const c of CLIENTS.filter((x) => x.version)) {
  describe(`the same Java program against pcsc-lite ${c.version}'s own pcscd (4:${c.minor}) + vpcd, compared`, { skip }, () => {
    let stack: RefStack;
    let daemon: BuiltPcscd | null = null;
    let socket = '';
    before(async () => {
      stack = await loadRefStack();
      await stack.stopRecorded();
      daemon = await startBuiltPcscd(c.version!, stack.prepare().conf);
      socket = daemon.socket;
      untilVpcdReaders(socket, c.version);
    });
    after(async () => {
      await daemon?.stop();
    });

    test(`${c.label}: every step and every APDU the card saw match the workbench service's`, { timeout: 120_000 }, async () => {
      assert.doesNotMatch(daemon!.log(), /Address already in use/, 'vpcd could not listen (another vpcd on 35963?)');
      await compareWithPcscd(c, socket, stack.VPCD_PORTS[0]);
    });
  });
}

