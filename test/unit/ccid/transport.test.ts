// The guard against node-usb's unhandled getDevices rejection. Runs in a child
// process (this same file), because the test runner itself fails a test on any
// unhandled rejection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { guardNodeUsbRejections } from '../../../server/src/drivers/usb-ccid/transport';

const CHILD = process.env.CCID_GUARD_CHILD;

if (CHILD) {
  const reports: string[] = [];
  guardNodeUsbRejections((r) => reports.push(r));
  // What node-usb does when the first connect listener is added on a machine without USB.
  void Promise.reject(new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)'));
  void Promise.reject(new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)'));
  if (CHILD === 'other') void Promise.reject(new Error('some other failure'));
  process.once('beforeExit', () => { process.stdout.write(JSON.stringify(reports)); });
} else {
  const run = (mode: string) => spawnSync(process.execPath, [__filename], { env: { ...process.env, CCID_GUARD_CHILD: mode }, encoding: 'utf8', timeout: 20_000 });

  test("node-usb's getDevices rejection is reported once and the process carries on", () => {
    const r = run('usb');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['getDevices error: /sys/bus/usb/devices/ not found (errno 2)']);
  });

  test('any other unhandled rejection still ends the process, as without the guard', () => {
    const r = run('other');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /some other failure/);
  });
}
