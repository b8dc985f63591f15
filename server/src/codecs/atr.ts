// Answer-to-Reset parser, ISO/IEC 7816-3:2006 §8 (interface bytes) and
// ISO/IEC 7816-4:2013 §8.1.1 (historical bytes). Never throws: problems land in `errors`.
import { toHex, toSpacedHex } from '../util/hex';
import { describeStatusWord } from './sw';

export type InterfaceByteName = 'TA' | 'TB' | 'TC' | 'TD';

export interface InterfaceByte {
  name: InterfaceByteName;
  /** i of TAi/TBi/TCi/TDi, from 1. */
  index: number;
  value: number;
  offset: number;
  /** The protocol the byte belongs to: undefined for global bytes (i ≤ 2, or after T=15). */
  protocol?: number;
  meaning: string;
}

export interface SpecificMode {
  protocol: number;
  /** b8 = 0: the reader may switch to negotiable mode by a warm reset. */
  canChange: boolean;
  /** b5 = 1: parameters are implicit, not those in the interface bytes. */
  implicitParameters: boolean;
}

export interface CompactTlvObject {
  tag: number;
  length: number;
  value: Uint8Array;
  name: string;
  /** Decoded meaning, one line per fact. */
  details: string[];
}

export interface StatusIndicator {
  lcs?: number;
  lcsMeaning?: string;
  sw?: number;
  swMeaning?: string;
}

export interface PcscContactless {
  rid: string;
  standard: number;
  standardName: string;
  cardName: number;
  cardNameText: string;
}

export interface HistoricalInfo {
  categoryIndicator?: number;
  category: string;
  objects: CompactTlvObject[];
  statusIndicator?: StatusIndicator;
  dirDataReference?: number;
  /** PC/SC Part 3 §3.1.3.2.3 storage card ATR built by the reader. */
  pcscContactless?: PcscContactless;
  errors: string[];
}

export interface AtrInfo {
  bytes: Uint8Array;
  ts?: number;
  convention: 'direct' | 'inverse' | 'unknown';
  t0?: number;
  /** Number of historical bytes announced by T0. */
  historicalCount: number;
  interfaceBytes: InterfaceByte[];
  /** Fi, Di, f max (MHz) from TA1 or the defaults 372, 1, 5; null when TA1 codes RFU. */
  fi: number | null;
  di: number | null;
  fMax: number | null;
  /** Extra guard time N from TC1 (default 0). */
  n: number;
  wi?: number;
  ifsc?: number;
  bwi?: number;
  cwi?: number;
  errorDetection?: 'LRC' | 'CRC';
  clockStop?: string;
  classes?: ('A' | 'B' | 'C')[];
  specificMode?: SpecificMode;
  /** Protocols offered, in order of first appearance; [0] when TD1 is absent. */
  protocols: number[];
  historicalBytes: Uint8Array;
  historical: HistoricalInfo;
  tckRequired: boolean;
  tck?: number;
  /** true/false when a TCK is there or required (false when missing), null when absent and not required. */
  tckValid: boolean | null;
  errors: string[];
  warnings: string[];
}

// ISO 7816-3 table 7 (Fi, f max) and table 8 (Di); null marks RFU.
const FI_TABLE: readonly (number | null)[] = [372, 372, 558, 744, 1116, 1488, 1860, null, null, 512, 768, 1024, 1536, 2048, null, null];
const FMAX_TABLE: readonly (number | null)[] = [4, 5, 6, 8, 12, 16, 20, null, null, 5, 7.5, 10, 15, 20, null, null];
const DI_TABLE: readonly (number | null)[] = [null, 1, 2, 4, 8, 16, 32, 64, 12, 20, null, null, null, null, null, null];
const CLOCK_STOP = ['not supported', 'state L', 'state H', 'no preference'] as const;
const CLASSES: readonly [bit: number, cls: 'A' | 'B' | 'C', volts: string][] = [[1, 'A', '5 V'], [2, 'B', '3 V'], [4, 'C', '1.8 V']];

const hex2 = (b: number) => toHex(Uint8Array.of(b & 0xFF));
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function parseAtr(atr: Uint8Array): AtrInfo {
  const bytes = Uint8Array.from(atr ?? []);
  const info: AtrInfo = {
    bytes, convention: 'unknown', historicalCount: 0, interfaceBytes: [], fi: 372, di: 1, fMax: 5, n: 0,
    protocols: [], historicalBytes: new Uint8Array(0), historical: { category: 'none', objects: [], errors: [] },
    tckRequired: false, tckValid: null, errors: [], warnings: [],
  };
  if (bytes.length === 0) {
    info.errors.push('ATR is empty: expected at least TS and T0');
    info.protocols = [0];
    return info;
  }
  if (bytes.length > 33) info.warnings.push(`ATR is ${bytes.length} bytes long; ISO 7816-3 allows at most 33`);

  info.ts = bytes[0];
  if (info.ts === 0x3B) info.convention = 'direct';
  else if (info.ts === 0x3F) info.convention = 'inverse';
  else if (info.ts === 0x03) info.errors.push('TS is 03: an inverse-convention card read as direct; the reader did not decode the ATR');
  else info.errors.push(`TS is ${hex2(info.ts)}: neither 3B (direct convention) nor 3F (inverse convention)`);

  if (bytes.length < 2) {
    info.errors.push('ATR is truncated: T0 is missing');
    info.protocols = [0];
    return info;
  }
  info.t0 = bytes[1];
  info.historicalCount = info.t0 & 0x0F;

  let pos = 2;
  let y = info.t0 >> 4;
  let i = 1;
  let protocol: number | undefined; // T of TD(i-1), governs TAi..TCi for i > 2
  const seenForProtocol = new Set<string>(); // first TA/TB/TC for T=1 only is defined
  const offered: number[] = [];
  let anyTd = false;
  let truncated = false;

  interfaces: for (;;) {
    for (const [bit, name] of [[1, 'TA'], [2, 'TB'], [4, 'TC'], [8, 'TD']] as const) {
      if (!(y & bit)) continue;
      if (pos >= bytes.length) {
        info.errors.push(`ATR is truncated: ${name}${i}, announced by ${i === 1 ? 'T0' : `TD${i - 1}`}, is missing`);
        truncated = true;
        break interfaces;
      }
      const value = bytes[pos];
      const byte: InterfaceByte = { name, index: i, value, offset: pos, meaning: '' };
      if (i > 2 && protocol !== undefined && protocol !== 15) byte.protocol = protocol;
      pos++;
      if (name === 'TD') {
        anyTd = true;
        const t = value & 0x0F;
        byte.meaning = t === 15 ? 'T=15: global interface bytes follow' : `Protocol T=${t}`;
        if (t === 15 && i === 1) info.errors.push('TD1 indicates T=15, which ISO 7816-3 forbids in TD1');
        if (t !== 15 && !offered.includes(t)) offered.push(t);
        if (t !== 15 && protocol !== undefined && protocol !== 15 && t < protocol) {
          info.warnings.push(`TD${i} indicates T=${t} after T=${protocol}: protocols should be in ascending order`);
        }
        info.interfaceBytes.push(byte);
        protocol = t;
        y = value >> 4;
        i++;
        continue interfaces;
      }
      byte.meaning = interpret(info, name, i, value, protocol, seenForProtocol);
      info.interfaceBytes.push(byte);
    }
    break;
  }
  info.protocols = anyTd && offered.length ? offered : [0];
  // §8.2.5: TCK is absent when only T=0 is indicated, present in all other cases (T=15 included).
  info.tckRequired = info.interfaceBytes.some((b) => b.name === 'TD' && (b.value & 0x0F) !== 0);

  const k = info.historicalCount;
  const histEnd = pos + k;
  if (truncated) {
    info.historicalBytes = new Uint8Array(0);
    if (info.tckRequired) info.tckValid = false;
  } else if (histEnd > bytes.length) {
    info.historicalBytes = bytes.slice(pos);
    const missing = histEnd - bytes.length;
    info.errors.push(`ATR is truncated: T0 announces ${plural(k, 'historical byte')} but only ${bytes.length - pos} follow`
      + (info.tckRequired ? ' and the TCK is missing' : '') + ` (${plural(missing + (info.tckRequired ? 1 : 0), 'byte')} missing)`);
    if (info.tckRequired) info.tckValid = false;
  } else {
    info.historicalBytes = bytes.slice(pos, histEnd);
    const rest = bytes.length - histEnd;
    if (rest === 0) {
      if (info.tckRequired) {
        info.errors.push(`TCK is missing: it is required because ${describeOffered(info)} is offered`);
        info.tckValid = false;
      }
    } else if (!info.tckRequired && rest > 1) {
      info.errors.push(`ATR is too long: ${plural(rest, 'extra byte')} after the historical bytes (${toSpacedHex(bytes.slice(histEnd))})`);
    } else {
      info.tck = bytes[histEnd];
      let x = 0;
      for (let j = 1; j < histEnd; j++) x ^= bytes[j];
      info.tckValid = x === info.tck;
      if (!info.tckValid) info.errors.push(`TCK is ${hex2(info.tck)} but the XOR of T0 to the last historical byte gives ${hex2(x)}`);
      if (!info.tckRequired) info.warnings.push('TCK is present although only T=0 is offered (ISO 7816-3 says it shall be absent)');
      if (rest > 1) info.errors.push(`ATR is too long: ${plural(rest - 1, 'extra byte')} after the TCK (${toSpacedHex(bytes.slice(histEnd + 1))})`);
    }
  }
  info.historical = decodeHistoricalBytes(info.historicalBytes);
  return info;
}

function describeOffered(info: AtrInfo): string {
  const ts = info.interfaceBytes.filter((b) => b.name === 'TD' && (b.value & 0x0F) !== 0).map((b) => `T=${b.value & 0x0F}`);
  return [...new Set(ts)].join(' and ');
}

function interpret(info: AtrInfo, name: Exclude<InterfaceByteName, 'TD'>, i: number, v: number,
  protocol: number | undefined, seen: Set<string>): string {
  if (i === 1) {
    switch (name) {
      case 'TA': {
        info.fi = FI_TABLE[v >> 4];
        info.fMax = FMAX_TABLE[v >> 4];
        info.di = DI_TABLE[v & 0x0F];
        if (info.fi === null) info.errors.push(`TA1 ${hex2(v)}: Fi index ${v >> 4} is RFU`);
        if (info.di === null) info.errors.push(`TA1 ${hex2(v)}: Di index ${v & 0x0F} is RFU`);
        const fi = info.fi ?? 'RFU';
        const di = info.di ?? 'RFU';
        let s = `Fi=${fi}, Di=${di}`;
        if (info.fi !== null && info.di !== null) {
          const etu = info.fi / info.di;
          s += `, ${+etu.toFixed(3)} cycles/ETU, ${Math.floor(4e6 / etu)} bit/s at 4 MHz, f max ${info.fMax} MHz`;
        }
        return s;
      }
      case 'TB':
        return v === 0 ? 'VPP not connected (TB1 is deprecated)' : `VPP programming: PI1=${v & 0x1F}, II=${(v >> 5) & 3} (TB1 is deprecated)`;
      case 'TC':
        info.n = v;
        return v === 255 ? 'Extra guard time N=255: minimum character guard time (12 ETU for T=0, 11 for T=1)' : `Extra guard time N=${v} ETU`;
    }
  }
  if (i === 2) {
    switch (name) {
      case 'TA': {
        info.specificMode = { protocol: v & 0x0F, canChange: !(v & 0x80), implicitParameters: !!(v & 0x10) };
        return `Specific mode, T=${v & 0x0F}, ${v & 0x80 ? 'unable' : 'able'} to change to negotiable mode, `
          + `parameters ${v & 0x10 ? 'implicit' : 'defined by the interface bytes'}`;
      }
      case 'TB':
        return `VPP programming voltage PI2=${v} (TB2 is deprecated)`;
      case 'TC':
        info.wi = v;
        if (v === 0) info.errors.push('TC2 is 00: the waiting time integer WI must not be 0');
        return `Waiting time integer WI=${v} (T=0 waiting time 960 × ${v} × Fi/f)`;
    }
  }
  if (protocol === 15) {
    switch (name) {
      case 'TA': {
        info.clockStop = CLOCK_STOP[v >> 6];
        const classes = CLASSES.filter(([bit]) => v & bit);
        info.classes = classes.map(([, c]) => c);
        const list = classes.map(([, c, volts]) => `${c} (${volts})`).join(', ') || 'none';
        return `Clock stop ${info.clockStop}; classes accepted: ${list}`;
      }
      case 'TB':
        return v === 0 ? 'SPU: contact C6 not used' : `SPU: contact C6 ${v & 0x80 ? 'proprietary use' : 'standard use'} (${hex2(v)})`;
      case 'TC':
        return `Global byte after T=15 (RFU, ${hex2(v)})`;
    }
  }
  if (protocol === 1) {
    const key = `${name}:1`;
    if (seen.has(key)) return `Further T=1 byte (RFU, ${hex2(v)})`;
    seen.add(key);
    switch (name) {
      case 'TA':
        info.ifsc = v;
        if (v === 0 || v === 0xFF) info.errors.push(`TA${i} codes IFSC ${v}: 00 and FF are RFU`);
        return `IFSC=${v} bytes`;
      case 'TB':
        info.bwi = v >> 4;
        info.cwi = v & 0x0F;
        if (info.bwi > 9) info.warnings.push(`TB${i}: BWI ${info.bwi} is RFU (0-9)`);
        return `Block waiting integer BWI=${v >> 4}, character waiting integer CWI=${v & 0x0F}`;
      case 'TC':
        info.errorDetection = v & 1 ? 'CRC' : 'LRC';
        if (v & 0xFE) info.warnings.push(`TC${i}: bits 8-2 are RFU and should be 0 (${hex2(v)})`);
        return `Error detection code: ${info.errorDetection}`;
    }
  }
  return protocol === undefined ? `RFU (${hex2(v)})` : `Specific to T=${protocol} (${hex2(v)})`;
}

// ---- Historical bytes, ISO 7816-4 §8.1.1 ----

const COMPACT_TAGS: Record<number, string> = {
  0x1: 'Country code (ISO 3166-1)',
  0x2: 'Issuer identification number (ISO 7812-1)',
  0x3: 'Card service data',
  0x4: 'Initial access data',
  0x5: "Card issuer's data",
  0x6: 'Pre-issuing data',
  0x7: 'Card capabilities',
  0x8: 'Status indicator',
  0xF: 'Application identifier',
};

// ISO 7816-4 table 13: life cycle status byte.
const LCS_TABLE: readonly [test: (v: number) => boolean, meaning: string][] = [
  [(v) => v === 0x00, 'No information given'],
  [(v) => v === 0x01, 'Creation state'],
  [(v) => v === 0x03, 'Initialisation state'],
  [(v) => v === 0x05 || v === 0x07, 'Operational state (activated)'],
  [(v) => v === 0x04 || v === 0x06, 'Operational state (deactivated)'],
  [(v) => v >= 0x0C && v <= 0x0F, 'Termination state'],
  [(v) => v >= 0x10, 'Proprietary'],
];

export function lifeCycleStatus(lcs: number): string {
  return LCS_TABLE.find(([t]) => t(lcs))?.[1] ?? 'RFU';
}

// Bit-by-bit meanings (b8 first) of ISO 7816-4 tables 84, 86, 87, 88.
const CARD_SERVICE_BITS = ['Application selection by full DF name', 'Application selection by partial DF name',
  'BER-TLV data objects in EF.DIR', 'BER-TLV data objects in EF.ATR'];
const SELECTION_BITS = ['DF selection by full DF name', 'DF selection by partial DF name', 'DF selection by path',
  'DF selection by file identifier', 'Implicit DF selection', 'Short EF identifier supported',
  'Record number supported', 'Record identifier supported'];
const EF_ACCESS = new Map([[4, 'READ BINARY'], [0, 'READ RECORD(S)'], [2, 'GET DATA']]);
const WRITE_BEHAVIOUR = ['one-time write', 'proprietary', 'write OR', 'write AND'];
const CHANNEL_ASSIGNMENT = ['no logical channel', 'by the interface device', 'by the card', 'by the interface device and the card'];

const bitsSet = (v: number, names: readonly string[]) => names.filter((_, k) => v & (0x80 >> k));

function cardServiceData(v: number): string[] {
  return [...bitsSet(v, CARD_SERVICE_BITS),
    `EF.DIR and EF.ATR access by ${EF_ACCESS.get((v >> 1) & 7) ?? 'RFU method'}`,
    v & 1 ? 'Card without MF' : 'Card with MF'];
}

function cardCapabilities(value: Uint8Array): string[] {
  const out: string[] = [];
  if (value.length >= 1) out.push(...bitsSet(value[0], SELECTION_BITS).map((s) => `Selection: ${s}`));
  if (value.length >= 2) {
    const dc = value[1];
    if (dc & 0x80) out.push('EF of TLV structure supported');
    out.push(`Write functions: ${WRITE_BEHAVIOUR[(dc >> 5) & 3]}`);
    out.push(`Value FF as first byte of BER-TLV tags: ${dc & 0x10 ? 'valid' : 'invalid'}`);
    out.push(`Data unit: ${1 << (dc & 0x0F)} quartets`);
  }
  if (value.length >= 3) {
    const cc = value[2];
    if (cc & 0x80) out.push('Command chaining supported');
    if (cc & 0x40) out.push('Extended Lc and Le fields supported');
    if (cc & 0x20) out.push('Extended length information in EF.ATR/INFO');
    out.push(`Logical channel assignment: ${CHANNEL_ASSIGNMENT[(cc >> 3) & 3]}`);
    out.push(`Maximum logical channels: ${(cc & 7) === 7 ? '8 or more' : (cc & 7) + 1}`);
  }
  return out;
}

function statusIndicator(value: Uint8Array): StatusIndicator {
  const s: StatusIndicator = {};
  if (value.length === 1 || value.length === 3) {
    s.lcs = value[0];
    s.lcsMeaning = lifeCycleStatus(value[0]);
  }
  if (value.length >= 2) {
    const sw1 = value[value.length - 2];
    const sw2 = value[value.length - 1];
    s.sw = (sw1 << 8) | sw2;
    s.swMeaning = describeStatusWord(sw1, sw2).meaning;
  }
  return s;
}

function statusLines(s: StatusIndicator): string[] {
  const out: string[] = [];
  if (s.lcs !== undefined) out.push(`LCS ${hex2(s.lcs)}: ${s.lcsMeaning}`);
  if (s.sw !== undefined) out.push(`SW ${hex2(s.sw >> 8)}${hex2(s.sw)}: ${s.swMeaning}`);
  return out;
}

function decodeCompactTlv(data: Uint8Array, base: number, h: HistoricalInfo): void {
  let p = 0;
  while (p < data.length) {
    const tag = data[p] >> 4;
    const length = data[p] & 0x0F;
    if (data[p] === 0) { p++; continue; } // padding between objects
    const available = data.length - p - 1;
    if (length > available) {
      h.errors.push(`Compact-TLV object ${hex2(data[p])} at historical byte ${base + p} declares ${plural(length, 'byte')} but ${available} remain`);
    }
    const value = data.slice(p + 1, p + 1 + length);
    const obj: CompactTlvObject = { tag, length, value, name: COMPACT_TAGS[tag] ?? `Unknown tag ${tag.toString(16).toUpperCase()}`, details: [] };
    switch (tag) {
      case 0x3: if (value.length) obj.details = cardServiceData(value[0]); break;
      case 0x7: obj.details = cardCapabilities(value); break;
      case 0x8: {
        h.statusIndicator = statusIndicator(value);
        obj.details = statusLines(h.statusIndicator);
        break;
      }
    }
    h.objects.push(obj);
    p += 1 + length;
  }
}

const PCSC_RID = 'A000000306';
// PC/SC Part 3 supplement: SS (standard) and NN (card name) of the storage card ATR.
const PCSC_STANDARDS: Record<number, string> = {
  0x01: 'ISO 14443 A, part 1', 0x02: 'ISO 14443 A, part 2', 0x03: 'ISO 14443 A, part 3',
  0x05: 'ISO 14443 B, part 1', 0x06: 'ISO 14443 B, part 2', 0x07: 'ISO 14443 B, part 3',
  0x09: 'ISO 15693, part 1', 0x0A: 'ISO 15693, part 2', 0x0B: 'ISO 15693, part 3', 0x0C: 'ISO 15693, part 4',
  0x0D: 'Contact (7816-10) I2C', 0x0E: 'Contact (7816-10) extended I2C', 0x0F: 'Contact (7816-10) 2WBP',
  0x10: 'Contact (7816-10) 3WBP', 0x11: 'FeliCa',
};
const PCSC_CARD_NAMES: Record<number, string> = {
  0x0001: 'MIFARE Classic 1K', 0x0002: 'MIFARE Classic 4K', 0x0003: 'MIFARE Ultralight',
  0x0026: 'MIFARE Mini', 0x002F: 'Jewel', 0x0030: 'Topaz NFC tag', 0x0036: 'MIFARE Plus SL1 2K',
  0x0037: 'MIFARE Plus SL1 4K', 0x0038: 'MIFARE Plus SL2 2K', 0x0039: 'MIFARE Plus SL2 4K',
  0x003A: 'MIFARE Ultralight C', 0x003B: 'FeliCa', 0x003D: 'MIFARE Ultralight EV1',
};

function decodePcscContactless(hb: Uint8Array, h: HistoricalInfo): boolean {
  // 80 4F len A0 00 00 03 06 SS NN NN 00 00 00 00: 4F here is a BER tag (AID), not compact TLV.
  if (hb.length < 11 || hb[1] !== 0x4F || toHex(hb.slice(3, 8)) !== PCSC_RID) return false;
  const len = hb[2];
  const aid = hb.slice(3, 3 + len);
  if (aid.length < len) h.errors.push(`PC/SC storage card AID declares ${len} bytes but ${aid.length} remain`);
  const standard = hb[8];
  const cardName = (hb[9] << 8) | hb[10];
  h.pcscContactless = {
    rid: PCSC_RID, standard, standardName: PCSC_STANDARDS[standard] ?? `unknown (${hex2(standard)})`,
    cardName, cardNameText: PCSC_CARD_NAMES[cardName] ?? `unknown (${hex2(cardName >> 8)}${hex2(cardName)})`,
  };
  h.objects.push({
    tag: 0x4F, length: len, value: aid, name: 'Application identifier (PC/SC Part 3 storage card)',
    details: [`RID ${PCSC_RID} (PC/SC Workgroup)`, `Standard: ${h.pcscContactless.standardName}`, `Card name: ${h.pcscContactless.cardNameText}`],
  });
  return true;
}

export function decodeHistoricalBytes(hb: Uint8Array): HistoricalInfo {
  const h: HistoricalInfo = { category: 'none', objects: [], errors: [] };
  if (hb.length === 0) return h;
  const cat = hb[0];
  h.categoryIndicator = cat;
  if (cat === 0x00) {
    h.category = 'Compact-TLV data objects followed by a mandatory status indicator';
    if (hb.length < 4) {
      h.errors.push(`Category 00 needs the 3-byte status indicator (LCS, SW1, SW2) at the end but only ${hb.length - 1} bytes follow`);
      decodeCompactTlv(hb.slice(1), 1, h);
      return h;
    }
    decodeCompactTlv(hb.slice(1, hb.length - 3), 1, h);
    h.statusIndicator = statusIndicator(hb.slice(hb.length - 3));
  } else if (cat === 0x80) {
    h.category = 'Compact-TLV data objects';
    if (!decodePcscContactless(hb, h)) decodeCompactTlv(hb.slice(1), 1, h);
  } else if (cat === 0x10) {
    h.category = 'DIR data reference';
    if (hb.length < 2) h.errors.push('Category 10 needs the DIR data reference byte but it is missing');
    else h.dirDataReference = hb[1];
  } else if (cat >= 0x81 && cat <= 0x8F) {
    h.category = 'RFU';
  } else {
    h.category = 'Proprietary';
  }
  return h;
}

// ---- Presentation ----

export function atrToJson(info: AtrInfo): Record<string, unknown> {
  const h = info.historical;
  return {
    atr: toSpacedHex(info.bytes),
    convention: info.convention,
    protocols: info.protocols,
    fi: info.fi, di: info.di, fMax: info.fMax, n: info.n,
    ...(info.wi !== undefined && { wi: info.wi }),
    ...(info.ifsc !== undefined && { ifsc: info.ifsc }),
    ...(info.bwi !== undefined && { bwi: info.bwi, cwi: info.cwi }),
    ...(info.errorDetection && { errorDetection: info.errorDetection }),
    ...(info.clockStop && { clockStop: info.clockStop, classes: info.classes }),
    ...(info.specificMode && { specificMode: info.specificMode }),
    interfaceBytes: info.interfaceBytes.map((b) => ({ name: `${b.name}${b.index}`, value: hex2(b.value), meaning: b.meaning })),
    historicalBytes: toHex(info.historicalBytes),
    historical: {
      categoryIndicator: h.categoryIndicator === undefined ? null : hex2(h.categoryIndicator),
      category: h.category,
      objects: h.objects.map((o) => ({ tag: o.tag.toString(16).toUpperCase(), name: o.name, value: toHex(o.value), details: o.details })),
      ...(h.statusIndicator && { statusIndicator: h.statusIndicator }),
      ...(h.dirDataReference !== undefined && { dirDataReference: hex2(h.dirDataReference) }),
      ...(h.pcscContactless && { pcscContactless: h.pcscContactless }),
    },
    tck: info.tck === undefined ? null : hex2(info.tck),
    tckRequired: info.tckRequired,
    tckValid: info.tckValid,
    errors: [...info.errors, ...h.errors],
    warnings: info.warnings,
  };
}

export function describeAtr(info: AtrInfo): string[] {
  const lines: string[] = [`ATR: ${toSpacedHex(info.bytes)}`];
  if (info.ts !== undefined) {
    const conv = { direct: 'direct convention', inverse: 'inverse convention', unknown: 'invalid' }[info.convention];
    lines.push(`TS = ${hex2(info.ts)}: ${conv}`);
  }
  if (info.t0 !== undefined) lines.push(`T0 = ${hex2(info.t0)}: Y1 = ${(info.t0 >> 4).toString(2).padStart(4, '0')}, K = ${info.historicalCount} historical bytes`);
  for (const b of info.interfaceBytes) lines.push(`  ${b.name}${b.index} = ${hex2(b.value)}: ${b.meaning}`);
  lines.push(`Protocols: ${info.protocols.map((t) => `T=${t}`).join(', ')}`);
  if (info.fi !== null && info.di !== null) lines.push(`Fi=${info.fi}, Di=${info.di}, f max ${info.fMax} MHz`);
  if (info.historicalBytes.length) {
    const h = info.historical;
    lines.push(`Historical bytes: ${toSpacedHex(info.historicalBytes)}`);
    lines.push(`  Category ${hex2(h.categoryIndicator ?? 0)}: ${h.category}`);
    for (const o of h.objects) {
      lines.push(`  Tag ${o.tag.toString(16).toUpperCase()}, length ${o.length}: ${o.name}${o.value.length ? ` = ${toSpacedHex(o.value)}` : ''}`);
      for (const d of o.details) lines.push(`    ${d}`);
    }
    if (h.categoryIndicator === 0x00 && h.statusIndicator) for (const l of statusLines(h.statusIndicator)) lines.push(`  Status indicator: ${l}`);
    if (h.dirDataReference !== undefined) lines.push(`  DIR data reference: ${hex2(h.dirDataReference)}`);
  }
  if (info.tck !== undefined) lines.push(`TCK = ${hex2(info.tck)} (${info.tckValid ? 'correct checksum' : 'WRONG checksum'})`);
  else if (info.tckRequired) lines.push('TCK missing');
  for (const e of [...info.errors, ...info.historical.errors]) lines.push(`Error: ${e}`);
  for (const w of info.warnings) lines.push(`Warning: ${w}`);
  return lines;
}
