// `npm test`: builds, then runs every suite with Node's test runner and ends
// with one summary line, `N passed, N failed, N skipped`.
//   node scripts/test.mjs [unit] [helper] [refstack] [package] [e2e]   (default: all)
// Tiers: unit (pure), helper (the helper over in-memory streams), refstack
// (real pcscd + vpcd + vicc + pcsc-tools, real compilers on the PC/SC headers),
// package (a .vsix for every target, checked from the inside), e2e (real VS Code in Chromium).
// A tier that needs system packages names what is missing; under CI=true a
// missing part fails the run instead of skipping it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { codeServerInstalled, ensureCodeServer } from './code-server.mjs';

const ALL = ['unit', 'helper', 'refstack', 'package', 'e2e'];
const wanted = process.argv.slice(2).filter((a) => ALL.includes(a));
const tiers = wanted.length ? wanted : ALL;
const CI = process.env.CI === 'true';

const SYSTEM = {
  refstack: ['pcscd', 'vicc', 'scriptor', 'ATR_analysis', 'opensc-tool', 'gcc', 'x86_64-w64-mingw32-gcc', 'clang', 'java', 'javac'],
  e2e: ['chromium'],
};

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function files(dir, suffix) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p, suffix));
    else if (e.name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

const build = spawnSync(process.execPath, ['esbuild.mjs'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.log('build failed');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const failures = [];

for (const tier of tiers) {
  const list = tier === 'e2e' || tier === 'package' ? files(path.join('test', tier), '.test.mjs') : files(path.join('out/test', tier), '.test.js');
  if (!list.length) continue;
  const missing = (SYSTEM[tier] ?? []).filter((c) => !has(c));
  // Real VS Code: what npm can install (Node 24, code-server) is installed here, into the
  // same cache as npm start; only Debian packages can be missing, and they are named.
  if (tier === 'e2e' && !missing.length && !codeServerInstalled()) {
    console.log('\n# ---- e2e needs code-server: installing Node 24 and code-server into the cache (first run only, about 3-5 minutes)');
    try {
      await ensureCodeServer();
    } catch (err) {
      missing.push(err.message);
    }
  }
  if (missing.length) {
    const msg = `${tier}: missing ${missing.join(', ')}; install with: sudo npm run setup:system`;
    if (CI) {
      console.log(`# ${msg} (CI=true: a missing part fails the run)`);
      totals.failed++;
      failures.push(`${tier}: missing system packages`);
      continue;
    }
    console.log(`# skipping the ${tier} suite (${list.length} files): ${msg}`);
    totals.skipped += list.length;
    continue;
  }
  console.log(`\n# ---- ${tier} (${list.length} files)`);
  const concurrency = tier === 'unit' || tier === 'helper' ? 2 : 1;
  const stream = run({ files: list, concurrency, timeout: tier === 'e2e' || tier === 'package' ? 600_000 : 300_000 });
  stream.on('test:pass', (d) => {
    if (d.details?.type === 'suite') return;
    if (d.skip || d.todo) totals.skipped++; else totals.passed++;
  });
  stream.on('test:fail', (d) => {
    if (d.details?.type === 'suite' && !isFileLevelError(d)) return;
    totals.failed++;
    failures.push(`${tier}: ${d.name}${d.file ? ` (${path.relative('.', d.file)})` : ''}`);
  });
  // The tier's report, its summary included, is written out before the next tier starts:
  // wait for the reporter's end, not the test stream's (the reporter lags behind it).
  const report = stream.compose(spec);
  report.pipe(process.stdout, { end: false });
  await finished(report);
}

// A file that crashes before defining tests shows up as a failed top-level entry.
function isFileLevelError(d) {
  return d.nesting === 0 && d.details?.error?.failureType === 'testCodeFailure';
}

if (failures.length) {
  console.log('\nFailed:');
  for (const f of failures) console.log(`  - ${f}`);
}
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed ? 1 : 0;
