// A reader manager over the simulator that records every log entry: the script tests' common setup.
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import { ReaderManager } from '../../../server/src/manager/manager';
import type { LogEntry } from '../../../server/src/protocol';

export async function simulatorManager(card: 'T=0' | 'T=1' = 'T=1') {
  const sim = new SimulatorDriver({ card });
  const m = new ReaderManager([sim]);
  const entries: LogEntry[] = [];
  m.onEntry((e) => entries.push(e));
  await m.start();
  return { m, sim, entries };
}
