// A card for the vpcd protocol, scripted and deterministic, that the reference-stack tests
// connect to pcscd's vpcd and to the workbench's vpcd driver in turn, so both sides of a
// comparison meet exactly the same card (vicc is slower, and has no 6Cxx).
import net from 'node:net';

/** The card's ATR: vicc's iso7816 one, T=1 only (so "T=0" is refused by both). */
export const ATR = Buffer.from('3B951381018073FF01000B', 'hex');
/** What SELECT leaves waiting for GET RESPONSE. */
export const FCI = Buffer.from('6F0A8408F0574244454D4F00', 'hex');
/** What READ BINARY with Le 08 returns. */
export const BINARY = Buffer.from('0102030405060708', 'hex');

/**
 * A card for the vpcd protocol (2-byte big-endian length + payload; a 1-byte payload is a
 * control: 0x04 asks the ATR, 0x00/0x01/0x02 power off/on/reset, no reply). It answers:
 * SELECT → 61 0C (the FCI waits), GET RESPONSE → the FCI (or 6C 0C with a wrong Le, 69 85
 * with nothing waiting), READ BINARY Le 08 → 8 bytes 90 00, another Le → 6C 08, else 6D 00.
 * It records every APDU it receives: who sent the GET RESPONSE shows there.
 */
export class ScriptedCard {
  readonly seen: string[] = [];
  private socket: net.Socket | null = null;
  private pending: Buffer | null = null;

  /** Inserts the card: connects to the vpcd listening on `port` (retries while refused; bounded). */
  async insert(port: number, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      try {
        this.socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ port, host: '127.0.0.1' });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the card could not reach vpcd on ${port}: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const s = this.socket;
    s.setNoDelay(true);
    s.on('error', () => { /* a reset from the reader side is a removal */ });
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const reply = msg.length === 1 ? (msg[0] === 0x04 ? ATR : null) : this.answer(msg);
        if (msg.length === 1 && msg[0] !== 0x04) this.pending = null; // power off / on / reset
        if (reply) s.write(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
      }
    });
  }

  /** Removes the card: closes the socket (bounded). */
  async remove(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (!s || s.destroyed) return;
    const closed = new Promise((r) => s.once('close', r));
    s.destroy();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  }

  private answer(apdu: Buffer): Buffer {
    this.seen.push(apdu.toString('hex').toUpperCase());
    const sw = (x: number) => Buffer.from([x >> 8, x & 0xff]);
    const [, ins] = apdu;
    const le = apdu.length === 5 ? (apdu[4] || 256) : -1;
    if (ins === 0xa4) {
      this.pending = FCI;
      return sw(0x6100 | FCI.length);
    }
    if (ins === 0xc0) {
      const p = this.pending;
      if (!p) return sw(0x6985);
      if (le !== p.length) return sw(0x6c00 | p.length);
      this.pending = null;
      return Buffer.concat([p, sw(0x9000)]);
    }
    this.pending = null;
    if (ins === 0xb0) return le === BINARY.length ? Buffer.concat([BINARY, sw(0x9000)]) : sw(0x6c00 | BINARY.length);
    return sw(0x6d00);
  }
}

