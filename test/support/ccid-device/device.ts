// A simulated USB CCID reader implementing the part of WebUSB's USBDevice the
// driver uses. Its descriptors come from a real reader's libccid dump; its cards
// are the simulator's SimulatedCard. It answers CCID messages like a reader at the
// profile's exchange level (TPDU T=0 and T=1, short APDU, extended APDU), and can
// misbehave on request (faults) so tests can check that the driver ends each
// broken exchange with a clear error instead of hanging.

import { SimulatedCard } from '../../../server/src/drivers/simulator/card';
import { encodeCcidDescriptor, exchangeLevel, type CcidDescriptor, type ExchangeLevel } from '../../../server/src/ccid/descriptor';
import * as M from '../../../server/src/ccid/messages';
import { concatBytes } from '../../../server/src/util/hex';
import type {
  UsbConfigurationLike, UsbControlSetup, UsbDeviceLike, UsbInResult, UsbOutResult, UsbConnectionEventLike, WebUsbLike,
} from '../../../server/src/drivers/usb-ccid/webusb';
import { T1Card } from './t1-card';
import { parseReaderFile, readerPath } from './reader-file';

export interface CcidFaults {
  /** Answer with a wrong bSeq. */
  wrongSeq?: boolean;
  /** Cut the response short of its dwLength. */
  truncated?: boolean;
  /** Answer XfrBlock with time extension requests forever. */
  endlessTimeExtension?: boolean;
  /** Time extension requests before each XfrBlock answer (a slow card, not a fault). */
  timeExtensions?: number;
  /** T=1 S(WTX request)s the card sends before each response (TPDU T=1 profiles; a slow card). */
  t1Wtx?: number;
  /** Vanish (unplugged) when the next XfrBlock arrives. */
  disappearMidExchange?: boolean;
  /** Corrupt this many T=1 blocks coming from the card (TPDU T=1 profiles). */
  corruptT1Blocks?: number;
  /** Send this many NotifySlotChange messages when the interrupt pipe is first read. */
  interruptFlood?: number;
  /** The card does not answer PPS. */
  refusePps?: boolean;
  /** claimInterface fails as when the system's CCID driver holds the interface. */
  claimedBySystem?: boolean;
}

export interface CcidDeviceProfile {
  /** The reader dump in shared/data/ccid-readers the profile comes from. */
  file: string;
  /** Which CCID interface of the dump (for multi-interface readers). */
  interfaceIndex?: number;
  /** Card kind per slot; null = empty slot. */
  cards: Array<'T=0' | 'T=1' | null>;
  serialNumber?: string;
  /** What the user types on the pinpad's keypad (readers with bPINSupport). */
  keypad?: string;
  /** Where node-usb says the device is (`UsbDevice.bus`, `.address`); none by default. */
  bus?: string;
  address?: number;
}

/** The six profiles of the test suite, each named after its real reader. */
export const PROFILES = {
  tpduT0: { file: 'GemPCTwin.txt', cards: ['T=0'], serialNumber: 'TWIN0001' },
  tpduT1: { file: 'Gemalto_IDBridge_CT30.txt', cards: ['T=1'], serialNumber: 'CT300001' },
  shortApdu: { file: 'Cherry_Smart_Card_Reader_USB.txt', cards: ['T=1'], serialNumber: 'CHERRY01' },
  extendedApdu: { file: 'Gemalto_CT1100.txt', cards: ['T=1'], serialNumber: 'CT110001' },
  multiSlot: { file: 'GemCoreSIMPro.txt', cards: ['T=1', 'T=0'], serialNumber: 'SIMPRO01' },
  pinpad: { file: 'Gemalto_Ezio_Shield_PinPad.txt', cards: ['T=1'], serialNumber: 'EZIO0001' },
  vendorSpecific: { file: 'CherrySmartTerminalST2XXX.txt', cards: ['T=1'], serialNumber: 'ST2XXX01' },
} satisfies Record<string, CcidDeviceProfile>;

const EP_BULK_OUT = 1;
const EP_BULK_IN = 2;
const EP_INTERRUPT_IN = 3;

interface Slot {
  card: SimulatedCard | null;
  t1: T1Card | null;
  powered: boolean;
  /** APDU-level chaining: command parts received, response parts to send. */
  rxChain: Uint8Array[];
  txChain: Uint8Array | null;
  txStarted: boolean;
  /** An exchange happened since power-on (PPS is only allowed before). */
  exchanged: boolean;
}

let deviceCount = 0;

class Waiter<T> {
  private items: T[] = [];
  private waiting: Array<{ resolve: (v: T) => void; reject: (e: Error) => void }> = [];
  push(v: T): void {
    const w = this.waiting.shift();
    if (w) w.resolve(v); else this.items.push(v);
  }
  next(): Promise<T> {
    if (this.items.length) return Promise.resolve(this.items.shift()!);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
  failAll(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }
  get pending(): number { return this.items.length; }
}

export class SimulatedCcidDevice implements UsbDeviceLike {
  readonly vendorId: number;
  readonly productId: number;
  readonly productName: string;
  readonly manufacturerName: string;
  readonly serialNumber: string | null;
  /** bcdDevice as WebUSB splits it (0xJJMN: JJ, M, N), from the dump's "bcdDevice: 2.01". */
  readonly deviceVersionMajor: number;
  readonly deviceVersionMinor: number;
  readonly deviceVersionSubminor: number;
  readonly descriptor: CcidDescriptor;
  readonly level: ExchangeLevel;
  readonly interfaceNumber: number;
  readonly interfaceClass: number;
  readonly configurations: UsbConfigurationLike[];
  readonly slots: Slot[];
  faults: CcidFaults;
  /** Every bulk-out message, for tests. */
  readonly received: Uint8Array[] = [];
  opened = false;
  gone = false;
  private claimed = false;
  private bulkIn = new Waiter<Uint8Array>();
  private interruptIn = new Waiter<Uint8Array>();
  private flooded = false;
  private readonly ccidBytes: Uint8Array;
  /** Like node-usb's UsbDevice.bus and .address, when the profile gives them. */
  readonly bus?: string;
  readonly address?: number;
  /** Like node-usb's UsbDevice.handle: names the physical device across device objects. */
  readonly handle = `sim-${++deviceCount}`;
  /** Set by SimulatedWebUsb so the device can unplug itself. */
  onGone?: () => void;

  constructor(readonly profile: CcidDeviceProfile, faults: CcidFaults = {}) {
    const reader = parseReaderFile(readerPath(profile.file));
    const iface = reader.interfaces[profile.interfaceIndex ?? 0];
    if (!iface) throw new Error(`${profile.file} has no CCID interface ${profile.interfaceIndex ?? 0}`);
    this.vendorId = reader.idVendor;
    this.productId = reader.idProduct;
    this.productName = reader.iProduct;
    this.manufacturerName = reader.iManufacturer;
    this.serialNumber = profile.serialNumber ?? null;
    if (profile.bus !== undefined) this.bus = profile.bus;
    if (profile.address !== undefined) this.address = profile.address;
    const [major = '0', low = '00'] = reader.bcdDevice.trim().split(/\s+/)[0].split('.');
    this.deviceVersionMajor = parseInt(major, 16);
    this.deviceVersionMinor = parseInt(low.padStart(2, '0')[0], 16);
    this.deviceVersionSubminor = parseInt(low.padStart(2, '0')[1], 16);
    this.descriptor = iface.fields;
    this.level = exchangeLevel(iface.fields);
    this.interfaceNumber = iface.bInterfaceNumber;
    this.interfaceClass = iface.bInterfaceClass;
    this.ccidBytes = encodeCcidDescriptor(iface.fields);
    this.faults = faults;
    const slotCount = iface.fields.bMaxSlotIndex + 1;
    this.slots = Array.from({ length: slotCount }, (_, i) => this.makeSlot(profile.cards[i] ?? null));
    const ifaceLike = {
      interfaceNumber: this.interfaceNumber,
      get claimed() { return false; },
      alternate: {
        alternateSetting: 0, interfaceClass: this.interfaceClass, interfaceSubclass: 0, interfaceProtocol: 0,
        interfaceName: iface.iInterface ?? null,
        endpoints: [
          { endpointNumber: EP_BULK_OUT, direction: 'out' as const, type: 'bulk' as const, packetSize: 64 },
          { endpointNumber: EP_BULK_IN, direction: 'in' as const, type: 'bulk' as const, packetSize: 64 },
          { endpointNumber: EP_INTERRUPT_IN, direction: 'in' as const, type: 'interrupt' as const, packetSize: 8 },
        ],
      },
      alternates: [] as never[],
    };
    (ifaceLike as { alternates: unknown[] }).alternates = [ifaceLike.alternate];
    this.configurations = [{ configurationValue: 1, configurationName: null, interfaces: [ifaceLike] }];
  }

  private makeSlot(kind: 'T=0' | 'T=1' | null): Slot {
    const card = kind ? new SimulatedCard(kind) : null;
    return { card, t1: null, powered: false, rxChain: [], txChain: null, txStarted: false, exchanged: false };
  }

  private selectedConfig: UsbConfigurationLike | null = null;
  get configuration(): UsbConfigurationLike | null { return this.selectedConfig; }

  private check(): void {
    if (this.gone) throw new Error('LIBUSB_ERROR_NO_DEVICE: the device was disconnected');
  }

  async open(): Promise<void> { this.check(); this.opened = true; }
  async close(): Promise<void> {
    this.opened = false;
    this.claimed = false;
    const e = new Error('LIBUSB_ERROR_INTERRUPTED: device closed');
    this.bulkIn.failAll(e);
    this.interruptIn.failAll(e);
  }
  async selectConfiguration(v: number): Promise<void> {
    this.check();
    this.selectedConfig = this.configurations.find((c) => c.configurationValue === v) ?? null;
    if (!this.selectedConfig) throw new Error(`no configuration ${v}`);
  }
  async claimInterface(n: number): Promise<void> {
    this.check();
    if (!this.opened) throw new Error('claimInterface error: device not open');
    if (this.faults.claimedBySystem) throw new Error('claimInterface error: LIBUSB_ERROR_BUSY (Resource busy)');
    if (n !== this.interfaceNumber) throw new Error(`claimInterface error: no interface ${n}`);
    this.claimed = true;
  }
  async releaseInterface(): Promise<void> { this.claimed = false; }

  /** GET_DESCRIPTOR(CONFIGURATION): config, interface, CCID class descriptor, endpoints. */
  configurationDescriptor(): Uint8Array {
    const endpoints = [
      Uint8Array.of(7, 5, EP_BULK_OUT, 2, 64, 0, 0),
      Uint8Array.of(7, 5, 0x80 | EP_BULK_IN, 2, 64, 0, 0),
      Uint8Array.of(7, 5, 0x80 | EP_INTERRUPT_IN, 3, 8, 0, 16),
    ];
    const iface = Uint8Array.of(9, 4, this.interfaceNumber, 0, 3, this.interfaceClass, 0, 0, 0);
    const body = concatBytes(iface, this.ccidBytes, ...endpoints);
    const total = 9 + body.length;
    return concatBytes(Uint8Array.of(9, 2, total & 0xff, total >> 8, 1, 1, 0, 0x80, 50), body);
  }

  async controlTransferIn(setup: UsbControlSetup, length: number): Promise<UsbInResult> {
    this.check();
    if (setup.requestType === 'standard' && setup.request === 6 && setup.value >> 8 === 2) {
      const d = this.configurationDescriptor().subarray(0, length);
      return { status: 'ok', data: new DataView(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)) };
    }
    return { status: 'stall' };
  }

  async transferOut(endpointNumber: number, data: Uint8Array): Promise<UsbOutResult> {
    this.check();
    if (!this.claimed) throw new Error('transferOut error: interface not claimed');
    if (endpointNumber !== EP_BULK_OUT) return { status: 'stall', bytesWritten: 0 };
    this.received.push(data.slice());
    if (this.faults.disappearMidExchange && data[0] === M.PC_to_RDR_XfrBlock) {
      this.unplug();
      return { status: 'ok', bytesWritten: data.length };
    }
    for (const r of this.firmware(data)) this.bulkIn.push(r);
    return { status: 'ok', bytesWritten: data.length };
  }

  async transferIn(endpointNumber: number, _length: number, timeout?: number): Promise<UsbInResult> {
    this.check();
    if (!this.claimed) throw new Error('transferIn error: interface not claimed');
    let next: Promise<Uint8Array>;
    if (endpointNumber === EP_BULK_IN) next = this.bulkIn.next();
    else if (endpointNumber === EP_INTERRUPT_IN) {
      if (this.faults.interruptFlood && !this.flooded) {
        this.flooded = true;
        for (let i = 0; i < this.faults.interruptFlood; i++) {
          this.interruptIn.push(M.encodeNotifySlotChange(this.slots.map((s) => ({ present: s.card !== null, changed: true }))));
        }
      }
      next = this.interruptIn.next();
    } else return { status: 'stall' };
    const bytes = await (timeout && timeout > 0 && endpointNumber === EP_BULK_IN
      ? Promise.race([next, new Promise<Uint8Array>((_, rej) => setTimeout(() => rej(new Error('LIBUSB_ERROR_TIMEOUT')), timeout).unref())])
      : next);
    return { status: 'ok', data: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  }

  /** The device vanishes: pending transfers fail, and the WebUSB object reports a disconnect. */
  unplug(): void {
    if (this.gone) return;
    this.gone = true;
    const e = new Error('LIBUSB_ERROR_NO_DEVICE: the device was disconnected');
    this.bulkIn.failAll(e);
    this.interruptIn.failAll(e);
    this.onGone?.();
  }

  /** Inserts or removes a card and reports it on the interrupt pipe (§6.3.1). */
  setCard(slot: number, kind: 'T=0' | 'T=1' | null): void {
    this.slots[slot] = this.makeSlot(kind);
    this.interruptIn.push(M.encodeNotifySlotChange(this.slots.map((s, i) => ({ present: s.card !== null, changed: i === slot }))));
  }

  /** Delivers a HardwareError interrupt message. */
  hardwareError(slot: number, code: number): void {
    this.interruptIn.push(M.encodeHardwareError(slot, 0, code));
  }

  // ---- the reader's firmware ----

  private firmware(raw: Uint8Array): Uint8Array[] {
    const d = M.decodeMessage(raw);
    if (!d.ok) return [];
    const m = d.message;
    const seq = this.faults.wrongSeq ? (m.bSeq + 1) & 0xff : m.bSeq;
    const respType = M.RESPONSE_TO[m.bMessageType] ?? M.RDR_to_PC_SlotStatus;
    const slot = this.slots[m.bSlot];
    const iccBits = (s: Slot | undefined) => (!s || !s.card ? 2 : s.powered ? 0 : 1);
    const reply = (status: number, error: number, third: number, data: Uint8Array = new Uint8Array(0)): Uint8Array => {
      let r = M.encodeResponse(respType, m.bSlot, seq, status, error, third, data);
      if (this.faults.truncated && data.length > 0) r = r.subarray(0, r.length - 1);
      return r;
    };
    const fail = (error: number) => reply(0x40 | iccBits(slot), error, 0);
    if (!slot) return [M.encodeResponse(respType, m.bSlot, seq, 0x42, 5, 0)];
    const ok = (data?: Uint8Array, third = 0) => reply(iccBits(slot), 0, third, data);

    switch (m.bMessageType) {
      case M.PC_to_RDR_IccPowerOn: {
        if (!slot.card) return [fail(0xfe)];
        const sel = m.params[0];
        const bit = [0, 1, 2, 4][sel];
        if (sel > 3 || (sel !== 0 && !(this.descriptor.bVoltageSupport & bit))) return [fail(7)];
        slot.powered = true;
        slot.exchanged = false;
        slot.t1 = slot.card.protocol === 1 && this.level === 'tpdu'
          ? new T1Card((apdu) => slot.card!.process(apdu), { ifsc: 254, ...(this.faults.t1Wtx ? { wtxBeforeResponse: this.faults.t1Wtx } : {}) })
          : null;
        return [ok(slot.card.reset())];
      }
      case M.PC_to_RDR_IccPowerOff:
        slot.powered = false;
        return [ok()];
      case M.PC_to_RDR_GetSlotStatus:
        return [ok()];
      case M.PC_to_RDR_SetParameters:
      case M.PC_to_RDR_GetParameters:
      case M.PC_to_RDR_ResetParameters: {
        if (!slot.card) return [fail(0xfe)];
        const proto = m.bMessageType === M.PC_to_RDR_SetParameters ? m.params[0] : slot.card.protocol;
        if (proto !== slot.card.protocol) return [fail(7)];
        const data = m.bMessageType === M.PC_to_RDR_SetParameters ? m.data
          : proto === 1 ? Uint8Array.of(0x11, 0x10, 0x00, 0x45, 0x00, 0xfe, 0x00) : Uint8Array.of(0x11, 0x00, 0x00, 0x0a, 0x00);
        return [ok(data, proto)];
      }
      case M.PC_to_RDR_Escape:
        // The simulated firmware answers an escape with its data reversed.
        return [ok(m.data.slice().reverse())];
      case M.PC_to_RDR_XfrBlock:
        return this.xfrBlock(slot, m, ok, fail, reply);
      case M.PC_to_RDR_Secure:
        return [this.secure(slot, m.data, ok, fail)];
      case M.PC_to_RDR_Abort:
      case M.PC_to_RDR_IccClock:
        return [ok()];
      default:
        return [fail(0)];
    }
  }

  /**
   * PIN verification on the keypad (CCID §6.1.11, bPINOperation 00): the
   * firmware puts the typed digits into the APDU and sends it to the card.
   */
  private secure(slot: Slot, d: Uint8Array, ok: (data?: Uint8Array) => Uint8Array, fail: (e: number) => Uint8Array): Uint8Array {
    if (!(this.descriptor.bPINSupport & 1) || d[0] !== 0x00) return fail(0); // command not supported
    if (!slot.card || !slot.powered) return fail(0xfe);
    const digits = this.profile.keypad ?? '1234';
    const fmt = d[2];
    const maxDigits = d[5];
    const minDigits = d[6];
    if (digits.length < minDigits || digits.length > maxDigits) return ok(Uint8Array.of(0x64, 0x03));
    const apdu = d.slice(15);
    const pin = (fmt & 3) === 2 ? new TextEncoder().encode(digits) : Uint8Array.from(digits, (c) => Number(c));
    const at = 5 + ((fmt >> 3) & 0x0f);
    if (at + pin.length > apdu.length) return fail(0x1a); // bad PIN position/length in the structure
    apdu.set(pin, at);
    return ok(slot.card.process(apdu));
  }

  private xfrBlock(
    slot: Slot, m: M.CcidMessage,
    ok: (data?: Uint8Array, third?: number) => Uint8Array, fail: (e: number) => Uint8Array,
    reply: (status: number, error: number, third: number, data?: Uint8Array) => Uint8Array,
  ): Uint8Array[] {
    if (!slot.card) return [fail(0xfe)];
    if (!slot.powered) return [fail(0xfe)];
    const extensions: Uint8Array[] = [];
    if (this.faults.endlessTimeExtension) {
      // A reader that keeps asking for more time: far more than any driver should wait for.
      return Array.from({ length: 1000 }, () => reply(0x80, 1, 0));
    }
    for (let i = 0; i < (this.faults.timeExtensions ?? 0); i++) extensions.push(reply(0x80, 2, 0));
    const maxData = this.descriptor.dwMaxCCIDMessageLength - M.CCID_HEADER_LENGTH;
    let out: Uint8Array;
    switch (this.level) {
      case 'character':
        return [fail(0)];
      case 'tpdu':
        if (m.data[0] === 0xff && !slot.exchanged) {
          // PPS right after the ATR: a card that accepts echoes the request (ISO/IEC 7816-3 §9.3).
          if (this.faults.refusePps) return [...extensions, fail(0xfe)];
          out = m.data;
          this.ppsSeen = m.data.slice();
          break;
        }
        slot.exchanged = true;
        if (slot.t1) {
          out = slot.t1.receive(m.data);
          if ((this.faults.corruptT1Blocks ?? 0) > 0) {
            this.faults.corruptT1Blocks!--;
            out = out.slice();
            out[out.length - 1] ^= 0x5a;
          }
        } else out = slot.card.process(m.data);
        break;
      case 'shortApdu':
        out = slot.card.process(m.data);
        break;
      case 'extendedApdu': {
        const level = m.params[1] | (m.params[2] << 8);
        if (level === M.CHAIN.CONTINUE_RESPONSE) {
          return [...extensions, this.sendChained(slot, maxData, ok)];
        }
        slot.rxChain.push(m.data);
        if (level === M.CHAIN.BEGINS || level === M.CHAIN.CONTINUES) return [ok(new Uint8Array(0), 0x10)];
        const apdu = concatBytes(...slot.rxChain);
        slot.rxChain = [];
        slot.txChain = slot.card.process(apdu);
        this.lastExtendedCommand = apdu;
        return [...extensions, this.sendChained(slot, maxData, ok)];
      }
    }
    return [...extensions, ok(out)];
  }

  /** The last PPS request the card accepted. */
  ppsSeen: Uint8Array | null = null;
  /** The last whole command an extended-APDU reader put together from chained parts. */
  lastExtendedCommand: Uint8Array | null = null;
  /** Forces APDU-level response chaining for responses longer than this (tests). */
  responseChunk?: number;

  private sendChained(slot: Slot, maxData: number, ok: (data?: Uint8Array, third?: number) => Uint8Array): Uint8Array {
    const tx = slot.txChain ?? new Uint8Array(0);
    const size = Math.min(maxData, this.responseChunk ?? maxData);
    const first = !slot.txStarted;
    if (tx.length <= size) {
      slot.txChain = null;
      slot.txStarted = false;
      return ok(tx, first ? M.CHAIN.BEGINS_AND_ENDS : M.CHAIN.ENDS);
    }
    slot.txStarted = true;
    slot.txChain = tx.subarray(size);
    return ok(tx.subarray(0, size), first ? M.CHAIN.BEGINS : M.CHAIN.CONTINUES);
  }
}

/** A WebUSB object holding simulated devices, with hot-plug. */
export class SimulatedWebUsb implements WebUsbLike {
  readonly devices: SimulatedCcidDevice[] = [];
  private listeners = { connect: new Set<(ev: UsbConnectionEventLike) => void>(), disconnect: new Set<(ev: UsbConnectionEventLike) => void>() };

  constructor(devices: SimulatedCcidDevice[] = []) {
    for (const d of devices) this.attach(d);
  }

  private attach(d: SimulatedCcidDevice): void {
    this.devices.push(d);
    d.onGone = () => this.unplug(d);
  }

  async getDevices(): Promise<SimulatedCcidDevice[]> { return [...this.devices]; }
  addEventListener(type: 'connect' | 'disconnect', l: (ev: UsbConnectionEventLike) => void): void { this.listeners[type].add(l); }
  removeEventListener(type: 'connect' | 'disconnect', l: (ev: UsbConnectionEventLike) => void): void { this.listeners[type].delete(l); }
  get listenerCount(): number { return this.listeners.connect.size + this.listeners.disconnect.size; }

  plug(d: SimulatedCcidDevice): void {
    this.attach(d);
    for (const l of this.listeners.connect) l({ device: d });
  }

  /**
   * `asNewObject`: the disconnect event carries another object for the same
   * device, as node-usb does (it matches by `handle`).
   */
  unplug(d: SimulatedCcidDevice, opts: { asNewObject?: boolean } = {}): void {
    const i = this.devices.indexOf(d);
    if (i < 0) return;
    this.devices.splice(i, 1);
    d.unplug();
    const device = opts.asNewObject
      ? ({ handle: d.handle, vendorId: d.vendorId, productId: d.productId, configurations: [] } as unknown as UsbDeviceLike)
      : d;
    for (const l of this.listeners.disconnect) l({ device });
  }
}
