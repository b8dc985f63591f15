// vsmartcard's vicc connected straight to our vpcd driver (no pcscd): ATR,
// an ISO 7816-4 command sequence, and card removal when vicc is killed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { requireCommands } from '../support/system';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import type { Driver } from '../../server/src/drivers/driver';
import { ScError } from '../../server/src/util/errors';
import { fromHex, toSpacedHex } from '../../server/src/util/hex';
import { freePort, loadRefStack, RecordingSink, unlessExited, type RefStack, type StackProcess } from './stack';

const skip = requireCommands('vicc');

let stack: RefStack;
let driver: Driver;
let sink: RecordingSink;
let key: string;
let port: number;
let vicc: StackProcess | null = null;

before(async () => {
  if (skip) return;
  stack = await loadRefStack();
  port = await freePort();
  key = `vpcd:${port}`;
  sink = new RecordingSink();
  driver = createVpcdDriver({ ports: [port], responseTimeoutMs: 10_000 });
  await driver.start(sink);
});

after(async () => {
  await vicc?.stop();
  await driver?.stop();
});

const sw = (r: Uint8Array) => toSpacedHex(r.subarray(r.length - 2));

test('vicc connecting to our vpcd driver: ATR, SELECT / GET RESPONSE / VERIFY / GET CHALLENGE, removal on kill', { skip }, async () => {
  const inserted = sink.next('cardInserted', key);
  vicc = stack.startVicc({ port, host: '127.0.0.1' });
  await unlessExited(inserted, vicc, 'vicc connecting');

  const atr = await driver.powerOn(key, 'cold');
  assert.equal(toSpacedHex(atr), stack.VICC_ATR);
  await driver.setProtocol(key, 1, atr);

  const select = await driver.transmit(key, fromHex('00A4000002 3F00'), 1);
  assert.equal(toSpacedHex(select), '61 0C', 'SELECT MF answers with FCI waiting (needs the patched vicc)');
  const fci = await driver.transmit(key, fromHex('00C000000C'), 1);
  assert.equal(fci.length, 14);
  assert.equal(fci[0], 0x6f, 'FCI template');
  assert.equal(sw(fci), '90 00');

  const verifyBadP1 = await driver.transmit(key, fromHex('0020010004 31323334'), 1);
  assert.equal(toSpacedHex(verifyBadP1), '6A 86');
  const verify = await driver.transmit(key, fromHex('0020000004 31323334'), 1);
  assert.equal(toSpacedHex(verify), '90 00');

  const c1 = await driver.transmit(key, fromHex('0084000008'), 1);
  const c2 = await driver.transmit(key, fromHex('0084000008'), 1);
  assert.equal(c1.length, 10);
  assert.equal(sw(c1), '90 00');
  assert.notEqual(toSpacedHex(c1), toSpacedHex(c2), 'two challenges differ');

  const warm = await driver.powerOn(key, 'warm');
  assert.equal(toSpacedHex(warm), stack.VICC_ATR);

  const removed = sink.next('cardRemoved', key);
  const pending = driver.transmit(key, fromHex('0084000008'), 1).catch((e: unknown) => e);
  await vicc.stop();
  vicc = null;
  await removed;
  const outcome = await pending;
  // The command either completed before the kill or failed as a removal.
  assert.ok(outcome instanceof Uint8Array || (outcome instanceof ScError && outcome.code === 'CARD_REMOVED'), String(outcome));
  await assert.rejects(driver.transmit(key, fromHex('0084000008'), 1), (e: unknown) => e instanceof ScError && e.code === 'NO_CARD');
});

test('a second vicc on the same port is refused while the first is connected', { skip }, async () => {
  const inserted = sink.next('cardInserted', key);
  const first = stack.startVicc({ port, host: '127.0.0.1' });
  let second: StackProcess | null = null;
  try {
    await unlessExited(inserted, first, 'first vicc connecting');
    second = stack.startVicc({ port, host: '127.0.0.1' });
    // vicc in connect mode exits when the reader side closes its socket.
    await second.exited;
    assert.ok(sink.logs.some((l) => l.level === 'warn' && /refused card emulator/.test(l.message)));
    const atr = await driver.powerOn(key, 'cold');
    assert.equal(toSpacedHex(atr), stack.VICC_ATR);
  } finally {
    const removed = sink.next('cardRemoved', key);
    await second?.stop();
    await first.stop();
    await removed;
  }
});
