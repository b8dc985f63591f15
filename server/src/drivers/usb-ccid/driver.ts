// USB CCID readers driven directly over WebUSB (node-usb), no PC/SC service in
// between. One reader per CCID slot. The WebUSB object is injected so tests use
// the simulated device; only transport.ts loads the real `usb` package.

import type { Driver, DriverSink, PowerMode, Protocol, ReaderFacts, SlotDescriptor } from '../driver';
import { decodePinVerify } from '../../codecs/pinpad';
import { ScError, type ScErrorCode } from '../../util/errors';
import { concatBytes, toHex } from '../../util/hex';
import { rawFactKey } from '../../protocol';
import {
  CCID_FEATURES, decodeCcidDescriptor, exchangeLevel, findCcidDescriptorInConfiguration, protocols as ccidProtocols,
  voltages as ccidVoltages, bcdString, exchangeLevelWords, featureWords, type CcidDescriptor, type ExchangeLevel,
} from '../../ccid/descriptor';
import * as M from '../../ccid/messages';
import { T1Protocol } from '../../ccid/t1';
import { bitRate, ifscFromAtr, ppsRequest, protocolDataStructure, readAtrProtocolBytes } from '../../ccid/parameters';
import { guardNodeUsbRejections, loadSystemWebUsb } from './transport';
import { viewBytes, type UsbConnectionEventLike, type UsbDeviceLike, type UsbInterfaceLike, type WebUsbLike } from './webusb';

export type { WebUsbLike } from './webusb';

export interface UsbCcidDriverOptions {
  /** WebUSB object; default: node-usb's, loaded by transport.ts. */
  webusb?: WebUsbLike;
  /** Every CCID bulk message as it goes out and comes in. */
  rawTrace?: (dir: 'out' | 'in', bytes: Uint8Array) => void;
  /** How long one bulk-in read may take (ms); time extensions restart it. */
  readTimeoutMs?: number;
  /** Time extension requests accepted for one command before giving up. */
  maxTimeExtensions?: number;
}

const CCID_CLASS = 0x0b;
const VENDOR_CLASS = 0xff;
const SCARD_CTL_CODE = (code: number) => 0x42000000 + code; // pcsc-lite on Unix
const CM_IOCTL_GET_FEATURE_REQUEST = 3400;
const IOCTL_CCID_ESCAPE = 3500;
const FEATURE_CCID_ESC_COMMAND = 0x13;
const FEATURE_VERIFY_PIN_DIRECT = 0x06;
/** libccid's numbering: SCARD_CTL_CODE(FEATURE_VERIFY_PIN_DIRECT + CLASS2_IOCTL_MAGIC 0x330000). */
const IOCTL_FEATURE_VERIFY_PIN_DIRECT = SCARD_CTL_CODE(0x330000 + FEATURE_VERIFY_PIN_DIRECT);

const LEVEL_WORDS: Record<ExchangeLevel, string> = {
  character: 'character', tpdu: 'TPDU', shortApdu: 'short APDU', extendedApdu: 'extended APDU',
};

/** Power-on voltages from the lowest class up (ISO/IEC 7816-3 §6.2.4: never start above the card's class). */
const VOLTAGE_ORDER: ReadonlyArray<readonly [number, M.PowerSelect]> = [[1.8, '1.8V'], [3, '3V'], [5, '5V']];

const CLAIMED_BY_SYSTEM = "the system's CCID driver (pcscd) owns this reader: use the PC/SC driver or stop pcscd";

interface SlotState {
  key: string;
  index: number;
  present: boolean;
  powered: boolean;
  atr: Uint8Array | null;
  t1: T1Protocol | null;
  /** The bPowerSelect the card last powered up with. */
  power: M.PowerSelect;
}

interface Reader {
  device: UsbDeviceLike;
  deviceKey: string;
  interfaceNumber: number;
  descriptor: CcidDescriptor;
  level: ExchangeLevel;
  bulkOut: number;
  bulkIn: number;
  interruptIn: number | null;
  seq: number;
  /** One CCID command at a time per interface (bMaxCCIDBusySlots is usually 1). */
  queue: Promise<unknown>;
  slots: SlotState[];
  unavailable?: string;
  closed: boolean;
}

class ReaderGone extends Error {}

export function createUsbCcidDriver(options: UsbCcidDriverOptions = {}): Driver {
  return new UsbCcidDriver(options);
}

class UsbCcidDriver implements Driver {
  readonly id = 'usb-ccid';
  private sink: DriverSink | null = null;
  private webusb: WebUsbLike | null = null;
  private readers: Reader[] = [];
  private slotsByKey = new Map<string, { reader: Reader; slot: SlotState }>();
  private usbUnavailableReported = false;
  private unguard: (() => void) | null = null;
  private anonymous = 0;
  private readonly readTimeoutMs: number;
  private readonly maxTimeExtensions: number;

  constructor(private readonly options: UsbCcidDriverOptions) {
    this.readTimeoutMs = options.readTimeoutMs ?? 10_000;
    this.maxTimeExtensions = options.maxTimeExtensions ?? 60;
  }

  private readonly onConnect = (ev: UsbConnectionEventLike) => {
    this.addDevice(ev.device).catch((e) => this.log('error', `USB device ${describeDevice(ev.device)} could not be added: ${errorMessage(e)}`));
  };

  private readonly onDisconnect = (ev: UsbConnectionEventLike) => { this.removeDevice(ev.device); };

  private log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', message: string): void {
    this.sink?.log(level, message);
  }

  private reportUsbUnavailable(reason: string, wrongBuild = false): void {
    if (this.usbUnavailableReported) return;
    this.usbUnavailableReported = true;
    const hint = wrongBuild
      ? 'The USB CCID driver stays idle and the other drivers carry on. Readers the system\'s PC/SC service sees are under PC/SC.'
      : 'The USB CCID driver reads USB devices itself (on Linux through /sys/bus/usb and /dev/bus/usb, missing in many containers and in WSL); it stays idle and the other drivers carry on. Readers the system\'s PC/SC service sees are under PC/SC.';
    if (this.sink?.status) this.sink.status('unavailable', `USB not available: ${reason}`, hint);
    else this.log('warn', `USB not available: ${reason}. The USB CCID driver stays idle; the other drivers carry on.`);
  }

  async start(sink: DriverSink): Promise<void> {
    this.sink = sink;
    let webusb = this.options.webusb ?? null;
    if (!webusb) {
      const sys = await loadSystemWebUsb();
      if (!sys.ok) { this.reportUsbUnavailable(sys.reason, sys.wrongBuild); return; }
      webusb = sys.webusb;
    }
    let devices: UsbDeviceLike[];
    try {
      devices = await webusb.getDevices();
    } catch (e) {
      // No USB here (e.g. no /sys/bus/usb): do not listen for hot-plug, which would fail the same way.
      this.reportUsbUnavailable(errorMessage(e));
      return;
    }
    this.webusb = webusb;
    if (!this.options.webusb) this.unguard = guardNodeUsbRejections((r) => this.reportUsbUnavailable(r));
    webusb.addEventListener('connect', this.onConnect);
    webusb.addEventListener('disconnect', this.onDisconnect);
    for (const d of devices) {
      try { await this.addDevice(d); } catch (e) { this.log('error', `USB device ${describeDevice(d)} could not be added: ${errorMessage(e)}`); }
    }
  }

  async stop(): Promise<void> {
    if (this.webusb) {
      this.webusb.removeEventListener('connect', this.onConnect);
      this.webusb.removeEventListener('disconnect', this.onDisconnect);
    }
    this.webusb = null;
    for (const r of [...this.readers]) await this.closeReader(r);
    this.readers = [];
    this.slotsByKey.clear();
    this.unguard?.();
    this.unguard = null;
    this.sink = null;
  }

  // ---- discovery ----

  private async addDevice(device: UsbDeviceLike): Promise<void> {
    if (this.readers.some((r) => sameDevice(r.device, device))) return;
    const config = device.configuration ?? device.configurations[0];
    if (!config) return;
    const candidates = config.interfaces.filter((i) => {
      const c = (i.alternate ?? i.alternates[0])?.interfaceClass;
      return c === CCID_CLASS || c === VENDOR_CLASS;
    });
    if (candidates.length === 0) return;
    try {
      if (!device.opened) await device.open();
    } catch (e) {
      this.log('warn', `USB device ${describeDevice(device)} cannot be opened (${errorMessage(e)}); ${usbOpenRefusedHint()}`);
      return;
    }
    let configBytes: Uint8Array;
    try {
      configBytes = await this.readConfigurationDescriptor(device);
    } catch (e) {
      this.log('warn', `USB device ${describeDevice(device)}: cannot read its configuration descriptor (${errorMessage(e)})`);
      await device.close().catch(() => {});
      return;
    }
    const found: Array<{ iface: UsbInterfaceLike; descriptor: CcidDescriptor }> = [];
    for (const iface of candidates) {
      const alt = iface.alternate ?? iface.alternates[0];
      const bytes = findCcidDescriptorInConfiguration(configBytes, iface.interfaceNumber, alt.alternateSetting);
      if (!bytes) {
        if (alt.interfaceClass === CCID_CLASS) this.log('warn', `${describeDevice(device)} interface ${iface.interfaceNumber}: class 0x0B without a CCID class descriptor; skipped`);
        continue; // a vendor-specific interface without CCID descriptor is not a reader
      }
      const d = decodeCcidDescriptor(bytes);
      if (!d.ok) { this.log('warn', `${describeDevice(device)} interface ${iface.interfaceNumber}: ${d.error.message}`); continue; }
      found.push({ iface, descriptor: d.descriptor });
    }
    if (found.length === 0) { await device.close().catch(() => {}); return; }
    if (!device.configuration) await device.selectConfiguration(config.configurationValue);
    const serialPart = device.serialNumber || `n${this.anonymous++}`;
    const baseKey = `usb:${hex4(device.vendorId)}:${hex4(device.productId)}:${serialPart}`;
    for (const { iface, descriptor } of found) {
      const alt = iface.alternate ?? iface.alternates[0];
      const ep = (dir: 'in' | 'out', type: 'bulk' | 'interrupt') => alt.endpoints.find((e) => e.direction === dir && e.type === type)?.endpointNumber;
      const deviceKey = found.length > 1 ? `${baseKey}:if${iface.interfaceNumber}` : baseKey;
      const reader: Reader = {
        device, deviceKey, interfaceNumber: iface.interfaceNumber, descriptor, level: exchangeLevel(descriptor),
        bulkOut: ep('out', 'bulk') ?? -1, bulkIn: ep('in', 'bulk') ?? -1, interruptIn: ep('in', 'interrupt') ?? null,
        seq: 0, queue: Promise.resolve(), slots: [], closed: false,
      };
      for (let s = 0; s <= descriptor.bMaxSlotIndex; s++) {
        reader.slots.push({ key: `${deviceKey}:${s}`, index: s, present: false, powered: false, atr: null, t1: null, power: 'auto' });
      }
      if (reader.bulkIn < 0 || reader.bulkOut < 0) reader.unavailable = 'the CCID interface has no bulk-in/bulk-out endpoints; this reader cannot be driven over CCID bulk transfers';
      else if (reader.level === 'character') reader.unavailable = 'this reader works at character level (byte-by-byte with ISO 7816-3 timing), which the workbench does not drive over USB: use the PC/SC driver';
      else {
        try {
          await device.claimInterface(iface.interfaceNumber);
        } catch (e) {
          const msg = errorMessage(e);
          reader.unavailable = /busy|access|denied|EBUSY|EACCES|claimed/i.test(msg) ? `${CLAIMED_BY_SYSTEM} (${msg})` : `cannot claim the CCID interface (${msg}); ${CLAIMED_BY_SYSTEM}`;
        }
      }
      if (!reader.unavailable) {
        for (const slot of reader.slots) {
          try {
            const st = await this.command(reader, (seq) => M.getSlotStatus(slot.index, seq), { allowFailure: true });
            slot.present = M.decodeStatus(st.params[0]).iccStatus !== 'absent';
          } catch (e) {
            this.log('warn', `${describeDevice(device)} slot ${slot.index}: GetSlotStatus failed (${errorMessage(e)})`);
          }
        }
      }
      this.readers.push(reader);
      for (const slot of reader.slots) {
        this.slotsByKey.set(slot.key, { reader, slot });
        this.sink?.slotAdded(this.describeSlot(reader, slot, alt.interfaceName ?? undefined, found.length > 1));
      }
      if (!reader.unavailable) this.listenInterrupts(reader);
    }
  }

  private async readConfigurationDescriptor(device: UsbDeviceLike): Promise<Uint8Array> {
    const setup = { requestType: 'standard' as const, recipient: 'device' as const, request: 6, value: 0x0200, index: 0 };
    const head = await device.controlTransferIn(setup, 9);
    const h = viewBytes(head.data);
    if (head.status !== 'ok' || h.length < 4) throw new Error('GET_DESCRIPTOR(CONFIGURATION) failed');
    const total = h[2] | (h[3] << 8);
    const full = await device.controlTransferIn(setup, total);
    if (full.status !== 'ok') throw new Error('GET_DESCRIPTOR(CONFIGURATION) failed');
    return viewBytes(full.data);
  }

  private describeSlot(reader: Reader, slot: SlotState, interfaceName: string | undefined, several: boolean): SlotDescriptor {
    const d = reader.descriptor;
    const dev = reader.device;
    const pin = [(d.bPINSupport & 1) && 'verify', (d.bPINSupport & 2) && 'modify'].filter(Boolean).join(', ') || 'none';
    return {
      key: slot.key,
      name: dev.productName || `USB CCID reader ${hex4(dev.vendorId)}:${hex4(dev.productId)}`,
      ...(several || interfaceName ? { interfaceName: interfaceName || `interface ${reader.interfaceNumber}` } : {}),
      ...(dev.serialNumber ? { serial: dev.serialNumber } : {}),
      deviceKey: reader.deviceKey,
      slotIndex: slot.index,
      cardPresent: slot.present,
      details: {
        'VID:PID': `${hex4(dev.vendorId)}:${hex4(dev.productId)}`.toUpperCase(),
        ...(dev.manufacturerName ? { manufacturer: dev.manufacturerName } : {}),
        'CCID': bcdString(d.bcdCCID),
        'exchange level': LEVEL_WORDS[reader.level],
        slots: `${slot.index + 1} of ${d.bMaxSlotIndex + 1}`,
        protocols: ccidProtocols(d).map((p) => `T=${p}`).join(', '),
        voltages: ccidVoltages(d).map((v) => `${v} V`).join(', '),
        'max message length': `${d.dwMaxCCIDMessageLength} bytes`,
        'PIN support': pin,
        interface: `${reader.interfaceNumber}`,
      },
      ...(reader.unavailable ? { unavailable: reader.unavailable } : {}),
    };
  }

  private removeDevice(device: UsbDeviceLike): void {
    for (const r of this.readers.filter((x) => sameDevice(x.device, device))) {
      r.closed = true;
      this.readers.splice(this.readers.indexOf(r), 1);
      for (const s of r.slots) {
        this.slotsByKey.delete(s.key);
        this.sink?.slotRemoved(s.key);
      }
    }
  }

  private async closeReader(r: Reader): Promise<void> {
    r.closed = true;
    if (!r.unavailable) await r.device.releaseInterface(r.interfaceNumber).catch(() => {});
    await r.device.close().catch(() => {});
  }

  // ---- interrupt-IN: NotifySlotChange, HardwareError (§6.3) ----

  private listenInterrupts(reader: Reader): void {
    const ep = reader.interruptIn;
    if (ep === null) {
      this.log('info', `${reader.device.productName ?? 'reader'}: no interrupt endpoint; card changes are seen at the next command`);
      return;
    }
    const loop = async () => {
      while (!reader.closed) {
        let bytes: Uint8Array;
        try {
          const r = await reader.device.transferIn(ep, 64, 60_000);
          bytes = viewBytes(r.data);
        } catch (e) {
          if (reader.closed) return;
          if (/timeout/i.test(errorMessage(e))) continue;
          this.log('debug', `${reader.device.productName ?? 'reader'}: interrupt pipe closed (${errorMessage(e)})`);
          return;
        }
        this.handleInterrupt(reader, bytes);
      }
    };
    void loop();
  }

  private handleInterrupt(reader: Reader, bytes: Uint8Array): void {
    const m = M.decodeInterrupt(bytes, reader.slots.length);
    if (m.type === 'slotChange') {
      for (const s of m.slots) {
        const slot = reader.slots[s.slot];
        // Only a real change is reported, so a reader flooding the pipe cannot flood clients.
        if (slot) this.setPresent(slot, s.present);
      }
    } else if (m.type === 'hardwareError') {
      const slot = reader.slots[m.slot];
      if (slot) { slot.powered = false; slot.t1 = null; }
      this.log('error', `${reader.device.productName ?? 'reader'} slot ${m.slot}: ${m.message}; the card was powered off. Remove the card and check it.`);
    }
  }

  private setPresent(slot: SlotState, present: boolean): void {
    if (slot.present === present) return;
    slot.present = present;
    if (!present) { slot.powered = false; slot.atr = null; slot.t1 = null; }
    if (present) this.sink?.cardInserted(slot.key); else this.sink?.cardRemoved(slot.key);
  }

  // ---- bulk exchange ----

  /**
   * Sends one command and returns the matching response: skips stale answers to
   * earlier commands, follows time extensions, maps failures to ScError.
   */
  private command(
    reader: Reader,
    build: (seq: number) => Uint8Array,
    opts: { allowFailure?: boolean } = {},
  ): Promise<M.CcidMessage> {
    const run = async () => {
      if (reader.closed) throw new ReaderGone();
      const seq = reader.seq;
      reader.seq = (reader.seq + 1) & 0xff;
      const out = build(seq);
      const expected = M.RESPONSE_TO[out[0]];
      this.options.rawTrace?.('out', out);
      await this.usb(reader, () => reader.device.transferOut(reader.bulkOut, out));
      let extensions = 0;
      let stale = 0;
      for (;;) {
        const r = await this.usb(reader, () => reader.device.transferIn(reader.bulkIn, reader.descriptor.dwMaxCCIDMessageLength + M.CCID_HEADER_LENGTH, this.readTimeoutMs));
        const bytes = viewBytes(r.data);
        this.options.rawTrace?.('in', bytes);
        const d = M.decodeMessage(bytes);
        if (!d.ok) throw new ScError('PROTOCOL', `the reader sent a malformed CCID message: ${d.reason}. Unplug and replug the reader.`);
        const m = d.message;
        if (m.bSeq !== seq) {
          // An answer to an earlier command that timed out: drop it (libccid does the same).
          const behind = (seq - m.bSeq) & 0xff;
          if (behind > 0 && behind < 16 && ++stale < 16) continue;
          throw new ScError('PROTOCOL', `the reader answered with bSeq ${m.bSeq} to command bSeq ${seq}: it is out of step. Unplug and replug the reader.`);
        }
        if (m.bMessageType !== expected) {
          throw new ScError('PROTOCOL', `the reader answered ${M.MESSAGE_NAMES[out[0]]} with ${M.MESSAGE_NAMES[m.bMessageType] ?? `message type 0x${m.bMessageType.toString(16)}`} instead of ${M.MESSAGE_NAMES[expected]}`);
        }
        const st = M.decodeStatus(m.params[0]);
        if (st.commandStatus === 'timeExtension') {
          if (++extensions > this.maxTimeExtensions) {
            throw new ScError('TIMEOUT', `the reader asked for more time ${this.maxTimeExtensions} times for one command (time extension, bStatus 0x80) and never answered: the card seems stuck; remove it or reset it`);
          }
          // The manager's deadline for this call moves too: we wait up to one more read for the answer.
          const key = reader.slots[m.bSlot]?.key;
          if (key) this.sink?.timeExtension?.(key, this.readTimeoutMs);
          continue;
        }
        if (st.commandStatus === 'failed' && !opts.allowFailure) throw slotFailure(m, st.iccStatus);
        if (st.commandStatus === null) throw new ScError('PROTOCOL', `the reader sent a reserved command status in bStatus 0x${m.params[0].toString(16)}`);
        return m;
      }
    };
    const p = reader.queue.then(run, run);
    reader.queue = p.catch(() => {});
    return p.catch((e) => { throw e instanceof ReaderGone ? goneError() : e; });
  }

  /** One USB transfer; a vanished device or a timeout becomes a clear ScError. */
  private async usb<T extends { status: string }>(reader: Reader, transfer: () => Promise<T>): Promise<T> {
    let r: T;
    try {
      r = await transfer();
    } catch (e) {
      const msg = errorMessage(e);
      if (reader.closed || /NO_DEVICE|disconnect|no such device|not found/i.test(msg)) { reader.closed = true; throw goneError(); }
      if (/timeout/i.test(msg)) throw new ScError('TIMEOUT', `the reader did not answer within ${this.readTimeoutMs} ms: unplug and replug it`);
      throw new ScError('DRIVER', `USB transfer failed: ${msg}`);
    }
    if (r.status !== 'ok') throw new ScError('DRIVER', `USB transfer ended with ${r.status}: unplug and replug the reader`);
    return r;
  }

  /**
   * The reader's facts from what was read at plug-in, no transfer: the USB device descriptor's
   * strings and bcdDevice (as libccid reports them through SCardGetAttrib: IFD version = bcdDevice << 16)
   * and the CCID class descriptor. Also for a reader another driver claimed (descriptors need no claim).
   */
  async readerFacts(key: string): Promise<ReaderFacts> {
    const s = this.slotsByKey.get(key);
    if (!s) throw new ScError('NO_READER', `no USB CCID reader ${key}: it may have been unplugged`);
    const dev = s.reader.device;
    const d = s.reader.descriptor;
    const facts: ReaderFacts = {
      source: 'USB descriptors',
      maxIfsd: d.dwMaxIFSD,
      ccid: { features: [...featureWords(d), exchangeLevelWords(exchangeLevel(d))], dataRate: d.dwDataRate, maxDataRate: d.dwMaxDataRate, defaultClockKHz: d.dwDefaultClock, maxClockKHz: d.dwMaximumClock },
    };
    if (dev.manufacturerName) facts.vendorName = dev.manufacturerName;
    if (dev.productName) facts.ifdType = dev.productName;
    if (dev.serialNumber) facts.ifdSerial = dev.serialNumber;
    if (typeof dev.deviceVersionMajor === 'number') {
      // WebUSB splits bcdDevice 0xJJMN into major JJ, minor M, subminor N (node-usb does the same).
      const bcdDevice = ((dev.deviceVersionMajor & 0xff) << 8) | ((dev.deviceVersionMinor ?? 0) & 0xf) << 4 | ((dev.deviceVersionSubminor ?? 0) & 0xf);
      facts.ifdVersion = (bcdDevice << 16) >>> 0;
    }
    facts.maxInput = d.dwMaxCCIDMessageLength - M.CCID_HEADER_LENGTH;
    const channelId = usbChannelId(dev);
    if (channelId !== undefined) facts.channelId = channelId;
    // What the PC/SC service answers to SCardGetAttrib: libccid's bytes; ifdType and maxIfsd are the view's (R100).
    facts.raw = libccidAttributes(facts, dev);
    return facts;
  }

  private slot(key: string): { reader: Reader; slot: SlotState } {
    const s = this.slotsByKey.get(key);
    if (!s) throw new ScError('NO_READER', `no USB CCID reader ${key}: it may have been unplugged`);
    if (s.reader.unavailable) throw new ScError('READER_UNAVAILABLE', s.reader.unavailable);
    return s;
  }

  // ---- Driver ----

  async powerOn(key: string, mode: PowerMode): Promise<Uint8Array> {
    const { reader, slot } = this.slot(key);
    if (mode === 'cold' && slot.powered) await this.powerOff(key);
    const d = reader.descriptor;
    // With automatic voltage selection the reader picks; otherwise try each class from the lowest.
    const choices: M.PowerSelect[] = d.dwFeatures & CCID_FEATURES.AUTO_VOLTAGE
      ? ['auto']
      : VOLTAGE_ORDER.filter(([v]) => ccidVoltages(d).includes(v)).map(([, s]) => s);
    if (choices.length === 0) choices.push('auto');
    let last: unknown;
    for (const power of choices) {
      try {
        const m = await this.command(reader, (seq) => M.iccPowerOn(slot.index, seq, power));
        slot.powered = true;
        slot.present = true;
        slot.atr = m.data;
        slot.t1 = null;
        slot.power = power;
        return m.data;
      } catch (e) {
        last = e;
        if (!(e instanceof ScError) || e.code === 'NO_CARD' || e.code === 'NO_READER') break;
        this.log('debug', `${key}: power on at ${power} failed (${e.message}); trying the next voltage`);
      }
    }
    throw last;
  }

  async powerOff(key: string): Promise<void> {
    const { reader, slot } = this.slot(key);
    await this.command(reader, (seq) => M.iccPowerOff(slot.index, seq), { allowFailure: true });
    slot.powered = false;
    slot.t1 = null;
  }

  async setProtocol(key: string, protocol: Protocol, atr: Uint8Array): Promise<void> {
    const { reader, slot } = this.slot(key);
    const d = reader.descriptor;
    if (!(d.dwProtocols & (1 << protocol))) {
      throw new ScError('NOT_SUPPORTED', `this reader does not support T=${protocol} (it supports ${ccidProtocols(d).map((p) => `T=${p}`).join(', ')})`);
    }
    // The card runs at TA1's rate if the reader did PPS itself, the card is in specific mode (TA2), or our PPS succeeds.
    const a = readAtrProtocolBytes(atr);
    const ifsc = ifscFromAtr(a);
    if (protocol === 1 && ifsc.note) this.log('info', `${key}: ${ifsc.note}`);
    const readerNegotiates = (d.dwFeatures & (CCID_FEATURES.AUTO_PPS | CCID_FEATURES.AUTO_PARAMETER_NEGOTIATION)) !== 0;
    let useTa1 = readerNegotiates || a.ta2 !== undefined;
    if (!useTa1 && reader.level === 'tpdu' && a.ta1 !== undefined && a.ta1 !== 0x11) useTa1 = await this.pps(key, reader, slot, protocol, a.ta1);
    const structure = protocolDataStructure(protocol, atr, useTa1);
    const m = await this.command(reader, (seq) => M.setParameters(slot.index, seq, protocol, structure), { allowFailure: true });
    const st = M.decodeStatus(m.params[0]);
    if (st.commandStatus === 'failed') {
      const err = M.describeSlotError(m.params[1]);
      if (err.name !== 'CMD_NOT_SUPPORTED') throw new ScError('PROTOCOL', `the reader refused the T=${protocol} parameters: ${err.message}`);
      this.log('debug', `${key}: SetParameters not supported; keeping the reader's own parameters`);
    }
    slot.t1 = null;
    if (protocol === 1 && reader.level === 'tpdu') {
      const ifsd = Math.min(254, d.dwMaxIFSD || 254);
      const t1 = new T1Protocol((block, wtx) => this.xfrT1Block(reader, slot, block, wtx), {
        ifsc: ifsc.ifsc,
        ifsd: 32,
        edc: ((a.t1tc ?? 0) & 1) ? 'crc' : 'lrc',
        onEvent: (e) => this.log('trace', `${key} T=1: ${e}`),
        onWtx: () => this.sink?.timeExtension?.(key, this.readTimeoutMs),
      });
      slot.t1 = t1;
      if (!(d.dwFeatures & CCID_FEATURES.AUTO_IFSD)) await t1.negotiateIfsd(ifsd);
      else t1.ifsd = ifsd;
    }
  }

  /**
   * PPS (ISO/IEC 7816-3 §9) for a TPDU reader that does not do it: asks the card
   * for TA1's rate if the reader can clock it. A refused PPS leaves the card at
   * the default rate after a new power-on, as §9.3 requires.
   */
  private async pps(key: string, reader: Reader, slot: SlotState, protocol: Protocol, ta1: number): Promise<boolean> {
    const d = reader.descriptor;
    const rate = bitRate(ta1, d.dwDefaultClock);
    if (!rate || rate > d.dwMaxDataRate) {
      this.log('debug', `${key}: TA1 0x${ta1.toString(16)} asks for ${rate || 'an undefined'} bps, beyond this reader's ${d.dwMaxDataRate} bps; staying at the default rate`);
      return false;
    }
    const request = ppsRequest(protocol, ta1);
    try {
      const m = await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, request));
      if (toHex(m.data) === toHex(request)) {
        this.log('debug', `${key}: PPS accepted, ${rate} bps (Fi/Di 0x${ta1.toString(16)})`);
        return true;
      }
      this.log('info', `${key}: the card answered PPS with ${toHex(m.data)}; staying at the default rate`);
    } catch (e) {
      this.log('info', `${key}: PPS failed (${errorMessage(e)}); powering the card again at the default rate`);
    }
    await this.command(reader, (seq) => M.iccPowerOff(slot.index, seq), { allowFailure: true });
    slot.atr = (await this.command(reader, (seq) => M.iccPowerOn(slot.index, seq, slot.power))).data;
    return false;
  }

  /** One T=1 block through XfrBlock; a mute card is "no block" for the T=1 layer. */
  private async xfrT1Block(reader: Reader, slot: SlotState, block: Uint8Array, wtx: number): Promise<Uint8Array> {
    try {
      const m = await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, block, wtx > 1 ? Math.min(wtx, 255) : 0));
      return m.data;
    } catch (e) {
      if (e instanceof ScError && e.detail?.slotError === 'ICC_MUTE' && e.code !== 'NO_CARD') return new Uint8Array(0);
      throw e;
    }
  }

  async transmit(key: string, command: Uint8Array, protocol: Protocol): Promise<Uint8Array> {
    const { reader, slot } = this.slot(key);
    if (!slot.powered) throw new ScError('NO_CARD', slot.present ? 'the card is not powered: connect to it (power it on) first' : 'no card in the reader');
    const maxData = reader.descriptor.dwMaxCCIDMessageLength - M.CCID_HEADER_LENGTH;
    switch (reader.level) {
      case 'character':
        throw new ScError('NOT_SUPPORTED', 'character-level readers are not driven by the workbench: use the PC/SC driver');
      case 'tpdu': {
        if (protocol === 1) {
          if (!slot.t1) throw new ScError('PROTOCOL', 'T=1 has not been set up on this slot: set the protocol after power-on');
          return slot.t1.transmit(command);
        }
        if (command.length > maxData) throw new ScError('BAD_REQUEST', `the TPDU (${command.length} bytes) exceeds the reader's ${maxData}-byte message size`);
        return (await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, command))).data;
      }
      case 'shortApdu': {
        if (isExtendedApdu(command)) throw new ScError('NOT_SUPPORTED', 'this reader works at short APDU level and cannot carry an extended APDU: split the command (command chaining) or use a reader with extended APDU support');
        if (command.length > maxData) throw new ScError('BAD_REQUEST', `the APDU (${command.length} bytes) exceeds the reader's ${maxData}-byte message size`);
        return (await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, command))).data;
      }
      case 'extendedApdu':
        return this.extendedXfr(reader, slot, command, maxData);
    }
  }

  /** APDU-level chaining through wLevelParameter / bChainParameter (CCID §6.1.4, §6.2.1). */
  private async extendedXfr(reader: Reader, slot: SlotState, command: Uint8Array, maxData: number): Promise<Uint8Array> {
    let m: M.CcidMessage;
    if (command.length <= maxData) {
      m = await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, command, 0, M.CHAIN.BEGINS_AND_ENDS));
    } else {
      let offset = 0;
      for (;;) {
        const part = command.subarray(offset, offset + maxData);
        const level = offset === 0 ? M.CHAIN.BEGINS : offset + part.length >= command.length ? M.CHAIN.ENDS : M.CHAIN.CONTINUES;
        m = await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, part, 0, level));
        offset += part.length;
        if (level === M.CHAIN.ENDS) break;
      }
    }
    const parts = [m.data];
    for (let n = 0; m.params[2] === M.CHAIN.BEGINS || m.params[2] === M.CHAIN.CONTINUES; n++) {
      if (n > 1024) throw new ScError('PROTOCOL', 'the reader keeps chaining its response (over 1024 parts): unplug and replug it');
      m = await this.command(reader, (seq) => M.xfrBlock(slot.index, seq, new Uint8Array(0), 0, M.CHAIN.CONTINUE_RESPONSE));
      parts.push(m.data);
    }
    return concatBytes(...parts);
  }

  async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    const { reader, slot } = this.slot(key);
    const pinVerify = (reader.descriptor.bPINSupport & 1) !== 0;
    if (code === SCARD_CTL_CODE(CM_IOCTL_GET_FEATURE_REQUEST) || code === CM_IOCTL_GET_FEATURE_REQUEST) {
      // PC/SC part 10 feature list: TLV of tag, length 4, big-endian control code.
      const tlv = (tag: number, c: number) => [tag, 4, c >>> 24, (c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff];
      return Uint8Array.from([
        ...tlv(FEATURE_CCID_ESC_COMMAND, SCARD_CTL_CODE(IOCTL_CCID_ESCAPE)),
        ...(pinVerify ? tlv(FEATURE_VERIFY_PIN_DIRECT, IOCTL_FEATURE_VERIFY_PIN_DIRECT) : []),
      ]);
    }
    if (code === IOCTL_FEATURE_VERIFY_PIN_DIRECT) {
      if (!pinVerify) throw new ScError('NOT_SUPPORTED', `"${reader.device.productName ?? 'this reader'}" has no PIN pad (bPINSupport has no verify bit).`);
      const v = decodePinVerify(data);
      if ('error' in v) throw new ScError('BAD_REQUEST', `VERIFY_PIN_DIRECT: ${v.error}.`);
      // PC/SC's PIN_VERIFY_STRUCTURE → CCID abPINOperationDataStructure (§6.1.11):
      // bPINOperation 00, bTimeOut, then bmFormatString … bTeoPrologue, then the APDU
      // (PC/SC's bTimerOut2 and ulDataLength have no CCID counterpart).
      const ccid = concatBytes(Uint8Array.of(0x00, data[0]), data.subarray(2, 15), v.apdu);
      return (await this.command(reader, (seq) => M.secure(slot.index, seq, ccid))).data;
    }
    return (await this.command(reader, (seq) => M.escape(slot.index, seq, data))).data;
  }
}

function slotFailure(m: M.CcidMessage, icc: M.IccStatus | null): ScError {
  const err = M.describeSlotError(m.params[1]);
  const detail = { slotError: err.name, bError: m.params[1], bStatus: m.params[0] };
  const codes: Record<string, ScErrorCode> = {
    PIN_CANCELLED: 'CANCELLED', PIN_TIMEOUT: 'TIMEOUT', CMD_NOT_SUPPORTED: 'NOT_SUPPORTED', CMD_SLOT_BUSY: 'SHARING_VIOLATION',
  };
  if (icc === 'absent') return new ScError('NO_CARD', 'no card in the reader', detail);
  const code = codes[err.name] ?? (err.name === 'ICC_MUTE' || err.name.startsWith('BAD_ATR') || err.name === 'XFR_PARITY_ERROR' ? 'PROTOCOL' : 'DRIVER');
  return new ScError(code, `${M.MESSAGE_NAMES[m.bMessageType] ?? 'the reader'} failed: ${err.message} (${err.name})`, detail);
}

function goneError(): ScError {
  return new ScError('NO_READER', 'the USB reader was unplugged during the exchange');
}

/** Extended length (ISO/IEC 7816-4 §5.1): a zero byte where a short Lc/Le would be, followed by more. */
function isExtendedApdu(c: Uint8Array): boolean {
  return c.length > 5 && c[4] === 0;
}

/**
 * node-usb hands out a new device object on every getDevices() and event; its
 * `handle` names the physical device. Without one, the object is the identity.
 */
function sameDevice(a: UsbDeviceLike, b: UsbDeviceLike): boolean {
  const ha = (a as { handle?: unknown }).handle;
  const hb = (b as { handle?: unknown }).handle;
  return a === b || (ha !== undefined && ha === hb);
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

function describeDevice(d: UsbDeviceLike): string {
  return `${d.productName ?? 'USB device'} (${hex4(d.vendorId)}:${hex4(d.productId)})`;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** What to do when a USB device that may be a reader cannot be opened, per platform (docs/install.md, "The USB driver"). */
export function usbOpenRefusedHint(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return 'if it is a reader, Windows lets this driver open it only when it is bound to WinUSB (Zadig, or the vendor\'s WinUSB package); a reader on Microsoft\'s usbccid or its vendor\'s driver is for the PC/SC driver';
  if (platform === 'darwin') return 'if it is a reader, macOS\'s own CCID driver (CryptoTokenKit) holds it: use the PC/SC driver';
  return 'if it is a reader, give your user access to it (a udev rule, docs/install.md) or use the PC/SC driver';
}

/**
 * R100: the reader-fact attributes as libccid's IFDHGetCapabilities (ifdhandler.c) answers them, which pcscd passes
 * through (winscard.c 2.5.1 1401–1406), as ReaderFacts.raw (tag → hex) for the PC/SC service's SCardGetAttrib:
 * - VENDOR_NAME: iManufacturer and a NUL; without one, 0 bytes (IFD_SUCCESS with *Length = 0);
 * - VENDOR_IFD_VERSION: bcdDevice << 16 as a little-endian uint32;
 * - VENDOR_IFD_SERIAL_NO: iSerialNumber and a NUL; without one, 0 bytes;
 * - MAXINPUT: dwMaxCCIDMessageLength − 10 (CCID_HEADER_SIZE);
 * - CHANNEL_ID: 0x0020 << 16 | bus << 8 | address, when the device tells both (else not answered, R45, R61).
 * Nothing for VENDOR_IFD_TYPE nor MAX_IFSD: libccid has no case for them (IFD_ERROR_TAG →
 * SCARD_E_UNSUPPORTED_FEATURE); the facts' ifdType and maxIfsd are for the Readers view only.
 */
function libccidAttributes(f: ReaderFacts, dev: UsbDeviceLike): Record<string, string> {
  const u32 = (v: number): string => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return toHex(b, '').toLowerCase();
  };
  // libusb_get_string_descriptor_ascii, which libccid reads them with, makes each UTF-16 unit above 0x7F a '?'.
  const str = (v: string | null | undefined): string => (v ? Buffer.from(v.replace(/[^\x00-\x7f]/g, '?') + '\0', 'latin1').toString('hex') : '');
  const raw: Record<string, string> = {
    [rawFactKey(0x00010100)]: str(dev.manufacturerName),
    [rawFactKey(0x00010103)]: str(dev.serialNumber),
    [rawFactKey(0x0007a007)]: u32(f.maxInput ?? 0),
  };
  if (f.ifdVersion !== undefined) raw[rawFactKey(0x00010102)] = u32(f.ifdVersion);
  if (f.channelId !== undefined) raw[rawFactKey(0x00020110)] = u32(f.channelId);
  return raw;
}

/**
 * SCARD_ATTR_CHANNEL_ID as libccid answers it (ifdhandler.c IFDHGetCapabilities): 0x0020 << 16 (SCARD_CHANNEL_TYPE
 * USB) | bus number << 8 | device address, libusb's bus number and address. node-usb 3 passes on nusb's `bus_id`,
 * whose form is the platform's (R67):
 * - Linux: the sysfs `busnum`, zero-padded decimal (`"003"`), which is libusb's bus number;
 * - macOS: `locationID >> 24` as two hex digits (`"14"` is bus 20), which is libusb's bus number there;
 * - Windows: a location path (`"PCIROOT(0)#PCI(1400)#USBROOT(0)"`) with no libusb bus number in it: none.
 * None when the device does not tell both (the service then answers SCARD_E_UNSUPPORTED_FEATURE, R45).
 */
export function usbChannelId(dev: Pick<UsbDeviceLike, 'bus' | 'address'>, platform: NodeJS.Platform = process.platform): number | undefined {
  const busNumber = typeof dev.bus === 'number' ? dev.bus : typeof dev.bus === 'string' ? busNumberOf(dev.bus, platform) : NaN;
  const address = dev.address;
  if (!Number.isInteger(busNumber) || busNumber < 0 || busNumber > 0xff) return undefined;
  if (typeof address !== 'number' || !Number.isInteger(address) || address < 0 || address > 0xff) return undefined;
  return ((0x0020 << 16) | (busNumber << 8) | address) >>> 0;
}

function busNumberOf(bus: string, platform: NodeJS.Platform): number {
  if (platform === 'darwin') return /^[0-9a-f]{1,2}$/i.test(bus) ? parseInt(bus, 16) : NaN;
  if (platform === 'win32') return NaN;
  return /^\d{1,3}$/.test(bus) ? parseInt(bus, 10) : NaN;
}
