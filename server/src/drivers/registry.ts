// Which drivers run, from the settings. The manager gets the list; nothing else
// constructs drivers.
import type { HelperSettings } from '../protocol';
import type { Driver } from './driver';
import { SimulatorDriver } from './simulator/driver';
import { loadSmartcardList, type SmartcardList } from '../codecs/smartcardList';

export function createDrivers(settings: HelperSettings = {}): Driver[] {
  const drivers: Driver[] = [];
  const sim = settings.simulator ?? {};
  if (sim.enabled !== false) {
    drivers.push(new SimulatorDriver({ card: sim.card ?? 'T=1', readers: sim.readers ?? 1 }));
  }
  return drivers;
}

let list: SmartcardList | null = null;
/** Card identification from smartcard_list.txt, loaded on first use. */
export function identifyAtr(atrSpacedHex: string, extraLists: string[] = []): string[] {
  list ??= loadSmartcardList(extraLists);
  return list.identify(atrSpacedHex);
}
