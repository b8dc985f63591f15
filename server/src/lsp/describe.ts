// Hover text for a command line: the decoded header, Lc/Le and data.
import type { HexPart } from '../script/ast';
import { toSpacedHex } from '../util/hex';

const h = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

export function describeCommandLines(parts: HexPart[]): string[] {
  if (!parts.every((p) => p.kind === 'hex')) {
    const names = parts.filter((p) => p.kind !== 'hex').map((p) => (p.kind === 'pin' ? `\${pin:"${p.label}"} (asked when run, never logged)` : `\${${p.name}}`));
    return ['**Command APDU** with values filled in at run time', ...names.map((n) => `- ${n}`)];
  }
  const b = new Uint8Array(parts.reduce((n, p) => n + (p as { bytes: Uint8Array }).bytes.length, 0));
  let o = 0;
  for (const p of parts as Array<{ bytes: Uint8Array }>) { b.set(p.bytes, o); o += p.bytes.length; }
  if (b.length < 4) return ['**Command APDU**: too short'];
  const lines = [`**Command APDU** CLA ${h(b[0])} · INS ${h(b[1])} · P1 ${h(b[2])} · P2 ${h(b[3])}`];
  if (b.length === 5) lines.push(`Case 2: Le ${h(b[4])} (${b[4] || 256} bytes expected)`);
  else if (b.length > 5 && b[4] !== 0) {
    const lc = b[4];
    const data = b.subarray(5, 5 + lc);
    lines.push(`Case ${b.length === 6 + lc ? 4 : 3}: Lc ${h(lc)} (${lc} bytes)${b.length === 6 + lc ? ` · Le ${h(b[b.length - 1])}` : ''}`);
    lines.push(`Data: \`${toSpacedHex(data)}\``);
  } else if (b.length === 4) lines.push('Case 1: no data, no response data');
  return lines;
}
