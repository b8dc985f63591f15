// A USB pinpad reader (bPINSupport verify): `verify pinpad` in a script goes
// through the manager and the CCID driver as PC_to_RDR_Secure; the simulated
// reader's keypad supplies the PIN, which the workbench never sees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createUsbCcidDriver } from '../../../server/src/drivers/usb-ccid/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { LogEntry } from '../../../server/src/protocol';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { PROFILES, SimulatedCcidDevice, SimulatedWebUsb } from '../../support/ccid-device/device';
import * as M from '../../../server/src/ccid/messages';

const SCRIPT = '00 A4 04 0C 07 F0 57 42 44 45 4D 4F\nverify pinpad 00 20 00 01 04 FF FF FF FF ascii min=4 max=8 => 90 00\n00 20 00 01 => 90 00';

async function setup(profile: object) {
  const raw: Uint8Array[] = [];
  const m = new ReaderManager([createUsbCcidDriver({
    webusb: new SimulatedWebUsb([new SimulatedCcidDevice({ ...PROFILES.pinpad, ...profile } as typeof PROFILES.pinpad)]),
    readTimeoutMs: 2000,
    rawTrace: (dir, b) => { if (dir === 'out') raw.push(b); },
  })]);
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  return { m, entries, raw };
}

test('USB pinpad: VERIFY_PIN_DIRECT becomes PC_to_RDR_Secure, the keypad PIN verifies, nothing logs it', async () => {
  const { m, entries, raw } = await setup({ keypad: '1234' });
  const r = await runScript(parseScript(SCRIPT), { manager: m });
  assert.equal(r.ok, true, r.failure?.message);
  const reader = m.list().readers[0];
  assert.ok(reader.features?.some((f) => f.startsWith('VERIFY_PIN_DIRECT')), JSON.stringify(reader.features));
  const secure = raw.filter((b) => b[0] === M.PC_to_RDR_Secure);
  assert.equal(secure.length, 1, 'one Secure command on the wire');
  assert.ok(!Buffer.from(secure[0]).toString('hex').includes('31323334'), 'the host never sends the PIN');
  assert.ok(!JSON.stringify(entries).includes('31323334'));
  await m.stop();
});

test('USB pinpad: a wrong PIN on the keypad fails with the retry counter', async () => {
  const { m } = await setup({ keypad: '9999' });
  const r = await runScript(parseScript(SCRIPT), { manager: m });
  assert.equal(r.failure?.line, 2);
  assert.match(r.failure!.message, /63 C2/);
  await m.stop();
});

test('a USB reader without PIN support offers no pinpad', async () => {
  const { m } = await setup({ file: PROFILES.shortApdu.file });
  const r = await runScript(parseScript(SCRIPT), { manager: m });
  assert.equal(r.failure?.code, 'NOT_SUPPORTED');
  assert.match(r.failure!.message, /has no pinpad/);
  await m.stop();
});
