// Which drivers run, from the settings. The manager gets the list; nothing else
// constructs drivers.
import type { HelperSettings } from '../protocol';
import type { Driver } from './driver';
import { SimulatorDriver } from './simulator/driver';

export function createDrivers(settings: HelperSettings = {}): Driver[] {
  const drivers: Driver[] = [];
  const sim = settings.simulator ?? {};
  if (sim.enabled !== false) {
    drivers.push(new SimulatorDriver({ card: sim.card ?? 'T=1', readers: sim.readers ?? 1 }));
  }
  return drivers;
}
