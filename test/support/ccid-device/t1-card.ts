// The card's side of T=1 (ISO/IEC 7816-3 §11) for the simulated TPDU reader and
// the T=1 unit tests: receives blocks, chains both ways, answers S-blocks, and
// can ask for waiting time extensions or change its IFSC.

import { decodeBlock, encodeBlock, S_BLOCK, type Edc, type T1Block } from '../../../server/src/ccid/t1';
import { concatBytes } from '../../../server/src/util/hex';

export interface T1CardOptions {
  ifsc?: number;
  edc?: Edc;
  /** S(WTX request)s sent before each response. */
  wtxBeforeResponse?: number;
  /** S(IFS request) with this value before the first response. */
  changeIfscTo?: number;
}

export class T1Card {
  /** The card's receive capacity; the reader must not send longer I-blocks. */
  ifsc: number;
  /** The reader's receive capacity, set by S(IFS request). */
  ifsd = 32;
  readonly edc: Edc;
  private ns = 0;
  private nr = 0;
  private lastSent: Uint8Array | null = null;
  /** Our last block was this I-block (null when it was an R- or S-block). */
  private lastI: (T1Block & { kind: 'I' }) | null = null;
  private rx: Uint8Array[] = [];
  /** The response being sent, until the reader acknowledges its last part. */
  private tx: Uint8Array | null = null;
  private txOffset = 0;
  private wtxLeft = 0;
  private pendingIfsc: number | undefined;
  /** Blocks received, decoded, for tests. */
  readonly log: string[] = [];
  apdusProcessed = 0;

  constructor(private readonly process: (apdu: Uint8Array) => Uint8Array, private readonly options: T1CardOptions = {}) {
    this.ifsc = options.ifsc ?? 32;
    this.edc = options.edc ?? 'lrc';
    this.pendingIfsc = options.changeIfscTo;
  }

  reset(): void {
    this.ns = 0; this.nr = 0; this.lastSent = null; this.lastI = null; this.rx = []; this.tx = null;
  }

  private out(b: T1Block): Uint8Array {
    this.lastSent = encodeBlock(b, this.edc);
    this.lastI = b.kind === 'I' ? b : null;
    return this.lastSent;
  }

  private sendNextChunk(): Uint8Array {
    const tx = this.tx!;
    const len = Math.min(this.ifsd, tx.length - this.txOffset);
    return this.out({ kind: 'I', ns: this.ns, more: this.txOffset + len < tx.length, inf: tx.subarray(this.txOffset, this.txOffset + len) });
  }

  private respond(): Uint8Array {
    if (this.pendingIfsc !== undefined) {
      this.ifsc = this.pendingIfsc;
      this.pendingIfsc = undefined;
      return this.out({ kind: 'S', type: S_BLOCK.IFS, response: false, inf: Uint8Array.of(this.ifsc) });
    }
    if (this.wtxLeft > 0) {
      this.wtxLeft--;
      return this.out({ kind: 'S', type: S_BLOCK.WTX, response: false, inf: Uint8Array.of(2) });
    }
    return this.sendNextChunk();
  }

  /** One block in, one block out. */
  receive(raw: Uint8Array): Uint8Array {
    const d = decodeBlock(raw, this.edc, this.ifsc);
    if (!d.ok) {
      this.log.push(`bad block: ${d.reason}`);
      return this.out({ kind: 'R', nr: this.nr, error: d.edcError ? 1 : 2 });
    }
    const b = d.block;
    this.log.push(b.kind === 'I' ? `I(${b.ns},${b.more ? 'M' : '-'}) ${b.inf.length}` : b.kind === 'R' ? `R(${b.nr})` : `S(${b.type}${b.response ? ' resp' : ''})`);
    if (b.kind === 'S') {
      if (b.response) return this.tx ? this.respond() : this.out({ kind: 'R', nr: this.nr, error: 2 });
      switch (b.type) {
        case S_BLOCK.RESYNCH: this.reset(); return this.out({ kind: 'S', type: S_BLOCK.RESYNCH, response: true, inf: new Uint8Array(0) });
        case S_BLOCK.IFS: this.ifsd = b.inf[0]; return this.out({ kind: 'S', type: S_BLOCK.IFS, response: true, inf: b.inf });
        case S_BLOCK.ABORT: this.rx = []; this.tx = null; return this.out({ kind: 'S', type: S_BLOCK.ABORT, response: true, inf: new Uint8Array(0) });
        default: return this.out({ kind: 'R', nr: this.nr, error: 2 });
      }
    }
    if (b.kind === 'R') {
      const last = this.lastI;
      if (last && this.tx && last.more && b.nr !== last.ns) {
        // Acknowledgement of our chained I-block: send the next part.
        this.txOffset += last.inf.length;
        this.ns ^= 1;
        return this.sendNextChunk();
      }
      // Otherwise the reader missed our last block: send it again.
      return this.lastSent ?? this.out({ kind: 'R', nr: this.nr, error: 2 });
    }
    if (b.ns !== this.nr) return this.lastSent ?? this.out({ kind: 'R', nr: this.nr, error: 2 });
    if (this.tx) { this.ns ^= 1; this.tx = null; } // the reader's I-block acknowledges our last response block
    this.nr ^= 1;
    this.rx.push(b.inf);
    if (b.more) return this.out({ kind: 'R', nr: this.nr, error: 0 });
    const apdu = concatBytes(...this.rx);
    this.rx = [];
    this.apdusProcessed++;
    this.tx = this.process(apdu);
    this.txOffset = 0;
    this.wtxLeft = this.options.wtxBeforeResponse ?? 0;
    return this.respond();
  }
}
