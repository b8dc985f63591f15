// A logged exchange decoded for the APDU Log's expanded row: command fields (ISO 7816-4 §5.1),
// response data as BER-TLV with tag names, and the status word's meaning. Log entries carry
// PIN bytes masked as `**`; those stay masked here (they are parsed as 00 and shown as `**`).
import { parseCommandApdu, describeCommand, explainParameters, parseResponseApdu } from '../codecs/apdu';
import { describeStatusWordFor } from '../codecs/sw';
import { decodeBerTlv, type TlvNode } from '../codecs/tlv';
import type { DecodedExchange, TlvView } from '../protocol';
import { ScError } from '../util/errors';
import { toHex, toSpacedHex } from '../util/hex';

/** Log hex (bytes may be `**`) → bytes, and which of them were masked. */
function logBytes(hex: string, what: string): { bytes: Uint8Array; masked: boolean[] } {
  const clean = hex.replace(/[\s:]+/g, '');
  if (clean.length % 2 || !/^(?:[0-9a-fA-F]{2}|\*\*)*$/.test(clean)) {
    throw new ScError('BAD_REQUEST', `The ${what} is not hex (two digits per byte, ** for a masked byte).`);
  }
  const n = clean.length / 2;
  const bytes = new Uint8Array(n);
  const masked = new Array<boolean>(n).fill(false);
  for (let i = 0; i < n; i++) {
    const pair = clean.slice(2 * i, 2 * i + 2);
    if (pair === '**') masked[i] = true;
    else bytes[i] = parseInt(pair, 16);
  }
  return { bytes, masked };
}

const TEXT_TAGS = new Set(['50', '5F20', '5F2D', '5F50', '9F12']);
const printable = (v: Uint8Array) => v.length > 0 && v.every((b) => b >= 0x20 && b < 0x7F);

function tlvView(nodes: TlvNode[]): TlvView[] {
  return nodes.map((n) => {
    const v: TlvView = { tag: n.tagHex, length: n.length };
    if (n.name) v.name = n.name;
    if (n.children) v.children = tlvView(n.children);
    else {
      v.value = toSpacedHex(n.value);
      if (TEXT_TAGS.has(n.tagHex) && printable(n.value)) v.text = String.fromCharCode(...n.value);
    }
    return v;
  });
}

/** One character per byte: printable ASCII as itself, any other byte as `.` (like `xxd`). */
export function asciiView(v: Uint8Array): string {
  let s = '';
  for (const b of v) s += b >= 0x20 && b < 0x7F ? String.fromCharCode(b) : '.';
  return s;
}

/** At least 4 bytes, all printable ASCII or tab/CR/LF, and mostly letters, digits and spaces. */
export function looksLikeText(v: Uint8Array): boolean {
  if (v.length < 4) return false;
  let words = 0;
  for (const b of v) {
    if (!((b >= 0x20 && b < 0x7F) || b === 0x09 || b === 0x0A || b === 0x0D)) return false;
    if ((b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A) || b === 0x20) words++;
  }
  return words / v.length >= 0.7;
}

const hex2 = (b: number) => toHex(Uint8Array.of(b & 0xFF));

export function decodeExchange(command: string, response: string): DecodedExchange {
  if (typeof command !== 'string' || typeof response !== 'string' || command.length > 200_000 || response.length > 200_000) {
    throw new ScError('BAD_REQUEST', 'decodeExchange needs the command and the response as hex strings (at most 100,000 bytes each).');
  }
  const c = logBytes(command, 'command');
  const r = logBytes(response, 'response');
  const apdu = parseCommandApdu(c.bytes);
  const dataStart = apdu.lc === undefined ? 0 : apdu.extended ? 7 : 5;
  const dataMasked = c.masked.slice(dataStart, dataStart + apdu.data.length);
  const anyMasked = dataMasked.some(Boolean);
  const out: DecodedExchange = {
    command: {
      cla: hex2(apdu.cla), claMeaning: apdu.claInfo.description, ins: hex2(apdu.ins),
      p1: hex2(apdu.p1), p2: hex2(apdu.p2), summary: describeCommand(apdu), extended: apdu.extended, errors: apdu.errors,
    },
    response: { sw: '', swMeaning: '', swCategory: 'error' },
  };
  const cmd = out.command;
  if (apdu.insName) cmd.insName = apdu.insName;
  const params = explainParameters(apdu);
  if (params.length) cmd.params = params;
  if (apdu.case) cmd.case = apdu.case;
  if (apdu.lc !== undefined) cmd.lc = apdu.lc;
  if (apdu.le !== undefined) cmd.le = apdu.le;
  if (apdu.data.length) {
    cmd.data = [...apdu.data].map((b, i) => (dataMasked[i] ? '**' : hex2(b))).join(' ');
    // Masked data is a secret, not a structure: it is never parsed as TLV.
    if (!anyMasked) {
      const tlv = decodeBerTlv(apdu.data);
      if (tlv.complete && tlv.nodes.length) cmd.dataTlv = tlvView(tlv.nodes);
    }
  }
  const rsp = parseResponseApdu(r.bytes);
  // A retry-counter query's 63 Cx is a count: the same words as the log row.
  const status = rsp.status && r.bytes.length >= 2 ? describeStatusWordFor(c.bytes, rsp.sw1, rsp.sw2) : rsp.status;
  out.response = {
    sw: status ? hex2(rsp.sw1) + hex2(rsp.sw2) : '',
    swMeaning: status?.meaning ?? rsp.errors.join('; '),
    swCategory: status?.category ?? 'error',
  };
  if (status?.retries !== undefined) out.response.retries = status.retries;
  if (status?.available !== undefined) out.response.available = status.available;
  if (status?.correctLe !== undefined) out.response.correctLe = status.correctLe;
  if (rsp.data.length) {
    out.response.data = toSpacedHex(rsp.data);
    out.response.ascii = asciiView(rsp.data);
    // Decode as TLV only what plausibly is TLV: text (READ BINARY of a text file) is said to be
    // text, quietly, not "Tag 48 declares 101 value bytes"; data that does not parse is "not TLV".
    if (looksLikeText(rsp.data)) {
      out.response.isText = true;
      out.response.tlvError = 'not TLV (text)';
    } else {
      const tlv = decodeBerTlv(rsp.data);
      if (tlv.complete && tlv.nodes.length) out.response.tlv = tlvView(tlv.nodes);
      else out.response.tlvError = 'not TLV';
    }
  }
  return out;
}
