// `scard test`: a folder of APDU scripts as a test suite, spawned as CI runs it
// (bin/scard.js → out/cli.js). The JUnit XML is read back by a real consumer,
// Debian's python3-junitparser (scripts/setup-system.sh installs it), and must say
// what scard said: the same counts, names, times and failure messages.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { missingPythonModule } from '../support/system';

const SCARD = path.resolve('bin/scard.js');
const REPO = process.cwd();
/** Debian's python (not a pyenv shim): the one python3-junitparser is installed for. */
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** A PIN that appears nowhere else, so any trace of it in the output is a leak. */
const PIN = '8642';
const PIN_HEX = /38 ?36 ?34 ?32/;
let dir: string;

before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scard-test-')); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function scard(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCARD, ...args], {
    cwd: opts.cwd ?? REPO, encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, SCARD_PIN: '', ...opts.env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface JunitCase { classname: string; name: string; time: number; failures: { message: string; type: string; text: string }[]; systemOut: string }
interface JunitRead { suites: { name: string; tests: number; failures: number; errors: number; time: number }[]; cases: JunitCase[] }

/** The JUnit reports are read by another program's parser: Debian's python3-junitparser. */
const noJunitparser = missingPythonModule(PYTHON, 'junitparser', 'python3-junitparser', 'the --junit reports are read with it');

/** Reads a JUnit file with junitparser and returns what it understood. */
function junitparser(file: string): JunitRead {
  const py = `
import json, sys
from junitparser import JUnitXml, TestSuite, Failure
xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if isinstance(xml, TestSuite) else list(xml)
out = {"suites": [], "cases": []}
for s in suites:
    out["suites"].append({"name": s.name, "tests": s.tests, "failures": s.failures, "errors": s.errors, "time": s.time})
    for c in s:
        res = c.result if isinstance(c.result, list) else ([c.result] if c.result else [])
        out["cases"].append({"classname": c.classname, "name": c.name, "time": c.time,
            "failures": [{"message": r.message, "type": r.type, "text": r.text} for r in res if isinstance(r, Failure)],
            "systemOut": c.system_out or ""})
print(json.dumps(out))
`;
  const r = spawnSync(PYTHON, ['-c', py, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `junitparser could not read ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout) as JunitRead;
}

test('scard test examples: a line per script, "N passed, N failed", exit 1; fails-on-purpose.apdu fails at line 12', () => {
  const r = scard(['test', 'examples', '--simulator-pin', PIN], { env: { SCARD_PIN: PIN } });
  assert.equal(r.status, 1, r.stderr);
  const scripts = fs.readdirSync('examples').filter((f) => f.endsWith('.apdu')).sort();
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, scripts.length + 1, r.stdout);
  scripts.forEach((s, i) => assert.match(lines[i], new RegExp(`^(PASS|FAIL)  examples/${s.replace('.', '\\.')}[:  ]`), lines[i]));
  assert.match(r.stdout, /^FAIL  examples\/fails-on-purpose\.apdu:12: expected \* 90 00, got 69 82/m);
  assert.match(r.stdout, /^PASS  examples\/hello\.apdu /m);
  // The PIN from SCARD_PIN opens verify-pin.apdu; pinpad.apdu needs a pinpad reader.
  assert.match(r.stdout, /^PASS  examples\/verify-pin\.apdu /m);
  assert.match(r.stdout, /^FAIL  examples\/pinpad\.apdu:8: /m);
  const failed = lines.filter((l) => l.startsWith('FAIL')).length;
  assert.equal(lines.at(-1), `${scripts.length - failed} passed, ${failed} failed`);
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(PIN));
});

test('each script starts on a freshly reset card: a VERIFY in one script does not open the file for the next', () => {
  const d = fs.mkdtempSync(path.join(dir, 'fresh-'));
  fs.writeFileSync(path.join(d, 'a-verify.apdu'), '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00\n00 20 00 01 04 ${pin:"PIN"} => 90 00\n00 A4 02 0C 02 50 03 => 90 00\n00 B0 00 00 00 => * 90 00 | * 62 82\n');
  fs.writeFileSync(path.join(d, 'b-no-verify.apdu'), '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00\n00 A4 02 0C 02 50 03 => 90 00\n00 B0 00 00 00 => 69 82\n');
  const r = scard(['test', '--json'], { cwd: d, env: { SCARD_PIN: '1234' } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const objs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(objs.map((o) => [o.kind, o.file, o.ok]), [['test', 'a-verify.apdu', true], ['test', 'b-no-verify.apdu', true], ['summary', undefined, undefined]]);
  assert.equal(objs[2].passed, 2);
  assert.equal(objs[2].failed, 0);
});

test('--junit: junitparser reads one suite, one case per script (classname = folder), the times and failures scard reported', { skip: noJunitparser }, () => {
  const junit = path.join(dir, 'report.xml');
  const r = scard(['test', 'examples', '--junit', junit, '--json', '--simulator-pin', PIN], { env: { SCARD_PIN: PIN } });
  assert.equal(r.status, 1, r.stderr);
  const objs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const tests = objs.filter((o) => o.kind === 'test');
  const summary = objs.find((o) => o.kind === 'summary');
  const read = junitparser(junit);
  assert.equal(read.suites.length, 1);
  assert.equal(read.suites[0].tests, tests.length);
  assert.equal(read.suites[0].failures, summary.failed);
  assert.ok(summary.failed >= 1 && summary.passed >= 1);
  assert.equal(read.suites[0].errors, 0);
  assert.deepEqual(read.cases.map((c) => [c.classname, c.name]), tests.map((t) => ['examples', t.file.replace('examples/', '')]));
  for (const [i, c] of read.cases.entries()) {
    const t = tests[i];
    assert.ok(Math.abs(c.time - t.durationMs / 1000) < 0.0011, `${c.name}: ${c.time} s vs ${t.durationMs} ms`);
    if (t.ok) assert.equal(c.failures.length, 0, c.name);
    else {
      assert.equal(c.failures.length, 1, c.name);
      assert.match(c.failures[0].message, new RegExp(`^line ${t.failure.line}: `), c.name);
      assert.ok(c.failures[0].message.endsWith(t.failure.message.replace(/^line \d+: /, '')), `${c.name}: ${c.failures[0].message}`);
    }
  }
  const fop = read.cases.find((c) => c.name === 'fails-on-purpose.apdu')!;
  assert.equal(fop.failures[0].message, 'line 12: expected * 90 00, got 69 82 (Security status not satisfied)');
  assert.equal(fop.failures[0].type, 'SW 69 82');
  assert.match(fop.failures[0].text, /^examples\/fails-on-purpose\.apdu:12: expected/);
  assert.match(fop.systemOut, /> 00 B0 00 00 00 {2}\(line 12\)\n< 69 82 /, 'the trace is the test\'s output');
  const long = read.cases.find((c) => c.name === 'long-run.apdu')!;
  assert.ok(long.time > 3, `long-run.apdu takes seconds, not ${long.time}`);
  // The PIN typed into verify-pin.apdu reaches neither the report nor the output.
  const xml = fs.readFileSync(junit, 'utf8');
  assert.doesNotMatch(xml, new RegExp(PIN));
  assert.doesNotMatch(xml, PIN_HEX);
  assert.match(xml, /\*\* \*\* \*\* \*\*/, 'the VERIFY data is masked in the trace');
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(PIN));
});

test('--junit escapes what XML cannot carry: names and messages with < & " and control characters', { skip: noJunitparser }, () => {
  const d = fs.mkdtempSync(path.join(dir, 'esc-'));
  const sub = path.join(d, 'a&b <c>');
  fs.mkdirSync(sub);
  fs.writeFileSync(path.join(sub, 'x"y\'.apdu'), 'echo "<tag> & \u0001 done"\n00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 6A 82\n');
  const junit = path.join(d, 'out.xml');
  const r = scard(['test', '--junit', junit], { cwd: d });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const read = junitparser(junit);
  assert.equal(read.cases.length, 1);
  assert.equal(read.cases[0].classname, 'a&b <c>');
  assert.equal(read.cases[0].name, 'x"y\'.apdu');
  assert.equal(read.cases[0].failures[0].message, 'line 2: expected 6A 82, got 90 00 (Normal processing)');
  assert.equal(read.cases[0].failures[0].type, 'SW 90 00');
  assert.match(read.cases[0].systemOut, /<tag> & \uFFFD done/);
});

test('finding scripts: folders recursively, globs, node_modules and hidden folders left out; nothing found exits 2', () => {
  const d = fs.mkdtempSync(path.join(dir, 'find-'));
  const ok = '00 84 00 00 08 => * 90 00\n';
  for (const f of ['top.apdu', 'suite/one.apdu', 'suite/deep/two.apdu', 'suite/notes.txt', 'node_modules/x/dep.apdu', '.git/hook.apdu']) {
    fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
    fs.writeFileSync(path.join(d, f), ok);
  }
  const names = (args: string[]) => {
    const r = scard(['test', ...args, '--json'], { cwd: d });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((o) => o.kind === 'test').map((o) => `${o.classname}|${o.name}`);
  };
  assert.deepEqual(names([]), ['suite/deep|two.apdu', 'suite|one.apdu', '.|top.apdu']);
  assert.deepEqual(names(['suite']), ['suite/deep|two.apdu', 'suite|one.apdu']);
  assert.deepEqual(names(['suite/*.apdu']), ['suite|one.apdu']);
  assert.deepEqual(names(['suite/**/*.apdu', 'top.apdu', 'suite']), ['suite/deep|two.apdu', 'suite|one.apdu', '.|top.apdu']);
  for (const args of [['nowhere'], ['*.nothing']]) {
    const r = scard(['test', ...args], { cwd: d });
    assert.equal(r.status, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, /^scard: (no such file or folder|no script matches)/m);
    assert.doesNotMatch(r.stdout, /passed/);
  }
  const empty = fs.mkdtempSync(path.join(dir, 'empty-'));
  assert.equal(scard(['test'], { cwd: empty }).status, 2);
});

test('usage errors exit 2: unknown options, options of another command, --junit without a file, a bad --card', () => {
  for (const args of [['test', '--junitt', 'x'], ['test', '--watch'], ['test', '--wait-card', '10'], ['test', 'examples', '--junit'], ['test', 'examples', '--card', 'T=2']]) {
    const r = scard(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^usage:$/m, args.join(' '));
  }
  assert.match(scard(['--help']).stdout, /scard test \[PATH\|GLOB/);
});

test('--card T=0 and --reader reach the runs: every script runs on the named reader', () => {
  const r = scard(['test', 'examples/hello.apdu', 'examples/variables.apdu', '--card', 'T=0', '--reader', 'Workbench Simulator*', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const tests = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((o) => o.kind === 'test');
  assert.equal(tests.length, 2);
  for (const t of tests) assert.equal(t.reader, 'Workbench Simulator 00 00');
});
