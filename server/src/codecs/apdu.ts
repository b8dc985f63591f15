// Command APDUs, ISO/IEC 7816-4:2013 §5.1 (cases and length fields) and §5.4.1 (class byte),
// with instruction names from ISO 7816-4/-8/-9, GlobalPlatform Card Spec 2.3 §11,
// EMV Book 3 §6.5, NIST SP 800-73-4 and PC/SC Part 3 (CLA FF reader commands).
import { concatBytes, toHex } from '../util/hex';
import { ScError } from '../util/errors';
import { describeStatusWord, type SwInfo } from './sw';

export type ApduCase = '1' | '2S' | '3S' | '4S' | '2E' | '3E' | '4E';

export type SecureMessaging =
  | 'none'
  | 'proprietary'
  | 'header not processed'
  | 'header authenticated'
  | 'header not authenticated';

export interface ClaInfo {
  cla: number;
  kind: 'interindustry' | 'proprietary' | 'pcsc-reader' | 'rfu';
  /** Logical channel 0-19 (also for proprietary classes coded the GlobalPlatform way). */
  channel?: number;
  secureMessaging?: SecureMessaging;
  /** b5: not the last command of a chain (§5.3.3). */
  chaining: boolean;
  description: string;
}

export interface CommandApdu {
  bytes: Uint8Array;
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Case per §5.1; undefined when the length fields do not fit any case. */
  case?: ApduCase;
  extended: boolean;
  /** Nc, the number of data bytes announced by Lc. */
  lc?: number;
  data: Uint8Array;
  /** Ne, the maximum response length: 256 for short Le 00, 65536 for extended 0000. */
  le?: number;
  claInfo: ClaInfo;
  insName?: string;
  errors: string[];
}

const hex2 = (b: number) => (b & 0xFF).toString(16).toUpperCase().padStart(2, '0');
const hex4 = (w: number) => (w & 0xFFFF).toString(16).toUpperCase().padStart(4, '0');
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** "4 data bytes follow", "1 data byte follows". */
const follow = (n: number, word: string) => `${plural(n, word)} follow${n === 1 ? 's' : ''}`;

// ---- Class byte ----

const FIRST_SM: readonly SecureMessaging[] = ['none', 'proprietary', 'header not processed', 'header authenticated'];

/** §5.4.1 tables 2-3; proprietary classes 80-FE are read with the same bits, as GlobalPlatform does. */
export function decodeCla(cla: number): ClaInfo {
  cla &= 0xFF;
  if (cla === 0xFF) {
    return { cla, kind: 'pcsc-reader', chaining: false, description: 'CLA FF: invalid for cards (PPS); PC/SC Part 3 reader command' };
  }
  const proprietary = (cla & 0x80) !== 0;
  if (!proprietary && (cla & 0xE0) === 0x20) {
    return { cla, kind: 'rfu', chaining: false, description: `CLA ${hex2(cla)}: RFU class` };
  }
  const chaining = (cla & 0x10) !== 0;
  let channel: number;
  let secureMessaging: SecureMessaging;
  if ((cla & 0x40) === 0) {
    channel = cla & 0x03;
    secureMessaging = FIRST_SM[(cla >> 2) & 3];
  } else {
    channel = 4 + (cla & 0x0F);
    secureMessaging = cla & 0x20 ? 'header not authenticated' : 'none';
  }
  const parts = [proprietary ? 'proprietary' : 'interindustry', `channel ${channel}`];
  if (secureMessaging !== 'none') parts.push(`secure messaging (${secureMessaging})`);
  if (chaining) parts.push('command chaining');
  return {
    cla, kind: proprietary ? 'proprietary' : 'interindustry', channel, secureMessaging, chaining,
    description: `CLA ${hex2(cla)}: ${parts.join(', ')}`,
  };
}

// ---- Instruction names ----

const ISO_INS: Record<number, string> = {
  0x04: 'DEACTIVATE FILE', 0x0C: 'ERASE RECORD(S)', 0x0E: 'ERASE BINARY', 0x0F: 'ERASE BINARY',
  0x10: 'PERFORM SCQL OPERATION', 0x12: 'PERFORM TRANSACTION OPERATION', 0x14: 'PERFORM USER OPERATION',
  0x20: 'VERIFY', 0x21: 'VERIFY', 0x22: 'MANAGE SECURITY ENVIRONMENT', 0x24: 'CHANGE REFERENCE DATA',
  0x26: 'DISABLE VERIFICATION REQUIREMENT', 0x28: 'ENABLE VERIFICATION REQUIREMENT',
  0x2A: 'PERFORM SECURITY OPERATION', 0x2C: 'RESET RETRY COUNTER', 0x44: 'ACTIVATE FILE',
  0x46: 'GENERATE ASYMMETRIC KEY PAIR', 0x47: 'GENERATE ASYMMETRIC KEY PAIR', 0x70: 'MANAGE CHANNEL',
  0x82: 'EXTERNAL AUTHENTICATE', 0x84: 'GET CHALLENGE', 0x86: 'GENERAL AUTHENTICATE', 0x87: 'GENERAL AUTHENTICATE',
  0x88: 'INTERNAL AUTHENTICATE', 0xA0: 'SEARCH BINARY', 0xA1: 'SEARCH BINARY', 0xA2: 'SEARCH RECORD',
  0xA4: 'SELECT', 0xB0: 'READ BINARY', 0xB1: 'READ BINARY', 0xB2: 'READ RECORD(S)', 0xB3: 'READ RECORD(S)',
  0xC0: 'GET RESPONSE', 0xC2: 'ENVELOPE', 0xC3: 'ENVELOPE', 0xCA: 'GET DATA', 0xCB: 'GET DATA',
  0xD0: 'WRITE BINARY', 0xD1: 'WRITE BINARY', 0xD2: 'WRITE RECORD', 0xD6: 'UPDATE BINARY', 0xD7: 'UPDATE BINARY',
  0xDA: 'PUT DATA', 0xDB: 'PUT DATA', 0xDC: 'UPDATE RECORD', 0xDD: 'UPDATE RECORD', 0xE0: 'CREATE FILE',
  0xE2: 'APPEND RECORD', 0xE4: 'DELETE FILE', 0xE6: 'TERMINATE DF', 0xE8: 'TERMINATE EF', 0xFE: 'TERMINATE CARD USAGE',
};

/** GlobalPlatform and EMV commands use proprietary classes (80-8F, C0-CF, E0-EF). */
const PROPRIETARY_INS: Record<number, string> = {
  0x16: 'CARD BLOCK', 0x18: 'APPLICATION UNBLOCK', 0x1E: 'APPLICATION BLOCK', 0x24: 'PIN CHANGE/UNBLOCK',
  0x50: 'INITIALIZE UPDATE', 0x78: 'END R-MAC SESSION', 0x7A: 'BEGIN R-MAC SESSION',
  0x82: 'EXTERNAL AUTHENTICATE', 0xA8: 'GET PROCESSING OPTIONS', 0xAE: 'GENERATE AC',
  0xCA: 'GET DATA', 0xCB: 'GET DATA', 0xD8: 'PUT KEY', 0xE2: 'STORE DATA', 0xE4: 'DELETE',
  0xE6: 'INSTALL', 0xE8: 'LOAD', 0xF0: 'SET STATUS', 0xF2: 'GET STATUS',
};

/** PC/SC Part 3 §3.2.2 pseudo-APDUs handled by the reader. */
const READER_INS: Record<number, string> = {
  0x82: 'LOAD KEYS', 0x86: 'GENERAL AUTHENTICATE', 0x88: 'AUTHENTICATE (obsolete)', 0xB0: 'READ BINARY',
  0xC2: 'MANAGE SESSION / TRANSPARENT EXCHANGE', 0xCA: 'GET DATA', 0xD6: 'UPDATE BINARY', 0x70: 'GET READER INFO',
};

export function instructionName(cla: number, ins: number): string | undefined {
  const c = decodeCla(cla);
  if (c.kind === 'pcsc-reader') return READER_INS[ins & 0xFF] ?? ISO_INS[ins & 0xFF];
  if (c.kind === 'proprietary') return PROPRIETARY_INS[ins & 0xFF] ?? ISO_INS[ins & 0xFF];
  return ISO_INS[ins & 0xFF];
}

// What P1/P2 say for the commands where they choose a variant; keyed by instruction name.
const SELECT_P1: Record<number, string> = {
  0x00: 'by file ID', 0x01: 'child DF', 0x02: 'EF under current DF', 0x03: 'parent DF',
  0x04: 'by DF name', 0x08: 'path from MF', 0x09: 'path from current DF',
};
const INSTALL_P1: readonly [bit: number, what: string][] = [
  [0x02, 'load'], [0x04, 'install'], [0x08, 'make selectable'], [0x10, 'extradition'], [0x20, 'personalization'], [0x40, 'registry update'],
];
const GET_STATUS_P1: Record<number, string> = { 0x80: 'ISD', 0x40: 'applications', 0x20: 'load files', 0x10: 'load files and modules' };
const GENERATE_AC_P1: Record<number, string> = { 0x00: 'AAC', 0x40: 'TC', 0x80: 'ARQC', 0xC0: 'RFU' };
const PIV_KEY_REFS: Record<number, string> = {
  0x80: 'PIV Card Application PIN', 0x81: 'PIV PUK', 0x00: 'global PIN', 0x96: 'pairing code', 0x9B: 'card management key',
  0x9A: 'PIV authentication key', 0x9C: 'digital signature key', 0x9D: 'key management key', 0x9E: 'card authentication key',
};

const QUALIFIERS: Record<string, (p1: number, p2: number) => string | undefined> = {
  'SELECT': (p1) => SELECT_P1[p1],
  'INSTALL': (p1) => {
    const what = INSTALL_P1.filter(([bit]) => p1 & bit).map(([, w]) => w);
    return what.length ? `for ${what.join(' and ')}` : undefined;
  },
  'GET STATUS': (p1) => GET_STATUS_P1[p1],
  'GENERATE AC': (p1) => GENERATE_AC_P1[p1 & 0xC0],
  'MANAGE CHANNEL': (p1, p2) => (p1 === 0x00 ? 'open' : p1 === 0x80 ? `close channel ${p2}` : undefined),
  'READ RECORD(S)': (p1, p2) => ((p2 & 7) === 4 ? `record ${p1}${p2 >> 3 ? `, SFI ${p2 >> 3}` : ''}` : undefined),
  'READ BINARY': (p1, p2) => (p1 & 0x80 ? `SFI ${p1 & 0x1F}, offset ${p2}` : `offset ${((p1 << 8) | p2) & 0x7FFF}`),
  'UPDATE BINARY': (p1, p2) => (p1 & 0x80 ? `SFI ${p1 & 0x1F}, offset ${p2}` : `offset ${((p1 << 8) | p2) & 0x7FFF}`),
  'VERIFY': (_p1, p2) => PIV_KEY_REFS[p2] ?? `reference ${hex2(p2)}`,
  'CHANGE REFERENCE DATA': (_p1, p2) => PIV_KEY_REFS[p2] ?? `reference ${hex2(p2)}`,
  'RESET RETRY COUNTER': (_p1, p2) => PIV_KEY_REFS[p2] ?? `reference ${hex2(p2)}`,
  'GENERAL AUTHENTICATE': (p1, p2) => (PIV_KEY_REFS[p2] && p2 !== 0x80 && p2 !== 0x81 ? `${PIV_KEY_REFS[p2]}, algorithm ${hex2(p1)}` : undefined),
  'GET DATA': (p1, p2) => `tag ${hex2(p1)}${hex2(p2)}`,
};

// ---- What P1 and P2 mean, field by field (ISO 7816-4:2013 §11) ----

/** One parameter explained: `{ field: 'P1', value: '04', meaning: 'select by DF name' }`. */
export interface ParamMeaning {
  field: 'P1' | 'P2' | 'P1P2';
  /** Hex as written in the APDU. */
  value: string;
  meaning: string;
}

const SELECT_P1_LONG: Record<number, string> = {
  0x00: 'select by file ID (MF, DF or EF; 3F00 or no data: the MF)', 0x01: 'select a child DF by file ID',
  0x02: 'select EF under the current DF', 0x03: 'select the parent DF of the current DF',
  0x04: 'select by DF name (AID)', 0x08: 'select by path from the MF', 0x09: 'select by path from the current DF',
};
const OCCURRENCE = ['first or only occurrence', 'last occurrence', 'next occurrence', 'previous occurrence'];
const SELECT_ANSWER: Record<number, string> = { 0x00: 'return FCI', 0x04: 'return FCP', 0x08: 'return FMD', 0x0C: 'no response data' };
const RECORD_P2: Record<number, string> = {
  0: 'first occurrence of record identifier P1', 1: 'last occurrence of record identifier P1',
  2: 'next occurrence of record identifier P1', 3: 'previous occurrence of record identifier P1',
  4: 'the record numbered P1', 5: 'records from P1 to the last', 6: 'records from the last to P1',
};

/** P2 of VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, INTERNAL/EXTERNAL AUTHENTICATE (§11.5). */
function reference(p2: number, what: string): string {
  const n = p2 & 0x1F;
  if (p2 === 0) return `no ${what} reference given (known before the command)`;
  const piv = PIV_KEY_REFS[p2];
  return `${p2 & 0x80 ? 'specific' : 'global'} ${what}, number ${n}${piv ? ` (PIV: ${piv})` : ''}`;
}

const offset = (p1: number, p2: number): ParamMeaning[] => (p1 & 0x80
  ? [{ field: 'P1', value: hex2(p1), meaning: `short EF identifier ${p1 & 0x1F} (b8 set: select the EF, then read)` },
    { field: 'P2', value: hex2(p2), meaning: `offset ${p2}` }]
  : [{ field: 'P1P2', value: hex4((p1 << 8) | p2), meaning: `offset ${((p1 << 8) | p2) & 0x7FFF} in the current EF` }]);

const record = (p1: number, p2: number): ParamMeaning[] => [
  { field: 'P1', value: hex2(p1), meaning: p1 === 0 ? 'the current record' : (p2 & 7) < 4 ? `record identifier ${p1}` : `record number ${p1}` },
  { field: 'P2', value: hex2(p2), meaning: `${p2 >> 3 ? `SFI ${p2 >> 3}` : 'the current EF'}, ${RECORD_P2[p2 & 7] ?? 'RFU'}` },
];

const PARAMS: Record<string, (p1: number, p2: number, cla: number) => ParamMeaning[]> = {
  'SELECT': (p1, p2) => [
    { field: 'P1', value: hex2(p1), meaning: SELECT_P1_LONG[p1] ?? 'RFU or proprietary selection' },
    { field: 'P2', value: hex2(p2), meaning: `${OCCURRENCE[p2 & 3]}, ${SELECT_ANSWER[p2 & 0x0C]}${p2 & 0xF0 ? ' (b8-b5 proprietary)' : ''}` },
  ],
  'READ BINARY': offset, 'UPDATE BINARY': offset, 'WRITE BINARY': offset, 'ERASE BINARY': offset,
  'READ RECORD(S)': record, 'UPDATE RECORD': record, 'WRITE RECORD': record,
  'APPEND RECORD': (_p1, p2) => [{ field: 'P2', value: hex2(p2), meaning: p2 >> 3 ? `SFI ${p2 >> 3}` : 'the current EF' }],
  'VERIFY': (p1, p2) => [
    { field: 'P1', value: hex2(p1), meaning: p1 === 0xFF ? 'reset the verification status' : p1 === 0 ? 'verify (without data: ask the retry counter)' : 'RFU' },
    { field: 'P2', value: hex2(p2), meaning: reference(p2, 'reference data') },
  ],
  'CHANGE REFERENCE DATA': (p1, p2) => [
    { field: 'P1', value: hex2(p1), meaning: p1 === 0 ? 'data: old reference data, then the new' : p1 === 1 ? 'data: the new reference data only' : 'RFU' },
    { field: 'P2', value: hex2(p2), meaning: reference(p2, 'reference data') },
  ],
  'RESET RETRY COUNTER': (p1, p2) => [
    { field: 'P1', value: hex2(p1), meaning: ['data: resetting code, then new reference data', 'data: resetting code only', 'data: new reference data only', 'no data'][p1] ?? 'RFU' },
    { field: 'P2', value: hex2(p2), meaning: reference(p2, 'reference data') },
  ],
  'GET CHALLENGE': (p1) => [{ field: 'P1', value: hex2(p1), meaning: p1 === 0 ? 'no algorithm information' : `algorithm reference ${hex2(p1)}` }],
  'INTERNAL AUTHENTICATE': (p1, p2) => [
    { field: 'P1', value: hex2(p1), meaning: p1 === 0 ? 'no algorithm information (known before)' : `algorithm reference ${hex2(p1)}` },
    { field: 'P2', value: hex2(p2), meaning: reference(p2, 'key') },
  ],
  'EXTERNAL AUTHENTICATE': (p1, p2, cla) => (cla & 0x80 ? [] : [
    { field: 'P1', value: hex2(p1), meaning: p1 === 0 ? 'no algorithm information (known before)' : `algorithm reference ${hex2(p1)}` },
    { field: 'P2', value: hex2(p2), meaning: reference(p2, 'key') },
  ]),
  'GET DATA': (p1, p2) => [{ field: 'P1P2', value: hex4((p1 << 8) | p2), meaning: `data object with tag ${p1 ? hex2(p1) : ''}${hex2(p2)}` }],
  'PUT DATA': (p1, p2) => [{ field: 'P1P2', value: hex4((p1 << 8) | p2), meaning: `data object with tag ${p1 ? hex2(p1) : ''}${hex2(p2)}` }],
  'GET RESPONSE': (p1, p2) => [{ field: 'P1P2', value: hex4((p1 << 8) | p2), meaning: p1 | p2 ? 'RFU (should be 0000)' : 'none (0000)' }],
  'MANAGE CHANNEL': (p1, p2) => [
    { field: 'P1', value: hex2(p1), meaning: p1 === 0 ? 'open a logical channel' : p1 === 0x80 ? 'close a logical channel' : 'RFU' },
    { field: 'P2', value: hex2(p2), meaning: p1 === 0 && p2 === 0 ? 'the card assigns the channel number (returned in the data)' : `channel ${p2}` },
  ],
};

/** P1 and P2 explained for the everyday ISO 7816-4 commands; [] for others (and proprietary classes). */
export function explainParameters(apdu: CommandApdu): ParamMeaning[] {
  if (apdu.bytes.length < 4) return [];
  const name = apdu.insName ?? instructionName(apdu.cla, apdu.ins);
  if (!name || apdu.claInfo.kind === 'pcsc-reader') return [];
  if (apdu.claInfo.kind === 'proprietary' && PROPRIETARY_INS[apdu.ins & 0xFF]) return [];
  return PARAMS[name]?.(apdu.p1, apdu.p2, apdu.cla) ?? [];
}

// ---- Parsing ----

/** Splits a command APDU into its fields (§5.1). Never throws; length errors land in `errors`. */
export function parseCommandApdu(input: Uint8Array): CommandApdu {
  const bytes = Uint8Array.from(input ?? []);
  const n = bytes.length;
  const apdu: CommandApdu = {
    bytes, cla: bytes[0] ?? 0, ins: bytes[1] ?? 0, p1: bytes[2] ?? 0, p2: bytes[3] ?? 0,
    extended: false, data: new Uint8Array(0), claInfo: decodeCla(bytes[0] ?? 0), errors: [],
  };
  if (n < 4) {
    apdu.errors.push(`Command APDU has ${plural(n, 'byte')}: it needs at least the 4 header bytes CLA INS P1 P2`);
    return apdu;
  }
  apdu.insName = instructionName(apdu.cla, apdu.ins);
  if ((apdu.ins & 0xF0) === 0x60 || (apdu.ins & 0xF0) === 0x90) {
    apdu.errors.push(`INS ${hex2(apdu.ins)} is invalid: 6X and 9X are T=0 procedure bytes (ISO 7816-3)`);
  }
  if (apdu.claInfo.kind === 'rfu') apdu.errors.push(`${apdu.claInfo.description}`);

  if (n === 4) {
    apdu.case = '1';
    return apdu;
  }
  const b4 = bytes[4];
  if (n === 5) {
    apdu.case = '2S';
    apdu.le = b4 === 0 ? 256 : b4;
    return apdu;
  }
  if (b4 !== 0) {
    // Short Lc.
    apdu.lc = b4;
    apdu.data = bytes.slice(5, 5 + b4);
    const after = n - 5 - b4;
    if (after === 0) apdu.case = '3S';
    else if (after === 1) {
      apdu.case = '4S';
      apdu.le = bytes[n - 1] === 0 ? 256 : bytes[n - 1];
    } else if (after < 0) {
      apdu.errors.push(`Lc is ${b4} but ${follow(n - 5, 'data byte')}`);
    } else if (after === 2) {
      apdu.errors.push(`Lc is short (${b4}) but 2 bytes follow the data: short and extended length fields are mixed (a 2-byte Le needs Lc as 00 xx xx)`);
    } else {
      apdu.errors.push(`Lc is ${b4} but ${follow(n - 5, 'byte')}: at most one Le byte may follow the data`);
    }
    return apdu;
  }
  // b4 = 00 with more bytes: extended length fields.
  apdu.extended = true;
  if (n === 6) {
    apdu.errors.push('Byte 5 is 00 and one byte follows: a short Lc cannot be 00, and an extended Le needs 3 bytes (00 xx xx)');
    return apdu;
  }
  const w = (bytes[5] << 8) | bytes[6];
  if (n === 7) {
    apdu.case = '2E';
    apdu.le = w === 0 ? 65536 : w;
    return apdu;
  }
  if (w === 0) {
    apdu.errors.push('Extended Lc is 0000: an extended Lc must be 1 to 65535');
    return apdu;
  }
  apdu.lc = w;
  apdu.data = bytes.slice(7, 7 + w);
  const after = n - 7 - w;
  if (after === 0) apdu.case = '3E';
  else if (after === 2) {
    apdu.case = '4E';
    const le = (bytes[n - 2] << 8) | bytes[n - 1];
    apdu.le = le === 0 ? 65536 : le;
  } else if (after < 0) {
    apdu.errors.push(`Lc is ${w} (extended) but ${follow(n - 7, 'data byte')}`);
  } else if (after === 1) {
    apdu.errors.push(`Extended Lc (${w}) followed by a 1-byte Le: short and extended length fields are mixed (extended Le is 2 bytes)`);
  } else {
    apdu.errors.push(`Lc is ${w} (extended) but ${follow(n - 7, 'byte')}: at most a 2-byte Le may follow the data`);
  }
  return apdu;
}

/** One line such as `SELECT (by DF name) CLA 00 P1 04 P2 00 Lc 07 Le 256`. */
export function describeCommand(apdu: CommandApdu): string {
  const parts: string[] = [];
  const name = apdu.insName ?? instructionName(apdu.cla, apdu.ins);
  if (name) {
    const q = QUALIFIERS[name]?.(apdu.p1, apdu.p2);
    parts.push(q ? `${name} (${q})` : name);
  } else {
    parts.push(`INS ${hex2(apdu.ins)}`);
  }
  parts.push(`CLA ${hex2(apdu.cla)}`, `P1 ${hex2(apdu.p1)}`, `P2 ${hex2(apdu.p2)}`);
  if (apdu.lc !== undefined) parts.push(`Lc ${apdu.extended ? hex4(apdu.lc) : hex2(apdu.lc)}`);
  if (apdu.le !== undefined) parts.push(`Le ${apdu.le}`);
  const c = apdu.claInfo;
  const notes: string[] = [];
  if (c.channel) notes.push(`channel ${c.channel}`);
  if (c.secureMessaging && c.secureMessaging !== 'none') notes.push('secure messaging');
  if (c.chaining) notes.push('chained');
  if (c.kind === 'pcsc-reader') notes.push('reader command');
  let line = parts.join(' ');
  if (notes.length) line += ` [${notes.join(', ')}]`;
  if (apdu.errors.length) line += ` (invalid: ${apdu.errors.join('; ')})`;
  return line;
}

// ---- Building ----

export interface CommandFields {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  /** Ne: 1-65536, 256 and 65536 encode as 00 / 0000; omit for no Le field. */
  le?: number;
  /** Force extended length fields even when short ones would do. */
  extended?: boolean;
}

const isByte = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xFF;

/** Encodes a command APDU, short when Nc ≤ 255 and Ne ≤ 256, else extended (§5.1). */
export function buildCommandApdu(f: CommandFields): Uint8Array {
  for (const k of ['cla', 'ins', 'p1', 'p2'] as const) {
    if (!isByte(f[k])) throw new ScError('BAD_REQUEST', `${k.toUpperCase()} must be a byte (0-255), got ${f[k]}`);
  }
  const data = f.data ?? new Uint8Array(0);
  const nc = data.length;
  const ne = f.le;
  if (nc > 65535) throw new ScError('BAD_REQUEST', `Command data is ${nc} bytes; an APDU carries at most 65535 (use command chaining)`);
  if (ne !== undefined && (!Number.isInteger(ne) || ne < 1 || ne > 65536)) {
    throw new ScError('BAD_REQUEST', `Le must be 1 to 65536 (256 and 65536 mean "all available"), got ${ne}`);
  }
  const extended = f.extended || nc > 255 || (ne !== undefined && ne > 256);
  if (extended && !nc && ne === undefined) throw new ScError('BAD_REQUEST', 'Extended length fields need data or an Le');
  const lcField = !nc ? [] : extended ? [0, nc >> 8, nc & 0xFF] : [nc];
  const leField = ne === undefined ? [] : !extended ? [ne & 0xFF] : nc ? [(ne >> 8) & 0xFF, ne & 0xFF] : [0, (ne >> 8) & 0xFF, ne & 0xFF];
  return concatBytes(Uint8Array.of(f.cla, f.ins, f.p1, f.p2, ...lcField), data, Uint8Array.from(leField));
}

// ---- Responses ----

export interface ResponseApdu {
  data: Uint8Array;
  sw1: number;
  sw2: number;
  /** Meaning of SW1 SW2; undefined when the response is shorter than 2 bytes. */
  status?: SwInfo;
  errors: string[];
}

/** Splits a response APDU into data and the trailing status word (§5.1). Never throws. */
export function parseResponseApdu(input: Uint8Array): ResponseApdu {
  const bytes = Uint8Array.from(input ?? []);
  if (bytes.length < 2) {
    return { data: new Uint8Array(0), sw1: 0, sw2: 0, errors: [`Response APDU has ${plural(bytes.length, 'byte')}: it needs at least the status word SW1 SW2`] };
  }
  const sw1 = bytes[bytes.length - 2];
  const sw2 = bytes[bytes.length - 1];
  return { data: bytes.slice(0, -2), sw1, sw2, status: describeStatusWord(sw1, sw2), errors: [] };
}

/** Upper-case hex of a command, for logs. */
export function commandHex(apdu: CommandApdu): string {
  return toHex(apdu.bytes);
}

/**
 * INS of commands whose data is a PIN or a new reference value: ISO/IEC 7816-4 VERIFY, CHANGE
 * REFERENCE DATA, RESET RETRY COUNTER (even and odd INS), and ENABLE / DISABLE VERIFICATION
 * REQUIREMENT (26, 28), which carry the PIN on SIM and UICC cards (GSM 11.11 `A0 26`/`A0 28` with
 * CHV1, ETSI TS 102 221 DISABLE/ENABLE PIN).
 */
const SECRET_INS = new Set([0x20, 0x21, 0x24, 0x25, 0x26, 0x28, 0x2c, 0x2d]);

/**
 * The byte ranges of a command APDU that carry secrets, logged as `**` whoever sent it (a PC/SC
 * client, an API caller, a script line with the PIN written in it, R88): everything after the
 * header of those commands, length bytes included (an extended length and a wrong Lc of 00
 * alike). Read from the bytes alone, without trusting Lc, so a malformed command hides its tail too.
 * An ENVELOPE whose data starts with such a command hides what follows that inner header, and its
 * own length bytes, which tell the PIN's length as a VERIFY's Lc would (R91; the rest of a command
 * split over several ENVELOPEs: EnvelopeSecrets).
 */
export function secretRanges(apdu: Uint8Array): Array<[number, number]> | undefined {
  if (apdu.length <= 5) return undefined;
  const ins = apdu[1];
  if (SECRET_INS.has(ins)) return [[5, apdu.length]];
  if (!isEnvelopeIns(ins)) return undefined;
  const data = envelopeData(apdu);
  if (!data || data[1] - data[0] < 2 || !SECRET_INS.has(apdu[data[0] + 1])) return undefined;
  return wrappedSecret(apdu, data[0], data[1], 4);
}

/**
 * ENVELOPE (ISO/IEC 7816-4:1995 §7.2; C3 with BER-TLV data): its data is an APDU, part of one, or any data string
 * that could not be sent otherwise (a case 4 or extended-length command over T=0). An empty data field ends a string.
 */
const INS_ENVELOPE = 0xc2;
const INS_ENVELOPE_ODD = 0xc3;

/** Whether a command with this INS is an ENVELOPE (C2, or C3 with BER-TLV data), whose data may carry a PIN (R91). */
export function isEnvelopeIns(ins: number): boolean {
  return ins === INS_ENVELOPE || ins === INS_ENVELOPE_ODD;
}

/**
 * An ENVELOPE that carries data: (part of) a command, perhaps the rest of a VERIFY an earlier ENVELOPE began, which
 * its own bytes cannot tell (R91). For what is kept without the chain before it (Send APDU's history on disk).
 */
export function isEnvelopeWithData(apdu: Uint8Array): boolean {
  return apdu.length > 5 && isEnvelopeIns(apdu[1]) && envelopeData(apdu) !== undefined;
}

/** An ENVELOPE's data field [start, end): after a short or extended Lc, to Lc's end when it fits, else to the end. */
function envelopeData(apdu: Uint8Array): [number, number] | undefined {
  if (apdu.length <= 5) return undefined; // case 1 or 2: no data
  const extended = apdu[4] === 0 && apdu.length >= 7;
  const start = extended ? 7 : 5;
  if (start >= apdu.length) return undefined; // case 2E
  const nc = extended ? (apdu[5] << 8) | apdu[6] : apdu[4];
  return [start, nc > 0 && start + nc <= apdu.length ? start + nc : apdu.length];
}

/** The ENVELOPE's length bytes and, from `innerAt` bytes into its data on, the rest of it; undefined when nothing of the inner command's data is in it. */
function wrappedSecret(apdu: Uint8Array, start: number, end: number, innerAt: number): Array<[number, number]> | undefined {
  return start + innerAt < end ? [[4, start], [start + innerAt, apdu.length]] : undefined;
}

/**
 * The chain an ENVELOPE belongs to, from its CLA (ISO/IEC 7816-4:2013 §5.4.1): the class (interindustry, proprietary
 * 80–FE) and the logical channel (first interindustry: b2b1, 0–3; further interindustry: 4 + b4–b1; proprietary
 * classes read with the same coding, as GlobalPlatform does), secure messaging and chaining bits left out. A card
 * assembles each channel's command apart, and a (U)SIM toolkit ENVELOPE (CLA 80) is not part of an interindustry one.
 */
function chainKey(cla: number): number {
  const channel = (cla & 0x40) ? 4 + (cla & 0x0f) : cla & 0x03;
  if (cla === 0xff || (cla & 0xe0) === 0x20) return 0x200 | cla; // invalid, RFU: a chain of its own
  return (cla & 0x80 ? 0x100 : 0) | channel;
}

/** A secret command being assembled: its first bytes (up to 7, for Lc), how many came; `ins` false while only its CLA came. */
interface Assembly { head: number[]; seen: number; ins: boolean; orphan: boolean }

/** The command's length from its first bytes, undefined while they do not tell it yet. */
function assembledLength(h: number[]): number | undefined {
  return h.length < 5 ? undefined : h[4] !== 0 ? 5 + h[4] : h.length >= 7 ? 7 + ((h[5] << 8) | h[6]) : undefined;
}

/**
 * R91, R92: the secret bytes of a chain of ENVELOPEs, for one card: a VERIFY & co. (SECRET_INS) whose Lc says more
 * than its first ENVELOPE carries goes on in the next ones, whose whole data (and length bytes) is then secret; a
 * split inside the inner header is followed too. Kept per reader (the manager) and per chain (`chainKey`: class and
 * logical channel), fed in the order commands reach the card: the card appends every ENVELOPE's data to the
 * command it is assembling on that channel, whichever program or script sent it.
 *
 * `ranges` reads the state before the command is sent; `answered` feeds it once the card answered (or the transmit
 * failed), and only a part the card took counts towards closing an assembly (SW 90 00 or 61 xx; the part that
 * completes the inner command also with 62 xx / 63 xx, the inner command's warnings, a wrong PIN's 63 Cx): a part
 * refused (6D 00…), or one that never reached the card (a time-out, a Cancel, a reader gone), leaves the chain as
 * it was, so its re-send is masked whole too. A secret start opens an assembly whatever its answer (its sender's
 * next parts carry the rest of the PIN whether or not the card took the first), and an empty ENVELOPE ends its
 * chain whatever its answer (its sender means the string to end).
 *
 * The rule errs towards more masking. While any secret assembly is open on a chain, every ENVELOPE with data on it
 * is masked whole, even one that looks like a new command (also counted as a start of its own). An assembly closes
 * when the parts the card took reach its inner Lc exactly. A power-up or a new card (`cardReset`) does not close
 * it: the card forgot its half, but the user's other half is still to come and is the PIN's rest all the same; the
 * assembly is kept as an orphan, and so is one whose Lc is overshot by a part (another command's data appended in
 * the middle). An orphan counts nothing and closes only with an empty ENVELOPE on its chain (§7.2.3, the end of a
 * data string). Other commands (GET RESPONSE between) change nothing.
 */
export class EnvelopeSecrets {
  private readonly chains = new Map<number, Assembly[]>();

  /** R91's shape: the ranges, then the card's answer (default: taken). For tests and callers that feed both at once. */
  next(apdu: Uint8Array, sw = 0x9000): Array<[number, number]> | undefined {
    const r = this.ranges(apdu);
    this.answered(apdu, sw >> 8, sw & 0xff);
    return r;
  }

  /** The secret ranges of this command (an ENVELOPE's, the stateless ones included) before it is sent; undefined for any other. */
  ranges(apdu: Uint8Array): Array<[number, number]> | undefined {
    if (apdu.length < 4 || !isEnvelopeIns(apdu[1])) return undefined;
    const data = envelopeData(apdu);
    if (!data) return undefined;
    const [start, end] = data;
    let ranges: Array<[number, number]> | undefined;
    for (const a of this.chains.get(chainKey(apdu[0])) ?? []) {
      if (a.ins) return [[4, apdu.length]];
      if (SECRET_INS.has(apdu[start])) ranges = wrappedSecret(apdu, start, end, 3) ?? ranges; // only its CLA came
    }
    if (end - start >= 2 && SECRET_INS.has(apdu[start + 1])) {
      const own = wrappedSecret(apdu, start, end, 4);
      if (own) ranges = ranges ? [...ranges, ...own] : own;
    }
    return ranges;
  }

  /** The card answered this command with SW1 SW2 (undefined: it never reached the card): the parts it took are counted. */
  answered(apdu: Uint8Array, sw1?: number, sw2?: number): void {
    if (apdu.length < 4 || !isEnvelopeIns(apdu[1])) return;
    const key = chainKey(apdu[0]);
    const taken = (sw1 === 0x90 && sw2 === 0) || sw1 === 0x61;
    const data = envelopeData(apdu);
    if (!data) {
      this.chains.delete(key); // the empty ENVELOPE: its sender ends the string (§7.2.3), whatever the card said
      return;
    }
    const [start, end] = data;
    const kept: Assembly[] = [];
    for (const a of this.chains.get(key) ?? []) {
      if (!a.ins) {
        // Only its CLA came: a secret INS first makes it a secret command (whatever the answer: more, never less).
        if (!SECRET_INS.has(apdu[start])) { if (!taken) kept.push(a); continue; }
        a.ins = true;
        if (a.orphan || !taken) { kept.push(a); continue; }
      } else if (a.orphan) { kept.push(a); continue; }
      const total = assembledLength(a.head);
      const completes = total !== undefined && a.seen + end - start === total;
      if (!taken && !(completes && (sw1 === 0x62 || sw1 === 0x63))) { kept.push(a); continue; }
      feed(a, apdu, start, end);
      const length = assembledLength(a.head);
      if (length === undefined || a.seen < length) kept.push(a);
      else if (a.seen > length) { a.orphan = true; kept.push(a); } // overshot: those were not its bytes
    }
    // A start opens an assembly whatever the answer, sent or not: its sender's next parts are the PIN's rest all the same.
    if (end - start === 1 || SECRET_INS.has(apdu[start + 1])) {
      const a: Assembly = { head: [], seen: 0, ins: end - start > 1, orphan: false };
      feed(a, apdu, start, end);
      const length = assembledLength(a.head);
      if (length === undefined || a.seen < length) kept.push(a);
    }
    // Bounded: a client opening secret starts without end gets one orphan for them all (masks the chain whole).
    if (kept.length > 16) this.chains.set(key, [{ head: [], seen: 0, ins: true, orphan: true }]);
    else if (kept.length) this.chains.set(key, kept);
    else this.chains.delete(key);
  }

  /** The card was powered up or changed: it forgot what it was assembling, but the rest of a PIN may still come (R92). */
  cardReset(): void {
    for (const list of this.chains.values()) for (const a of list) a.orphan = true;
  }
}

function feed(a: Assembly, apdu: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end && a.head.length < 7; i++) a.head.push(apdu[i]);
  a.seen += end - start;
}

/** Whether the data of a command with this INS is a PIN (secretRanges' rule), for messages about a line not yet built. */
export function isSecretIns(ins: number): boolean {
  return SECRET_INS.has(ins);
}
