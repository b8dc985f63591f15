// The embedded simulator: virtual readers holding the demo card, so everything
// works with no hardware. A driver like any other (house rule 3); card insertion
// and removal are its plug-and-play events.

import { ScError } from '../../util/errors';
import type { Driver, DriverSink, PowerMode, Protocol, ReaderFacts, SlotDescriptor, TransmitSink } from '../driver';
import { WORKBENCH_VERSION, ifdVersionDword } from '../../util/version';
import { CardKind, SimulatedCard } from './card';
import { CM_IOCTL_GET_FEATURE_REQUEST } from '../../codecs/pcscFeatures';
import { decodePinVerify } from '../../codecs/pinpad';

function packBcd(digits: string): Uint8Array {
  const d = digits.length % 2 ? digits + 'F' : digits;
  return Uint8Array.from({ length: d.length / 2 }, (_, i) => parseInt(d.substr(2 * i, 2), 16));
}

export interface SimulatorOptions {
  /** How many simulator readers (default 1). */
  readers?: number;
  /** Which card each reader holds at start (default T=1). */
  card?: CardKind;
  /** Start with the card inserted (default true). */
  inserted?: boolean;
  /** The demo card's PIN as ASCII digits (default 1234). */
  pin?: string;
  /**
   * Pinpad mode: the reader offers FEATURE_VERIFY_PIN_DIRECT, and this is its
   * keypad (in the editor, a masked input box standing for the reader's keys).
   */
  keypad?: (prompt: string) => Promise<string>;
}

/** The control code the simulator's pinpad answers VERIFY_PIN_DIRECT on (libccid's numbering). */
export const SIM_IOCTL_VERIFY_PIN_DIRECT = 0x42330006;

interface SimSlot {
  key: string;
  card: SimulatedCard | null;
  powered: boolean;
}

export const SIMULATOR_READER_NAME = 'Workbench Simulator';

export class SimulatorDriver implements Driver {
  readonly id = 'simulator';
  private sink: DriverSink | null = null;
  private readonly slots = new Map<string, SimSlot>();

  constructor(private readonly options: SimulatorOptions = {}) {}

  async start(sink: DriverSink): Promise<void> {
    this.sink = sink;
    const n = this.options.readers ?? 1;
    for (let i = 0; i < n; i++) {
      const key = `sim:${i}`;
      const slot: SimSlot = {
        key,
        card: this.options.inserted === false ? null : this.newCard(this.options.card ?? 'T=1'),
        powered: false,
      };
      this.slots.set(key, slot);
      sink.slotAdded(this.describe(slot, i));
    }
  }

  /** Fixed, honest facts: who made it and which version; no serial number, no T=1 blocks (APDUs in process). */
  async readerFacts(key: string): Promise<ReaderFacts> {
    if (!this.slots.has(key)) throw new ScError('NO_READER', `No simulator reader "${key}".`);
    return {
      source: 'built in',
      vendorName: 'Smart Card Workbench',
      ifdType: 'Simulator',
      ifdVersion: ifdVersionDword(WORKBENCH_VERSION),
      note: 'The simulator is in process: APDUs reach the demo card whole, with no T=1 blocks, so it has no IFSD and no serial number.',
    };
  }

  async stop(): Promise<void> {
    this.sink = null;
    this.slots.clear();
  }

  private describe(slot: SimSlot, index: number): SlotDescriptor {
    return {
      key: slot.key,
      name: SIMULATOR_READER_NAME,
      deviceKey: slot.key,
      slotIndex: 0,
      cardPresent: slot.card !== null,
      details: { transport: 'in process', index: String(index), ...(this.options.keypad ? { pinpad: 'VERIFY_PIN_DIRECT (simulated keypad)' } : {}) },
    };
  }

  /** The card in a slot, for tests and the CCID device simulator. */
  cardIn(key: string): SimulatedCard | null {
    return this.slots.get(key)?.card ?? null;
  }

  insertCard(key: string, kind: CardKind = this.options.card ?? 'T=1', card?: SimulatedCard): void {
    const slot = this.slot(key);
    if (slot.card) throw new ScError('BAD_REQUEST', 'A card is already in this simulator reader; remove it first.');
    slot.card = card ?? this.newCard(kind);
    slot.powered = false;
    this.sink?.cardInserted(key);
  }

  removeCard(key: string): void {
    const slot = this.slot(key);
    if (!slot.card) throw new ScError('NO_CARD', 'There is no card in this simulator reader to remove.');
    slot.card = null;
    slot.powered = false;
    this.sink?.cardRemoved(key);
  }

  async powerOn(key: string, _mode: PowerMode): Promise<Uint8Array> {
    const slot = this.slot(key);
    const card = this.present(slot);
    slot.powered = true;
    return card.reset();
  }

  async powerOff(key: string): Promise<void> {
    this.slot(key).powered = false;
  }

  async setProtocol(key: string, protocol: Protocol): Promise<void> {
    const card = this.present(this.slot(key));
    if (protocol !== card.protocol) {
      throw new ScError('PROTOCOL', `The simulator's card speaks T=${card.protocol} only, not T=${protocol}.`);
    }
  }

  async transmit(key: string, command: Uint8Array): Promise<Uint8Array> {
    return this.answer(key, command);
  }

  /**
   * The gate's call answered in the same turn (Driver.transmitTo): the card is in process, so no
   * promise of the driver's and no reaction to it per APDU. The gate's deadline and Cancel are as for
   * any driver (the abort is checked before this is called).
   */
  transmitTo(key: string, command: Uint8Array, _protocol: Protocol, to: TransmitSink): void {
    let response: Uint8Array;
    try {
      response = this.answer(key, command);
    } catch (e) {
      to.failedInDriver(e);
      return;
    }
    to.answered(response);
  }

  private answer(key: string, command: Uint8Array): Uint8Array {
    const slot = this.slot(key);
    const card = this.present(slot);
    if (!slot.powered) throw new ScError('PROTOCOL', 'The card is not powered.');
    return card.process(command);
  }

  async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    const slot = this.slot(key);
    const keypad = this.options.keypad;
    // CM_IOCTL_GET_FEATURE_REQUEST (PC/SC part 10): the pinpad's one feature, or none.
    if (code === CM_IOCTL_GET_FEATURE_REQUEST) {
      if (!keypad) return new Uint8Array(0);
      const c = SIM_IOCTL_VERIFY_PIN_DIRECT;
      return new Uint8Array([0x06, 4, c >>> 24, (c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff]);
    }
    if (code === SIM_IOCTL_VERIFY_PIN_DIRECT && keypad) {
      const v = decodePinVerify(data);
      if ('error' in v) throw new ScError('BAD_REQUEST', `VERIFY_PIN_DIRECT: ${v.error}.`);
      const card = this.present(slot);
      const digits = await keypad(`Enter the PIN on the reader's keypad (${v.minDigits}-${v.maxDigits} digits)`);
      if (!/^\d+$/.test(digits) || digits.length < v.minDigits || digits.length > v.maxDigits) {
        return new Uint8Array([0x64, 0x03]); // PC/SC part 10: wrong PIN length entered
      }
      const apdu = v.apdu.slice();
      const pin = v.format === 'ascii' ? new TextEncoder().encode(digits)
        : v.format === 'bcd' ? packBcd(digits) : Uint8Array.from(digits, (d) => Number(d));
      const at = 5 + v.position;
      if (at + pin.length > apdu.length) return new Uint8Array([0x6b, 0x80]); // invalid parameter: no room for the PIN
      apdu.set(pin, at);
      return card.process(apdu);
    }
    throw new ScError('NOT_SUPPORTED', `The simulator reader knows no control code ${code}${keypad ? '' : ' (its pinpad mode is off)'}.`);
  }

  private newCard(kind: CardKind): SimulatedCard {
    return this.options.pin === undefined ? new SimulatedCard(kind) : new SimulatedCard(kind, new TextEncoder().encode(this.options.pin));
  }

  private slot(key: string): SimSlot {
    const slot = this.slots.get(key);
    if (!slot) throw new ScError('NO_READER', `No simulator reader '${key}'.`);
    return slot;
  }

  private present(slot: SimSlot): SimulatedCard {
    if (!slot.card) throw new ScError('NO_CARD', 'No card in the simulator reader. Insert one with "Smart Card: Insert Simulator Card".');
    return slot.card;
  }
}
