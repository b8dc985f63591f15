// The CCID class descriptor (CCID rev 1.1 §5.1, Table 5.1-1): 54 bytes, type 0x21,
// found after the interface descriptor in the configuration descriptor.
// Field names follow the spec so they can be compared with libccid's `parse`.

export const CCID_DESCRIPTOR_LENGTH = 0x36;
export const CCID_DESCRIPTOR_TYPE = 0x21;
/** Some vendor-specific (class 0xFF) readers use 0xFF as type; libccid accepts it. */
export const CCID_DESCRIPTOR_TYPE_PROPRIETARY = 0xff;

export interface CcidDescriptor {
  bLength: number;
  bDescriptorType: number;
  /** BCD release number, e.g. 0x0110 for 1.10. */
  bcdCCID: number;
  bMaxSlotIndex: number;
  bVoltageSupport: number;
  dwProtocols: number;
  /** kHz */
  dwDefaultClock: number;
  /** kHz */
  dwMaximumClock: number;
  bNumClockSupported: number;
  /** bps */
  dwDataRate: number;
  /** bps */
  dwMaxDataRate: number;
  bNumDataRatesSupported: number;
  dwMaxIFSD: number;
  dwSynchProtocols: number;
  dwMechanical: number;
  dwFeatures: number;
  dwMaxCCIDMessageLength: number;
  bClassGetResponse: number;
  bClassEnvelope: number;
  wLcdLayout: number;
  bPINSupport: number;
  bMaxCCIDBusySlots: number;
}

export type ExchangeLevel = 'character' | 'tpdu' | 'shortApdu' | 'extendedApdu';

/** dwFeatures bits (§5.1, Table 5.1-1). */
export const CCID_FEATURES = {
  AUTO_PARAMETERS_FROM_ATR: 0x00000002,
  AUTO_ACTIVATION: 0x00000004,
  AUTO_VOLTAGE: 0x00000008,
  AUTO_CLOCK: 0x00000010,
  AUTO_BAUD: 0x00000020,
  AUTO_PARAMETER_NEGOTIATION: 0x00000040,
  AUTO_PPS: 0x00000080,
  CLOCK_STOP: 0x00000100,
  NAD_OTHER_THAN_00: 0x00000200,
  AUTO_IFSD: 0x00000400,
  ICCD_TOKEN: 0x00000800,
  EXCHANGE_TPDU: 0x00010000,
  EXCHANGE_SHORT_APDU: 0x00020000,
  EXCHANGE_EXTENDED_APDU: 0x00040000,
  EXCHANGE_MASK: 0x00070000,
  USB_WAKE_UP: 0x00100000,
} as const;

/** Feature flags in words, in bit order; the exchange level is reported separately. */
export const FEATURE_WORDS: ReadonlyArray<readonly [number, string]> = [
  [CCID_FEATURES.AUTO_PARAMETERS_FROM_ATR, 'automatic parameter configuration based on ATR data'],
  [CCID_FEATURES.AUTO_ACTIVATION, 'automatic activation of ICC on inserting'],
  [CCID_FEATURES.AUTO_VOLTAGE, 'automatic ICC voltage selection'],
  [CCID_FEATURES.AUTO_CLOCK, 'automatic ICC clock frequency change according to parameters'],
  [CCID_FEATURES.AUTO_BAUD, 'automatic baud rate change according to frequency and Fi, Di params'],
  [CCID_FEATURES.AUTO_PARAMETER_NEGOTIATION, 'automatic parameters negotiation made by the CCID'],
  [CCID_FEATURES.AUTO_PPS, 'automatic PPS made by the CCID'],
  [CCID_FEATURES.CLOCK_STOP, 'CCID can set ICC in clock stop mode'],
  [CCID_FEATURES.NAD_OTHER_THAN_00, 'NAD value other than 00 accepted (T=1)'],
  [CCID_FEATURES.AUTO_IFSD, 'automatic IFSD exchange as first exchange (T=1)'],
  [CCID_FEATURES.ICCD_TOKEN, 'ICCD token'],
  [CCID_FEATURES.USB_WAKE_UP, 'USB wake up signaling supported on card insertion and removal'],
];

const EXCHANGE_LEVELS: ReadonlyArray<readonly [number, ExchangeLevel, string]> = [
  [CCID_FEATURES.EXCHANGE_EXTENDED_APDU, 'extendedApdu', 'short and extended APDU level exchange'],
  [CCID_FEATURES.EXCHANGE_SHORT_APDU, 'shortApdu', 'short APDU level exchange'],
  [CCID_FEATURES.EXCHANGE_TPDU, 'tpdu', 'TPDU level exchange'],
];

/** bVoltageSupport bits → volts. */
export const VOLTAGES: ReadonlyArray<readonly [number, number]> = [[0x01, 5], [0x02, 3], [0x04, 1.8]];

/** dwMechanical bits. */
const MECHANICAL_WORDS: ReadonlyArray<readonly [number, string]> = [
  [0x01, 'card accept mechanism'],
  [0x02, 'card ejection mechanism'],
  [0x04, 'card capture mechanism'],
  [0x08, 'card lock/unlock mechanism'],
];

const SYNCH_WORDS: ReadonlyArray<readonly [number, string]> = [
  [0x01, '2-wire protocol'],
  [0x02, '3-wire protocol'],
  [0x04, 'I2C protocol'],
];

export type CcidDescriptorErrorCode = 'TOO_SHORT' | 'BAD_LENGTH' | 'BAD_TYPE';

export interface CcidDescriptorError {
  code: CcidDescriptorErrorCode;
  message: string;
}

export type CcidDecodeResult =
  | { ok: true; descriptor: CcidDescriptor; warnings: string[] }
  | { ok: false; error: CcidDescriptorError };

function dw(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

/**
 * Decodes a CCID class descriptor. Never throws: a short or foreign descriptor is
 * returned as an error value that says what is wrong.
 */
export function decodeCcidDescriptor(bytes: Uint8Array): CcidDecodeResult {
  if (bytes.length < 2) {
    return { ok: false, error: { code: 'TOO_SHORT', message: `a CCID class descriptor is 54 bytes; got ${bytes.length}` } };
  }
  if (bytes[0] !== CCID_DESCRIPTOR_LENGTH) {
    return {
      ok: false,
      error: { code: 'BAD_LENGTH', message: `bLength is 0x${hex2(bytes[0])}; a CCID class descriptor has bLength 0x36 (54 bytes)` },
    };
  }
  if (bytes[1] !== CCID_DESCRIPTOR_TYPE && bytes[1] !== CCID_DESCRIPTOR_TYPE_PROPRIETARY) {
    return {
      ok: false,
      error: { code: 'BAD_TYPE', message: `bDescriptorType is 0x${hex2(bytes[1])}; a CCID class descriptor has type 0x21 (or 0xFF on some proprietary readers)` },
    };
  }
  if (bytes.length < CCID_DESCRIPTOR_LENGTH) {
    return { ok: false, error: { code: 'TOO_SHORT', message: `a CCID class descriptor is 54 bytes; got ${bytes.length}` } };
  }
  const warnings: string[] = [];
  if (bytes.length > CCID_DESCRIPTOR_LENGTH) warnings.push(`${bytes.length - CCID_DESCRIPTOR_LENGTH} bytes after the 54-byte descriptor were ignored`);
  if (bytes[1] === CCID_DESCRIPTOR_TYPE_PROPRIETARY) warnings.push('proprietary bDescriptorType 0xFF (accepted, as libccid does)');
  const b = bytes;
  const d: CcidDescriptor = {
    bLength: b[0],
    bDescriptorType: b[1],
    bcdCCID: b[2] | (b[3] << 8),
    bMaxSlotIndex: b[4],
    bVoltageSupport: b[5],
    dwProtocols: dw(b, 6),
    dwDefaultClock: dw(b, 10),
    dwMaximumClock: dw(b, 14),
    bNumClockSupported: b[18],
    dwDataRate: dw(b, 19),
    dwMaxDataRate: dw(b, 23),
    bNumDataRatesSupported: b[27],
    dwMaxIFSD: dw(b, 28),
    dwSynchProtocols: dw(b, 32),
    dwMechanical: dw(b, 36),
    dwFeatures: dw(b, 40),
    dwMaxCCIDMessageLength: dw(b, 44),
    bClassGetResponse: b[48],
    bClassEnvelope: b[49],
    wLcdLayout: b[50] | (b[51] << 8),
    bPINSupport: b[52],
    bMaxCCIDBusySlots: b[53],
  };
  const levelBits = d.dwFeatures & CCID_FEATURES.EXCHANGE_MASK;
  const reserved = reservedProtocolBits(d);
  if (reserved) warnings.push(`dwProtocols has reserved bits set (0x${reserved.toString(16).toUpperCase().padStart(8, '0')}); only T=0 (bit 0) and T=1 (bit 1) are protocols`);
  if (levelBits & (levelBits - 1)) warnings.push(`dwFeatures announces several exchange levels (0x${levelBits.toString(16)}); the highest is used`);
  return { ok: true, descriptor: d, warnings };
}

/** Builds the 54 bytes from field values; missing fields are 0 (bLength/type default to 0x36/0x21). */
export function encodeCcidDescriptor(fields: Partial<CcidDescriptor>): Uint8Array {
  const b = new Uint8Array(CCID_DESCRIPTOR_LENGTH);
  const f = (k: keyof CcidDescriptor) => (fields[k] ?? 0) >>> 0;
  const put32 = (o: number, v: number) => { b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = (v >>> 16) & 0xff; b[o + 3] = (v >>> 24) & 0xff; };
  b[0] = fields.bLength ?? CCID_DESCRIPTOR_LENGTH;
  b[1] = fields.bDescriptorType ?? CCID_DESCRIPTOR_TYPE;
  b[2] = f('bcdCCID') & 0xff; b[3] = (f('bcdCCID') >> 8) & 0xff;
  b[4] = f('bMaxSlotIndex');
  b[5] = f('bVoltageSupport');
  put32(6, f('dwProtocols'));
  put32(10, f('dwDefaultClock'));
  put32(14, f('dwMaximumClock'));
  b[18] = f('bNumClockSupported');
  put32(19, f('dwDataRate'));
  put32(23, f('dwMaxDataRate'));
  b[27] = f('bNumDataRatesSupported');
  put32(28, f('dwMaxIFSD'));
  put32(32, f('dwSynchProtocols'));
  put32(36, f('dwMechanical'));
  put32(40, f('dwFeatures'));
  put32(44, f('dwMaxCCIDMessageLength'));
  b[48] = f('bClassGetResponse');
  b[49] = f('bClassEnvelope');
  b[50] = f('wLcdLayout') & 0xff; b[51] = (f('wLcdLayout') >> 8) & 0xff;
  b[52] = f('bPINSupport');
  b[53] = f('bMaxCCIDBusySlots');
  return b;
}

export function exchangeLevel(d: CcidDescriptor): ExchangeLevel {
  for (const [bit, level] of EXCHANGE_LEVELS) if (d.dwFeatures & bit) return level;
  return 'character';
}

export function voltages(d: CcidDescriptor): number[] {
  return VOLTAGES.filter(([bit]) => d.bVoltageSupport & bit).map(([, v]) => v);
}

/** dwProtocols bits CCID 1.1 defines: bit 0 = T=0, bit 1 = T=1. */
export const CCID_PROTOCOL_BITS = 0x00000003;

/** Protocols supported: T=0 and/or T=1 only (CCID 1.1 §5.1; the other bits are RFU, as libccid reads them). */
export function protocols(d: CcidDescriptor): number[] {
  const out: number[] = [];
  for (let t = 0; t < 2; t++) if (d.dwProtocols & (1 << t)) out.push(t);
  return out;
}

/** dwProtocols bits other than T=0/T=1 (reserved for future use); 0 when none. */
export function reservedProtocolBits(d: CcidDescriptor): number {
  return (d.dwProtocols & ~CCID_PROTOCOL_BITS) >>> 0;
}

export function featureWords(d: CcidDescriptor): string[] {
  return FEATURE_WORDS.filter(([bit]) => d.dwFeatures & bit).map(([, w]) => w);
}

export function bcdString(bcd: number): string {
  return `${((bcd >> 8) & 0xff).toString(16).toUpperCase()}.${(bcd & 0xff).toString(16).toUpperCase().padStart(2, '0')}`;
}

export function exchangeLevelWords(level: ExchangeLevel): string {
  return EXCHANGE_LEVELS.find(([, l]) => l === level)?.[2] ?? 'character level exchange';
}

export interface CcidDescriptorJson {
  bcdCCID: string;
  descriptorType: string;
  maxSlotIndex: number;
  slots: number;
  voltages: number[];
  /** T=0 / T=1 only. */
  protocols: number[];
  /** dwProtocols bits CCID reserves (not protocols); 0 when none. */
  reservedProtocolBits: number;
  defaultClockKHz: number;
  maximumClockKHz: number;
  numClockSupported: number;
  dataRate: number;
  maxDataRate: number;
  numDataRatesSupported: number;
  maxIFSD: number;
  synchProtocols: string[];
  mechanical: string[];
  features: number;
  featureFlags: string[];
  exchangeLevel: ExchangeLevel;
  exchangeLevelWords: string;
  maxMessageLength: number;
  classGetResponse: number | 'echo';
  classEnvelope: number | 'echo';
  lcdLayout: { lines: number; charactersPerLine: number } | null;
  pinSupport: { verify: boolean; modify: boolean };
  maxBusySlots: number;
  warnings: string[];
}

export function ccidDescriptorToJson(d: CcidDescriptor, warnings: string[] = []): CcidDescriptorJson {
  const level = exchangeLevel(d);
  return {
    bcdCCID: bcdString(d.bcdCCID),
    descriptorType: d.bDescriptorType === CCID_DESCRIPTOR_TYPE ? 'CCID (0x21)' : `proprietary (0x${hex2(d.bDescriptorType)})`,
    maxSlotIndex: d.bMaxSlotIndex,
    slots: d.bMaxSlotIndex + 1,
    voltages: voltages(d),
    protocols: protocols(d),
    reservedProtocolBits: reservedProtocolBits(d),
    defaultClockKHz: d.dwDefaultClock,
    maximumClockKHz: d.dwMaximumClock,
    numClockSupported: d.bNumClockSupported,
    dataRate: d.dwDataRate,
    maxDataRate: d.dwMaxDataRate,
    numDataRatesSupported: d.bNumDataRatesSupported,
    maxIFSD: d.dwMaxIFSD,
    synchProtocols: SYNCH_WORDS.filter(([bit]) => d.dwSynchProtocols & bit).map(([, w]) => w),
    mechanical: MECHANICAL_WORDS.filter(([bit]) => d.dwMechanical & bit).map(([, w]) => w),
    features: d.dwFeatures,
    featureFlags: featureWords(d),
    exchangeLevel: level,
    exchangeLevelWords: exchangeLevelWords(level),
    maxMessageLength: d.dwMaxCCIDMessageLength,
    classGetResponse: d.bClassGetResponse === 0xff ? 'echo' : d.bClassGetResponse,
    classEnvelope: d.bClassEnvelope === 0xff ? 'echo' : d.bClassEnvelope,
    lcdLayout: d.wLcdLayout ? { lines: d.wLcdLayout >> 8, charactersPerLine: d.wLcdLayout & 0xff } : null,
    pinSupport: { verify: (d.bPINSupport & 1) !== 0, modify: (d.bPINSupport & 2) !== 0 },
    maxBusySlots: d.bMaxCCIDBusySlots,
    warnings,
  };
}

/**
 * Finds the CCID class descriptor in a configuration descriptor (as returned by
 * GET_DESCRIPTOR(CONFIGURATION)) for one interface: the first descriptor of
 * length 0x36 with type 0x21 (or 0xFF) after that interface's descriptor and
 * before the next interface descriptor — the place libccid reads `extra` from.
 */
export function findCcidDescriptorInConfiguration(config: Uint8Array, interfaceNumber: number, alternateSetting = 0): Uint8Array | null {
  let inInterface = false;
  for (let o = 0; o + 2 <= config.length;) {
    const len = config[o];
    const type = config[o + 1];
    if (len < 2 || o + len > config.length) return null;
    if (type === 0x04 && len >= 9) inInterface = config[o + 2] === interfaceNumber && config[o + 3] === alternateSetting;
    else if (inInterface && len === CCID_DESCRIPTOR_LENGTH && (type === CCID_DESCRIPTOR_TYPE || type === CCID_DESCRIPTOR_TYPE_PROPRIETARY)) {
      return config.slice(o, o + len);
    }
    o += len;
  }
  return null;
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
