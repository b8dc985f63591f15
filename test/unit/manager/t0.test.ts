// The T=0 rules as a pure table (issue 14, item 8): case conversion to a TPDU,
// 61xx → GET RESPONSE, 6Cxx → resend with Le = SW2, and the CLA of a GET
// RESPONSE keeping the logical channel (ISO/IEC 7816-4 §5.4.1, tables 2 and 3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getResponseCla, nextT0Step, toT0Tpdu } from '../../../server/src/manager/t0';
import { ReaderManager } from '../../../server/src/manager/manager';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ScError } from '../../../server/src/util/errors';
import { fromHex, toHex } from '../../../server/src/util/hex';

test('GET RESPONSE CLA keeps the logical channel: first and further interindustry classes', () => {
  const table: Array<[number, number, string]> = [
    [0x00, 0x00, 'channel 0'],
    [0x01, 0x01, 'channel 1'],
    [0x03, 0x03, 'channel 3'],
    [0x0c, 0x00, 'SM bits dropped'],
    [0x0d, 0x01, 'SM bits dropped, channel 1 kept'],
    [0x10, 0x00, 'chaining bit dropped'],
    [0x13, 0x03, 'chaining dropped, channel 3 kept'],
    [0x40, 0x40, 'channel 4'],
    [0x41, 0x41, 'channel 5'],
    [0x4f, 0x4f, 'channel 19'],
    [0x50, 0x40, 'further class, chaining dropped'],
    [0x5e, 0x4e, 'further class, chaining dropped, channel 18 kept'],
    [0x60, 0x40, 'further class, SM dropped, channel 4'],
    [0x61, 0x41, 'further class, SM dropped, channel 5'],
    [0x6f, 0x4f, 'further class, SM dropped, channel 19'],
    [0x7f, 0x4f, 'further class, SM and chaining dropped, channel 19'],
    [0x80, 0x00, 'proprietary (GlobalPlatform) channel 0'],
    [0x81, 0x01, 'proprietary channel 1'],
    [0x84, 0x00, 'proprietary with SM, channel 0'],
    [0xc1, 0x41, 'proprietary further coding, channel 5'],
  ];
  for (const [cla, want, why] of table) {
    assert.equal(getResponseCla(cla).toString(16), want.toString(16), `CLA ${cla.toString(16)}: ${why}`);
  }
});

test('APDU → T=0 TPDU: case 1 gets P3 = 00, case 4 loses Le, cases 2 and 3 pass, extended is refused', () => {
  const table: Array<[string, string | RegExp]> = [
    ['00A40000', '00A4000000'],                           // case 1
    ['0084000008', '0084000008'],                         // case 2
    ['00A4000C025001', '00A4000C025001'],                 // case 3
    ['00A4040007F0574244454D4F00', '00A4040007F0574244454D4F'], // case 4 → case 3
    ['00A40400020102FF', '00A40400020102'],               // case 4 with Le FF → case 3
    ['00B0000000000A', /Extended-length/],                // extended case 2
    ['00D6000000000201020000', /Extended-length/],        // extended case 4
  ];
  for (const [apdu, want] of table) {
    if (want instanceof RegExp) {
      assert.throws(() => toT0Tpdu(fromHex(apdu)), (e: unknown) => e instanceof ScError && e.code === 'NOT_SUPPORTED' && want.test(e.message), apdu);
    } else {
      assert.equal(toHex(toT0Tpdu(fromHex(apdu))), want, apdu);
    }
  }
});

test('the next automatic T=0 step after each status word', () => {
  const table: Array<[string, string, string, string | null]> = [
    // [original CLA INS…, last command sent, response, next command (null = done)]
    ['00A4040007', '00A4040007F0574244454D4F', '6112', '00C0000012'],
    ['41A4040007', '41A4040007F0574244454D4F', '6112', '41C0000012'],
    ['6FA4040007', '6FA4040007F0574244454D4F', '6100', '4FC0000000'],
    ['0084000000', '0084000000', '6C08', '0084000008'],
    ['4584000000', '4584000000', '6C08', '4584000008'],
    ['00A4040007', '00C0000012', '6C05', '00C0000005'],   // a GET RESPONSE is case 2: its wrong Le is corrected too
    ['00A4040007', '00A4040007F0574244454D4F', '9000', null],
    ['00A4040007', '00A4040007F0574244454D4F', '6A82', null],
    ['00A4040007', '00A4040007F0574244454D4F', '6C08', null], // 6Cxx answers only a case-2 command
  ];
  for (const [orig, last, response, want] of table) {
    const step = nextT0Step(fromHex(orig)[0], fromHex(last), fromHex(response));
    assert.equal(step ? toHex(step.command) : null, want === null ? null : want, `${last} → ${response}`);
  }
  const gr = nextT0Step(0x00, fromHex('00A4040007F0574244454D4F'), fromHex('6112'))!;
  assert.equal(gr.auto, 'getResponse');
  const le = nextT0Step(0x00, fromHex('0084000000'), fromHex('6C08'))!;
  assert.equal(le.auto, 'resendWithLe');
});

test('manager path: 41 A4 … on the T=0 card fetches its answer with GET RESPONSE on channel 5 (CLA 41)', async () => {
  const sim = new SimulatorDriver({ card: 'T=0' });
  const m = new ReaderManager([sim]);
  await m.start();
  const c = await m.connect(m.resolve());
  const r = await c.transmit(fromHex('41 A4 04 00 07 F0 57 42 44 45 4D 4F 00'));
  assert.deepEqual(r.exchanges.map((e) => [e.command, e.auto ?? null]), [
    ['41A4040007F0574244454D4F', null],
    ['41C0000012', 'getResponse'],
  ]);
  assert.equal(toHex(r.response.subarray(-2)), '9000');
  await m.stop();
});
