import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ATR_T0, ATR_T1, SimulatedCard } from '../../../server/src/drivers/simulator/card';
import { fromHex, toHex } from '../../../server/src/util/hex';

const tx = (c: SimulatedCard, hex: string) => toHex(c.process(fromHex(hex)));

test('T=1 card: SELECT by AID returns the FCI, READ BINARY reads the file', () => {
  const c = new SimulatedCard('T=1');
  assert.equal(toHex(c.reset()), toHex(ATR_T1));
  const fci = tx(c, '00A4040007F0574244454D4F00');
  assert.ok(fci.startsWith('6F10') && fci.endsWith('8407F0574244454D4F9000'), fci);
  assert.equal(tx(c, '00A4020C025001'), '9000');
  assert.equal(tx(c, '00B0000005'), Buffer.from('Hello').toString('hex').toUpperCase() + '9000');
  assert.equal(tx(c, '00B0010001'), '6B00', 'offset past the end');
  assert.equal(tx(c, '00A4020C029999'), '6A82', 'file not found');
  assert.equal(tx(c, '00FF000000'), '6D00', 'unknown instruction');
});

test('T=0 card: case 4 gives 61xx, GET RESPONSE returns the data, wrong Le gives 6Cxx', () => {
  const c = new SimulatedCard('T=0');
  assert.equal(toHex(c.reset()), toHex(ATR_T0));
  assert.equal(tx(c, '00A4040007F0574244454D4F'), '6112');
  const fci = tx(c, '00C0000012');
  assert.ok(fci.startsWith('6F10') && fci.endsWith('9000'), fci);
  assert.equal(tx(c, '00C0000012'), '6985', 'nothing pending any more');
  assert.equal(tx(c, '00A4020C025001'), '9000');
  assert.equal(tx(c, '00B0000040'), '6C2E', 'file has 46 bytes');
  assert.equal(tx(c, '0084000000'), '6C08');
});

test('VERIFY: retry counter, blocking, reset keeps the counter', () => {
  const c = new SimulatedCard('T=1');
  c.reset();
  assert.equal(tx(c, '002000010430303030'), '63C2');
  assert.equal(tx(c, '00200001'), '63C2');
  assert.equal(tx(c, '002000010431323334'), '9000');
  assert.equal(tx(c, '00200001'), '9000');
  c.reset();
  for (const left of ['63C2', '63C1', '6983']) assert.equal(tx(c, '002000010430303030'), left);
  assert.equal(tx(c, '002000010431323334'), '6983', 'blocked stays blocked');
  c.reset();
  assert.equal(c.triesLeft, 0);
});

test('protected file needs VERIFY', () => {
  const c = new SimulatedCard('T=1');
  c.reset();
  tx(c, '00A4040C07F0574244454D4F');
  assert.equal(tx(c, '00A4020C025003'), '9000');
  assert.equal(tx(c, '00B0000000'), '6982');
  tx(c, '002000010431323334');
  assert.ok(tx(c, '00B0000000').endsWith('6282'));
});

test('T=1 card: the four short APDU cases and malformed lengths (the parse reads bytes by index)', () => {
  const c = new SimulatedCard('T=1');
  c.reset();
  assert.equal(tx(c, '00A40000'), '6F0782013883023F009000', 'case 1: SELECT MF, FCI');
  assert.equal(tx(c, '0084000004').length, 12, 'case 2: 4 challenge bytes + SW');
  assert.equal(tx(c, '0084000000').length, 20, 'case 2, Le 00: the card\'s 8 bytes');
  assert.equal(tx(c, '00A4000C023F00'), '9000', 'case 3');
  assert.equal(tx(c, '00A40000022F0000'), '6F0B8002001182010183022F009000', 'case 4: SELECT EF.DIR, FCI');
  assert.equal(tx(c, '00A40000022F0004'), '6F0B80026109', 'case 4, Le shorter than the FCI: 61xx');
  assert.equal(tx(c, '00C0000000'), '001182010183022F009000', 'the rest by GET RESPONSE');
  assert.equal(tx(c, '00A4000C00'), '9000', 'case 2 form of SELECT MF');
  assert.equal(tx(c, '00A4000C003F00'), '6700', 'Lc 00 with data');
  assert.equal(tx(c, '00A4000C033F00'), '6700', 'Lc longer than the data');
  assert.equal(tx(c, '00A4000C023F000000'), '6700', 'two bytes too many');
  assert.equal(tx(c, '80A4000C023F00'), '6E00', 'CLA with bit 8 set');
  assert.equal(tx(c, '00A4'), '6700', 'shorter than a header');
});
