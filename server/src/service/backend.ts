// What the PC/SC service needs from whatever owns the cards. The product's backend
// is managerBackend.ts (the reader manager's connections and per-reader gates);
// the session's unit tests also use a small test double over the simulator card
// (test/support/simPcscBackend.ts). Nothing here names the manager.
//
// Values use PC/SC's own numbers (share modes, dispositions, protocol bits,
// attribute ids) because the service passes them through from clients unchanged;
// failures are a BackendError carrying the SCARD_* return code the client must see.

import type { ReaderFacts } from './readerState';
import { Rv } from './wire';

/** A card connection of one client handle; opaque to the service. */
export type BackendHandle = unknown;

/** A failure with the PC/SC return code the client gets (SCARD_E_NO_SMARTCARD, SCARD_W_RESET_CARD …). */
export class BackendError extends Error {
  constructor(readonly rv: number, message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

export function rvOf(e: unknown): number {
  return e instanceof BackendError ? e.rv >>> 0 : Rv.SCARD_F_INTERNAL_ERROR;
}

export interface IoRequest {
  /** SCARD_IO_REQUEST.dwProtocol */
  readonly protocol: number;
  /** SCARD_IO_REQUEST.cbPciLength */
  readonly pciLength: number;
}

/** Where CardBackend.transmitTo's outcome goes. Neither method may throw. */
export interface TransmitSink {
  answered(response: Uint8Array): void;
  failed(e: unknown): void;
}

export interface CardBackend {
  /** Every reader as it is now, for the reader state table. */
  readers(): readonly ReaderFacts[];
  /**
   * Called after any change the table shows (reader added or removed, card in or
   * out, power, protocol, sharing). Returns the unsubscribe function.
   */
  onChange(listener: () => void): () => void;

  /**
   * SCardConnect: share mode 1..3, preferred SCARD_PROTOCOL_* bits; the active
   * protocol back. `client` names the program ("pcsc_scan (pid 4711)") for the
   * Readers view and its APDU Log rows. pcscd waits here (server side) while another handle holds the
   * reader's transaction.
   */
  connect(reader: string, shareMode: number, preferredProtocols: number, client?: string): Promise<{ handle: BackendHandle; activeProtocol: number }>;
  /** SCardReconnect with dwInitialization = SCARD_LEAVE/RESET/UNPOWER_CARD. */
  reconnect(handle: BackendHandle, shareMode: number, preferredProtocols: number, initialization: number): Promise<{ activeProtocol: number }>;
  /** SCardDisconnect with a disposition; the handle is gone afterwards. */
  disconnect(handle: BackendHandle, disposition: number): Promise<void>;
  /**
   * SCardBeginTransaction. While another handle holds the reader, pcscd answers
   * SCARD_E_SHARING_VIOLATION after PCSCLITE_LOCK_POLL_RATE and the client library
   * asks again after another PCSCLITE_LOCK_POLL_RATE (unless PCSCLITE_NO_BLOCKING is
   * set); a backend does the same, so both client behaviours stay as they are with pcscd.
   */
  beginTransaction(handle: BackendHandle): Promise<void>;
  endTransaction(handle: BackendHandle, disposition: number): Promise<void>;
  /**
   * SCardTransmit: the response APDU. `maxResponse` is the client's buffer: a longer response is
   * SCARD_E_INSUFFICIENT_BUFFER (the service checks it). The receive PCI the client gets is the
   * send PCI, as pcscd gives it for T=0 and T=1. Failures reject (the session also copes
   * with one thrown at once).
   */
  transmit(handle: BackendHandle, sendPci: IoRequest, command: Uint8Array, maxResponse: number): Promise<Uint8Array>;
  /**
   * transmit with the answer handed to `sink` rather than through a promise of its own (the
   * call of every APDU: one promise reaction fewer per APDU for the service). The same rules
   * as transmit; a failure found before the command goes anywhere is thrown at once, every
   * later outcome goes to the sink exactly once, never before this returns. Optional: the
   * session uses transmit where a backend has no transmitTo.
   */
  transmitTo?(handle: BackendHandle, sendPci: IoRequest, command: Uint8Array, maxResponse: number, sink: TransmitSink): void;
  /** SCardControl (part 10 CM_IOCTL_GET_FEATURE_REQUEST, escape codes). */
  control(handle: BackendHandle, code: number, data: Uint8Array, maxResponse: number): Promise<Uint8Array>;
  /**
   * SCardStatus on the daemon side: only the return code matters (the client reads
   * the rest from the reader state table): SCARD_W_RESET_CARD / SCARD_W_REMOVED_CARD
   * once the card was reset or removed under this handle.
   */
  status(handle: BackendHandle): Promise<void>;
  getAttrib(handle: BackendHandle, attrId: number, maxLength: number): Promise<Uint8Array>;
  setAttrib(handle: BackendHandle, attrId: number, value: Uint8Array): Promise<void>;
  /**
   * SCardCancel reached the service for a context that has these handles. pcscd
   * cancels only the context's status-change wait (the service does that itself),
   * so a backend following pcscd does nothing here.
   */
  cancel(handles: readonly BackendHandle[]): void;
  /**
   * The client's context went away (SCardReleaseContext or the client died) with
   * this handle still open: release it as pcscd's MSGRemoveContext does, i.e. end
   * its transaction and reset the card if it held one (unless the card was already
   * reset or removed), otherwise leave the card. Idempotent: it may be called again
   * for a handle whose call was still in the backend when the client died.
   */
  abandon(handle: BackendHandle): Promise<void>;
}
