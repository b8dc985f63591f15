// PC/SC return codes (pcsc-lite pcsclite.h, Windows winerror.h SCARD_*) mapped
// to our error codes and to words that say what to do.

import { ScError, type ScErrorCode } from '../../util/errors';

export const SCARD_S_SUCCESS = 0;
export const SCARD_E_CANCELLED = 0x80100002;
export const SCARD_E_INVALID_HANDLE = 0x80100003;
export const SCARD_E_INSUFFICIENT_BUFFER = 0x80100008;
export const SCARD_E_UNKNOWN_READER = 0x80100009;
export const SCARD_E_TIMEOUT = 0x8010000a;
export const SCARD_E_SHARING_VIOLATION = 0x8010000b;
export const SCARD_E_NO_SMARTCARD = 0x8010000c;
export const SCARD_F_COMM_ERROR = 0x80100013;
export const SCARD_E_READER_UNAVAILABLE = 0x80100017;
export const SCARD_E_NO_SERVICE = 0x8010001d;
export const SCARD_E_SERVICE_STOPPED = 0x8010001e;
export const SCARD_E_NO_READERS_AVAILABLE = 0x8010002e;
export const SCARD_W_RESET_CARD = 0x80100068;
export const SCARD_W_REMOVED_CARD = 0x80100069;
/** Windows: the handle died with the service (ERROR_INVALID_HANDLE). */
export const ERROR_INVALID_HANDLE = 0x6;

interface PcscErrorInfo {
  name: string;
  code: ScErrorCode;
  text: string;
}

/** One row per PC/SC return code: its name, our code, and what the user should know or do. */
export const PCSC_ERRORS: Record<number, PcscErrorInfo> = {
  0x80100001: { name: 'SCARD_F_INTERNAL_ERROR', code: 'DRIVER', text: 'the PC/SC service reported an internal error; restart it' },
  0x80100002: { name: 'SCARD_E_CANCELLED', code: 'CANCELLED', text: 'the operation was cancelled' },
  0x80100003: { name: 'SCARD_E_INVALID_HANDLE', code: 'DRIVER', text: 'the connection to the PC/SC service is no longer valid; it will be re-established' },
  0x80100004: { name: 'SCARD_E_INVALID_PARAMETER', code: 'BAD_REQUEST', text: 'a parameter was rejected by the PC/SC service' },
  0x80100005: { name: 'SCARD_E_INVALID_TARGET', code: 'DRIVER', text: 'the PC/SC service has an invalid registry entry' },
  0x80100006: { name: 'SCARD_E_NO_MEMORY', code: 'DRIVER', text: 'the PC/SC service ran out of memory' },
  0x80100007: { name: 'SCARD_F_WAITED_TOO_LONG', code: 'TIMEOUT', text: 'the PC/SC service waited too long' },
  0x80100008: { name: 'SCARD_E_INSUFFICIENT_BUFFER', code: 'DRIVER', text: 'the response does not fit in the buffer' },
  0x80100009: { name: 'SCARD_E_UNKNOWN_READER', code: 'NO_READER', text: 'the reader is not known to the PC/SC service (unplugged?)' },
  0x8010000a: { name: 'SCARD_E_TIMEOUT', code: 'TIMEOUT', text: 'the PC/SC service timed out' },
  0x8010000b: { name: 'SCARD_E_SHARING_VIOLATION', code: 'SHARING_VIOLATION', text: 'another program holds the card exclusively or in a transaction; close it or wait' },
  0x8010000c: { name: 'SCARD_E_NO_SMARTCARD', code: 'NO_CARD', text: 'no card in the reader; insert one' },
  0x8010000d: { name: 'SCARD_E_UNKNOWN_CARD', code: 'DRIVER', text: 'the card is unknown' },
  0x8010000e: { name: 'SCARD_E_CANT_DISPOSE', code: 'DRIVER', text: 'the card could not be disposed as asked' },
  0x8010000f: { name: 'SCARD_E_PROTO_MISMATCH', code: 'PROTOCOL', text: 'the card does not support the requested protocol (T=0/T=1)' },
  0x80100010: { name: 'SCARD_E_NOT_READY', code: 'READER_UNAVAILABLE', text: 'the reader or card is not ready' },
  0x80100011: { name: 'SCARD_E_INVALID_VALUE', code: 'BAD_REQUEST', text: 'a value was rejected by the PC/SC service' },
  0x80100012: { name: 'SCARD_E_SYSTEM_CANCELLED', code: 'CANCELLED', text: 'the system cancelled the operation (log-off or shutdown)' },
  0x80100013: { name: 'SCARD_F_COMM_ERROR', code: 'DRIVER', text: 'communication with the PC/SC service failed' },
  0x80100014: { name: 'SCARD_F_UNKNOWN_ERROR', code: 'DRIVER', text: 'the PC/SC service reported an unknown error' },
  0x80100015: { name: 'SCARD_E_INVALID_ATR', code: 'PROTOCOL', text: 'the card sent an invalid ATR' },
  0x80100016: { name: 'SCARD_E_NOT_TRANSACTED', code: 'DRIVER', text: 'the reader or card did not complete the exchange; try a reset' },
  0x80100017: { name: 'SCARD_E_READER_UNAVAILABLE', code: 'READER_UNAVAILABLE', text: 'the reader is not available (unplugged or its driver failed)' },
  0x80100018: { name: 'SCARD_P_SHUTDOWN', code: 'CANCELLED', text: 'the PC/SC service is shutting down' },
  0x80100019: { name: 'SCARD_E_PCI_TOO_SMALL', code: 'DRIVER', text: 'the protocol control information is too small' },
  0x8010001a: { name: 'SCARD_E_READER_UNSUPPORTED', code: 'READER_UNAVAILABLE', text: 'the reader driver does not meet requirements' },
  0x8010001b: { name: 'SCARD_E_DUPLICATE_READER', code: 'DRIVER', text: 'the reader driver created a duplicate reader name' },
  0x8010001c: { name: 'SCARD_E_CARD_UNSUPPORTED', code: 'PROTOCOL', text: 'the card is not supported by the reader' },
  0x8010001d: { name: 'SCARD_E_NO_SERVICE', code: 'READER_UNAVAILABLE', text: 'the PC/SC service (pcscd / Smart Card service) is not running; start it' },
  0x8010001e: { name: 'SCARD_E_SERVICE_STOPPED', code: 'READER_UNAVAILABLE', text: 'the PC/SC service stopped; it will be reconnected when it is back' },
  0x8010001f: { name: 'SCARD_E_UNEXPECTED', code: 'DRIVER', text: 'an unexpected card error occurred' },
  0x80100020: { name: 'SCARD_E_ICC_INSTALLATION', code: 'DRIVER', text: 'no primary provider for the card' },
  0x80100021: { name: 'SCARD_E_ICC_CREATEORDER', code: 'DRIVER', text: 'the requested order of object creation is not supported' },
  0x80100022: { name: 'SCARD_E_UNSUPPORTED_FEATURE', code: 'NOT_SUPPORTED', text: 'the reader does not support this (control code or attribute)' },
  0x80100023: { name: 'SCARD_E_DIR_NOT_FOUND', code: 'DRIVER', text: 'directory not found on the card' },
  0x80100024: { name: 'SCARD_E_FILE_NOT_FOUND', code: 'DRIVER', text: 'file not found on the card' },
  0x80100025: { name: 'SCARD_E_NO_DIR', code: 'DRIVER', text: 'the path does not name a directory' },
  0x80100026: { name: 'SCARD_E_NO_FILE', code: 'DRIVER', text: 'the path does not name a file' },
  0x80100027: { name: 'SCARD_E_NO_ACCESS', code: 'DRIVER', text: 'access to the file is denied' },
  0x80100028: { name: 'SCARD_E_WRITE_TOO_MANY', code: 'DRIVER', text: 'the card is full' },
  0x80100029: { name: 'SCARD_E_BAD_SEEK', code: 'DRIVER', text: 'seek error on the card' },
  0x8010002a: { name: 'SCARD_E_INVALID_CHV', code: 'DRIVER', text: 'the PIN is wrong' },
  0x8010002b: { name: 'SCARD_E_UNKNOWN_RES_MNG', code: 'DRIVER', text: 'unknown resource manager error' },
  0x8010002c: { name: 'SCARD_E_NO_SUCH_CERTIFICATE', code: 'DRIVER', text: 'no such certificate' },
  0x8010002d: { name: 'SCARD_E_CERTIFICATE_UNAVAILABLE', code: 'DRIVER', text: 'the certificate cannot be obtained' },
  0x8010002e: { name: 'SCARD_E_NO_READERS_AVAILABLE', code: 'NO_READER', text: 'no readers are connected; plug one in' },
  0x8010002f: { name: 'SCARD_E_COMM_DATA_LOST', code: 'DRIVER', text: 'communication data was lost; try again' },
  0x80100030: { name: 'SCARD_E_NO_KEY_CONTAINER', code: 'DRIVER', text: 'no key container' },
  0x80100031: { name: 'SCARD_E_SERVER_TOO_BUSY', code: 'DRIVER', text: 'the PC/SC service is too busy; try again' },
  0x80100065: { name: 'SCARD_W_UNSUPPORTED_CARD', code: 'PROTOCOL', text: 'the card is not supported (its ATR could not be used)' },
  0x80100066: { name: 'SCARD_W_UNRESPONSIVE_CARD', code: 'PROTOCOL', text: 'the card does not answer a reset; reinsert it' },
  0x80100067: { name: 'SCARD_W_UNPOWERED_CARD', code: 'PROTOCOL', text: 'the card is not powered; reset it' },
  0x80100068: { name: 'SCARD_W_RESET_CARD', code: 'CARD_RESET', text: 'another program reset the card; what was set up on it (a verified PIN, a selected application) is gone: reset or connect again' },
  0x80100069: { name: 'SCARD_W_REMOVED_CARD', code: 'CARD_REMOVED', text: 'the card was removed; insert it again' },
  0x8010006a: { name: 'SCARD_W_SECURITY_VIOLATION', code: 'DRIVER', text: 'access denied: security violation' },
  0x8010006b: { name: 'SCARD_W_WRONG_CHV', code: 'DRIVER', text: 'the PIN is wrong' },
  0x8010006c: { name: 'SCARD_W_CHV_BLOCKED', code: 'DRIVER', text: 'the PIN is blocked' },
  0x8010006d: { name: 'SCARD_W_EOF', code: 'DRIVER', text: 'end of card file' },
  0x8010006e: { name: 'SCARD_W_CANCELLED_BY_USER', code: 'CANCELLED', text: 'cancelled by the user' },
  0x8010006f: { name: 'SCARD_W_CARD_NOT_AUTHENTICATED', code: 'DRIVER', text: 'no PIN was presented to the card' },
  0x6: { name: 'ERROR_INVALID_HANDLE', code: 'DRIVER', text: 'the connection to the PC/SC service is no longer valid; it will be re-established' },
  // Windows' smart card service passes its reader drivers' Win32 errors on as they are (winerror.h); only Windows gives these.
  0x1: { name: 'ERROR_INVALID_FUNCTION', code: 'NOT_SUPPORTED', text: 'the reader\'s Windows driver does not take this request (for escape control codes, Microsoft\'s usbccid needs EscapeCommandEnable set in the reader\'s registry key, or use the vendor\'s driver)' },
  0x16: { name: 'ERROR_BAD_COMMAND', code: 'NOT_SUPPORTED', text: 'the reader\'s Windows driver does not know this request' },
  0x1f: { name: 'ERROR_GEN_FAILURE', code: 'DRIVER', text: 'the reader is not working (the device reported a failure to Windows); unplug it and plug it in again' },
  0x32: { name: 'ERROR_NOT_SUPPORTED', code: 'NOT_SUPPORTED', text: 'the reader\'s Windows driver does not support this request' },
  0x57: { name: 'ERROR_INVALID_PARAMETER', code: 'BAD_REQUEST', text: 'the reader\'s Windows driver refused the request\'s parameters' },
  0x6d: { name: 'ERROR_BROKEN_PIPE', code: 'READER_UNAVAILABLE', text: 'the connection to the reader broke (unplugged?)' },
  0x79: { name: 'ERROR_SEM_TIMEOUT', code: 'TIMEOUT', text: 'the reader did not answer in time' },
  0x7a: { name: 'ERROR_INSUFFICIENT_BUFFER', code: 'DRIVER', text: 'the answer was larger than the buffer given for it' },
};

/**
 * pcsc-lite (and Apple's PC/SC, derived from it) numbers SCARD_E_UNSUPPORTED_FEATURE 0x8010001F, the value Windows
 * gives SCARD_E_UNEXPECTED; pcsc-lite never returns SCARD_E_UNEXPECTED (winscard_clnt.c 75–82). pcscd answers it for
 * a control code or attribute tag the IFD handler does not know (ifdwrapper.c, winscard.c SCardControl, SCardGetAttrib).
 */
const PCSCLITE_UNSUPPORTED_FEATURE: PcscErrorInfo = { ...PCSC_ERRORS[0x80100022], name: 'SCARD_E_UNSUPPORTED_FEATURE' };

/**
 * libpcsclite also answers it by itself, outside any reader's request: a reader list of another size than pcscd's, a
 * pcscd of an older protocol (winscard_clnt.c getReaderStates, getReaderEvents). Only a reader call says the reader.
 */
const PCSCLITE_UNSUPPORTED_REQUEST: PcscErrorInfo = { name: 'SCARD_E_UNSUPPORTED_FEATURE', code: 'DRIVER', text: 'the PC/SC service does not support this request (is the PC/SC library of another version than the service?)' };
const READER_CALLS = new Set(['SCardControl', 'SCardGetAttrib', 'SCardSetAttrib']);

function infoFor(rv: number, platform: NodeJS.Platform, fn?: string): PcscErrorInfo | undefined {
  if (rv !== 0x8010001f || platform === 'win32') return PCSC_ERRORS[rv];
  return fn === undefined || READER_CALLS.has(fn) ? PCSCLITE_UNSUPPORTED_FEATURE : PCSCLITE_UNSUPPORTED_REQUEST;
}

/** A PC/SC call failed with `rv` (normalized to an unsigned 32-bit value). */
export class PcscError extends Error {
  constructor(readonly rv: number, readonly fn: string) {
    super(`${fn}: ${describePcscError(rv, process.platform, fn)}`);
    this.name = 'PcscError';
  }
}

export function pcscErrorName(rv: number, platform: NodeJS.Platform = process.platform): string {
  return infoFor(rv, platform)?.name ?? `0x${rv.toString(16).padStart(8, '0')}`;
}

/** `fn`: the PC/SC call that answered `rv` (pcsc-lite's 0x8010001F reads by it). */
export function describePcscError(rv: number, platform: NodeJS.Platform = process.platform, fn?: string): string {
  const info = infoFor(rv, platform, fn);
  return info ? `${info.text} (${info.name})` : `PC/SC error 0x${rv.toString(16).padStart(8, '0')}`;
}

/** True when the service went away and the context must be re-established. */
export function isServiceLost(rv: number): boolean {
  return rv === SCARD_E_NO_SERVICE || rv === SCARD_E_SERVICE_STOPPED || rv === SCARD_E_INVALID_HANDLE || rv === ERROR_INVALID_HANDLE;
}

/** Turns a PC/SC failure into our error value, naming the reader when known. */
export function toScError(e: unknown, reader?: string, platform: NodeJS.Platform = process.platform): ScError {
  if (e instanceof ScError) return e;
  if (e instanceof PcscError) {
    const info = infoFor(e.rv, platform, e.fn);
    const where = reader ? ` on "${reader}"` : '';
    return new ScError(info?.code ?? 'DRIVER', `PC/SC ${e.fn}${where}: ${describePcscError(e.rv, platform, e.fn)}.`, { rv: e.rv, name: pcscErrorName(e.rv, platform) });
  }
  if (e instanceof Error) return new ScError('DRIVER', e.message);
  return new ScError('DRIVER', String(e));
}
