import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartPolicy, policyOptionsFromSettings } from '../../../extension/src/restartPolicy';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

test('restarts after the first delay, then the second, then stays down', () => {
  const c = clock();
  const p = new RestartPolicy({ delaysMs: [1000, 5000], resetAfterMs: 60_000 }, c.now);
  assert.deepEqual(p.onCrash(), { action: 'restart', delayMs: 1000, attempt: 1, failures: 1 });
  c.advance(2000);
  assert.deepEqual(p.onCrash(), { action: 'restart', delayMs: 5000, attempt: 2, failures: 2 });
  c.advance(6000);
  assert.deepEqual(p.onCrash(), { action: 'stayDown', failures: 3 });
  c.advance(1000);
  assert.equal(p.onCrash().action, 'stayDown');
});

test('the failure count resets after the quiet period', () => {
  const c = clock();
  const p = new RestartPolicy({ delaysMs: [1000, 5000], resetAfterMs: 60_000 }, c.now);
  p.onCrash();
  c.advance(10_000);
  assert.equal(p.onCrash().action, 'restart');
  c.advance(60_000);
  const d = p.onCrash();
  assert.deepEqual(d, { action: 'restart', delayMs: 1000, attempt: 1, failures: 1 });
});

test('a crash just inside the quiet period still counts', () => {
  const c = clock();
  const p = new RestartPolicy({ delaysMs: [1000], resetAfterMs: 60_000 }, c.now);
  p.onCrash();
  c.advance(59_999);
  assert.deepEqual(p.onCrash(), { action: 'stayDown', failures: 2 });
});

test('a manual restart starts counting from zero', () => {
  const c = clock();
  const p = new RestartPolicy({ delaysMs: [1000, 5000], resetAfterMs: 60_000 }, c.now);
  p.onCrash(); p.onCrash(); p.onCrash();
  assert.equal(p.failureCount, 3);
  p.reset();
  assert.equal(p.failureCount, 0);
  assert.deepEqual(p.onCrash(), { action: 'restart', delayMs: 1000, attempt: 1, failures: 1 });
});

test('no delays means never restart automatically', () => {
  const p = new RestartPolicy({ delaysMs: [], resetAfterMs: 60_000 });
  assert.deepEqual(p.onCrash(), { action: 'stayDown', failures: 1 });
});

test('new options apply to the next crash', () => {
  const p = new RestartPolicy({ delaysMs: [1000, 5000], resetAfterMs: 60_000 });
  p.onCrash();
  p.setOptions({ delaysMs: [1000, 2000, 3000], resetAfterMs: 60_000 });
  assert.deepEqual(p.onCrash(), { action: 'restart', delayMs: 2000, attempt: 2, failures: 2 });
  assert.deepEqual(p.onCrash(), { action: 'restart', delayMs: 3000, attempt: 3, failures: 3 });
});

test('settings in seconds become milliseconds; bad values fall back to the defaults', () => {
  assert.deepEqual(policyOptionsFromSettings([1, 5], 60), { delaysMs: [1000, 5000], resetAfterMs: 60_000 });
  assert.deepEqual(policyOptionsFromSettings([0.5], 2.5), { delaysMs: [500], resetAfterMs: 2500 });
  assert.deepEqual(policyOptionsFromSettings(['x'], -1), { delaysMs: [1000, 5000], resetAfterMs: 60_000 });
  assert.deepEqual(policyOptionsFromSettings(undefined, undefined), { delaysMs: [1000, 5000], resetAfterMs: 60_000 });
  assert.deepEqual(policyOptionsFromSettings([], 0), { delaysMs: [], resetAfterMs: 0 });
});
