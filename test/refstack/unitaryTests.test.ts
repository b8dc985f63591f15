// pcsc-lite's own UnitaryTests (UnitaryTests/ in the 2.5.1 and 2.3.3 source trees, unmodified:
// Python scripts over pyscard, written by pcsc-lite's maintainer against pcscd), run against
// `scard serve` and against a pcscd, with the same scripted vpcd card in `Virtual PCD 00 00`
// behind both (test/refstack/scriptedCard.ts): 2.5.1's scripts over Debian's library (4:4)
// against Debian's pcscd 1.9.9 and over the 2.5.1 library (4:6) against pcscd 2.5.1; 2.3.3's
// scripts over the 2.3.3 library (4:5) against pcscd 2.3.3. For each script the exit
// status and the output (handles, times and the card's per-run bytes normalized) must be the
// same: a difference from pcscd is a failure. pcsc-lite's `testpcsc` runs the same way
// (2.5.1's beside Debian's library, 2.3.3's beside its own).
// Which scripts run, and why the others cannot (a given reader, card or applet, an endless
// loop, a person at the keyboard): docs/testing.md.
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { missingPart, missingPyscard, requireCommands } from '../support/system';
import { startServe, type Serve } from '../support/scardServe';
import { freePort } from '../support/net';
import { startBuiltPcscd, type BuiltPcscd } from '../support/builtPcscd';
import { loadRefStack, type RefStack, type StackProcess } from './stack';
import { ScriptedCard } from './scriptedCard';

const PY = '/usr/bin/python3'; // Debian's, which has pyscard
const PY_CLIENT = path.resolve('test/refstack/py/pcsc_client.py');

/**
 * A script of UnitaryTests/ that runs on any reader and card, with its arguments, and how its
 * two runs are compared: `output` (exit status and normalized output), `sorted` (the same lines
 * in any order: two threads print whole lines in an order that depends on timing), `exit` (exit
 * status only: the scheduler interleaves the threads' output character by character), or `none`,
 * with the reason (what the script
 * measures is the reader driver's, and pcscd's vpcd and the workbench's vpcd driver differ).
 */
interface Script {
  file: string;
  args?: string[];
  compare?: 'output' | 'sorted' | 'exit' | 'none';
  why?: string;
  /** Not a script: pcsc-lite's `testpcsc` of this build (scripts/pcsclite.mjs), answering its two questions. */
  testpcsc?: '2.3.3' | '2.5.1';
  /** Output lines left out of the comparison (with `why`). */
  drop?: RegExp;
}
export const SCRIPTS: Script[] = [
  { file: 'SCardBeginTransaction_Disconnect.py' },
  { file: 'SCardBeginTransaction_ExclusiceMode.py' },
  { file: 'SCardBeginTransaction_Reset.py' },
  { file: 'SCardBeginTransaction_SharedMode.py', compare: 'sorted', why: 'after the transaction ends, the waiting main thread and the other thread print in either order (seen with pcscd 2.5.1)' },
  { file: 'SCardBeginTransaction_deadlock.py' },
  { file: 'SCardCancel.py' },
  { file: 'SCardCancel2.py' },
  { file: 'SCardCancel3.py' },
  { file: 'SCardConnect_DIRECT.py', compare: 'none', why: 'a direct connect reports pcscd\'s cardProtocol, which pcscd resets when it powers an idle card down after its grace period: whether that happened before this script is timing (the rule is a unit test in managerBackend.test.ts)' },
  { file: 'SCardConnect_DIRECT2.py' },
  { file: 'SCardEndTransaction_extra_call.py' },
  { file: 'SCardExclusiveBehaviour.py' },
  { file: 'SCardGetStatusChange2.py' },
  { file: 'SCardGetStatusChange/SCardGetStatusChange.py' }, // nothing changes: both end with a 10-s time-out
  { file: 'SCardGetStatusChange/SCardGetStatusChange_nonBlock.py', compare: 'exit', why: 'a thread and the main program print unsynchronized: their lines interleave (seen: "In the threadwait")' },
  { file: 'SCardReconnect.py' },
  { file: 'SCardStatus.py' },
  { file: 'SCard_fork.py' },
  { file: 'ThreadSafe.py', compare: 'exit', why: '100 threads print unsynchronized, interleaved by the scheduler' },
  { file: 'ThreadSafeConnect.py', compare: 'exit', why: 'threads print unsynchronized, interleaved by the scheduler' },
  { file: 'reset_card.py' },
  { file: 'reset_card.py', args: ['reconnect'] },
  { file: 'SCardBlockingBehaviourTest.py' },
  { file: 'transmit_card_removed.py' },
  { file: 'SCardGetAttrib.py', compare: 'none', why: 'pcscd passes SCardGetAttrib to the reader driver: pcscd\'s vpcd answers no attribute, the workbench\'s vpcd driver answers the ATR (the channel id no longer: R45)' },
  { file: 'getAttrib.py', compare: 'none', why: 'the reader driver\'s vendor name: none from pcscd\'s vpcd, "Smart Card Workbench" from the workbench\'s' },
  { file: 'FEATURE_GET_TLV_PROPERTIES.py', compare: 'none', why: 'pcscd passes SCardControl to the reader driver: pcscd\'s vpcd refuses CM_IOCTL_GET_FEATURE_REQUEST, the workbench\'s vpcd driver answers an empty feature list' },
  { file: 'MCT_ReaderDirect.py', compare: 'none', why: 'the same feature request as FEATURE_GET_TLV_PROPERTIES.py; both end with "not supported", in different words' },
];

/**
 * pcsc-lite's testpcsc (2.5.1: protocol 4:6 to the service, 4:4 to Debian's pcscd; 2.3.3: 4:5 to
 * both). Its GetAttrib calls go to the reader driver: pcscd's vpcd answers no ATR or vendor name,
 * ours answers them. Its SetAttrib is compared: vpcd's refusal comes out of pcscd as "Transaction
 * failed" (SCARD_E_NOT_TRANSACTED), and so does ours (R99; "Feature not supported" before).
 */
const testpcscScript = (version: '2.3.3' | '2.5.1'): Script => ({
  file: 'testpcsc', testpcsc: version, drop: /SCardGetAttrib|SCARD_ATTR_|Vendor name|SCardFreeMemory/, why: 'GetAttrib is the reader driver\'s answer',
});

function missingSources(): string | false {
  const root = process.env.PCSCLITE_SOURCES ?? path.resolve('..', 'shared', 'data', 'pcsc-lite');
  const has = (v: string) => fs.existsSync(path.join(root, v, 'UnitaryTests')) || fs.existsSync(`/work/shared/data/pcsc-lite/${v}/UnitaryTests`);
  if (has('2.5.1') && has('2.3.3')) return false;
  return missingPart(`no pcsc-lite 2.5.1 and 2.3.3 sources in ${root} (set PCSCLITE_SOURCES)`);
}
const skip = requireCommands('pcscd', 'gcc', 'meson', 'ninja', 'flex', 'pkg-config') || missingPyscard(PY) || missingSources();

let tmp = '';
/** The build folder (client library, testpcsc) of each pcsc-lite version used here. */
const testpcscDirs = new Map<string, string>();
/** Each version's UnitaryTests/ folder. */
const unitaryDirs = new Map<string, string>();
before(async () => {
  if (skip) return;
  const url = pathToFileURL(path.resolve('scripts/pcsclite.mjs')).href;
  const { pcscliteSource, buildPcsclite } = (await import(url)) as { pcscliteSource(v: string): string; buildPcsclite(v: string): { libdir: string } };
  for (const v of ['2.5.1', '2.3.3']) {
    unitaryDirs.set(v, path.join(pcscliteSource(v), 'UnitaryTests'));
    testpcscDirs.set(v, buildPcsclite(v).libdir);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-unitary-'));
});
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

interface Outcome { code: number | null; signal: string | null; out: string; err: string }

/**
 * Which libpcsclite pyscard loads (Debian's, 4:4, or a build from ../shared through
 * LD_LIBRARY_PATH), which version's UnitaryTests it runs, and which testpcsc runs beside it.
 */
interface Client { label: string; version: '2.3.3' | '2.5.1' | null; scripts: '2.3.3' | '2.5.1'; testpcsc?: '2.3.3' | '2.5.1' }
const CLIENTS: Client[] = [
  { label: 'Debian 12 libpcsclite 1.9.9', version: null, scripts: '2.5.1', testpcsc: '2.5.1' },
  { label: 'pcsc-lite 2.5.1 client', version: '2.5.1', scripts: '2.5.1' },
  { label: 'pcsc-lite 2.3.3 client', version: '2.3.3', scripts: '2.3.3', testpcsc: '2.3.3' },
];
/** Scripts of SCRIPTS a version's UnitaryTests/ does not have, or has in a form that cannot run here, and why. */
const NOT_IN: Record<'2.3.3' | '2.5.1', Record<string, string>> = {
  '2.3.3': {
    'SCardGetStatusChange/SCardGetStatusChange_nonBlock.py': 'new in 2.5.1',
    // 2.5.1's stops at "Can't find test applet" on any other card.
    'transmit_card_removed.py': 'without 2.5.1\'s check for its test applet it polls SCardStatus until a person pulls the card (killed at the bound on pcscd 2.3.3 and on the service alike)',
  },
  '2.5.1': {},
};
/**
 * The scripts of SCRIPTS one client runs, from its version's UnitaryTests/, and its testpcsc.
 * The list is fixed before the version's folder is known (node:test declares the tests first):
 * a script missing there fails its test.
 */
const scriptsOf = (c: Client): Script[] => [
  ...SCRIPTS.filter((s) => !(s.file in NOT_IN[c.scripts])),
  ...(c.testpcsc ? [testpcscScript(c.testpcsc)] : []),
];

function clientEnv(socket: string | null, c: Client | null = null): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
  delete env.PCSCLITE_CSOCK_NAME;
  delete env.LD_LIBRARY_PATH;
  if (socket) env.PCSCLITE_CSOCK_NAME = socket;
  if (c?.version) env.LD_LIBRARY_PATH = testpcscDirs.get(c.version);
  return env;
}

/** Runs one script (stdin closed: none may wait for a person), bounded. */
function runScript(s: Script, socket: string | null, c: Client): Promise<Outcome> {
  return new Promise((resolve) => {
    const env = clientEnv(socket, c);
    if (s.testpcsc) env.LD_LIBRARY_PATH = testpcscDirs.get(s.testpcsc);
    const p = s.testpcsc
      ? spawn(path.join(testpcscDirs.get(s.testpcsc)!, 'testpcsc'), [], { cwd: tmp, env, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(PY, [path.join(unitaryDirs.get(c.scripts)!, s.file), ...(s.args ?? [])], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
    // testpcsc asks for the reader number and for Enter before SCardReconnect.
    if (s.testpcsc) p.stdin!.end('1\n\n');
    let out = '';
    let err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    p.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err }); });
  });
}

/** What differs by nature between two runs: handles, durations, the tracebacks' line numbers stay. */
export function normalize(text: string): string {
  return text
    .replace(/\b(hcontext|hcard|hCard|hContext|context|card)( ?[:=] ?)-?(0x)?[0-9a-fA-F]+/g, '$1$2<handle>')
    .replace(/\d+\.\d+(e-?\d+)?( ?m?s\b|s\b| seconds\b)/g, '<time>$2')
    .replace(/after: \d+(\.\d+)? ms/g, 'after: <time> ms');
}

const results = new Map<string, Outcome>();
const key = (s: Script) => [s.file, ...(s.args ?? [])].join(' ');
const resultKey = (c: Client, s: Script) => `${c.label}: ${key(s)}`;

describe('pcsc-lite 2.5.1 UnitaryTests (over the 1.9.9 and 2.5.1 client libraries) and 2.3.3 UnitaryTests (over the 2.3.3 library) against scard serve (vpcd driver, the scripted card)', { skip }, () => {
  let serve: Serve | null = null;
  let socket = '';
  const card = new ScriptedCard();
  before(async () => {
    const port = await freePort();
    const port2 = await freePort();
    serve = await startServe(['--no-simulator', '--vpcd', `${port},${port2}`, '--socket', path.join(tmp, 'serve', 'pcscd.comm')], { env: clientEnv(null) });
    socket = serve.socket;
    await card.insert(port);
    await untilCard(socket);
  });
  after(async () => {
    await card.remove();
    await serve?.stop();
  });

  for (const c of CLIENTS) {
    for (const s of scriptsOf(c)) {
      test(`${c.label}: ${key(s)}`, { timeout: 60_000 }, async () => {
        const r = await runScript(s, socket, c);
        results.set(resultKey(c, s), r);
        if (process.env.UNITARY_DUMP) fs.appendFileSync(process.env.UNITARY_DUMP, JSON.stringify({ side: 'serve', script: resultKey(c, s), ...r }) + '\n');
      });
    }
  }
});

/** pcsc_client.py's output (bounded; asynchronous: the card answers from this process's event loop). */
function pyClient(args: string[], socket: string | null, c: Client | null): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn(PY, [PY_CLIENT, ...args], { env: clientEnv(socket, c), stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.stdout.on('data', (b: Buffer) => { text += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { text += b.toString(); });
    p.on('close', () => { clearTimeout(timer); resolve(text); });
  });
}

/** Waits (bounded) until the card shows present in `Virtual PCD 00 00` (pcscd powers it up first). */
async function untilCard(socket: string | null, c: Client | null = null): Promise<void> {
  const now = await pyClient(['watch', 'Virtual PCD 00 00'], socket, c);
  if (/"present": ?true/.test(now)) return;
  // Not there yet: the reader's next change is the card (pcsc_client.py waits up to 10 s).
  const next = await pyClient(['watch', 'Virtual PCD 00 00', 'insertion'], socket, c);
  assert.match(next, /"step": "insertion".*"present": ?true/, `the card never showed present: ${now}${next}`);
}

/** The comparison tests of one client against a pcscd (`socket`; null: Debian's). */
function compareTests(c: Client, socket: () => string | null): void {
  for (const s of scriptsOf(c)) {
    test(`${c.label}: ${key(s)}: ${s.compare === 'none' ? `runs on both, not compared (${s.why})` : 'same exit status and output as against the workbench service'}`, { timeout: 60_000 }, async () => {
      const mine = results.get(resultKey(c, s));
      assert.ok(mine, 'the workbench run of this script must come first (same file, earlier test)');
      const theirs = await runScript(s, socket(), c);
      if (process.env.UNITARY_DUMP) fs.appendFileSync(process.env.UNITARY_DUMP, JSON.stringify({ side: 'pcscd', script: resultKey(c, s), ...theirs }) + '\n');
      const why = `stderr ours:\n${mine.err}\nstderr pcscd:\n${theirs.err}`;
      // None may hang (killed at the bound) on either side.
      assert.deepEqual([mine.signal, theirs.signal], [null, null], `a run was killed: ${why}`);
      const view = (o: Outcome) => {
        const mode = s.compare ?? 'output';
        if (mode === 'none') return {};
        if (mode === 'exit') return { code: o.code };
        const lines = normalize(o.out).split('\n').filter((l) => !s.drop?.test(l));
        return { code: o.code, out: mode === 'sorted' ? lines.sort() : lines };
      };
      assert.deepEqual(view(mine), view(theirs), why);
    });
  }
}

// Debian's pcscd 1.9.9 speaks 4:4: Debian's library, and testpcsc 2.5.1 (which falls back to 4:4).
describe('the same UnitaryTests against Debian\'s pcscd 1.9.9 + vpcd (the same scripted card), compared', { skip }, () => {
  let stack: RefStack;
  let pcscd: StackProcess | null = null;
  const card = new ScriptedCard();
  before(async () => {
    stack = await loadRefStack();
    pcscd = await stack.startPcscd();
    await card.insert(stack.VPCD_PORTS[0]);
    await untilCard(null);
  });
  after(async () => {
    await card.remove();
    await pcscd?.stop();
  });
  compareTests(CLIENTS[0], () => null);
});

// Each built library against its own version's pcscd (2.5.1: 4:6, 2.3.3: 4:5; scripts/pcsclite.mjs
// builds it with reader.conf support and a private socket), as against the service.
for (const c of CLIENTS.filter((x): x is Client & { version: '2.3.3' | '2.5.1' } => x.version !== null)) {
  const v = c.version;
  describe(`the same UnitaryTests over the ${v} library against pcsc-lite ${v}'s own pcscd (${v === '2.5.1' ? '4:6' : '4:5'}) + vpcd, compared`, { skip }, () => {
    let stack: RefStack;
    let daemon: BuiltPcscd | null = null;
    let socket = '';
    const card = new ScriptedCard();
    before(async () => {
      stack = await loadRefStack();
      await stack.stopRecorded();
      daemon = await startBuiltPcscd(v, stack.prepare().conf);
      socket = daemon.socket;
      await card.insert(stack.VPCD_PORTS[0]);
      await untilCard(socket, c);
    });
    after(async () => {
      await card.remove();
      await daemon?.stop();
    });
    compareTests(c, () => socket);
  });
}

