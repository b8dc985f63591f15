// The vpcd ⇄ vicc wire format (vsmartcard's vpcd.c): every message, both ways,
// is a 2-byte big-endian length followed by that many bytes. From the reader
// side a 1-byte payload is a control code, anything longer a command APDU.

/** Control codes the reader side sends; only GET_ATR is answered. */
export const VPCD_CTRL = {
  POWER_OFF: 0x00,
  POWER_ON: 0x01,
  RESET: 0x02,
  GET_ATR: 0x04,
} as const;

/** The length field is 16 bits, so no frame body can exceed this. */
export const MAX_FRAME_BODY = 0xffff;

/** Header and body in one buffer so the frame leaves in one write (vicc reads the body with one recv). */
export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > MAX_FRAME_BODY) throw new RangeError(`vpcd frame body of ${payload.length} bytes exceeds ${MAX_FRAME_BODY}`);
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame.writeUInt16BE(payload.length, 0);
  frame.set(payload, 2);
  return frame;
}

/**
 * Reassembles frames from a byte stream. Memory stays bounded: at most one
 * header plus one body (65,537 bytes) is ever buffered.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Bytes received that do not yet form a whole frame. */
  get pending(): number {
    return this.buffered;
  }

  /** Adds bytes; returns the frames completed by them (usually zero or one). */
  push(data: Buffer): Uint8Array[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < 2) break;
      const head = this.peek(2);
      const length = (head[0] << 8) | head[1];
      if (this.buffered < 2 + length) break;
      const all = this.take(2 + length);
      frames.push(new Uint8Array(all.subarray(2)));
    }
    return frames;
  }

  /** Declared length of the frame being received, or undefined before its header is complete. */
  expectedLength(): number | undefined {
    if (this.buffered < 2) return undefined;
    const head = this.peek(2);
    return (head[0] << 8) | head[1];
  }

  reset(): void {
    this.chunks = [];
    this.buffered = 0;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
