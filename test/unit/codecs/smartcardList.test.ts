import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SmartcardList, loadSmartcardList, standardSmartcardListPaths } from '../../../server/src/codecs/smartcardList';

const SAMPLE = `# comment line
3B 95 13 81 01 80 73 FF 01 00 0B
\tvicc ISO 7816 card
\thttps://frankmorgner.github.io/vsmartcard/

3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A
\tMIFARE Classic 1K (PC/SC)

3B 8F 80 01 80 4F 0C A0 00 00 03 06 .. 00 01 00 00 00 00 ..
\tAny contactless MIFARE 1K

3B 6. 00 00 [89]0 .. .*
\tnibble wildcard and class

3b 02 14 50
\tlower-case pattern

3B 1(2
\tbroken pattern
`;

const dir = mkdtempSync(join(tmpdir(), 'scard-list-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('parses entries and matches exact, wildcard and class patterns', () => {
  const list = new SmartcardList();
  list.addText(SAMPLE, 'sample');
  assert.equal(list.size, 5);
  assert.equal(list.warnings.length, 1);
  assert.match(list.warnings[0], /sample:18: ATR pattern is not a valid regular expression/);
  assert.deepEqual(list.identify('3B 95 13 81 01 80 73 FF 01 00 0B'), ['vicc ISO 7816 card', 'https://frankmorgner.github.io/vsmartcard/']);
  assert.deepEqual(list.identify('3B8F8001804F0CA000000306030001000000006A'), ['MIFARE Classic 1K (PC/SC)', 'Any contactless MIFARE 1K']);
  assert.deepEqual(list.identify('3b:8f:80:01:80:4f:0c:a0:00:00:03:06:11:00:01:00:00:00:00:77'), ['Any contactless MIFARE 1K']);
  assert.deepEqual(list.identify('3B 65 00 00 90 12 34'), ['nibble wildcard and class']);
  assert.deepEqual(list.identify('3B 65 00 00 70 12 34'), []);
  assert.deepEqual(list.identify('3B 02 14 50'), ['lower-case pattern']);
  assert.deepEqual(list.identify('3B 95 13'), [], 'a prefix of an ATR does not match');
  assert.deepEqual(list.identify('not hex'), []);
  assert.deepEqual(list.identify(''), []);
});

test('the compact index: CRLF lines, comments between descriptions, case-only duplicates, bytes or text alike', () => {
  const text = '3B 11 22\r\n\tfirst line\r\n# a comment inside\r\n\tsecond line\r\n\r\n3b 11 22\r\n\tsame pattern, lower case: skipped\r\n'
    + '\r\n3B 33 ..  \r\n\tÉlan carte (UTF-8)\r\n\t\r\nnot a tab line\n\torphan? no: belongs to the pattern above\n';
  const fromText = new SmartcardList();
  fromText.addText(text, 'crlf');
  const fromBytes = new SmartcardList();
  fromBytes.addText(new TextEncoder().encode(text), 'crlf');
  for (const list of [fromText, fromBytes]) {
    assert.equal(list.size, 3);
    assert.deepEqual(list.lookup('3B 11 22'), [{ pattern: '3B 11 22', descriptions: ['first line', 'second line'], source: 'crlf', line: 1 }]);
    assert.deepEqual(list.lookup('3B 33 7F'), [{ pattern: '3B 33 ..', descriptions: ['Élan carte (UTF-8)', ''], source: 'crlf', line: 9 }]);
    assert.deepEqual(list.identify('3B 33'), [], 'shorter than the pattern');
  }
  // "not a tab line" is itself a pattern (an invalid ATR, never matched) that owns the next line.
  assert.deepEqual(fromText.lookup('3B 11 23'), []);
});

test('earlier files win for the same pattern; missing files are skipped', () => {
  const mine = join(dir, 'mine.txt');
  writeFileSync(mine, '3B 95 13 81 01 80 73 FF 01 00 0B\n\tmy own description\n\n3B 00\n\tonly in mine\n');
  const other = join(dir, 'other.txt');
  writeFileSync(other, SAMPLE);
  const list = loadSmartcardList([mine, join(dir, 'missing.txt'), other], { standard: false });
  assert.deepEqual(list.sources, [mine, other]);
  assert.deepEqual(list.identify('3B 95 13 81 01 80 73 FF 01 00 0B'), ['my own description']);
  assert.deepEqual(list.identify('3B 00'), ['only in mine']);
  assert.deepEqual(list.warnings.filter((w) => !w.includes('not a valid regular expression')), []);
});

test('standard locations follow XDG_CACHE_HOME and HOME', () => {
  assert.deepEqual(standardSmartcardListPaths({ XDG_CACHE_HOME: '/c' }, '/h'),
    ['/c/smartcard_list.txt', '/h/.smartcard_list.txt', '/usr/share/pcsc/smartcard_list.txt']);
  assert.equal(standardSmartcardListPaths({}, '/h')[0], '/h/.cache/smartcard_list.txt');
});

const SYSTEM_LIST = '/usr/share/pcsc/smartcard_list.txt';
function missingSystemList(): string | false {
  if (existsSync(SYSTEM_LIST)) return false;
  const msg = `missing ${SYSTEM_LIST} (package pcsc-tools); install it with: sudo npm run setup:system`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: a missing part fails the run)`);
  return msg;
}
test('the Debian list: every concrete ATR identifies itself, bucketed lookup equals a full scan', {
  skip: missingSystemList(),
}, () => {
  const text = readFileSync(SYSTEM_LIST, 'utf8');
  const list = new SmartcardList();
  list.addText(text, SYSTEM_LIST);
  assert.ok(list.size > 3000, `only ${list.size} entries`);
  const concrete = text.split('\n').filter((l) => /^[0-9A-F]{2}( [0-9A-F]{2})*$/i.test(l));
  // Reference: every pattern tried on every ATR, no buckets.
  const all = text.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('\t')).flatMap((p) => {
    try { return [new RegExp(`^(?:${p.trim()})$`, 'i')]; } catch { return []; }
  });
  for (const atr of concrete) {
    const found = list.lookup(atr);
    assert.ok(found.some((e) => e.pattern.toUpperCase() === atr.toUpperCase()), `${atr} not identified`);
  }
  for (let k = 0; k < concrete.length; k += 37) {
    const atr = concrete[k].toUpperCase();
    const full = new Set(all.filter((r) => r.test(atr)).map((r) => r.source.toUpperCase()));
    const fast = new Set(list.lookup(atr).map((e) => `^(?:${e.pattern})$`.toUpperCase()));
    assert.deepEqual(fast, full, atr);
  }
});

// The helper identifies its first card before it announces "started": that first lookup scans
// the texts for one ATR instead of indexing the whole list. It must answer what the index does.
test('the first lookup (a scan, no index) answers what the index answers', () => {
  const crlf = '3B 11 22\r\n\tfirst line\r\n# a comment inside\r\n\tsecond line\r\n\r\n3b 11 22\r\n\tsame pattern, lower case: skipped\r\n'
    + '\r\n3B 33 ..  \r\n\tÉlan carte (UTF-8)\r\n\t\r\n  3B 44 55\n\tleading spaces\n3B 44 5? 66|3B 77\n\talternative\n3B 1(2\n\tbroken\n3B 1(2\n\tbroken again\n'
    + '3B 8E?F 00\n\ta quantifier right after the first five characters\n';
  const texts: Array<[string, string]> = [['mine', '3B 95 13 81 01 80 73 FF 01 00 0B\n\tmy own description\n'], ['sample', SAMPLE], ['crlf', crlf]];
  const atrs = ['3B 95 13 81 01 80 73 FF 01 00 0B', '3B8F8001804F0CA000000306030001000000006A', '3B 8F 80 01 80 4F 0C A0 00 00 03 06 11 00 01 00 00 00 00 77',
    '3B 65 00 00 90 12 34', '3B 65 00 00 70 12 34', '3b 02 14 50', '3B 11 22', '3B 33 7F', '3B 44 55', '3B 44 5 66', '3B 77', '3B 44 66', '3B 12', '3B 95 13', '3B 8F 00', 'zz', ''];
  const indexed = new SmartcardList();
  for (const [source, text] of texts) indexed.addText(text, source);
  assert.ok(indexed.size > 0); // builds the index
  for (const atr of atrs) {
    const fresh = new SmartcardList();
    for (const [source, text] of texts) fresh.addText(text, source);
    assert.deepEqual(fresh.lookup(atr), indexed.lookup(atr), `first lookup of ${atr}`);
    assert.deepEqual(fresh.lookup(atr), indexed.lookup(atr), `second lookup of ${atr} (indexed)`);
  }
  // And over the real list: one ATR for each 25th pattern (literal, or its wildcards filled in).
  const real = '/usr/share/pcsc/smartcard_list.txt';
  if (!existsSync(real)) return;
  const bytes = readFileSync(real);
  const full = new SmartcardList();
  full.addText(bytes, real);
  const patterns = bytes.toString('utf8').split('\n').filter((l) => /^3B [0-9A-F]/i.test(l));
  let matched = 0;
  for (let i = 0; i < patterns.length; i += 25) {
    const atr = patterns[i].trim().replace(/\.\./g, '00').replace(/\./g, '0').replace(/\[(.)[^\]]*\]/g, '$1').replace(/[^0-9A-Fa-f ]/g, '').replace(/ +/g, ' ').trim();
    const fresh = new SmartcardList();
    fresh.addText(bytes, real);
    const first = fresh.lookup(atr);
    assert.deepEqual(first, full.lookup(atr), atr);
    if (first.length) matched++;
  }
  assert.ok(matched > 50, `most of those ATRs are identified (${matched})`);
});
