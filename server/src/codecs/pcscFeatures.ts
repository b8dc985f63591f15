// PC/SC part 10 (v2.02.09) §2.2: the feature list a reader returns to
// CM_IOCTL_GET_FEATURE_REQUEST (SCARD_CTL_CODE(3400)).

/** The function number of CM_IOCTL_GET_FEATURE_REQUEST; drivers map it to their platform's control code. */
export const CM_IOCTL_GET_FEATURE_REQUEST = 3400;

/** PC/SC part 10 feature tags returned by CM_IOCTL_GET_FEATURE_REQUEST (TLV: tag, 4, control code BE). */
export const PCSC_FEATURES: Record<number, string> = {
  0x01: 'VERIFY_PIN_START',
  0x02: 'VERIFY_PIN_FINISH',
  0x03: 'MODIFY_PIN_START',
  0x04: 'MODIFY_PIN_FINISH',
  0x05: 'GET_KEY_PRESSED',
  0x06: 'VERIFY_PIN_DIRECT',
  0x07: 'MODIFY_PIN_DIRECT',
  0x08: 'MCT_READER_DIRECT',
  0x09: 'MCT_UNIVERSAL',
  0x0a: 'IFD_PIN_PROPERTIES',
  0x0b: 'ABORT',
  0x0c: 'SET_SPE_MESSAGE',
  0x0d: 'VERIFY_PIN_DIRECT_APP_ID',
  0x0e: 'MODIFY_PIN_DIRECT_APP_ID',
  0x0f: 'WRITE_DISPLAY',
  0x10: 'GET_KEY',
  0x11: 'IFD_DISPLAY_PROPERTIES',
  0x12: 'GET_TLV_PROPERTIES',
  0x13: 'CCID_ESC_COMMAND',
  0x20: 'EXECUTE_PACE',
};

/**
 * Features whose input can carry a PIN: a PIN_VERIFY / PIN_MODIFY structure's APDU template, which
 * some programs fill in themselves; PACE's PIN field; MCT_READER_DIRECT / MCT_UNIVERSAL (CT-BCS
 * commands and card APDUs, VERIFY included, as cyberJack drivers take them); CCID_ESC_COMMAND (a
 * vendor escape, which may wrap a card APDU). Their data is logged as `**`.
 */
export const SECRET_FEATURES: ReadonlySet<number> = new Set([0x01, 0x03, 0x06, 0x07, 0x08, 0x09, 0x0d, 0x0e, 0x13, 0x20]);

/**
 * Features whose answer can carry a secret, logged as `**` too: GET_KEY (0x10) answers the keys
 * typed on the reader (a key-by-key PIN entry); MCT_* and CCID_ESC_COMMAND answer what the card
 * or the reader gave back to a masked command. The PIN-pad calls' answers (a status word, as a
 * VERIFY's in an exchange) stay readable.
 */
export const SECRET_ANSWER_FEATURES: ReadonlySet<number> = new Set([0x08, 0x09, 0x10, 0x13]);

/** libccid's FEATURE_CCID_ESC_COMMAND: IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE, SCARD_CTL_CODE(1) (ccid_ifdhandler.h). */
export const LIBCCID_ESC_COMMAND = 0x42000001;

/**
 * The control code libccid (and so every pcsc-lite reader it drives) gives a feature:
 * SCARD_CTL_CODE(0x330000 + tag) = 0x42330000 + tag, except its escape (CCID_ESC_COMMAND),
 * SCARD_CTL_CODE(1). A program may call it on a reader that does not list the feature; its
 * data is still a secret.
 */
export function libccidFeatureCode(tag: number): number {
  return tag === 0x13 ? LIBCCID_ESC_COMMAND : 0x42330000 + tag;
}

/**
 * Whether control code `code` calls one of these features: at a code the reader lists for it
 * (`listed`, its CM_IOCTL_GET_FEATURE_REQUEST answer), or at libccid's code for it whether the
 * reader lists it or not (a program may call MODIFY_PIN_DIRECT on a reader that only verifies,
 * or before the reader's feature list was read).
 */
export function isFeatureCall(code: number, features: ReadonlySet<number>, listed: ReadonlyArray<{ tag: number; controlCode: number }> = []): boolean {
  for (const tag of features) if (libccidFeatureCode(tag) === code) return true;
  return listed.some((f) => f.controlCode === code && features.has(f.tag));
}

/** Parses the feature list TLVs (tag, length 4, big-endian control code). */
export function parseFeatureList(data: Uint8Array): { tag: number; name: string; controlCode: number }[] {
  const out: { tag: number; name: string; controlCode: number }[] = [];
  for (let i = 0; i + 6 <= data.length; i += 2 + data[i + 1]) {
    const tag = data[i];
    if (data[i + 1] !== 4) break;
    const controlCode = ((data[i + 2] << 24) | (data[i + 3] << 16) | (data[i + 4] << 8) | data[i + 5]) >>> 0;
    out.push({ tag, name: PCSC_FEATURES[tag] ?? `FEATURE_0x${tag.toString(16)}`, controlCode });
  }
  return out;
}
