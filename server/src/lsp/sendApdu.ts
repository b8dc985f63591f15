// "Smart Card: Send APDU…": one command typed into a quick input, checked by the
// script parser (the editor's own rules), sent like a one-line script. Pure: the
// extension checks the input with it while the user types, the helper again.
import { parseScript } from '../script/parser';

/** The typed APDU as a one-line script, or what is wrong with it. */
export function checkOneApdu(text: string): { script: string } | { error: string } {
  const line = text.replace(/[\r\n]+/g, ' ').trim();
  if (!line) return { error: 'Type a command APDU in hex, e.g. 00 A4 04 00 07 A0 00 00 02 47 10 01 (optionally "=> 90 00").' };
  if (line.length > 20_000) return { error: 'The command is longer than 20,000 characters.' };
  const parsed = parseScript(line);
  const err = parsed.diagnostics.find((d) => d.severity === 'error');
  if (err) return { error: err.message };
  const [s, ...rest] = parsed.statements;
  if (!s || rest.length || s.kind !== 'apdu') return { error: 'Send APDU sends one command APDU in hex; reset, connect and the other script statements belong in a script.' };
  if (s.parts.some((p) => p.kind !== 'hex')) return { error: 'Send APDU takes the command in hex: a PIN or a variable needs a script (Smart Card: Run APDU Script).' };
  return { script: line };
}
