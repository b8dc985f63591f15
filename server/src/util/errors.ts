// Errors are typed values with a code; they cross process boundaries as
// { code, message } and are shown in words that say what to do.

export type ScErrorCode =
  | 'NO_READER'          // the named reader does not exist
  | 'NO_CARD'            // no card in the reader
  | 'CARD_REMOVED'       // the card went away during an operation
  | 'CARD_RESET'         // another client reset the card since this connection last used it (SCARD_W_RESET_CARD)
  | 'READER_UNAVAILABLE' // the reader exists but cannot be used (driver failed, claimed elsewhere)
  | 'SHARING_VIOLATION'  // another connection holds the reader exclusively or in a transaction
  | 'PROTOCOL'           // the card or reader broke the protocol
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'BAD_REQUEST'        // invalid parameters from a client
  | 'SCRIPT_SYNTAX'      // the script does not parse
  | 'EXPECTATION_FAILED' // a response did not match `=> …`
  | 'DRIVER'             // a driver-level failure with its own message
  | 'NOT_SUPPORTED'
  | 'INTERNAL';

export class ScError extends Error {
  constructor(readonly code: ScErrorCode, message: string, readonly detail?: Record<string, unknown>) {
    super(message);
    this.name = 'ScError';
  }
  toJSON(): { code: ScErrorCode; message: string; detail?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.detail ? { detail: this.detail } : {}) };
  }
}

export function asScError(e: unknown): ScError {
  if (e instanceof ScError) return e;
  if (e instanceof Error) return new ScError('INTERNAL', e.message);
  return new ScError('INTERNAL', String(e));
}
