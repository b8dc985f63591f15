// The APDU Log's row elements put in the order of the rows in view with the fewest moves. Pure:
// the DOM operations are passed in (main.ts gives the list element's, tests an array's).
// Taking every row out and putting it back (replaceChildren) when only the number of rows in
// view changed made the browser restyle and lay out every element of every row in that frame.

export interface ChildOps<T> {
  remove(child: T): void;
  /** Moves (or inserts) `child` before `before`, or to the end for null. */
  insertBefore(child: T, before: T | null): void;
}

// Scratch arrays, reused from call to call (the list holds a few dozen rows).
const position: number[] = [];
const tails: number[] = [];
const previous: number[] = [];
const stays: boolean[] = [];

/**
 * Makes `current` (the children now) into `wanted`: removes the children not wanted, keeps the
 * longest run of wanted children already in order where they are, and moves or inserts the others.
 */
export function placeInOrder<T>(current: readonly T[], wanted: readonly T[], ops: ChildOps<T>): void {
  const n = wanted.length;
  position.length = n;
  for (let i = 0; i < n; i++) position[i] = current.indexOf(wanted[i]);
  for (const c of current) if (!wanted.includes(c)) ops.remove(c);
  // The longest increasing run of positions (patience sorting): those children stay.
  tails.length = 0;
  previous.length = n;
  for (let i = 0; i < n; i++) {
    const p = position[i];
    previous[i] = -1;
    if (p < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (position[tails[mid]] < p) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1];
    tails[lo] = i;
  }
  stays.length = n;
  stays.fill(false);
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = previous[i]) stays[i] = true;
  // From the end: each child that does not stay goes before the one after it.
  let after: T | null = null;
  for (let i = n - 1; i >= 0; i--) {
    if (!stays[i]) ops.insertBefore(wanted[i], after);
    after = wanted[i];
  }
}
