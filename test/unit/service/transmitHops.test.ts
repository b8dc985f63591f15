// The service's own promise hops per TRANSMIT (issue 15, "Measured"): from the session's decode
// of a client's TRANSMIT to the reply's write, the promises the session and ManagerBackend create
// beyond what the same APDU costs through `Connection.transmit` (the manager's one path: queue,
// gate, driver, log entry; test/unit/manager/apduCost.test.ts counts those). Each promise is an
// allocation and a trip through the microtask queue; plumbing ones (a `.then` that only maps a
// value, a continuation that only goes on with the next request) are counted here. Counts are
// exact on any machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import { ManagerBackend } from '../../../server/src/service/managerBackend';
import { PcscService } from '../../../server/src/service/session';
import { Command, encodeRequest, encodeStruct, HOST_LITTLE_ENDIAN, ProtocolBits, STRUCTS } from '../../../server/src/service/wire';
import { promisesIn } from '../../support/promises';

const READER = 'Workbench Simulator 00 00';
const SELECT_MF = Uint8Array.of(0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00);
const N = 200;
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.length).getUint32(at, HOST_LITTLE_ENDIAN);

test('a TRANSMIT through the session and ManagerBackend creates at most 1 promise beyond Connection.transmit\'s (3 before)', async () => {
  const m = new ReaderManager([new SimulatorDriver({ readers: 1 })], { historySize: 0 });
  await m.start();
  const backend = new ManagerBackend(m);
  const service = new PcscService(backend);
  let onReply: (bytes: Uint8Array) => void = () => {};
  const session = service.newSession({ send: (b) => { onReply(b); return true; }, close: (r) => assert.fail(r) }, 'hops');
  const ask = (command: number, name: keyof typeof STRUCTS, value: Record<string, number | string>): Promise<Uint8Array> =>
    new Promise((resolve) => { onReply = (b) => resolve(new Uint8Array(b)); session.receive(encodeRequest(command, encodeStruct(name, value))); });
  try {
    await ask(Command.CMD_VERSION, 'version_struct', { major: 4, minor: 6 });
    const hContext = u32(await ask(Command.SCARD_ESTABLISH_CONTEXT, 'establish_struct', { dwScope: 2 }), 4);
    const connected = await ask(Command.SCARD_CONNECT, 'connect_struct', { hContext, szReader: READER, dwShareMode: 2, dwPreferredProtocols: ProtocolBits.SCARD_PROTOCOL_T1 });
    const hCard = u32(connected, STRUCTS.connect_struct.fields.hCard.offset);
    const request = encodeRequest(Command.SCARD_TRANSMIT, encodeStruct('transmit_struct', {
      hCard, ioSendPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioSendPciLength: 8, cbSendLength: SELECT_MF.length,
      ioRecvPciProtocol: ProtocolBits.SCARD_PROTOCOL_T1, ioRecvPciLength: 8, pcbRecvLength: 258,
    }), SELECT_MF);
    const F = STRUCTS.transmit_struct.fields;

    // The client: each reply checked, the next request one event-loop turn later (no promise of its own).
    const viaSession = (n: number) => promisesIn(() => new Promise<void>((resolve, reject) => {
      let left = n;
      onReply = (b) => {
        if (u32(b, F.rv.offset) !== 0 || b[b.length - 2] !== 0x90) { reject(new Error('wrong reply')); return; }
        if (--left === 0) resolve(); else setImmediate(() => session.receive(request));
      };
      session.receive(request);
    }));
    // The same APDUs through a connection of the manager's, chained by one `.then` each (subtracted).
    const conn = await m.connect(READER);
    const viaConnection = (n: number) => promisesIn(() => new Promise<void>((resolve, reject) => {
      let left = n;
      const next = (): void => {
        conn.transmit(SELECT_MF).then((r) => {
          if (r.sw !== 0x9000) reject(new Error('wrong answer'));
          else if (--left === 0) resolve(); else setImmediate(next);
        }, reject);
      };
      next();
    }));
    await viaSession(20);
    await viaConnection(20);
    const session1 = (await viaSession(2 * N)) - (await viaSession(N));
    const conn1 = (await viaConnection(2 * N)) - (await viaConnection(N));
    const extra = (session1 - (conn1 - N)) / N;
    await conn.close();
    console.log(`# promises per TRANSMIT: session ${session1 / N}, Connection.transmit ${(conn1 - N) / N}; the service's own ${extra}`);
    assert.ok(extra <= 1, `the service's own promises per TRANSMIT: ${extra}`);
  } finally {
    service.dispose();
    backend.dispose();
    await m.stop();
  }
});
