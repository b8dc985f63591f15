import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameDecoder, MAX_FRAME_BODY } from '../../../server/src/drivers/vpcd/framing';

test('encodeFrame puts the big-endian length and the payload in one buffer', () => {
  assert.deepEqual([...encodeFrame(Uint8Array.of(0x04))], [0x00, 0x01, 0x04]);
  const big = encodeFrame(new Uint8Array(0x1234));
  assert.equal(big.length, 0x1236);
  assert.deepEqual([...big.subarray(0, 2)], [0x12, 0x34]);
  assert.throws(() => encodeFrame(new Uint8Array(MAX_FRAME_BODY + 1)), RangeError);
});

test('FrameDecoder reassembles frames split at every byte and several per chunk', () => {
  const d = new FrameDecoder();
  const stream = Buffer.concat([encodeFrame(Uint8Array.of(1, 2, 3)), encodeFrame(new Uint8Array(0)), encodeFrame(Uint8Array.of(0x90, 0x00))]);
  const frames: number[][] = [];
  for (const b of stream) frames.push(...d.push(Buffer.of(b)).map((f) => [...f]));
  assert.deepEqual(frames, [[1, 2, 3], [], [0x90, 0x00]]);
  assert.equal(d.pending, 0);
  assert.deepEqual(d.push(stream).map((f) => [...f]), frames);
});

test('FrameDecoder reports a partial frame and its declared length', () => {
  const d = new FrameDecoder();
  assert.equal(d.expectedLength(), undefined);
  assert.deepEqual(d.push(Buffer.of(0xff)), []);
  assert.equal(d.expectedLength(), undefined);
  assert.deepEqual(d.push(Buffer.of(0xff, 0x01)), []);
  assert.equal(d.expectedLength(), 0xffff);
  assert.equal(d.pending, 3);
  d.reset();
  assert.equal(d.pending, 0);
});
