// A PIN written in a script (R88): the engine names the data of VERIFY & co. as secret, whatever
// wrote it (hex, a variable, $data), on T=0 and T=1; the parser's messages do not quote it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { formatEntry } from '../../../server/src/script/trace';
import { simulatorManager } from './support';

const PIN_HEX = '31323334'; // the simulator's PIN, 1234

for (const card of ['T=0', 'T=1'] as const) {
  test(`${card}: a literal VERIFY (case 3 and 4), a variable and a slice of it, in a repeat: the data is ** in every entry, the status words as the card gave them`, async () => {
    const { m, entries } = await simulatorManager(card);
    const r = await runScript(parseScript([
      '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00',
      `00 20 00 01 04 ${PIN_HEX} => 90 00`,
      `00 20 00 01 04 ${PIN_HEX} 00 => 90 00`, // case 4: T=0 sends it without Le
      `let P = ${PIN_HEX}`,
      'repeat 2',
      '  00 20 00 81 04 ${P} => 90 00',
      'end',
      '00 20 00 01 04 ${P[0:2]} 33 34 => 90 00',
    ].join('\n')), { manager: m });
    assert.equal(r.ok, true, r.failure?.message);
    const sent = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange');
    assert.deepEqual(sent.map((e) => [e.command, e.sw]), [
      ['00A4040C07F0574244454D4F', '9000'],
      ['0020000104********', '9000'],
      [card === 'T=0' ? '0020000104********' : '0020000104**********', '9000'],
      ['0020008104********', '9000'],
      ['0020008104********', '9000'],
      ['0020000104********', '9000'],
    ]);
    const text = JSON.stringify(entries) + entries.flatMap(formatEntry).join('\n') + JSON.stringify(r);
    for (const leak of [PIN_HEX, '31 32 33 34', '1234']) assert.ok(!text.includes(leak), `'${leak}' in the log or the result`);
    await m.stop();
  });
}

test('$data fed into a VERIFY is ** too (the GET CHALLENGE answer that held it is shown as it came)', async () => {
  const { m, entries } = await simulatorManager('T=1');
  const r = await runScript(parseScript('00 84 00 00 08 => * 90 00\n00 20 00 81 08 $data => 63 C2'), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  const [challenge, verify] = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange');
  assert.equal(verify.command, `0020008108${'**'.repeat(8)}`);
  assert.match(challenge.response, /^[0-9A-F]{16}9000$/);
  await m.stop();
});

test('the same bytes in other commands are shown; a ${pin} in a VERIFY is masked as before', async () => {
  const { m, entries } = await simulatorManager('T=1');
  const r = await runScript(parseScript([
    `00 CA 00 01 04 ${PIN_HEX}`, `00 A4 04 00 04 ${PIN_HEX}`, '00 20 00 01 => 63 C3', '00 20 00 01 04 ${pin:"User PIN"} => 90 00',
  ].join('\n')), { manager: m, askPin: async () => '1234', confirm: async () => true });
  assert.equal(r.ok, true, r.failure?.message);
  const sent = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange' && !e.auto).map((e) => e.command);
  assert.deepEqual(sent, [`00CA000104${PIN_HEX}`, `00A4040004${PIN_HEX}`, '00200001', '0020000104********']);
  await m.stop();
});

test('parser: a bad word in a VERIFY\'s data is not quoted; in its header, another command\'s data, a pinpad template or a let it is', () => {
  const message = (line: string) => parseScript(line).diagnostics[0]?.message;
  assert.equal(message('00 20 00 81 08 3132333435363G'), "a word of this command's data (not quoted: the data is a PIN) is not hex");
  assert.equal(message('00 24 00 81 08 3132 33343 => 90 00'), "odd number of hex digits in a word of this command's data (not quoted: the data is a PIN)");
  assert.equal(message('00 2C 00 81 08 3132@3334'), "unexpected a word of this command's data (not quoted: the data is a PIN): expected hex bytes, ${NAME}, $data or $sw");
  assert.equal(message('00 20 00 81 08 ${X} 3G'), "a word of this command's data (not quoted: the data is a PIN) is not hex");
  assert.equal(message('00 20 0G 81 08 31323334'), "'0G' is not hex", 'the header is quoted');
  assert.equal(message('00 CA 00 81 04 3132333G'), "'3132333G' is not hex", 'GET DATA is not a VERIFY');
  assert.match(message('verify pinpad 00 20 00 01 04 FFFFFFFF rot13') ?? '', /unexpected 'rot13'/);
  assert.equal(message('let X = 00 20 00 81 08 3G'), "'3G' is not hex");
});
