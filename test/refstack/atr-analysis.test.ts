// Differential test: our ATR parser against pcsc-tools' ATR_analysis on the concrete
// ATRs (no wildcards) of /usr/share/pcsc/smartcard_list.txt.
// SCARD_ATR_SAMPLE=all runs every ATR (3,803; about 45 s on 2 cores); the default is a
// deterministic sample of 600 (about 5 s).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAtr } from '../../server/src/codecs/atr';
import { loadSmartcardList } from '../../server/src/codecs/smartcardList';
import { fromHex, toHex } from '../../server/src/util/hex';
import { INSTALL_HINT, requireCommand } from '../support/system';

const LIST = '/usr/share/pcsc/smartcard_list.txt';
const SAMPLE = 600;

interface Verdict {
  protocols: string;
  fiDi: string;
  historical: string;
  tck: 'absent' | 'correct' | 'wrong';
}

function concreteAtrs(): string[] {
  const atrs = readFileSync(LIST, 'latin1').split('\n')
    .filter((l) => /^[0-9A-F]{2}( [0-9A-F]{2})*$/i.test(l.trim()))
    .map((l) => l.trim().toUpperCase());
  return [...new Set(atrs)];
}

function sample(all: string[]): string[] {
  if (process.env.SCARD_ATR_SAMPLE === 'all' || all.length <= SAMPLE) return all;
  const step = all.length / SAMPLE;
  return Array.from({ length: SAMPLE }, (_, k) => all[Math.floor(k * step)]);
}

// ATR_analysis prints "TD(i) = .. Protocol T = n", "TA(1) = .. Fi=.., Di=..",
// "+ Historical bytes: ..", "+ TCK = XX (correct checksum)" or "WRONG CHECKSUM".
function parseReference(atr: string, output: string): Verdict {
  const text = output.replace(/\x1b\[[0-9;]*m/g, '');
  const ts = [...text.matchAll(/Protocol T = (\d+)/g)].map((m) => Number(m[1])).filter((t) => t !== 15);
  const protocols = ts.length ? [...new Set(ts)] : [0];
  const fiDi = /TA\(1\) = [0-9A-F]{2} --> Fi=(\w+), Di=(\w+)/.exec(text);
  const hbLine = /^\+ Historical bytes: ?(.*)$/m.exec(text);
  // ATR_analysis prints all remaining bytes, then keeps the first K.
  const k = parseInt(atr.split(' ')[1] ?? '0', 16) & 0x0F;
  const hb = hbLine ? hbLine[1].trim().split(/\s+/).filter(Boolean).slice(0, k).join('') : '';
  const tckLine = /^\+ TCK = [0-9A-F]{2} (.*)$/m.exec(text);
  return {
    protocols: protocols.join(','),
    fiDi: fiDi ? `${fiDi[1]}/${fiDi[2]}` : '372/1',
    historical: hb,
    tck: !tckLine ? 'absent' : /correct/.test(tckLine[1]) ? 'correct' : 'wrong',
  };
}

function ours(atr: string): Verdict {
  const info = parseAtr(fromHex(atr));
  return {
    protocols: info.protocols.join(','),
    fiDi: `${info.fi ?? 'RFU'}/${info.di ?? 'RFU'}`,
    historical: toHex(info.historicalBytes),
    tck: info.tck === undefined ? 'absent' : info.tckValid ? 'correct' : 'wrong',
  };
}

/** Why a known difference is expected; null when nobody has explained it. */
function explain(atr: string, field: keyof Verdict, ref: Verdict, mine: Verdict): string | null {
  const info = parseAtr(fromHex(atr));
  const lastInterfaceByte = info.interfaceBytes.at(-1)?.offset ?? 1;
  const afterHistorical = info.bytes.length - lastInterfaceByte - 1 - info.historicalCount;
  if (field === 'tck' && ref.tck === 'absent' && mine.tck !== 'absent' && afterHistorical > 1 && info.tckRequired) {
    return 'ATR too long: ATR_analysis takes a TCK only when exactly K+1 bytes remain; '
      + 'we check the byte after the historical bytes as TCK (required: a protocol other than T=0 is offered) and report the extra ones';
  }
  if (field === 'historical' && info.errors.some((e) => e.startsWith('ATR is truncated'))) {
    return 'truncated ATR: ATR_analysis stops printing at the first missing interface byte';
  }
  return null;
}

const runAtrAnalysis = (atr: string, env: NodeJS.ProcessEnv) => new Promise<string>((resolve, reject) => {
  // A bounded run: an unknown ATR could make ATR_analysis try to download a newer list.
  execFile('ATR_analysis', atr.split(' '), { env, timeout: 10_000, maxBuffer: 1 << 20 }, (err, stdout) => {
    if (err && !stdout) reject(err); else resolve(stdout);
  });
});

function missingList(): string | false {
  if (existsSync(LIST)) return false;
  const msg = `missing ${LIST} (package pcsc-tools); ${INSTALL_HINT}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: a missing part fails the run)`);
  return msg;
}
const skip = requireCommand('ATR_analysis') || missingList();

test('ATR parser agrees with pcsc-tools ATR_analysis', { skip, timeout: 120_000 }, async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'scard-atr-'));
  after(() => rmSync(cache, { recursive: true, force: true }));
  // A fresh (nearly empty) list in XDG_CACHE_HOME: ATR_analysis then never tries to update it,
  // and skips the slow card lookup, which we do not compare.
  writeFileSync(join(cache, 'smartcard_list.txt'), '# empty: ATR_analysis must not download\n');
  const env = { ...process.env, XDG_CACHE_HOME: cache, http_proxy: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9' };

  const atrs = sample(concreteAtrs());
  const results: { atr: string; ref: Verdict }[] = [];
  let next = 0;
  const workers = Array.from({ length: Math.max(1, cpus().length) }, async () => {
    while (next < atrs.length) {
      const atr = atrs[next++];
      results.push({ atr, ref: parseReference(atr, await runAtrAnalysis(atr, env)) });
    }
  });
  await Promise.all(workers);

  const fields: (keyof Verdict)[] = ['protocols', 'fiDi', 'historical', 'tck'];
  let agree = 0;
  const unexplained: string[] = [];
  const explained = new Map<string, string[]>();
  for (const { atr, ref } of results) {
    const mine = ours(atr);
    let same = true;
    for (const f of fields) {
      if (ref[f] === mine[f]) continue;
      same = false;
      const why = explain(atr, f, ref, mine);
      const line = `${atr}: ${f} ATR_analysis=${ref[f] || '(none)'} ours=${mine[f] || '(none)'}`;
      if (why) explained.set(why, [...(explained.get(why) ?? []), line]);
      else unexplained.push(line);
    }
    if (same) agree++;
  }
  t.diagnostic(`${agree}/${results.length} ATRs agree on protocols, Fi/Di, historical bytes and TCK verdict`);
  for (const [why, lines] of explained) {
    t.diagnostic(`${lines.length} explained difference(s): ${why}`);
    for (const l of lines) t.diagnostic(`  ${l}`);
  }
  for (const l of unexplained) t.diagnostic(`UNEXPLAINED ${l}`);
  assert.equal(results.length, atrs.length);
  assert.ok(results.length >= Math.min(SAMPLE, 100), `only ${results.length} ATRs compared`);
  assert.ok(agree / results.length >= 0.97, `only ${agree}/${results.length} ATRs agree`);
  assert.deepEqual(unexplained, [], 'every difference from ATR_analysis must be explained');
});

// ATR_analysis prints, under "Possibly identified card (using FILE):", each matching
// pattern followed by its TAB-indented description lines (coloured), or "\tNONE". It looks
// nothing up (null) when the ATR ends inside its interface bytes or is a memory card's.
function referenceIdentification(output: string): string[] | null {
  const text = output.replace(/\x1b\[[0-9;]*m/g, '');
  const at = text.indexOf('Possibly identified card');
  if (at < 0) return null;
  if (/Your card is not present in the database/.test(text)) return [];
  return text.slice(at).split('\n').slice(1).filter((l) => l.startsWith('\t')).map((l) => l.slice(1));
}

/** Concrete ATRs, and one ATR made from each pattern whose only wildcard is `..` (every `..` as A5, a `.` nibble as 5). */
function identificationAtrs(): string[] {
  const patterns = readFileSync(LIST, 'utf8').split('\n').map((l) => l.trim().toUpperCase())
    .filter((l) => /^[0-9A-F.]{2}( [0-9A-F.]{2})*$/.test(l) && l.includes('..'));
  const fromPatterns = [...new Set(patterns.map((p) => p.replace(/\.\./g, 'A5').replace(/\./g, '5')))];
  const pick = (all: string[], n: number) => all.length <= n ? all : Array.from({ length: n }, (_, k) => all[Math.floor(k * all.length / n)]);
  const all = process.env.SCARD_ATR_SAMPLE === 'all';
  return [...(all ? concreteAtrs() : pick(concreteAtrs(), 200)), ...(all ? fromPatterns : pick(fromPatterns, 100))];
}

test('card identification (the compact smartcard_list.txt index) agrees with ATR_analysis', { skip, timeout: 300_000 }, async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'scard-atr-id-'));
  after(() => rmSync(cache, { recursive: true, force: true }));
  // A fresh copy in XDG_CACHE_HOME: ATR_analysis uses it and, being fresh, never downloads.
  const copy = join(cache, 'smartcard_list.txt');
  copyFileSync(LIST, copy);
  const env = { ...process.env, HOME: cache, XDG_CACHE_HOME: cache, http_proxy: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9' };
  const list = loadSmartcardList([copy], { standard: false });

  const atrs = identificationAtrs();
  const differences: string[] = [];
  const notLookedUp: string[] = [];
  let identified = 0;
  let next = 0;
  const workers = Array.from({ length: Math.max(1, cpus().length) }, async () => {
    while (next < atrs.length) {
      const atr = atrs[next++];
      const ref = referenceIdentification(await runAtrAnalysis(atr, env));
      const mine = list.identify(atr);
      if (mine.length) identified++;
      if (ref === null) { notLookedUp.push(atr); continue; }
      if (JSON.stringify(ref) !== JSON.stringify(mine)) differences.push(`${atr}: ATR_analysis ${JSON.stringify(ref)} ours ${JSON.stringify(mine)}`);
    }
  });
  await Promise.all(workers);
  t.diagnostic(`${atrs.length - notLookedUp.length - differences.length}/${atrs.length} ATRs identified alike (${identified} with a name by ours)`);
  t.diagnostic(`${notLookedUp.length} not looked up by ATR_analysis (it stops before its lookup): ${notLookedUp.join(', ')}`);
  assert.ok(notLookedUp.length <= atrs.length * 0.05, `${notLookedUp.length} ATRs not looked up by ATR_analysis`);
  assert.ok(identified >= atrs.length * 0.9, `only ${identified}/${atrs.length} ATRs identified`);
  assert.deepEqual(differences, [], 'every ATR must get the same description lines as from ATR_analysis');
});
