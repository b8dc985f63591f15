// The workbench's PC/SC service as the refstack comparisons run it: a reader manager over the given
// drivers (no log history), its ManagerBackend and PcscService, listening on a socket in a fresh
// private folder. `stop` undoes all of it, in the reverse order, and removes the folder. `clientEnv`
// is a client program's environment for it, or (null) for the machine's pcscd.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Driver } from '../../server/src/drivers/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import { ManagerBackend } from '../../server/src/service/managerBackend';
import { startPcscServer, type PcscServer } from '../../server/src/service/server';
import { PcscService } from '../../server/src/service/session';

export interface ServiceStack {
  manager: ReaderManager;
  server: PcscServer;
  stop(): Promise<void>;
}

export async function startServiceStack(drivers: Driver[], tmpPrefix: string): Promise<ServiceStack> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  let manager: ReaderManager | undefined;
  let backend: ManagerBackend | undefined;
  let service: PcscService | undefined;
  let server: PcscServer | undefined;
  const stop = async () => {
    await server?.close();
    service?.dispose();
    backend?.dispose();
    await manager?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    manager = new ReaderManager(drivers, { historySize: 0 });
    await manager.start();
    backend = new ManagerBackend(manager);
    service = new PcscService(backend, () => {});
    server = await startPcscServer(service, { socketPath: path.join(tmp, 'smartcard-workbench', 'pcscd.comm') });
    return { manager, server, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * A client's environment: libpcsclite on `socket` (PCSCLITE_CSOCK_NAME), or on the machine's pcscd with
 * null; Debian's library, not a built one (no LD_LIBRARY_PATH).
 */
export function clientEnv(socket: string | null): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.LD_LIBRARY_PATH;
  delete e.PCSCLITE_CSOCK_NAME;
  if (socket) e.PCSCLITE_CSOCK_NAME = socket;
  return e;
}
