// The simulator's demo card: an ISO/IEC 7816-4 card with a small file system,
// READ BINARY, GET CHALLENGE, VERIFY with a retry counter, and GET RESPONSE.
// It comes as a T=1 card or a T=0 card. The T=0 card behaves like a real one at
// the TPDU level: outgoing data after a case-3 TPDU is announced with 61xx and
// fetched with GET RESPONSE; a wrong Le is answered with 6Cxx. The reader
// manager applies those T=0 rules, so scripts see whole responses.
//
// Documented defaults (README "Simulator"):
//   PIN: ASCII "1234" (31 32 33 34), reference 01 or 81, 3 tries.
//   AID of the demo application: F0 57 42 44 45 4D 4F ("\xF0WBDEMO").

import { fromHex } from '../../util/hex';

export type CardKind = 'T=0' | 'T=1';

export const DEMO_AID = fromHex('F0 57 42 44 45 4D 4F');
export const DEFAULT_PIN = fromHex('31 32 33 34');
export const PIN_TRIES = 3;

/** 3B 8B 81 31 FE 45 … TCK: T=1, IFSC 254, BWI 4 CWI 5, compact-TLV historical bytes with the AID. */
export const ATR_T1 = fromHex('3B 8B 81 31 FE 45 80 31 E0 F7 F0 57 42 44 45 4D 4F C0');
/** 3B 6B 00 00 …: T=0 only (no TD1), same historical bytes, no TCK. */
export const ATR_T0 = fromHex('3B 6B 00 00 80 31 E0 F7 F0 57 42 44 45 4D 4F');

const HELLO = new TextEncoder().encode('Hello from the Smart Card Workbench simulator!');
const SECRET = new TextEncoder().encode('Top secret: only readable after VERIFY.');

interface EfNode { kind: 'ef'; fid: number; content: Uint8Array; needsPin?: boolean }
interface DfNode { kind: 'df'; fid: number; aid?: Uint8Array; children: Array<EfNode | DfNode>; parent?: DfNode }
type FsNode = EfNode | DfNode;

function buildFileSystem(): DfNode {
  const big = new Uint8Array(512);
  for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
  const app: DfNode = {
    kind: 'df', fid: 0x5000, aid: DEMO_AID, children: [
      { kind: 'ef', fid: 0x5001, content: HELLO },
      { kind: 'ef', fid: 0x5002, content: big },
      { kind: 'ef', fid: 0x5003, content: SECRET, needsPin: true },
    ],
  };
  const mf: DfNode = {
    kind: 'df', fid: 0x3f00, children: [
      // EF.DIR: one application template with the AID and a label.
      { kind: 'ef', fid: 0x2f00, content: fromHex('61 0F 4F 07 F0 57 42 44 45 4D 4F 50 04 44 45 4D 4F') },
      { kind: 'ef', fid: 0x2fe2, content: fromHex('98 44 00 01 23 45 67 89 01 2F') },
      app,
    ],
  };
  app.parent = mf;
  return mf;
}

// Instructions whose data goes to the card (T=0 "incoming"); the others read data.
const INCOMING = new Set([0xa4, 0x20, 0x24, 0x2c, 0xd6, 0xda, 0x22, 0x2a, 0x88, 0xe2]);

const SW = {
  OK: 0x9000,
  END_OF_FILE: 0x6282,
  WRONG_LENGTH: 0x6700,
  SECURITY: 0x6982,
  BLOCKED: 0x6983,
  CONDITIONS: 0x6985,
  NO_EF: 0x6986,
  WRONG_DATA: 0x6a80,
  NOT_FOUND: 0x6a82,
  WRONG_P1P2: 0x6a86,
  REF_NOT_FOUND: 0x6a88,
  OFFSET: 0x6b00,
  INS: 0x6d00,
  CLA: 0x6e00,
} as const;

interface Apdu { cla: number; ins: number; p1: number; p2: number; data: Uint8Array; le: number | null }

export class SimulatedCard {
  readonly atr: Uint8Array;
  readonly protocol: 0 | 1;
  private readonly mf = buildFileSystem();
  private currentDf: DfNode = this.mf;
  private currentEf: EfNode | null = null;
  private pinTriesLeft = PIN_TRIES;
  private pinVerified = false;
  /** Outgoing data waiting for GET RESPONSE. */
  private pending: Uint8Array | null = null;
  /** Commands processed since power-up, for tests that check ordering from the card's side. */
  readonly history: Uint8Array[] = [];
  historyLimit = 0;

  constructor(readonly kind: CardKind = 'T=1', readonly pin: Uint8Array = DEFAULT_PIN) {
    this.protocol = kind === 'T=0' ? 0 : 1;
    this.atr = kind === 'T=0' ? ATR_T0 : ATR_T1;
  }

  /** Cold or warm reset: volatile state goes, the retry counter stays. */
  reset(): Uint8Array {
    this.currentDf = this.mf;
    this.currentEf = null;
    this.pinVerified = false;
    this.pending = null;
    return this.atr;
  }

  get triesLeft(): number { return this.pinTriesLeft; }

  /** T=1: a whole command APDU. T=0: a TPDU (CLA INS P1 P2 P3 [data]). Returns data + SW1 SW2. */
  process(command: Uint8Array): Uint8Array {
    if (this.historyLimit > 0) {
      if (this.history.length >= this.historyLimit) this.history.shift();
      this.history.push(command.slice());
    }
    if (command.length < 4) return sw(SW.WRONG_LENGTH);
    return this.protocol === 0 ? this.processTpdu(command) : this.processApdu(command);
  }

  private processApdu(cmd: Uint8Array): Uint8Array {
    const apdu = parseShortApdu(cmd);
    if (!apdu) return sw(SW.WRONG_LENGTH);
    if (apdu.ins === 0xc0) return this.getResponse(apdu.le ?? 256, false);
    this.pending = null;
    const [data, status] = this.execute(apdu);
    if (status !== SW.OK || data.length === 0) return withSw(data, status);
    // No Le (case 3): like most T=1 cards, answer with the data anyway.
    if (apdu.le === null) return withSw(data, status);
    const le = apdu.le;
    if (data.length > le) {
      // More than asked: give Le bytes and announce the rest.
      this.pending = data.subarray(le);
      return withSw(data.subarray(0, le), 0x6100 | (this.pending.length >= 256 ? 0 : this.pending.length));
    }
    return withSw(data, status);
  }

  private processTpdu(cmd: Uint8Array): Uint8Array {
    const [cla, ins, p1, p2] = cmd;
    const p3 = cmd.length > 4 ? cmd[4] : 0;
    if (ins === 0xc0) return this.getResponse(p3 === 0 ? 256 : p3, true);
    this.pending = null;
    if (INCOMING.has(ins)) {
      const data = cmd.subarray(5, 5 + p3);
      if (data.length !== p3) return sw(SW.WRONG_LENGTH);
      const [out, status] = this.execute({ cla, ins, p1, p2, data, le: null });
      if (status === SW.OK && out.length) {
        this.pending = out;
        return sw(0x6100 | (out.length >= 256 ? 0 : out.length));
      }
      return sw(status);
    }
    // Outgoing: P3 is Le (00 = 256). A wrong Le is answered with 6Cxx, as T=0 cards do.
    const le = p3 === 0 ? 256 : p3;
    const [out, status] = this.execute({ cla, ins, p1, p2, data: new Uint8Array(0), le });
    if ((status === SW.OK || status === SW.END_OF_FILE) && out.length !== le && out.length > 0) {
      return sw(0x6c00 | (out.length & 0xff));
    }
    return withSw(out, status);
  }

  private getResponse(le: number, t0: boolean): Uint8Array {
    const pending = this.pending;
    if (!pending) return sw(SW.CONDITIONS);
    if (t0 && le > pending.length) return sw(0x6c00 | (pending.length & 0xff));
    const out = pending.subarray(0, le);
    const rest = pending.subarray(out.length);
    this.pending = rest.length ? rest : null;
    return withSw(out, rest.length ? 0x6100 | (rest.length >= 256 ? 0 : rest.length) : SW.OK);
  }

  private execute(a: Apdu): [Uint8Array, number] {
    if ((a.cla & 0x80) !== 0 || a.cla === 0xff) return [EMPTY, SW.CLA];
    switch (a.ins) {
      case 0xa4: return this.select(a);
      case 0xb0: return this.readBinary(a);
      case 0x84: return this.getChallenge(a);
      case 0x20: return this.verify(a);
      default: return [EMPTY, SW.INS];
    }
  }

  private select(a: Apdu): [Uint8Array, number] {
    let node: FsNode | undefined;
    switch (a.p1) {
      case 0x00: { // by file identifier: MF, or a child of the current DF, or the current DF's parent
        if (a.data.length === 0) { node = this.mf; break; }
        if (a.data.length !== 2) return [EMPTY, SW.WRONG_DATA];
        const fid = (a.data[0] << 8) | a.data[1];
        node = fid === 0x3f00 ? this.mf : this.currentDf.children.find((c) => c.fid === fid)
          ?? (this.currentDf.parent?.fid === fid ? this.currentDf.parent : undefined);
        break;
      }
      case 0x02: { // EF under the current DF
        if (a.data.length !== 2) return [EMPTY, SW.WRONG_DATA];
        const fid = (a.data[0] << 8) | a.data[1];
        node = this.currentDf.children.find((c) => c.kind === 'ef' && c.fid === fid);
        break;
      }
      case 0x04: { // by DF name (AID), prefix match as ISO 7816-4 allows
        if (a.data.length === 0) { node = this.mf; break; }
        node = findByAid(this.mf, a.data);
        break;
      }
      case 0x08: { // path from the MF
        if (a.data.length === 0 || a.data.length % 2) return [EMPTY, SW.WRONG_DATA];
        let dir: DfNode = this.mf;
        for (let i = 0; i < a.data.length; i += 2) {
          const fid = (a.data[i] << 8) | a.data[i + 1];
          const child: FsNode | undefined = dir.children.find((c) => c.fid === fid);
          if (!child) { node = undefined; break; }
          node = child;
          if (child.kind === 'df') dir = child;
          else if (i + 2 < a.data.length) { node = undefined; break; }
        }
        break;
      }
      default:
        return [EMPTY, SW.WRONG_P1P2];
    }
    if (!node) return [EMPTY, SW.NOT_FOUND];
    if (node.kind === 'df') { this.currentDf = node; this.currentEf = null; }
    else this.currentEf = node;
    switch (a.p2 & 0x0c) {
      case 0x0c: return [EMPTY, SW.OK];
      case 0x04: return [controlParameters(0x62, node), SW.OK];
      default: return [controlParameters(0x6f, node), SW.OK];
    }
  }

  private readBinary(a: Apdu): [Uint8Array, number] {
    let ef = this.currentEf;
    let offset = (a.p1 << 8) | a.p2;
    if (a.p1 & 0x80) { // short EF identifier in P1 bits 5-1, offset in P2
      const sfi = a.p1 & 0x1f;
      ef = this.currentDf.children.find((c): c is EfNode => c.kind === 'ef' && (c.fid & 0x1f) === sfi) ?? null;
      if (!ef) return [EMPTY, SW.NOT_FOUND];
      offset = a.p2;
    }
    if (!ef) return [EMPTY, SW.NO_EF];
    if (ef.needsPin && !this.pinVerified) return [EMPTY, SW.SECURITY];
    if (offset >= ef.content.length) return [EMPTY, SW.OFFSET];
    const le = a.le ?? 256;
    const out = ef.content.subarray(offset, offset + le);
    return [out, out.length < le && this.protocol === 1 ? SW.END_OF_FILE : SW.OK];
  }

  private getChallenge(a: Apdu): [Uint8Array, number] {
    if (a.p1 !== 0 || a.p2 !== 0) return [EMPTY, SW.WRONG_P1P2];
    const le = a.le ?? 0;
    // This card makes 8-byte challenges (or asked lengths up to 32 on T=1).
    const n = this.protocol === 1 && le > 0 && le <= 32 ? le : 8;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(Math.random() * 256);
    return [out, SW.OK];
  }

  private verify(a: Apdu): [Uint8Array, number] {
    if (a.p1 !== 0x00) return [EMPTY, SW.WRONG_P1P2];
    if (a.p2 !== 0x01 && a.p2 !== 0x81) return [EMPTY, SW.REF_NOT_FOUND];
    if (a.data.length === 0) { // retry counter query
      if (this.pinVerified) return [EMPTY, SW.OK];
      return [EMPTY, this.pinTriesLeft === 0 ? SW.BLOCKED : 0x63c0 | this.pinTriesLeft];
    }
    if (this.pinTriesLeft === 0) return [EMPTY, SW.BLOCKED];
    if (equal(a.data, this.pin)) {
      this.pinTriesLeft = PIN_TRIES;
      this.pinVerified = true;
      return [EMPTY, SW.OK];
    }
    this.pinTriesLeft--;
    this.pinVerified = false;
    return [EMPTY, this.pinTriesLeft === 0 ? SW.BLOCKED : 0x63c0 | this.pinTriesLeft];
  }
}

const EMPTY = new Uint8Array(0);

function sw(status: number): Uint8Array {
  return new Uint8Array([status >> 8, status & 0xff]);
}

function withSw(data: Uint8Array, status: number): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out[data.length] = status >> 8;
  out[data.length + 1] = status & 0xff;
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function findByAid(df: DfNode, aid: Uint8Array): DfNode | undefined {
  for (const c of df.children) {
    if (c.kind !== 'df') continue;
    if (c.aid && aid.length <= c.aid.length && equal(c.aid.subarray(0, aid.length), aid)) return c;
    const deeper = findByAid(c, aid);
    if (deeper) return deeper;
  }
  return undefined;
}

/** FCI (6F) or FCP (62) template for a file (ISO 7816-4 §7.4). */
function controlParameters(tag: number, node: FsNode): Uint8Array {
  const parts: number[] = [];
  if (node.kind === 'ef') {
    parts.push(0x80, 0x02, node.content.length >> 8, node.content.length & 0xff);
    parts.push(0x82, 0x01, 0x01); // working EF, transparent
  } else {
    parts.push(0x82, 0x01, 0x38); // DF
  }
  parts.push(0x83, 0x02, node.fid >> 8, node.fid & 0xff);
  if (node.kind === 'df' && node.aid) parts.push(0x84, node.aid.length, ...node.aid);
  return new Uint8Array([tag, parts.length, ...parts]);
}

/** Short APDU cases 1-4 (the demo card knows no extended length). */
function parseShortApdu(b: Uint8Array): Apdu | null {
  const [cla, ins, p1, p2] = b;
  if (b.length === 4) return { cla, ins, p1, p2, data: EMPTY, le: null };
  if (b.length === 5) return { cla, ins, p1, p2, data: EMPTY, le: b[4] === 0 ? 256 : b[4] };
  const lc = b[4];
  if (lc === 0) return null;
  if (b.length === 5 + lc) return { cla, ins, p1, p2, data: b.subarray(5, 5 + lc), le: null };
  if (b.length === 6 + lc) return { cla, ins, p1, p2, data: b.subarray(5, 5 + lc), le: b[5 + lc] === 0 ? 256 : b[5 + lc] };
  return null;
}
