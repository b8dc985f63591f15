// Which drivers run, from the settings. The manager gets the list; nothing else
// constructs drivers. Defaults: the simulator (so everything works with no
// hardware), the system PC/SC service (where ordinary users' readers are), and
// USB CCID (says "USB not available" once where there is no USB). vpcd is off
// by default: it listens for card emulators on 127.0.0.1:35963, a port a system
// pcscd with vpcd may already use.
import type { HelperSettings } from '../protocol';
import type { Driver } from './driver';
import { SimulatorDriver } from './simulator/driver';
import { createVpcdDriver } from './vpcd/driver';
import { createPcscDriver } from './pcsc/driver';
import { createUsbCcidDriver } from './usb-ccid/driver';
import { describeMessage } from '../ccid/messages';
import { toHex } from '../util/hex';
import { loadSmartcardList, type SmartcardList } from '../codecs/smartcardList';

export const DEFAULT_VPCD_PORT = 35963;

export interface DriverHooks {
  /** The simulated pinpad's keypad: asks the user for digits (masked). */
  keypad?: (prompt: string) => Promise<string>;
  /** Where the raw CCID trace goes (the helper's log), when the user asks for it. */
  trace?: (line: string) => void;
}

export function createDrivers(settings: HelperSettings = {}, hooks: DriverHooks = {}): Driver[] {
  const drivers: Driver[] = [];
  const sim = settings.simulator ?? {};
  if (sim.enabled !== false) {
    drivers.push(new SimulatorDriver({
      card: sim.card ?? 'T=1', readers: sim.readers ?? 1,
      ...(sim.pin ? { pin: sim.pin } : {}),
      ...(sim.pinpad && hooks.keypad ? { keypad: hooks.keypad } : {}),
    }));
  }
  if (settings.vpcd?.enabled === true) {
    drivers.push(createVpcdDriver({ ports: settings.vpcd.ports?.length ? settings.vpcd.ports : [DEFAULT_VPCD_PORT] }));
  }
  if (settings.pcsc?.enabled !== false) {
    drivers.push(createPcscDriver({
      ...(settings.pcsc?.library ? { library: settings.pcsc.library } : {}),
      // The loop guard knows the default paths; a socket given elsewhere (scard serve --socket) too.
      ...(settings.pcscService?.socketPath ? { ownServiceSockets: [settings.pcscService.socketPath] } : {}),
    }));
  }
  if (settings.usbCcid?.enabled !== false) {
    const trace = hooks.trace;
    drivers.push(createUsbCcidDriver(settings.usbCcid?.rawTrace && trace
      ? { rawTrace: (dir, bytes) => trace(`CCID ${dir === 'out' ? '>' : '<'} ${describeMessage(bytes)}  ${toHex(bytes)}`) }
      : {}));
  }
  return drivers;
}

let list: SmartcardList | null = null;
/** Card identification from smartcard_list.txt, loaded on first use. */
export function identifyAtr(atrSpacedHex: string, extraLists: string[] = []): string[] {
  list ??= loadSmartcardList(extraLists);
  return list.identify(atrSpacedHex);
}
