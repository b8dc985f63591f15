// The T=0 rules of the manager (ISO/IEC 7816-3 §12.2, 7816-4 §5.1, §5.4.1): pure
// functions over bytes, table-tested. An APDU becomes a TPDU (case 1 gets
// P3 = 00, case 4 loses its Le), `61xx` asks for GET RESPONSE and `6Cxx` for the
// same case-2 command again with Le = SW2; a GET RESPONSE goes to the logical
// channel of the command it completes.

import { ScError } from '../util/errors';
import type { ExchangeEntry } from '../protocol';

/** The command to send over T=0 for a short APDU; extended length needs ENVELOPE and is refused. */
export function toT0Tpdu(apdu: Uint8Array): Uint8Array {
  if (apdu.length >= 7 && apdu[4] === 0) {
    throw new ScError('NOT_SUPPORTED', 'Extended-length APDUs cannot be sent over T=0 (they need ENVELOPE); use a T=1 card or reader.');
  }
  if (apdu.length === 4) {
    const tpdu = new Uint8Array(5); // case 1: P3 = 00
    tpdu.set(apdu);
    return tpdu;
  }
  if (apdu.length > 5 && apdu.length === 6 + apdu[4]) return apdu.subarray(0, apdu.length - 1); // case 4 → case 3
  return apdu;
}

/**
 * CLA of the GET RESPONSE completing a command sent with `cla`: the same logical
 * channel, without secure messaging or chaining. First interindustry class
 * (`0x0X`–`0x1X`): channel in b2–b1. Further interindustry class (`0x40`–`0x7F`):
 * b7 set, channel − 4 in b4–b1 (§5.4.1, table 3). Proprietary classes (b8 set,
 * GlobalPlatform's `8X`/`CX`) mirror the same coding; the GET RESPONSE itself is
 * interindustry.
 */
export function getResponseCla(cla: number): number {
  return (cla & 0x40) === 0 ? cla & 0x03 : cla & 0x4f;
}

export interface T0Step {
  command: Uint8Array;
  auto: NonNullable<ExchangeEntry['auto']>;
}

/**
 * What to send after `response` answered `last` (the command sent last) of a
 * command whose first byte was `cla`, or null when the exchange is complete.
 */
export function nextT0Step(cla: number, last: Uint8Array, response: Uint8Array): T0Step | null {
  if (response.length < 2) return null;
  const sw1 = response[response.length - 2];
  const sw2 = response[response.length - 1];
  if (sw1 === 0x6c && last.length === 5) {
    // Wrong Le: the same case-2 command with the Le the card asked for.
    const command = last.slice(0, 5);
    command[4] = sw2;
    return { command, auto: 'resendWithLe' };
  }
  if (sw1 === 0x61) return { command: Uint8Array.of(getResponseCla(cla), 0xc0, 0x00, 0x00, sw2), auto: 'getResponse' };
  return null;
}
