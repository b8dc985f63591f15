// T=1 block protocol (ISO/IEC 7816-3 §11), the interface device's side, for CCID
// readers at TPDU level: the workbench builds the blocks, the reader only carries
// them. Pure: every block goes through the injected `transceive`.

import { ScError } from '../util/errors';
import { concatBytes } from '../util/hex';

export type Edc = 'lrc' | 'crc';

// PCB (§11.3.2.2)
const PCB_I_NS = 0x40;
const PCB_I_MORE = 0x20;
const PCB_R = 0x80;
const PCB_R_NR = 0x10;
const PCB_S = 0xc0;
const S_RESPONSE = 0x20;

export const S_BLOCK = { RESYNCH: 0x00, IFS: 0x01, ABORT: 0x02, WTX: 0x03 } as const;
/** R-block error bits (§11.3.2.2). */
export const R_ERROR = { NONE: 0, EDC: 1, OTHER: 2 } as const;

export type T1Block =
  | { kind: 'I'; ns: number; more: boolean; inf: Uint8Array }
  | { kind: 'R'; nr: number; error: number }
  | { kind: 'S'; type: number; response: boolean; inf: Uint8Array };

/** XOR of all bytes (§11.4.4). */
export function lrc(bytes: Uint8Array): number {
  let x = 0;
  for (const b of bytes) x ^= b;
  return x;
}

// CRC of ISO/IEC 13239 (x^16 + x^12 + x^5 + 1, reflected, initial 0xFFFF) as
// readers and libccid compute it, sent high byte first.
const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x8408 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ b) & 0xff];
  return crc;
}

export function edcLength(edc: Edc): number {
  return edc === 'crc' ? 2 : 1;
}

export function encodeBlock(block: T1Block, edc: Edc, nad = 0): Uint8Array {
  let pcb: number;
  let inf: Uint8Array;
  switch (block.kind) {
    case 'I': pcb = (block.ns ? PCB_I_NS : 0) | (block.more ? PCB_I_MORE : 0); inf = block.inf; break;
    case 'R': pcb = PCB_R | (block.nr ? PCB_R_NR : 0) | (block.error & 3); inf = new Uint8Array(0); break;
    case 'S': pcb = PCB_S | (block.response ? S_RESPONSE : 0) | block.type; inf = block.inf; break;
  }
  const head = concatBytes(Uint8Array.of(nad, pcb, inf.length), inf);
  if (edc === 'lrc') return concatBytes(head, Uint8Array.of(lrc(head)));
  const c = crc16(head);
  return concatBytes(head, Uint8Array.of(c >> 8, c & 0xff));
}

export type BlockDecode = { ok: true; block: T1Block; nad: number } | { ok: false; reason: string; edcError: boolean };

/** Checks length, EDC and PCB; `maxInf` is the receiver's IFS. */
export function decodeBlock(raw: Uint8Array, edc: Edc, maxInf = 254): BlockDecode {
  const n = edcLength(edc);
  if (raw.length === 0) return { ok: false, reason: 'no block received', edcError: false };
  if (raw.length < 3 + n) return { ok: false, reason: `block of ${raw.length} bytes is too short`, edcError: false };
  const len = raw[2];
  if (raw.length !== 3 + len + n) return { ok: false, reason: `LEN says ${len} but the block carries ${raw.length - 3 - n} bytes`, edcError: false };
  const head = raw.subarray(0, 3 + len);
  const ok = edc === 'lrc' ? lrc(head) === raw[3 + len] : crc16(head) === ((raw[3 + len] << 8) | raw[4 + len]);
  if (!ok) return { ok: false, reason: `wrong ${edc.toUpperCase()}`, edcError: true };
  const pcb = raw[1];
  const inf = raw.slice(3, 3 + len);
  if ((pcb & 0x80) === 0) {
    if (len > maxInf || len === 0xff) return { ok: false, reason: `I-block of ${len} bytes exceeds IFS ${maxInf}`, edcError: false };
    return { ok: true, nad: raw[0], block: { kind: 'I', ns: (pcb & PCB_I_NS) ? 1 : 0, more: (pcb & PCB_I_MORE) !== 0, inf } };
  }
  if ((pcb & 0xc0) === PCB_R) {
    if (len !== 0 || (pcb & 0x2c) !== 0) return { ok: false, reason: `invalid R-block PCB 0x${pcb.toString(16)}`, edcError: false };
    return { ok: true, nad: raw[0], block: { kind: 'R', nr: (pcb & PCB_R_NR) ? 1 : 0, error: pcb & 3 } };
  }
  const type = pcb & 0x1f;
  if (type > 3) return { ok: false, reason: `invalid S-block PCB 0x${pcb.toString(16)}`, edcError: false };
  return { ok: true, nad: raw[0], block: { kind: 'S', type, response: (pcb & S_RESPONSE) !== 0, inf } };
}

/**
 * Sends one block and returns the card's answer. An empty result means no block
 * arrived (BWT expired / ICC mute). `wtx` is the waiting time multiplier the card
 * asked for with S(WTX request), 1 otherwise (CCID passes it as bBWI).
 */
export type T1Transceive = (block: Uint8Array, wtx: number) => Promise<Uint8Array>;

export interface T1Options {
  /** The card's information field size (ATR TA for T=1, default 32). */
  ifsc?: number;
  /** Our information field size, announced with S(IFS request). */
  ifsd?: number;
  edc?: Edc;
  nad?: number;
  /** Retransmissions of one block before resynchronising (§11.6.3.2: 3). */
  maxRetries?: number;
  /** S(WTX) requests accepted during one APDU before giving up. */
  maxWtx?: number;
  /** Trace of protocol events (retransmission, WTX, IFS change, resynch). */
  onEvent?: (event: string) => void;
  /** The card asked for more time (S(WTX request)) with this multiplier: the caller's deadline should move. */
  onWtx?: (multiplier: number) => void;
}

class NeedResynch extends Error {}

export class T1Protocol {
  ifsc: number;
  ifsd: number;
  readonly edc: Edc;
  /** N(S) of our next I-block and N(S) we expect from the card (§11.6.2). */
  ns = 0;
  nr = 0;
  private readonly nad: number;
  private readonly maxRetries: number;
  private readonly maxWtx: number;
  private readonly onEvent: (e: string) => void;
  private readonly onWtx?: (multiplier: number) => void;

  constructor(private readonly transceive: T1Transceive, options: T1Options = {}) {
    this.ifsc = options.ifsc ?? 32;
    // IFSC 0 would make every I-block empty and a chain endless (§11.4.2: 1–254).
    if (!Number.isInteger(this.ifsc) || this.ifsc < 1 || this.ifsc > 254) throw new ScError('BAD_REQUEST', `IFSC must be 1–254, not ${this.ifsc}`);
    this.ifsd = options.ifsd ?? 32;
    this.edc = options.edc ?? 'lrc';
    this.nad = options.nad ?? 0;
    this.maxRetries = options.maxRetries ?? 3;
    this.maxWtx = options.maxWtx ?? 200;
    this.onEvent = options.onEvent ?? (() => {});
    this.onWtx = options.onWtx;
  }

  /** After ATR: sequence numbers start at 0. */
  reset(): void {
    this.ns = 0;
    this.nr = 0;
  }

  private send(block: T1Block, wtx = 1): Promise<Uint8Array> {
    return this.transceive(encodeBlock(block, this.edc, this.nad), wtx);
  }

  /** S(IFS request) with our IFSD (§11.4.2); retried like any block. */
  async negotiateIfsd(ifsd: number): Promise<void> {
    if (ifsd < 1 || ifsd > 254) throw new ScError('BAD_REQUEST', `IFSD must be 1–254, not ${ifsd}`);
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      const r = decodeBlock(await this.send({ kind: 'S', type: S_BLOCK.IFS, response: false, inf: Uint8Array.of(ifsd) }), this.edc, this.ifsd);
      if (r.ok && r.block.kind === 'S' && r.block.type === S_BLOCK.IFS && r.block.response && r.block.inf[0] === ifsd) {
        this.ifsd = ifsd;
        this.onEvent(`IFSD set to ${ifsd}`);
        return;
      }
      this.onEvent(`S(IFS request) not answered properly (${r.ok ? r.block.kind + '-block' : r.reason}); retrying`);
    }
    throw new ScError('PROTOCOL', `the card did not accept IFSD ${ifsd} (S(IFS request) unanswered after ${this.maxRetries + 1} tries)`);
  }

  /** S(RESYNCH request) (§11.6.3.2 rule 6): resets both sequence numbers. */
  async resynch(): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = decodeBlock(await this.send({ kind: 'S', type: S_BLOCK.RESYNCH, response: false, inf: new Uint8Array(0) }), this.edc, this.ifsd);
      if (r.ok && r.block.kind === 'S' && r.block.type === S_BLOCK.RESYNCH && r.block.response) {
        this.reset();
        this.onEvent('resynchronised (S(RESYNCH response))');
        return;
      }
    }
    throw new ScError('PROTOCOL', 'the card does not answer T=1 resynchronisation: reset the card (power it off and on) and try again');
  }

  /** Sends one APDU, chaining as needed, and returns the whole response APDU. */
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.exchange(apdu);
    } catch (e) {
      if (!(e instanceof NeedResynch)) throw e;
      this.onEvent(`${e.message}; resynchronising`);
      await this.resynch();
    }
    try {
      this.onEvent('sending the command again after resynchronisation');
      return await this.exchange(apdu);
    } catch (e) {
      if (!(e instanceof NeedResynch)) throw e;
      throw new ScError('PROTOCOL', `T=1 exchange failed even after resynchronisation (${e.message}): check the card's contacts or reset it`);
    }
  }

  private async exchange(apdu: Uint8Array): Promise<Uint8Array> {
    let offset = 0;
    const nextI = (): T1Block & { kind: 'I' } => {
      const len = Math.min(this.ifsc, apdu.length - offset);
      return { kind: 'I', ns: this.ns, more: offset + len < apdu.length, inf: apdu.subarray(offset, offset + len) };
    };
    let sentI = nextI();
    let toSend: T1Block = sentI;
    let receiving = false;
    let errors = 0;
    let wtxCount = 0;
    let wtx = 1;
    const response: Uint8Array[] = [];
    const fail = (why: string, r: T1Block) => {
      if (++errors > this.maxRetries) throw new NeedResynch(`${why}, ${this.maxRetries} retransmissions did not help`);
      this.onEvent(`${why}; sending ${r.kind === 'I' ? 'the I-block again' : `R(N(R)=${this.nr})`}`);
      toSend = r;
    };
    for (;;) {
      const raw = await this.send(toSend, wtx);
      wtx = 1;
      const d = decodeBlock(raw, this.edc, this.ifsd);
      if (!d.ok) {
        fail(d.reason, { kind: 'R', nr: this.nr, error: d.edcError ? R_ERROR.EDC : R_ERROR.OTHER });
        continue;
      }
      const b = d.block;
      if (b.kind === 'I') {
        if (!receiving && sentI.more) { fail('the card sent an I-block while the command was being chained', { kind: 'R', nr: this.nr, error: R_ERROR.OTHER }); continue; }
        if (b.ns !== this.nr) { fail(`the card repeated I-block N(S)=${b.ns}`, { kind: 'R', nr: this.nr, error: R_ERROR.OTHER }); continue; }
        if (!receiving) { receiving = true; this.ns ^= 1; } // the card's I-block acknowledges our last one
        this.nr ^= 1;
        errors = 0;
        response.push(b.inf);
        if (!b.more) return concatBytes(...response);
        toSend = { kind: 'R', nr: this.nr, error: 0 };
        continue;
      }
      if (b.kind === 'R') {
        if (!receiving && b.nr !== sentI.ns && sentI.more) {
          // Acknowledgement of a chained I-block: send the next part.
          offset += sentI.inf.length;
          this.ns ^= 1;
          errors = 0;
          sentI = nextI();
          toSend = sentI;
          continue;
        }
        if (!receiving && b.nr === sentI.ns) { fail('the card asks for our I-block again', sentI); continue; }
        fail('unexpected R-block', toSend);
        continue;
      }
      // S-blocks from the card
      if (b.response) { fail(`unexpected S-block response 0x${b.type.toString(16)}`, { kind: 'R', nr: this.nr, error: R_ERROR.OTHER }); continue; }
      switch (b.type) {
        case S_BLOCK.WTX: {
          if (++wtxCount > this.maxWtx) {
            throw new ScError('TIMEOUT', `the card asked for more time ${this.maxWtx} times in one command (S(WTX)); it seems stuck: reset it`);
          }
          wtx = b.inf[0] || 1;
          this.onEvent(`card asks for waiting time extension x${wtx}`);
          this.onWtx?.(wtx);
          toSend = { kind: 'S', type: S_BLOCK.WTX, response: true, inf: b.inf };
          continue;
        }
        case S_BLOCK.IFS: {
          const ifsc = b.inf[0];
          if (b.inf.length === 1 && ifsc >= 1 && ifsc <= 254) {
            this.ifsc = ifsc;
            this.onEvent(`card sets IFSC to ${ifsc}`);
            toSend = { kind: 'S', type: S_BLOCK.IFS, response: true, inf: b.inf };
          } else fail(`invalid S(IFS request) ${b.inf.length ? ifsc : ''}`, { kind: 'R', nr: this.nr, error: R_ERROR.OTHER });
          continue;
        }
        case S_BLOCK.ABORT:
          await this.send({ kind: 'S', type: S_BLOCK.ABORT, response: true, inf: new Uint8Array(0) });
          throw new ScError('PROTOCOL', 'the card aborted the T=1 chain (S(ABORT request))');
        default:
          fail('the card sent S(RESYNCH request), which only the reader may send', { kind: 'R', nr: this.nr, error: R_ERROR.OTHER });
      }
    }
  }
}
