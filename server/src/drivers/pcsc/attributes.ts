// The reader attributes the pcsc driver asks for with SCardGetAttrib (PC/SC part 3; tags from
// pcsc-lite's reader.h), and how their bytes become ReaderFacts. Pure, so it is table-tested.
//
// What the IFD handlers behind pcscd answer (pcscd's SCardGetAttrib passes the tag to the
// handler's IFDHGetCapabilities and answers SCARD_E_UNSUPPORTED_FEATURE for IFD_ERROR_TAG):
//   libccid  VENDOR_NAME (iManufacturer), VENDOR_IFD_VERSION (bcdDevice << 16), VENDOR_IFD_SERIAL_NO
//            (iSerialNumber), MAXINPUT (dwMaxCCIDMessageLength − 10); strings only when the device has them
//   vpcd     none of these (only the ATR and pcscd's own TAG_IFD_* capabilities)
import type { ReaderFacts } from '../../protocol';

type FactKey = 'vendorName' | 'ifdType' | 'ifdVersion' | 'ifdSerial' | 'maxIfsd' | 'maxInput' | 'channelId';

export interface ReaderAttribute {
  /** The tag without its SCARD_ATTR_ prefix, as shown when it is not answered. */
  name: string;
  tag: number;
  kind: 'string' | 'dword';
  fact: FactKey;
}

/** Asked in this order, once per reader. */
export const READER_ATTRIBUTES: readonly ReaderAttribute[] = [
  { name: 'VENDOR_NAME', tag: 0x00010100, kind: 'string', fact: 'vendorName' },
  { name: 'VENDOR_IFD_TYPE', tag: 0x00010101, kind: 'string', fact: 'ifdType' },
  { name: 'VENDOR_IFD_VERSION', tag: 0x00010102, kind: 'dword', fact: 'ifdVersion' },
  { name: 'VENDOR_IFD_SERIAL_NO', tag: 0x00010103, kind: 'string', fact: 'ifdSerial' },
  { name: 'CHANNEL_ID', tag: 0x00020110, kind: 'dword', fact: 'channelId' },
  // SCARD_CLASS_PROTOCOL (3) << 16 | 0x0125 in reader.h.
  { name: 'MAX_IFSD', tag: 0x00030125, kind: 'dword', fact: 'maxIfsd' },
  { name: 'MAXINPUT', tag: 0x0007a007, kind: 'dword', fact: 'maxInput' },
];

/**
 * One attribute's bytes as a fact value: a string up to its first NUL (latin1 never fails; UTF-8
 * when valid), a DWORD little-endian from 1 to 4 bytes (libccid writes a uint32_t; some drivers
 * an 8-byte unsigned long, whose high half is 0). undefined: empty or not decodable.
 */
export function decodeAttribute(kind: ReaderAttribute['kind'], bytes: Uint8Array): string | number | undefined {
  if (!bytes.length) return undefined;
  if (kind === 'string') {
    const end = bytes.indexOf(0);
    const raw = end >= 0 ? bytes.subarray(0, end) : bytes;
    if (!raw.length) return undefined;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      return new TextDecoder('latin1').decode(raw);
    }
  }
  if (bytes.length > 8 || (bytes.length > 4 && bytes.subarray(4).some((b) => b !== 0))) return undefined;
  let v = 0;
  for (let i = Math.min(bytes.length, 4) - 1; i >= 0; i--) v = v * 256 + bytes[i];
  return v;
}

/** Puts a decoded value on the facts. */
export function setFact(facts: ReaderFacts, a: ReaderAttribute, value: string | number): void {
  if (a.kind === 'string' && typeof value === 'string') (facts as Record<FactKey, unknown>)[a.fact] = value;
  if (a.kind === 'dword' && typeof value === 'number') (facts as Record<FactKey, unknown>)[a.fact] = value;
}
