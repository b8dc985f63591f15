// Counts the promises a piece of code creates (async_hooks' PROMISE init), for the tests that hold
// a hot path to its number of promise hops per APDU (lineCost, transmitHops).
import { createHook } from 'node:async_hooks';

/** Promises created while `body` runs. */
export async function promisesIn(body: () => Promise<void>): Promise<number> {
  let promises = 0;
  const hook = createHook({ init(_id, type) { if (type === 'PROMISE') promises++; } });
  hook.enable();
  try {
    await body();
  } finally {
    hook.disable();
  }
  return promises;
}
