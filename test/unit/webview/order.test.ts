// The APDU Log's rows put in order with the fewest moves (webview/src/order.ts): a jump that changes
// the number of rows in view must not take every row out of the document and put it back (each
// re-inserted row is restyled and laid out again: 577 elements in one frame in the traces).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { placeInOrder } from '../../../webview/src/order';

/** Applies the moves to an array standing for the list element's children; returns them and the count of insertions. */
function apply(current: string[], wanted: string[]): { children: string[]; inserted: number; removed: number } {
  const children = [...current];
  let inserted = 0;
  let removed = 0;
  placeInOrder(current, wanted, {
    remove: (c) => { children.splice(children.indexOf(c), 1); removed++; },
    insertBefore: (c, before) => {
      const at = children.indexOf(c);
      if (at >= 0) children.splice(at, 1);
      children.splice(before === null ? children.length : children.indexOf(before), 0, c);
      inserted++;
    },
  });
  return { children, inserted, removed };
}

const rows = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `r${from + i}`);

test('the usual jumps move only what changed', () => {
  const view = rows(25);
  assert.deepEqual(apply(view, view), { children: view, inserted: 0, removed: 0 }, 'nothing changed');
  assert.deepEqual(apply(view, [...view, 'n']), { children: [...view, 'n'], inserted: 1, removed: 0 }, 'one row more');
  assert.deepEqual(apply(view, view.slice(0, 24)), { children: view.slice(0, 24), inserted: 0, removed: 1 }, 'one row fewer');
  // A scroll of three rows: the three leaving at the top are refilled for the three arriving below.
  const rotated = [...view.slice(3), ...view.slice(0, 3)];
  assert.deepEqual(apply(view, rotated), { children: rotated, inserted: 3, removed: 0 });
  const back = [...view.slice(-2), ...view.slice(0, -2)];
  assert.deepEqual(apply(view, back), { children: back, inserted: 2, removed: 0 });
});

test('any order is reached, with no more insertions than rows out of their longest kept order', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let round = 0; round < 500; round++) {
    const current = rows(Math.floor(random() * 40));
    const pool = [...current, ...rows(10, 100)];
    const wanted = pool.filter(() => random() < 0.7).sort(() => random() - 0.5);
    const { children, inserted } = apply(current, wanted);
    assert.deepEqual(children, wanted, `round ${round}`);
    // The fewest moves: every row but the longest run already in order (brute force).
    const pos = wanted.map((w) => current.indexOf(w));
    const best: number[] = [];
    for (let i = 0; i < pos.length; i++) {
      best[i] = pos[i] < 0 ? 0 : 1;
      for (let j = 0; j < i; j++) if (pos[j] >= 0 && pos[i] > pos[j]) best[i] = Math.max(best[i], best[j] + 1);
    }
    assert.equal(inserted, wanted.length - Math.max(0, ...best), `round ${round}`);
  }
});
