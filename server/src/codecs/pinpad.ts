// PC/SC part 10 (v2.02.09) §2.5.2 PIN_VERIFY_STRUCTURE, for FEATURE_VERIFY_PIN_DIRECT:
// the host sends the VERIFY APDU with placeholder PIN bytes, the reader's keypad fills them in.

export type PinpadFormat = 'binary' | 'bcd' | 'ascii';
const FORMAT_BITS: Record<PinpadFormat, number> = { binary: 0, bcd: 1, ascii: 2 };

export interface PinVerify {
  /** Seconds the reader waits for the user (0 = reader default). */
  timeout: number;
  format: PinpadFormat;
  /** PIN position in the APDU data, in bytes. */
  position: number;
  minDigits: number;
  maxDigits: number;
  /** The VERIFY APDU with placeholder bytes where the PIN goes. */
  apdu: Uint8Array;
}

export function encodePinVerify(v: PinVerify): Uint8Array {
  const header = [
    v.timeout, v.timeout,
    0x80 | ((v.position & 0x0f) << 3) | FORMAT_BITS[v.format], // bmFormatString: byte units, left justified
    0x00, // bmPINBlockString: no PIN length field in the block
    0x00, // bmPINLengthFormat
    v.maxDigits, v.minDigits, // wPINMaxExtraDigit (little-endian XXYY: min XX, max YY)
    0x02, // bEntryValidationCondition: validation key pressed
    0x01, // bNumberMessage
    0x09, 0x04, // wLangId 0x0409
    0x00, // bMsgIndex
    0x00, 0x00, 0x00, // bTeoPrologue (T=1 only, reader-managed here)
    v.apdu.length & 0xff, (v.apdu.length >> 8) & 0xff, 0, 0, // ulDataLength, little-endian
  ];
  const out = new Uint8Array(header.length + v.apdu.length);
  out.set(header);
  out.set(v.apdu, header.length);
  return out;
}

export function decodePinVerify(b: Uint8Array): PinVerify | { error: string } {
  if (b.length < 19) return { error: `PIN_VERIFY_STRUCTURE has ${b.length} bytes; it needs at least 19` };
  const len = b[15] | (b[16] << 8) | (b[17] << 16) | (b[18] << 24);
  if (len !== b.length - 19) return { error: `ulDataLength is ${len} but ${b.length - 19} APDU bytes follow` };
  const fmt = b[2];
  const format = (['binary', 'bcd', 'ascii'] as const)[fmt & 0x03];
  if (!format) return { error: 'bmFormatString names an unknown PIN format' };
  if (!(fmt & 0x80)) return { error: 'only byte units for the PIN position are supported (bmFormatString bit 7)' };
  return { timeout: b[0], format, position: (fmt >> 3) & 0x0f, maxDigits: b[5], minDigits: b[6], apdu: b.slice(19) };
}
