// Shared settings for the property-based fuzz tests: a fixed seed in CI (so a
// failure reproduces), more runs on demand with FUZZ_RUNS=<n>, FUZZ_SEED=<n>.
import fc from 'fast-check';
import vm from 'node:vm';

export const FUZZ_SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x5c0ffee;

/** Parameters for fc.assert: `runs` is the CI default, FUZZ_RUNS overrides it. */
export function fuzzParams<T>(runs: number): fc.Parameters<T> {
  const n = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : runs;
  return { seed: FUZZ_SEED, numRuns: n, endOnFailure: true };
}

/**
 * A hang guard for synchronous decoders. A synchronous call cannot be awaited
 * with a time-out, but node:vm's `timeout` terminates whatever JavaScript runs
 * inside the call, so a hang (catastrophic backtracking, a loop that does not
 * advance) fails the test instead of stalling CI. Every call here takes
 * microseconds; HANG_MS is a hang, not a slow machine.
 */
export const HANG_MS = Number(process.env.FUZZ_HANG_MS ?? 2000);

const sandbox = vm.createContext({ call: null as null | (() => unknown) });
const invoke = new vm.Script('call()');

/**
 * The guard for one large input (a 10,000-line script, a 200,000-character line):
 * such a call takes tens of milliseconds, but on a loaded 2-core machine it once
 * took longer than HANG_MS. A guard detects hangs, it does not measure speed
 * (that is bench/run.mjs's job), so it leaves a wide margin.
 */
export const LARGE_HANG_MS = Number(process.env.FUZZ_LARGE_HANG_MS ?? 60_000);

export function bounded<T>(what: string, fn: () => T, hangMs = HANG_MS): T {
  sandbox.call = fn;
  try {
    return invoke.runInContext(sandbox, { timeout: hangMs }) as T;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
      throw new Error(`${what} did not finish within ${hangMs} ms on one input: a hang`);
    }
    throw e;
  } finally {
    sandbox.call = null;
  }
}

/** Bytes from the whole range, biased towards short inputs and the interesting lengths. */
export const bytes = (maxLength = 300): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });

/** Text split into lines the way LSP does: \r\n, \r and \n all end a line (LSP spec, "Position"). */
export function lspLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/);
}
