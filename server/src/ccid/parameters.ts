// Protocol parameters for PC_to_RDR_SetParameters (CCID §6.1.7) taken from the
// ATR's interface bytes (ISO/IEC 7816-3 §8.2.3, §11.4).

export interface AtrProtocolBytes {
  inverse: boolean;
  ta1?: number;
  tc1?: number;
  /** TA2 present: the card is in specific mode. */
  ta2?: number;
  tc2?: number;
  /** First TA/TB/TC for T=1 (TA3 IFSC, TB3 BWI/CWI, TC3 EDC). */
  t1ta?: number;
  t1tb?: number;
  t1tc?: number;
  protocols: number[];
}

/** Reads the interface bytes; tolerant of a truncated ATR (takes what is there). */
export function readAtrProtocolBytes(atr: Uint8Array): AtrProtocolBytes {
  const out: AtrProtocolBytes = { inverse: atr[0] === 0x3f, protocols: [] };
  let i = 1;
  let y = (atr[i++] ?? 0) >> 4;
  let level = 1;
  let lastT = -1;
  let t1Seen = false;
  while (i <= atr.length) {
    const ta = y & 1 ? atr[i++] : undefined;
    const tb = y & 2 ? atr[i++] : undefined;
    const tc = y & 4 ? atr[i++] : undefined;
    const td = y & 8 ? atr[i++] : undefined;
    if (level === 1) { out.ta1 = ta; out.tc1 = tc; }
    if (level === 2) { out.ta2 = ta; if (lastT === 0) out.tc2 = tc; }
    if (level >= 3 && lastT === 1 && !t1Seen) { out.t1ta = ta; out.t1tb = tb; out.t1tc = tc; t1Seen = true; }
    if (td === undefined) break;
    lastT = td & 0x0f;
    if (!out.protocols.includes(lastT)) out.protocols.push(lastT);
    y = td >> 4;
    level++;
  }
  if (out.protocols.length === 0) out.protocols.push(0);
  return out;
}

/** IFSC when the ATR gives none (ISO/IEC 7816-3 §11.4.2). */
export const DEFAULT_IFSC = 32;

/**
 * The card's IFSC from the first TA(i) (i > 2) after T=1, as libccid's get_IFSC
 * reads it: 00 is RFU and keeps the default 32; FF is RFU and is taken as 254.
 * `note` says what was corrected, for the log.
 */
export function ifscFromAtr(a: AtrProtocolBytes): { ifsc: number; note?: string } {
  const ta = a.t1ta;
  if (ta === undefined) return { ifsc: DEFAULT_IFSC };
  if (ta === 0x00) return { ifsc: DEFAULT_IFSC, note: `the ATR codes IFSC 0 (RFU, ISO/IEC 7816-3 §11.4.2); using the default 32` };
  if (ta === 0xff) return { ifsc: 254, note: `the ATR codes IFSC 255 (RFU, ISO/IEC 7816-3 §11.4.2); using 254 as libccid does` };
  return { ifsc: ta };
}

/**
 * The abProtocolDataStructure for T=0 (5 bytes) or T=1 (7 bytes). `useTa1` says
 * whether the card runs at TA1's Fi/Di (reader did PPS, or card in specific
 * mode); otherwise the default 0x11.
 */
export function protocolDataStructure(protocol: 0 | 1, atr: Uint8Array, useTa1: boolean): Uint8Array {
  const a = readAtrProtocolBytes(atr);
  const fidi = useTa1 && a.ta1 !== undefined ? a.ta1 : 0x11;
  const guard = a.tc1 ?? 0;
  if (protocol === 0) {
    return Uint8Array.of(fidi, a.inverse ? 0x02 : 0x00, guard, a.tc2 ?? 0x0a, 0x00);
  }
  const crc = ((a.t1tc ?? 0) & 1) === 1;
  return Uint8Array.of(
    fidi,
    0x10 | (crc ? 0x01 : 0) | (a.inverse ? 0x02 : 0),
    guard,
    a.t1tb ?? 0x4d,
    0x00,
    ifscFromAtr(a).ifsc,
    0x00,
  );
}

// ISO/IEC 7816-3 §7.1 Table 7 (Fi) and Table 8 (Di); 0 = RFU.
const FI = [372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0];
const DI = [0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0];

/** Bit rate (bps) a TA1 value gives at a clock in kHz; 0 for RFU values. */
export function bitRate(ta1: number, clockKHz: number): number {
  const f = FI[ta1 >> 4];
  const d = DI[ta1 & 0x0f];
  return f && d ? Math.floor((clockKHz * 1000 * d) / f) : 0;
}

/** PPS request (§9.2): PPSS FF, PPS0 with PPS1 present and the protocol, PPS1 = TA1, PCK. */
export function ppsRequest(protocol: 0 | 1, ta1: number): Uint8Array {
  const pps = [0xff, 0x10 | protocol, ta1];
  return Uint8Array.of(...pps, pps.reduce((x, b) => x ^ b, 0));
}
