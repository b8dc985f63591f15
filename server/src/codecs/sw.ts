// Status words (SW1 SW2) as data: ISO/IEC 7816-4 §5.6 (2013) tables 5-6, plus
// GlobalPlatform Card Spec 2.3 §11, EMV Book 3 §6.3.5, NIST SP 800-73-4 §3,
// Java Card ISO7816 constants, GSM 11.11 §9.4 and MIFARE DESFire (ISO-wrapped 91xx).

export type SwCategory = 'success' | 'warning' | 'error';

export interface SwInfo {
  sw: number;
  meaning: string;
  category: SwCategory;
  /** 63Cx: tries left before the reference data is blocked. */
  retries?: number;
  /** 61xx / 9Fxx: response bytes still available (00 means 256). */
  available?: number;
  /** 6Cxx: the Le the card wants (00 means 256). */
  correctLe?: number;
}

type Entry = readonly [meaning: string, category: SwCategory];

/** Fully specified status words. Where standards disagree, ISO wording wins and the others follow after "/". */
const EXACT: ReadonlyMap<number, Entry> = new Map<number, Entry>([
  [0x9000, ['Normal processing', 'success']],

  // 62xx: warning, non-volatile memory unchanged
  [0x6200, ['Warning: no information given (memory unchanged)', 'warning']],
  [0x6281, ['Part of returned data may be corrupted', 'warning']],
  [0x6282, ['End of file or record reached before reading Ne bytes', 'warning']],
  [0x6283, ['Selected file deactivated / card locked / application blocked', 'warning']],
  [0x6284, ['File control information not formatted according to ISO 7816-4', 'warning']],
  [0x6285, ['Selected file in termination state', 'warning']],
  [0x6286, ['No input data available from a sensor on the card', 'warning']],
  [0x6287, ['At least one of the referenced records is deactivated', 'warning']],

  // 63xx: warning, non-volatile memory changed
  [0x6300, ['Warning: no information given (memory changed) / authentication failed', 'warning']],
  [0x6310, ['More data available (GET STATUS)', 'warning']],
  [0x6340, ['Unsuccessful comparison', 'warning']],
  [0x6381, ['File filled up by the last write', 'warning']],

  // 64xx / 65xx / 66xx: execution errors
  [0x6400, ['Execution error (memory unchanged)', 'error']],
  [0x6401, ['Immediate response required by the card', 'error']],
  [0x6500, ['Execution error (memory changed)', 'error']],
  [0x6581, ['Memory failure', 'error']],
  [0x6600, ['Security-related issue', 'error']],

  // 67xx - 6Fxx: checking errors
  [0x6700, ['Wrong length', 'error']],
  [0x6800, ['Functions in CLA not supported', 'error']],
  [0x6881, ['Logical channel not supported', 'error']],
  [0x6882, ['Secure messaging not supported', 'error']],
  [0x6883, ['Last command of the chain expected', 'error']],
  [0x6884, ['Command chaining not supported', 'error']],
  [0x6900, ['Command not allowed', 'error']],
  [0x6981, ['Command incompatible with file structure', 'error']],
  [0x6982, ['Security status not satisfied', 'error']],
  [0x6983, ['Authentication method blocked', 'error']],
  [0x6984, ['Reference data not usable', 'error']],
  [0x6985, ['Conditions of use not satisfied', 'error']],
  [0x6986, ['Command not allowed (no current EF)', 'error']],
  [0x6987, ['Expected secure messaging data objects missing', 'error']],
  [0x6988, ['Incorrect secure messaging data objects', 'error']],
  [0x6999, ['Applet selection failed', 'error']],
  [0x6A00, ['Wrong parameters P1-P2', 'error']],
  [0x6A80, ['Incorrect parameters in the command data field', 'error']],
  [0x6A81, ['Function not supported', 'error']],
  [0x6A82, ['File or application not found', 'error']],
  [0x6A83, ['Record not found', 'error']],
  [0x6A84, ['Not enough memory space in the file', 'error']],
  [0x6A85, ['Nc inconsistent with TLV structure', 'error']],
  [0x6A86, ['Incorrect parameters P1-P2', 'error']],
  [0x6A87, ['Nc inconsistent with parameters P1-P2', 'error']],
  [0x6A88, ['Referenced data or reference data not found', 'error']],
  [0x6A89, ['File already exists', 'error']],
  [0x6A8A, ['DF name already exists', 'error']],
  [0x6B00, ['Wrong parameters P1-P2', 'error']],
  [0x6D00, ['Instruction code not supported or invalid', 'error']],
  [0x6E00, ['Class not supported', 'error']],
  [0x6F00, ['No precise diagnosis', 'error']],

  // GlobalPlatform PUT KEY / GSM 11.11 memory and file errors
  [0x9400, ['No EF selected', 'error']],
  [0x9402, ['Out of range (invalid address)', 'error']],
  [0x9404, ['File ID or pattern not found', 'error']],
  [0x9408, ['File is inconsistent with the command', 'error']],
  [0x9484, ['Algorithm not supported', 'error']],
  [0x9485, ['Invalid key check value', 'error']],
  [0x9802, ['No CHV initialized', 'error']],
  [0x9804, ['Access condition not fulfilled / authentication failed', 'error']],
  [0x9808, ['In contradiction with CHV status', 'error']],
  [0x9810, ['In contradiction with invalidation status', 'error']],
  [0x9840, ['Unsuccessful CHV verification, no attempt left', 'error']],
  [0x9850, ['Increase cannot be performed, maximum value reached', 'error']],
  [0x9862, ['Authentication error, application specific', 'error']],

  // MIFARE DESFire native status codes wrapped as 91xx
  [0x9100, ['Operation OK (DESFire)', 'success']],
  [0x910C, ['No changes (DESFire)', 'success']],
  [0x910E, ['Out of EEPROM memory (DESFire)', 'error']],
  [0x911C, ['Illegal command code (DESFire)', 'error']],
  [0x911E, ['Integrity error (DESFire)', 'error']],
  [0x9140, ['No such key (DESFire)', 'error']],
  [0x917E, ['Length error (DESFire)', 'error']],
  [0x919D, ['Permission denied (DESFire)', 'error']],
  [0x919E, ['Parameter error (DESFire)', 'error']],
  [0x91A0, ['Application not found (DESFire)', 'error']],
  [0x91AE, ['Authentication error (DESFire)', 'error']],
  [0x91AF, ['Additional frame expected (DESFire)', 'success']],
  [0x91BE, ['Boundary error (DESFire)', 'error']],
  [0x91CA, ['Command aborted (DESFire)', 'error']],
  [0x91DE, ['Duplicate error (DESFire)', 'error']],
  [0x91F0, ['File not found (DESFire)', 'error']],
]);

interface Family {
  category: SwCategory;
  describe(sw2: number): Omit<SwInfo, 'sw' | 'category'>;
}

const hex2 = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
const generic = (meaning: string) => (sw2: number) => ({ meaning: `${meaning} (SW2 ${hex2(sw2)})` });

/** SW1 families whose SW2 is a parameter or an unlisted qualifier (ISO 7816-4 table 6). */
const FAMILIES: ReadonlyMap<number, Family> = new Map<number, Family>([
  [0x61, { category: 'success', describe: (sw2) => {
    const available = sw2 === 0 ? 256 : sw2;
    return { meaning: `Normal processing, ${plural(available, 'byte', 'bytes')} still available`, available };
  } }],
  [0x9F, { category: 'success', describe: (sw2) => {
    const available = sw2 === 0 ? 256 : sw2;
    return { meaning: `Normal processing, ${plural(available, 'byte', 'bytes')} of response available (GSM)`, available };
  } }],
  [0x62, { category: 'warning', describe: (sw2) => (sw2 >= 0x02 && sw2 <= 0x80
    ? { meaning: `Warning: triggering by the card (SW2 ${hex2(sw2)})` }
    : { meaning: `Warning: state of non-volatile memory unchanged (SW2 ${hex2(sw2)})` }) }],
  [0x63, { category: 'warning', describe: (sw2) => {
    if ((sw2 & 0xF0) === 0xC0) {
      const retries = sw2 & 0x0F;
      return { meaning: `Verification failed, ${retries === 0 ? 'no retries' : plural(retries, 'retry', 'retries')} left`, retries };
    }
    return { meaning: `Warning: state of non-volatile memory changed (SW2 ${hex2(sw2)})` };
  } }],
  [0x64, { category: 'error', describe: (sw2) => (sw2 >= 0x02 && sw2 <= 0x80
    ? { meaning: `Execution error: triggering by the card (SW2 ${hex2(sw2)})` }
    : { meaning: `Execution error, memory unchanged (SW2 ${hex2(sw2)})` }) }],
  [0x65, { category: 'error', describe: generic('Execution error, memory changed') }],
  [0x66, { category: 'error', describe: generic('Security-related issue') }],
  [0x67, { category: 'error', describe: generic('Wrong length') }],
  [0x68, { category: 'error', describe: generic('Functions in CLA not supported') }],
  [0x69, { category: 'error', describe: generic('Command not allowed') }],
  [0x6A, { category: 'error', describe: generic('Wrong parameters P1-P2') }],
  [0x6B, { category: 'error', describe: generic('Wrong parameters P1-P2') }],
  [0x6C, { category: 'error', describe: (sw2) => {
    const correctLe = sw2 === 0 ? 256 : sw2;
    return { meaning: `Wrong Le field, exact length is ${correctLe} (Le=${hex2(sw2)})`, correctLe };
  } }],
  [0x6D, { category: 'error', describe: generic('Instruction code not supported or invalid') }],
  [0x6E, { category: 'error', describe: generic('Class not supported') }],
  [0x6F, { category: 'error', describe: generic('No precise diagnosis') }],
]);

/** Category of an SW1 nobody has a meaning for: ISO 7816-4 §5.6 classes. */
function categoryOfClass(sw1: number): SwCategory {
  if (sw1 === 0x90 || sw1 === 0x61) return 'success';
  if (sw1 === 0x62 || sw1 === 0x63) return 'warning';
  return 'error';
}

/** Meaning of a status word. Never throws; out-of-range bytes are masked to 8 bits. */
export function describeStatusWord(sw1: number, sw2: number): SwInfo {
  sw1 &= 0xFF;
  sw2 &= 0xFF;
  const sw = (sw1 << 8) | sw2;
  const exact = EXACT.get(sw);
  if (exact) return { sw, meaning: exact[0], category: exact[1] };
  const family = FAMILIES.get(sw1);
  if (family) return { sw, category: family.category, ...family.describe(sw2) };
  if (sw1 === 0x90) return { sw, meaning: `Normal processing (SW2 ${hex2(sw2)})`, category: 'success' };
  return { sw, meaning: 'Unknown status word', category: categoryOfClass(sw1) };
}

/**
 * True for a VERIFY without data (CLA 20 P1 P2, no Lc): ISO 7816-4 §11.5.6's
 * retry-counter query. Its 63 Cx is a count, not a failed verification.
 */
export function isRetryCounterQuery(command: Uint8Array): boolean {
  return command.length === 4 && command[1] === 0x20;
}

/**
 * The status word's meaning for the command that got it: for a retry-counter
 * query 63 Cx reads "x tries left" (nothing was verified, so nothing failed).
 */
export function describeStatusWordFor(command: Uint8Array, sw1: number, sw2: number): SwInfo {
  const info = describeStatusWord(sw1, sw2);
  if (!isRetryCounterQuery(command) || (sw1 & 0xFF) !== 0x63 || (sw2 & 0xF0) !== 0xC0) return info;
  const retries = sw2 & 0x0F;
  return {
    ...info,
    meaning: retries === 0 ? 'Retry counter: no tries left (blocked)' : `Retry counter: ${plural(retries, 'try', 'tries')} left`,
    category: retries === 0 ? 'warning' : 'success',
    retries,
  };
}

/** `9000`-style upper-case hex of a status word. */
export function statusWordHex(sw: number): string {
  return hex2((sw >> 8) & 0xFF) + hex2(sw & 0xFF);
}
