// Hover text for a command line: the decoded header, Lc/Le, and the data as TLV when it parses.
import { explainParameters, parseCommandApdu } from '../codecs/apdu';
import { decodeBerTlv, formatTlvTree } from '../codecs/tlv';
import type { HexPart } from '../script/ast';
import { concatBytes, toSpacedHex } from '../util/hex';

export function describeCommandLines(parts: HexPart[]): string[] {
  if (!parts.every((p) => p.kind === 'hex')) {
    const names = parts.filter((p) => p.kind !== 'hex').map((p) => (p.kind === 'pin' ? `\${pin:"${p.label}"}: asked when run, never logged` : `\${${p.name}}: filled in at run time`));
    return ['**Command APDU** with values filled in at run time', ...names.map((n) => `- ${n}`)];
  }
  const apdu = parseCommandApdu(concatBytes(...parts.map((p) => (p as { bytes: Uint8Array }).bytes)));
  const h = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
  const lines = [`**${apdu.insName ?? `INS ${h(apdu.ins)}`}**`];
  lines.push(`CLA ${h(apdu.cla)} · INS ${h(apdu.ins)} · P1 ${h(apdu.p1)} · P2 ${h(apdu.p2)}${apdu.case ? ` · case ${apdu.case}` : ''}`);
  lines.push(`CLA: ${apdu.claInfo.description}`);
  // The same explanation as the APDU Log's expanded row (decodeExchange): one decoder, both places.
  const params = explainParameters(apdu);
  if (params.length) lines.push(params.map((p) => `${p.field} ${p.value}: ${p.meaning}`).join('  \n'));
  if (apdu.lc !== undefined) lines.push(`Lc ${apdu.lc} (${apdu.lc} data byte${apdu.lc === 1 ? '' : 's'})${apdu.extended ? ', extended length' : ''}`);
  if (apdu.le !== undefined) lines.push(`Le ${apdu.le} (response bytes expected at most)`);
  if (apdu.data.length) {
    lines.push(`Data: \`${toSpacedHex(apdu.data)}\``);
    const tlv = decodeBerTlv(apdu.data);
    if (tlv.complete && tlv.nodes.length) lines.push('Data as BER-TLV:\n```\n' + formatTlvTree(tlv).join('\n') + '\n```');
  }
  for (const e of apdu.errors) lines.push(`⚠ ${e}`);
  return lines;
}
