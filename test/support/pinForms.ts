// The text forms a PIN can take in anything written (for the leak tests): the digits,
// and the hex of each encoding `${pin}` supports (ASCII, BCD, ISO 9564 format-2 PIN
// block), plain and spaced, upper and lower case.
import assert from 'node:assert/strict';
import { encodePin } from '../../server/src/script/engine';

export function pinForms(pin: string): string[] {
  const out = new Set<string>([pin]);
  for (const enc of ['ascii', 'bcd', 'format2'] as const) {
    const hex = Buffer.from(encodePin(pin, enc, undefined, 0xff)).toString('hex');
    for (const h of [hex, hex.toUpperCase()]) { out.add(h); out.add(h.match(/../g)!.join(' ')); }
  }
  return [...out];
}

/** An assertion that a text holds none of the forms of these PINs (the message never shows the form). */
export function noPinAssertion(...pins: string[]): (haystack: string, where: string) => void {
  const needles = pins.flatMap(pinForms);
  return (haystack, where) => {
    for (const n of needles) assert.ok(!haystack.includes(n), `${where} holds a PIN form (${n.length} characters)`);
  };
}
