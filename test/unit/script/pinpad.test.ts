import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { LogEntry } from '../../../server/src/protocol';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { decodePinVerify, encodePinVerify } from '../../../server/src/codecs/pinpad';

const SCRIPT = '00 A4 04 0C 07 F0 57 42 44 45 4D 4F\nverify pinpad 00 20 00 01 04 FF FF FF FF ascii min=4 max=4 => 90 00\n00 A4 02 0C 02 50 03\n00 B0 00 00 00 => * 62 82';

async function setup(keypad?: (p: string) => Promise<string>) {
  const sim = new SimulatorDriver({ pin: '7391', ...(keypad ? { keypad } : {}) });
  const m = new ReaderManager([sim]);
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  const sent: Uint8Array[] = [];
  const control = sim.control.bind(sim);
  sim.control = (key, code, data) => { if (code !== 3400) sent.push(data); return control(key, code, data); };
  return { m, entries, sent };
}

test('PIN_VERIFY_STRUCTURE round-trips and rejects bad lengths', () => {
  const apdu = Uint8Array.from([0, 0x20, 0, 1, 4, 0xff, 0xff, 0xff, 0xff]);
  const s = encodePinVerify({ timeout: 30, format: 'bcd', position: 0, minDigits: 4, maxDigits: 8, apdu });
  assert.equal(s.length, 19 + 9);
  assert.deepEqual(decodePinVerify(s), { timeout: 30, format: 'bcd', position: 0, minDigits: 4, maxDigits: 8, apdu });
  assert.match((decodePinVerify(s.subarray(0, 25)) as { error: string }).error, /ulDataLength is 9 but 6/);
});

test('verify pinpad: the keypad supplies the PIN, the reader sends it, the log never sees it', async () => {
  const prompts: string[] = [];
  const { m, entries, sent } = await setup(async (p) => { prompts.push(p); return '7391'; });
  const reader = m.list().readers[0];
  const r = await runScript(parseScript(SCRIPT), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  assert.match(prompts[0], /keypad \(4-4 digits\)/);
  const control = entries.filter((e) => e.kind === 'control');
  assert.equal(control.length, 1);
  assert.ok(!JSON.stringify(entries).includes('37333931'), 'the PIN never reaches the log');
  assert.ok(Buffer.from(sent[0]).toString('hex').toUpperCase().includes('0020000104FFFFFFFF'), 'the structure sent carries placeholders');
  // A PIN-pad call is masked whoever makes it (R53): a script's template may hold a PIN too.
  assert.equal(control[0].kind === 'control' && control[0].command, '**'.repeat(sent[0].length), 'the structure is logged masked');
  assert.deepEqual(m.reader(reader.name).features, ['VERIFY_PIN_DIRECT 0x42330006'], 'features shown on the reader');
});

test('a wrong PIN on the keypad fails the expectation with the retry counter; a reader without pinpad says so', async () => {
  const { m } = await setup(async () => '0000');
  const r = await runScript(parseScript(SCRIPT), { manager: m });
  assert.equal(r.failure?.line, 2);
  assert.match(r.failure!.message, /63 C2/);
  const plain = await setup();
  const r2 = await runScript(parseScript(SCRIPT), { manager: plain.m });
  assert.equal(r2.failure?.code, 'NOT_SUPPORTED');
  assert.match(r2.failure!.message, /has no pinpad/);
});

test('verify pinpad syntax errors', () => {
  assert.match(parseScript('verify 00 20').diagnostics[0].message, /usage: verify pinpad/);
  assert.match(parseScript('verify pinpad 00 20 00 01 04 FFFFFFFF rot13').diagnostics[0].message, /unexpected 'rot13'/);
  assert.match(parseScript('verify pinpad 00 20 00 01 04 FFFFFFFF min=8 max=4').diagnostics[0].message, /min=8 is more than max=4/);
  assert.deepEqual(parseScript('verify pinpad 00 20 00 01 08 FFFFFFFFFFFFFFFF bcd min=4 max=12 => 90 00').diagnostics, []);
});
