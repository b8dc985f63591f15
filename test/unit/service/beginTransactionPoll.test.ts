// SCardBeginTransaction while another handle holds the reader: pcscd (winscard.c of 2.3.3
// and 2.5.1, SCardBeginTransaction) sleeps PCSCLITE_LOCK_POLL_RATE (100 ms) before it
// answers SCARD_E_SHARING_VIOLATION, "so the client do not retry immediately"; the client
// library then sleeps 100 ms more and asks again. The service answers on the same clock,
// and only that client waits (pcscd sleeps in the client's own thread).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import { rvOf } from '../../../server/src/service/backend';
import { LOCK_POLL_RATE_MS, ManagerBackend } from '../../../server/src/service/managerBackend';
import { ProtocolBits, Rv, ShareMode } from '../../../server/src/service/wire';

const A = 'Workbench Simulator 00 00';
const SELECT = Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x07, 0xf0, 0x57, 0x42, 0x44, 0x45, 0x4d, 0x4f);
const T1 = { protocol: ProtocolBits.SCARD_PROTOCOL_T1, pciLength: 8 };
const ANY = ProtocolBits.SCARD_PROTOCOL_T0 | ProtocolBits.SCARD_PROTOCOL_T1;

test('BEGIN_TRANSACTION during another handle\'s transaction: SCARD_E_SHARING_VIOLATION after pcscd\'s 100 ms, while the holder goes on at once', async () => {
  assert.equal(LOCK_POLL_RATE_MS, 100, 'pcscd.h PCSCLITE_LOCK_POLL_RATE 100000 µs');
  const m = new ReaderManager([new SimulatorDriver()], { historySize: 0 });
  await m.start();
  const b = new ManagerBackend(m);
  try {
    const holder = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    const other = (await b.connect(A, ShareMode.SCARD_SHARE_SHARED, ANY)).handle;
    await b.beginTransaction(holder);
    const t0 = performance.now();
    let answeredAt = 0;
    const refused = b.beginTransaction(other).then(
      () => assert.fail('granted during another transaction'),
      (e) => { answeredAt = performance.now() - t0; return rvOf(e); },
    );
    // The holder is not held up by the other client's wait.
    for (let i = 0; i < 5; i++) assert.equal((await b.transmit(holder, T1, SELECT, 258)).at(-2), 0x90);
    assert.equal(answeredAt, 0, 'not answered before the holder\'s five APDUs');
    assert.equal(await refused, Rv.SCARD_E_SHARING_VIOLATION >>> 0);
    assert.ok(answeredAt >= LOCK_POLL_RATE_MS - 2, `answered after ${answeredAt.toFixed(1)} ms, pcscd after ${LOCK_POLL_RATE_MS}`);
    await b.endTransaction(holder, 0);
    // Free again: granted at once.
    const t1 = performance.now();
    await b.beginTransaction(other);
    assert.ok(performance.now() - t1 < LOCK_POLL_RATE_MS, 'a free reader is not delayed');
    await b.endTransaction(other, 0);
  } finally {
    b.dispose();
    await m.stop();
  }
});
