// BER-TLV as used by smart cards: ISO/IEC 7816-4:2013 §6.3 on top of X.690 §8.1
// (multi-byte tags, definite short and long lengths). Tag names for ISO 7816-4,
// EMV Book 3 annex A, GlobalPlatform and NIST SP 800-73-4 (PIV). Never throws.
import { toHex, toSpacedHex } from '../util/hex';

export interface TlvNode {
  tag: number;
  tagHex: string;
  name?: string;
  constructed: boolean;
  /** Offset of the first tag byte in the decoded buffer. */
  offset: number;
  /** Length of the value field. */
  length: number;
  value: Uint8Array;
  children?: TlvNode[];
}

export interface TlvResult {
  nodes: TlvNode[];
  complete: boolean;
  error?: { offset: number; message: string };
}

/** ISO 7816-4 allows tags of up to 3 bytes; 4 are read for proprietary data, more is an error. */
const MAX_TAG_BYTES = 4;
const MAX_LENGTH_BYTES = 4;
const MAX_DEPTH = 64;

// Names without context. Context-specific tags (8x, Ax) differ by template; see CONTEXT_NAMES.
const TAG_NAMES: Record<string, string> = {
  '06': 'Object identifier',
  '41': 'Country code', '42': 'Issuer identification number', '43': 'Card service data', '44': 'Initial access data',
  '45': "Card issuer's data", '46': 'Pre-issuing data', '47': 'Card capabilities', '48': 'Status information',
  '4D': 'Extended header list', '4F': 'Application identifier (AID)', '50': 'Application label', '51': 'Path',
  '52': 'Command to perform', '53': 'Discretionary data', '56': 'Track 1 data', '57': 'Track 2 equivalent data',
  '5A': 'Application PAN', '5C': 'Tag list', '5D': 'Header list', '5F20': 'Cardholder name',
  '5F24': 'Application expiration date', '5F25': 'Application effective date', '5F28': 'Issuer country code',
  '5F2A': 'Transaction currency code', '5F2D': 'Language preference', '5F2F': 'PIN usage policy',
  '5F30': 'Service code', '5F34': 'PAN sequence number', '5F36': 'Transaction currency exponent',
  '5F50': 'Issuer URL', '5F53': 'IBAN', '5F54': 'Bank identifier code (BIC)', '5F55': 'Issuer country code (alpha2)',
  '61': 'Application template', '62': 'File control parameters (FCP)', '64': 'File management data (FMD)',
  '66': 'Card data', '6F': 'File control information (FCI)', '70': 'Record template',
  '71': 'Issuer script template 1', '72': 'Issuer script template 2', '73': 'Directory discretionary template',
  '77': 'Response message template format 2', '79': 'Coexistent tag allocation authority',
  '7C': 'Dynamic authentication template', '7E': 'Discovery object', '7F21': 'Card verifiable certificate',
  '7F49': 'Public key template', '7F60': 'Biometric information template', '7F61': 'Biometric information group template',
  '7F66': 'Extended length information',
  '82': 'File descriptor', '83': 'File identifier', '84': 'DF name', '85': 'Proprietary information',
  '87': 'Application priority indicator', '88': 'Short EF identifier', '8A': 'Life cycle status',
  '8C': 'Card risk management DOL 1 (CDOL1)', '8D': 'Card risk management DOL 2 (CDOL2)', '8E': 'CVM list',
  '8F': 'Certification authority public key index', '90': 'Issuer public key certificate',
  '92': 'Issuer public key remainder', '93': 'Signed static application data', '94': 'Application file locator (AFL)',
  '95': 'Terminal verification results', '9A': 'Transaction date', '9C': 'Transaction type',
  '9F02': 'Amount, authorised', '9F03': 'Amount, other', '9F07': 'Application usage control',
  '9F08': 'Application version number', '9F0D': 'Issuer action code - default', '9F0E': 'Issuer action code - denial',
  '9F0F': 'Issuer action code - online', '9F10': 'Issuer application data', '9F11': 'Issuer code table index',
  '9F12': 'Application preferred name', '9F13': 'Last online ATC register', '9F17': 'PIN try counter',
  '9F1A': 'Terminal country code', '9F1F': 'Track 1 discretionary data', '9F26': 'Application cryptogram',
  '9F27': 'Cryptogram information data', '9F32': 'Issuer public key exponent', '9F33': 'Terminal capabilities',
  '9F34': 'CVM results', '9F35': 'Terminal type', '9F36': 'Application transaction counter (ATC)',
  '9F37': 'Unpredictable number', '9F38': 'Processing options data object list (PDOL)',
  '9F42': 'Application currency code', '9F44': 'Application currency exponent', '9F46': 'ICC public key certificate',
  '9F47': 'ICC public key exponent', '9F48': 'ICC public key remainder', '9F49': 'Dynamic data authentication DOL (DDOL)',
  '9F4A': 'Static data authentication tag list', '9F4B': 'Signed dynamic application data', '9F4C': 'ICC dynamic number',
  '9F4D': 'Log entry', '9F4F': 'Log format', '9F66': 'Terminal transaction qualifiers', '9F6E': 'Form factor indicator',
  '9F70': 'Life cycle state (GlobalPlatform)', 'A5': 'FCI proprietary template', 'AC': 'Cryptographic algorithms',
  'BF0C': 'FCI issuer discretionary data', 'C5': 'Privileges (GlobalPlatform)', 'CF': 'Key diversification data',
  'E3': 'GlobalPlatform registry entry',
  // PIV data object tags (SP 800-73-4 part 1 table 3), carried in 5C and 5F C1 xx.
  '5FC101': 'X.509 certificate for card authentication', '5FC102': 'Card holder unique identifier (CHUID)',
  '5FC103': 'Cardholder fingerprints', '5FC105': 'X.509 certificate for PIV authentication',
  '5FC106': 'Security object', '5FC107': 'Card capability container', '5FC108': 'Cardholder facial image',
  '5FC109': 'Printed information', '5FC10A': 'X.509 certificate for digital signature',
  '5FC10B': 'X.509 certificate for key management', '5FC10C': 'Key history object', '5FC121': 'Cardholder iris images',
  '5FC122': 'Secure messaging certificate signer', '5FC123': 'Pairing code reference data container',
};

const FCP_CHILDREN: Record<string, string> = {
  '80': 'Number of data bytes in the file', '81': 'File size including structural information',
  '82': 'File descriptor', '83': 'File identifier', '84': 'DF name', '85': 'Proprietary information',
  '86': 'Security attributes (proprietary)', '87': 'FCI extension file identifier', '88': 'Short EF identifier',
  '8A': 'Life cycle status', '8B': 'Security attributes (expanded reference)', '8C': 'Security attributes (compact)',
  'A5': 'Proprietary information (FCI template)', 'AB': 'Security attributes (expanded)',
};

/** Names inside a given template, keyed by the parent's tag hex ('' for the top level). */
const CONTEXT_NAMES: Record<string, Record<string, string>> = {
  '': { '80': 'Response message template format 1' },
  '62': FCP_CHILDREN,
  '64': FCP_CHILDREN,
  '6F': { ...FCP_CHILDREN, '84': 'DF name', 'A5': 'FCI proprietary template' },
  '77': { '82': 'Application interchange profile' },
  '61': { '4F': 'PIV application identifier (PIX)', '50': 'Application label', '79': 'Coexistent tag allocation authority' },
  '7E': { '4F': 'PIV application identifier' },
  '7C': { '80': 'Witness', '81': 'Challenge', '82': 'Response', '85': 'Exponentiation' },
  '7F49': { '81': 'Modulus', '82': 'Public exponent', '86': 'EC point' },
  'AC': { '80': 'Cryptographic algorithm identifier' },
  '53': { '70': 'Certificate', '71': 'Certificate info', 'FE': 'Error detection code', '30': 'FASC-N', '34': 'GUID', '35': 'Expiration date', '3E': 'Issuer asymmetric signature', 'F0': 'Card identifier', 'F1': 'Capability container version', 'C1': 'Keys with on-card certificates', 'C2': 'Keys with off-card certificates', 'BA': 'Mapping of DOs to ES', 'BB': 'Security object' },
  'E3': { '4F': 'AID', '9F70': 'Life cycle state', 'C5': 'Privileges', 'C4': 'Executable load file AID', 'CC': 'Associated security domain AID', 'CE': 'Executable load file version', '84': 'Executable module AID' },
};

export function tagName(tagHex: string, parentTagHex = ''): string | undefined {
  return CONTEXT_NAMES[parentTagHex]?.[tagHex] ?? TAG_NAMES[tagHex];
}

class TlvStop extends Error {
  constructor(readonly offset: number, message: string) { super(message); }
}

/** Decodes a sequence of BER-TLV data objects. Padding bytes 00 and FF between objects are skipped (ISO 7816-4 §6.3). */
export function decodeBerTlv(bytes: Uint8Array): TlvResult {
  const buf = Uint8Array.from(bytes ?? []);
  const nodes: TlvNode[] = [];
  try {
    decodeInto(buf, 0, buf.length, '', nodes, 0);
    return { nodes, complete: true };
  } catch (e) {
    if (e instanceof TlvStop) return { nodes, complete: false, error: { offset: e.offset, message: e.message } };
    return { nodes, complete: false, error: { offset: 0, message: `Internal decoder error: ${(e as Error).message}` } };
  }
}

function decodeInto(buf: Uint8Array, start: number, end: number, parent: string, out: TlvNode[], depth: number): void {
  if (depth > MAX_DEPTH) throw new TlvStop(start, `Constructed objects nested deeper than ${MAX_DEPTH} levels`);
  let p = start;
  while (p < end) {
    if (buf[p] === 0x00 || buf[p] === 0xFF) { p++; continue; }
    const offset = p;
    // Tag: X.690 §8.1.2; low 5 bits all 1 means subsequent bytes, each with b8 = more.
    let tagLen = 1;
    if ((buf[p] & 0x1F) === 0x1F) {
      do {
        if (offset + tagLen >= end) throw new TlvStop(offset, `Tag starting ${hex(buf, offset, end - offset)} is cut off: the data ends inside the tag`);
        tagLen++;
        if (tagLen > MAX_TAG_BYTES) throw new TlvStop(offset, `Tag ${hex(buf, offset, tagLen)}… is longer than ${MAX_TAG_BYTES} bytes`);
      } while (buf[offset + tagLen - 1] & 0x80);
    }
    const tagBytes = buf.subarray(offset, offset + tagLen);
    let tag = 0;
    for (const b of tagBytes) tag = tag * 256 + b;
    const tagHex = toHex(tagBytes);
    const constructed = (buf[offset] & 0x20) !== 0;
    p = offset + tagLen;

    // Length: X.690 §8.1.3, definite form only (ISO 7816-4 has no indefinite length).
    if (p >= end) throw new TlvStop(offset, `Tag ${tagHex} at offset ${offset} has no length byte`);
    const first = buf[p++];
    let length: number;
    if (first < 0x80) {
      length = first;
    } else if (first === 0x80) {
      throw new TlvStop(offset, `Tag ${tagHex}: indefinite length (80) is not allowed in ISO 7816-4 BER-TLV`);
    } else {
      const n = first & 0x7F;
      if (n > MAX_LENGTH_BYTES) throw new TlvStop(offset, `Tag ${tagHex}: length field of ${n} bytes (${hex2(first)}) is not supported (at most ${MAX_LENGTH_BYTES})`);
      if (p + n > end) throw new TlvStop(offset, `Tag ${tagHex}: the data ends inside its ${n + 1}-byte length field`);
      length = 0;
      for (let k = 0; k < n; k++) length = length * 256 + buf[p + k];
      p += n;
    }
    if (p + length > end) {
      throw new TlvStop(offset, `Tag ${tagHex} at offset ${offset} declares ${length} value bytes but only ${end - p} remain`);
    }
    const node: TlvNode = { tag, tagHex, constructed, offset, length, value: buf.slice(p, p + length) };
    const name = tagName(tagHex, parent);
    if (name) node.name = name;
    out.push(node);
    if (constructed) {
      node.children = [];
      decodeInto(buf, p, p + length, tagHex, node.children, depth + 1);
    }
    p += length;
  }
}

const hex2 = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
const hex = (buf: Uint8Array, at: number, n: number) => toHex(buf.subarray(at, at + n));

/** Values that are text in their specifications. */
const TEXT_TAGS = new Set(['50', '5F20', '5F2D', '5F50', '9F12']);
const printable = (v: Uint8Array) => v.length > 0 && v.every((b) => b >= 0x20 && b < 0x7F);

/** Indented lines, two spaces per level: `6F FCI (len 26)`, `  84 DF name: A0 00 …`. */
export function formatTlvTree(result: TlvResult): string[] {
  const lines: string[] = [];
  const walk = (nodes: TlvNode[], depth: number) => {
    const pad = '  '.repeat(depth);
    for (const n of nodes) {
      const label = `${pad}${n.tagHex}${n.name ? ` ${n.name}` : ''}`;
      if (n.children) {
        lines.push(`${label} (${n.length} bytes)`);
        walk(n.children, depth + 1);
      } else {
        const text = TEXT_TAGS.has(n.tagHex) && printable(n.value) ? ` "${String.fromCharCode(...n.value)}"` : '';
        lines.push(`${label}: ${n.length ? toSpacedHex(n.value) : '(empty)'}${text}`);
      }
    }
  };
  walk(result.nodes, 0);
  if (result.error) lines.push(`Decoding stopped at offset ${result.error.offset}: ${result.error.message}`);
  return lines;
}
