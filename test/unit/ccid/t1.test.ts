import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T1Protocol, crc16, lrc, encodeBlock, decodeBlock, type Edc } from '../../../server/src/ccid/t1';
import { ScError } from '../../../server/src/util/errors';
import { fromHex, toHex } from '../../../server/src/util/hex';
import { SimulatedCard } from '../../../server/src/drivers/simulator/card';
import { T1Card, type T1CardOptions } from '../../support/ccid-device/t1-card';

/** A card answering with `n` bytes counting up from the command's last byte, then 90 00. */
const counting = (n: number) => (apdu: Uint8Array) => {
  const out = new Uint8Array(n + 2);
  for (let i = 0; i < n; i++) out[i] = (apdu[apdu.length - 1] + i) & 0xff;
  out.set([0x90, 0x00], n);
  return out;
};

function rig(process: (a: Uint8Array) => Uint8Array, cardOpts: T1CardOptions = {}, fault?: (reply: Uint8Array, n: number) => Uint8Array) {
  const card = new T1Card(process, cardOpts);
  const wtx: number[] = [];
  const events: string[] = [];
  let n = 0;
  const t1 = new T1Protocol(async (block, w) => {
    wtx.push(w);
    const reply = card.receive(block);
    return fault ? fault(reply, n++) : reply;
  }, { ifsc: cardOpts.ifsc ?? 32, edc: cardOpts.edc, onEvent: (e) => events.push(e) });
  return { card, t1, wtx, events };
}

test('LRC and CRC (ISO/IEC 13239 as readers compute it)', () => {
  assert.equal(lrc(Uint8Array.of(0x00, 0x40, 0x01, 0x55)), 0x14);
  assert.equal(crc16(new TextEncoder().encode('123456789')), 0x6f91);
  for (const edc of ['lrc', 'crc'] as Edc[]) {
    const raw = encodeBlock({ kind: 'I', ns: 1, more: true, inf: Uint8Array.of(1, 2, 3) }, edc);
    const d = decodeBlock(raw, edc);
    assert.ok(d.ok && d.block.kind === 'I' && d.block.ns === 1 && d.block.more);
    raw[3] ^= 0x01;
    const bad = decodeBlock(raw, edc);
    assert.ok(!bad.ok && bad.edcError);
  }
  assert.equal(toHex(encodeBlock({ kind: 'S', type: 1, response: false, inf: Uint8Array.of(0xfe) }, 'lrc')), '00C101FE3E');
});

test('the simulator card answers the same through T=1 blocks as directly', async () => {
  const direct = new SimulatedCard('T=1');
  const viaBlocks = new SimulatedCard('T=1');
  const { t1 } = rig((a) => viaBlocks.process(a), { ifsc: 254 });
  t1.ifsc = 254;
  for (const hex of ['00A4040007F057424445 4D4F', '00A4000C025001', '00B0000000', '0084000008']) {
    const apdu = fromHex(hex);
    const a = direct.process(apdu);
    const b = await t1.transmit(apdu);
    if (apdu[1] === 0x84) assert.equal(b.length, a.length); // challenges differ
    else assert.equal(toHex(b), toHex(a));
  }
});

test('chaining both ways with a small IFSC and a negotiated IFSD', async () => {
  const { card, t1, events } = rig(counting(100), { ifsc: 16 });
  await t1.negotiateIfsd(20);
  assert.equal(card.ifsd, 20);
  assert.ok(events.includes('IFSD set to 20'));
  const apdu = new Uint8Array(45).map((_, i) => i);
  const r = await t1.transmit(apdu);
  assert.equal(r.length, 102);
  assert.equal(r[0], 44);
  assert.equal(toHex(r.subarray(100)), '9000');
  // 45 bytes in IFSC-16 parts: 16 + 16 + 13; 102 bytes back in IFSD-20 parts (6 blocks, 5 R acks).
  assert.deepEqual(card.log.filter((l) => l.startsWith('I(')), ['I(0,M) 16', 'I(1,M) 16', 'I(0,-) 13']);
  assert.equal(card.log.filter((l) => l.startsWith('R(')).length, 5, card.log.join(' '));
  // Sequence numbers carry on across commands.
  const again = await t1.transmit(Uint8Array.of(0, 0xb0, 0, 0, 7));
  assert.equal(again[0], 7);
});

test('the card changes IFSC with S(IFS request); later parts use the new size', async () => {
  const { card, t1, events } = rig(counting(2), { ifsc: 32, changeIfscTo: 10 });
  await t1.transmit(new Uint8Array(20));
  assert.equal(t1.ifsc, 10);
  assert.ok(events.includes('card sets IFSC to 10'));
  await t1.transmit(new Uint8Array(25));
  assert.deepEqual(card.log.filter((l) => l.startsWith('I(')).slice(-3), ['I(1,M) 10', 'I(0,M) 10', 'I(1,-) 5']);
});

test('WTX: the multiplier the card asks for is passed to the next exchange', async () => {
  const { t1, wtx, events } = rig(counting(3), { wtxBeforeResponse: 2 });
  const r = await t1.transmit(Uint8Array.of(0, 0xca, 0, 0, 1));
  assert.equal(toHex(r), '0102039000');
  assert.deepEqual(wtx, [1, 2, 2]);
  assert.equal(events.filter((e) => /waiting time extension x2/.test(e)).length, 2);
});

test('a corrupted block is retransmitted', async () => {
  // Flip a bit in the card's second reply (a part of its chained response).
  const { t1, events, card } = rig(counting(60), { ifsc: 32 }, (reply, n) => {
    if (n !== 1) return reply;
    const bad = reply.slice();
    bad[3] ^= 0x80;
    return bad;
  });
  const r = await t1.transmit(Uint8Array.of(0, 0xb0, 0, 0, 0));
  assert.equal(r.length, 62);
  assert.equal(r[59], 59);
  assert.ok(events.some((e) => /wrong LRC; sending R\(N\(R\)=/.test(e)), events.join('\n'));
  assert.equal(card.apdusProcessed, 1);
});

test('CRC mode with a corrupted block', async () => {
  const { t1, events } = rig(counting(5), { edc: 'crc' }, (reply, n) => (n === 0 ? reply.map((b, i) => (i === 4 ? b ^ 1 : b)) : reply));
  const r = await t1.transmit(Uint8Array.of(0, 0xb0, 0, 0, 9));
  assert.equal(toHex(r), '090A0B0C0D9000');
  assert.ok(events.some((e) => /wrong CRC/.test(e)));
});

test('lost blocks: after 3 retransmissions the reader resynchronises and sends the command again', async () => {
  let lost = 0;
  const { t1, events, card } = rig(counting(2), {}, (reply) => (lost++ < 4 ? new Uint8Array(0) : reply));
  await t1.transmit(Uint8Array.of(0, 1, 2, 3, 4)); // warm up: sequence numbers move off 0
  lost = 0;
  const r = await t1.transmit(Uint8Array.of(0, 0xb0, 0, 0, 5));
  assert.equal(toHex(r), '05069000');
  assert.ok(events.some((e) => /resynchronised/.test(e)));
  assert.ok(events.some((e) => /no block received, 3 retransmissions did not help/.test(e)));
  assert.ok(card.log.includes('S(0)'));
});

test('a card that never answers ends in a clear PROTOCOL error, not a hang', async () => {
  const t1 = new T1Protocol(async () => new Uint8Array(0));
  await assert.rejects(t1.transmit(Uint8Array.of(0, 0xb0, 0, 0, 0)),
    (e: unknown) => e instanceof ScError && e.code === 'PROTOCOL' && /resynchronisation/.test(e.message));
});

test('a card asking for time forever ends in TIMEOUT', async () => {
  const wtxForever = encodeBlock({ kind: 'S', type: 3, response: false, inf: Uint8Array.of(1) }, 'lrc');
  const t1 = new T1Protocol(async () => wtxForever, { maxWtx: 50 });
  await assert.rejects(t1.transmit(Uint8Array.of(0, 0xb0, 0, 0, 0)), (e: unknown) => e instanceof ScError && e.code === 'TIMEOUT');
});

test('T1Protocol refuses an IFSC outside 1–254 (0 would send empty I-blocks forever)', () => {
  const never = async () => new Uint8Array(0);
  for (const ifsc of [0, 255, -1, 1.5]) {
    assert.throws(() => new T1Protocol(never, { ifsc }), (e: unknown) => e instanceof ScError && e.code === 'BAD_REQUEST' && /IFSC must be 1–254/.test(e.message));
  }
  assert.equal(new T1Protocol(never, { ifsc: 1 }).ifsc, 1);
  assert.equal(new T1Protocol(never, { ifsc: 254 }).ifsc, 254);
});
