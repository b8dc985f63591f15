// toHex / fromHex: the short path (a table) and the long one (Node's encoder) give the same text,
// also for views into a larger buffer (byteOffset), with and without separators.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromHex, toHex, toSpacedHex } from '../../../server/src/util/hex';

function reference(bytes: Uint8Array, sep = ''): string {
  return Array.from(bytes, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(sep);
}

test('toHex agrees with a plain reference for every length 0-300, views at odd offsets included', () => {
  let seed = 7;
  const backing = new Uint8Array(700).map(() => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff);
  for (let n = 0; n <= 300; n++) {
    for (const offset of [0, 1, 3]) {
      const view = backing.subarray(offset, offset + n);
      assert.equal(toHex(view), reference(view), `length ${n}, offset ${offset}`);
      assert.equal(toSpacedHex(view), reference(view, ' '), `spaced, length ${n}, offset ${offset}`);
      assert.deepEqual([...fromHex(toHex(view))], [...view]);
    }
  }
  assert.equal(toHex(Buffer.from('00ff10ab', 'hex')), '00FF10AB');
});
