// PC/SC constants (pcsc-lite pcsclite.h / Windows winscard.h; identical values
// on every platform unless noted). Names keep the spec's spelling.

export const SCARD_SCOPE_USER = 0;
export const SCARD_SCOPE_SYSTEM = 2;

export const SCARD_SHARE_EXCLUSIVE = 1;
export const SCARD_SHARE_SHARED = 2;
export const SCARD_SHARE_DIRECT = 3;

export const SCARD_PROTOCOL_UNDEFINED = 0;
export const SCARD_PROTOCOL_T0 = 1;
export const SCARD_PROTOCOL_T1 = 2;
/** pcsc-lite's value; Windows uses 0x10000 for RAW (not used here). */
export const SCARD_PROTOCOL_ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;

export const SCARD_LEAVE_CARD = 0;
export const SCARD_RESET_CARD = 1;
export const SCARD_UNPOWER_CARD = 2;
export const SCARD_EJECT_CARD = 3;

/** dwCurrentState / dwEventState bits; the upper 16 bits carry an event counter. */
export const SCARD_STATE = {
  UNAWARE: 0x0000,
  IGNORE: 0x0001,
  CHANGED: 0x0002,
  UNKNOWN: 0x0004,
  UNAVAILABLE: 0x0008,
  EMPTY: 0x0010,
  PRESENT: 0x0020,
  ATRMATCH: 0x0040,
  EXCLUSIVE: 0x0080,
  INUSE: 0x0100,
  MUTE: 0x0200,
  UNPOWERED: 0x0400,
} as const;

/** SCardStatus dwState values as pcsc-lite reports them (bit flags there). */
export const SCARD_STATUS_PRESENT = 0x0004;

export const INFINITE = 0xffffffff;

/** The pseudo-reader whose state changes when readers come and go (PC/SC part 3 / pcsc-lite). */
export const PNP_NOTIFICATION = '\\\\?PnP?\\Notification';


/** SCardGetAttrib tags (PC/SC part 3). */
export const SCARD_ATTR = {
  VENDOR_NAME: 0x00010100,
  VENDOR_IFD_TYPE: 0x00010101,
  VENDOR_IFD_VERSION: 0x00010102,
  VENDOR_IFD_SERIAL_NO: 0x00010103,
  ATR_STRING: 0x00090303,
  MAXINPUT: 0x0007a007,
} as const;

// The PC/SC part 10 feature list is a codec shared by every driver.
export { CM_IOCTL_GET_FEATURE_REQUEST, PCSC_FEATURES, parseFeatureList } from '../../codecs/pcscFeatures';
