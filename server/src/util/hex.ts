// Bytes cross process boundaries as hex strings; inside the helper they are Uint8Array.

const HEX = '0123456789ABCDEF';
const BYTE_TO_HEX: string[] = Array.from({ length: 256 }, (_, b) => HEX[b >> 4] + HEX[b & 15]);

/** Upper-case hex, no separators: `00A40400`. */
export function toHex(bytes: Uint8Array, sep = ''): string {
  // Long answers (READ BINARY…) through Node's encoder: 6x faster at 258 bytes, and one flat
  // string instead of a chain of pieces the collector copies when the log entry is kept.
  if (!sep && bytes.length >= 24) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex').toUpperCase();
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    if (sep && i) s += sep;
    s += BYTE_TO_HEX[bytes[i]];
  }
  return s;
}

const SW_HEX = new Map<number, string>();
/** At most this many status words' texts are kept (a card answering every one of the 65,536 would not grow it further). */
const SW_HEX_MAX = 1024;

/**
 * A status word as 4 upper-case hex digits (`9000`), the same string each time for the same status
 * word: the log keeps one per entry in its history, and most answers share a handful of them.
 */
export function swHex(sw1: number, sw2: number): string {
  const key = (sw1 << 8) | sw2;
  let s = SW_HEX.get(key);
  if (s === undefined) {
    s = BYTE_TO_HEX[sw1] + BYTE_TO_HEX[sw2];
    if (SW_HEX.size < SW_HEX_MAX) SW_HEX.set(key, s);
  }
  return s;
}

/** Upper-case hex with a space between bytes: `00 A4 04 00`. */
export function toSpacedHex(bytes: Uint8Array): string {
  return toHex(bytes, ' ');
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

/**
 * Parses hex with optional white space and `:` separators. Throws a HexError that
 * names the offending character's index for anything else or an odd digit count.
 */
export function fromHex(text: string): Uint8Array {
  const digits: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 58) continue;
    const n = nibble(c);
    if (n < 0) throw new HexError(`'${text[i]}' is not a hex digit`, i);
    digits.push(n);
  }
  if (digits.length % 2) throw new HexError(`odd number of hex digits (${digits.length})`, text.length);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (digits[2 * i] << 4) | digits[2 * i + 1];
  return out;
}

export function isHex(text: string): boolean {
  try { fromHex(text); return true; } catch { return false; }
}

export class HexError extends Error {
  constructor(message: string, readonly index: number) {
    super(message);
    this.name = 'HexError';
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
