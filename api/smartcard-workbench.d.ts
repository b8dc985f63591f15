// The public API of Smart Card Workbench for other extensions: the contract.
// Hand-written; the extension's implementation (extension/src/api.ts) is type-checked against it.
// Copy this file into your extension and read docs/api.md.
//
//   const exports = vscode.extensions.getExtension<SmartCardWorkbenchExports>('smartcard-workbench.smartcard-workbench');
//   const workbench = (await exports!.activate()).getApi(context);   // context: your ExtensionContext
//
// Every call goes through the workbench's reader manager, as its own scripts do: one queue per
// reader, transactions, shared/exclusive connections, the T=0 rules (case 4, 61xx, 6Cxx), the
// exchange time-out. Every exchange appears in the APDU Log under your extension's id.
// Bytes are hex strings (upper case, no spaces) in results; inputs take hex (spaces allowed) or bytes.

import type { CancellationToken, Disposable, Event, ExtensionContext, Uri } from 'vscode';

/** What `activate()` returns. */
export interface SmartCardWorkbenchExports {
  /** 1 for this contract. A later, incompatible contract gets a new number. */
  readonly apiVersion: 1;
  /**
   * The API for one extension: pass your own `ExtensionContext`. Its id (`context.extension.id`)
   * names your rows in the APDU Log and your PIN prompts; your connections are closed when your
   * extension deactivates (the API registers itself in `context.subscriptions`).
   */
  getApi(context: ExtensionContext): SmartCardApi;
}

export interface SmartCardApi extends Disposable {
  readonly apiVersion: 1;
  /** The calling extension's id, as the log shows it. */
  readonly extensionId: string;
  /** The readers as the reader manager has them now (empty while it is not running). */
  readonly readers: readonly Reader[];
  /** The reader list or a reader's state changed (arrival, removal, card, connections). */
  readonly onDidChangeReaders: Event<readonly Reader[]>;
  /** A card was inserted, removed, powered, unpowered or reset. */
  readonly onDidChangeCard: Event<CardEvent>;
  /**
   * Opens a connection to a reader (SCardConnect), powering the card if needed.
   * Rejects with `NO_READER`, `NO_CARD`, `SHARING_VIOLATION`, `PROTOCOL`, `BAD_REQUEST`, `NOT_RUNNING`.
   */
  connect(reader: string, options?: ConnectOptions): Promise<CardConnection>;
  /**
   * Runs an APDU script: a file (`Uri`) or the script's text (`string`), as "Run APDU Script" does.
   * A `${pin:"…"}` in it asks the person with the workbench's masked prompt, naming your extension;
   * the PIN is never returned, logged or kept by the API. Refused in an untrusted workspace (`UNTRUSTED_WORKSPACE`).
   * Resolves with the result, also when an expectation failed (`ok: false`); rejects only when the run could not start.
   */
  runScript(script: Uri | string, options?: RunScriptOptions): Promise<ScriptResult>;
  /** An ATR decoded (ISO/IEC 7816-3) and identified (pcsc-tools' smartcard_list.txt). */
  decodeAtr(atr: Hex): Promise<DecodedAtr>;
  /** A command APDU decoded field by field (ISO/IEC 7816-4 §5.1). */
  decodeCommand(apdu: Hex): Promise<DecodedCommand>;
  /** A status word (2 bytes) and what it means. */
  decodeStatusWord(sw: Hex): Promise<DecodedStatusWord>;
  /** BER-TLV data (ISO/IEC 7816-4 §6.3) as a tree with tag names (EMV, GlobalPlatform, PIV). */
  decodeTlv(data: Hex): Promise<DecodedTlv>;
  /** Closes your connections now (as your deactivation does). */
  dispose(): void;
}

/** Hex text (`"00 A4 04 00"` or `"00A40400"`) or the bytes. */
export type Hex = string | Uint8Array;

export type ShareMode = 'shared' | 'exclusive';
/** What to do with the card when a connection or transaction ends (SCARD_LEAVE_CARD …). */
export type Disposition = 'leave' | 'reset' | 'unpower' | 'eject';

export interface ConnectOptions {
  /** Default `shared`. */
  share?: ShareMode;
  /** 0 for T=0, 1 for T=1; default the card's first protocol. */
  protocol?: 0 | 1;
}

export interface Reader {
  /** pcsc-lite style name, e.g. `Workbench Simulator 00 00`. */
  readonly name: string;
  /** `simulator`, `vpcd`, `pcsc` or `usb-ccid`. */
  readonly driver: string;
  /** Counts the reader's card events (like the upper 16 bits of PC/SC's dwEventState). */
  readonly eventCount: number;
  /** null when the reader has no card. */
  readonly card: { readonly atr?: string; readonly protocol?: 0 | 1; readonly powered: boolean; readonly identified?: readonly string[] } | null;
  readonly connections: number;
  readonly exclusive: boolean;
  readonly inTransaction: boolean;
  /** Why the reader cannot be used now. */
  readonly unavailable?: string;
}

export interface CardEvent {
  readonly kind: 'inserted' | 'removed' | 'powered' | 'unpowered' | 'reset';
  readonly reader: string;
  readonly atr?: string;
  readonly protocol?: 0 | 1;
  /** The reader's event counter after the event. */
  readonly eventCount?: number;
  /**
   * `unpowered` only: the workbench powered the card down because no connection used it for
   * `smartcard.readerManager.idlePowerOff` seconds (pcscd's 5 s by default), not because someone
   * asked; the next connect powers it up again, freshly reset (a verified PIN is gone).
   */
  readonly idle?: true;
  /** With `idle`: how long it was unused, in ms. */
  readonly idleMs?: number;
}

/**
 * A connection (SCARDHANDLE). After the card was removed or reset by someone else, the next call
 * rejects once with `CARD_REMOVED` / `CARD_RESET` (nothing sent); `reset()` takes the card as it is.
 * After the reader manager restarted, every call rejects with `MANAGER_RESTARTED`: connect again.
 * `dispose()` disconnects, leaving the card as it is.
 */
export interface CardConnection extends Disposable {
  readonly reader: string;
  /** The ATR when connected (or last reset). */
  readonly atr: string;
  readonly protocol: 0 | 1 | undefined;
  /** One command APDU (4 to 65,544 bytes); T=0 GET RESPONSE / resend with Le are done for you and logged. */
  transmit(apdu: Hex): Promise<ApduResponse>;
  /** A reader control command (SCardControl), e.g. 0x42000D48 (CM_IOCTL_GET_FEATURE_REQUEST); answers the output as hex. */
  control(code: number, data?: Hex): Promise<string>;
  /** SCardBeginTransaction: waits while another connection holds the reader. Idle for 30 s, it is released. */
  beginTransaction(): Promise<void>;
  endTransaction(disposition?: Disposition): Promise<void>;
  /** SCardReconnect with a warm (default) or cold reset. */
  reset(mode?: 'warm' | 'cold'): Promise<{ atr: string; protocol?: 0 | 1 }>;
  /** SCardDisconnect; default `leave`. Disconnecting twice is harmless. */
  disconnect(disposition?: Disposition): Promise<void>;
}

export interface ApduResponse {
  /** Data and status word. */
  readonly response: string;
  /** Response data without the status word. */
  readonly data: string;
  /** 4 hex digits, e.g. `9000`. */
  readonly sw: string;
}

export interface RunScriptOptions {
  /** Reader name or glob; default the selected reader, else the only reader with a card. */
  reader?: string;
  /** Cancelling stops the run between two APDUs. */
  token?: CancellationToken;
}

export interface ScriptResult {
  readonly ok: boolean;
  readonly reader?: string;
  /** Commands sent (lines in a `repeat` count each time). */
  readonly commands: number;
  readonly durationMs: number;
  /** One per command line, in order. */
  readonly lines: readonly ScriptLineResult[];
  /** The first failure: a failed expectation, a card error, a syntax error. */
  readonly failure?: { readonly code: string; readonly message: string; readonly line?: number };
}

export interface ScriptLineResult {
  /** 1-based line of the script. */
  readonly line: number;
  /** Status word of the line's last response, e.g. `9000`. */
  readonly sw?: string;
  readonly swMeaning?: string;
  /** The last response as hex (data cut to 256 bytes; `responseBytes` says how long it was). */
  readonly response?: string;
  readonly responseBytes?: number;
  readonly ok: boolean;
  readonly message?: string;
  /** How many times the line ran. */
  readonly count: number;
}

export interface DecodedAtr {
  /** Readable lines, as the Readers view shows them. */
  readonly lines: readonly string[];
  /** Card names from smartcard_list.txt. */
  readonly identified: readonly string[];
  /** The parsed fields (TS, T0, interface bytes, historical bytes, TCK, protocols…). */
  readonly fields: Record<string, unknown>;
}

export interface DecodedCommand {
  /** One line, e.g. `SELECT (by DF name) CLA 00 P1 04 P2 00 Lc 07 Le 256`. */
  readonly summary: string;
  readonly cla: string;
  readonly claMeaning: string;
  readonly ins: string;
  readonly insName?: string;
  readonly p1: string;
  readonly p2: string;
  readonly params: readonly { readonly field: 'P1' | 'P2' | 'P1P2'; readonly value: string; readonly meaning: string }[];
  /** ISO 7816-4 case: `1`, `2S`, `3S`, `4S`, `2E`, `3E`, `4E`; absent when the lengths fit none. */
  readonly case?: string;
  readonly extended: boolean;
  readonly lc?: number;
  readonly data?: string;
  readonly le?: number;
  /** What is wrong with the command's length fields. */
  readonly errors: readonly string[];
}

export interface DecodedStatusWord {
  readonly sw: string;
  readonly meaning: string;
  readonly category: 'success' | 'warning' | 'error';
  /** 63 Cx: tries left. */
  readonly retries?: number;
  /** 61 xx: bytes still available. */
  readonly available?: number;
  /** 6C xx: the Le the card wants. */
  readonly correctLe?: number;
}

export interface TlvNode {
  /** Tag as hex, e.g. `6F`, `9F38`. */
  readonly tag: string;
  readonly name?: string;
  readonly length: number;
  /** Spaced hex, on primitive objects. */
  readonly value?: string;
  readonly children?: readonly TlvNode[];
}

export interface DecodedTlv {
  readonly nodes: readonly TlvNode[];
  /** False when the data ran out or broke the encoding (`error` says where). */
  readonly complete: boolean;
  readonly error?: { readonly offset: number; readonly message: string };
}

/** How every call rejects: an Error with a code. */
export interface SmartCardError extends Error {
  /**
   * `NO_READER`, `NO_CARD`, `CARD_REMOVED`, `CARD_RESET`, `READER_UNAVAILABLE`, `SHARING_VIOLATION`,
   * `PROTOCOL`, `TIMEOUT`, `CANCELLED`, `BAD_REQUEST`, `NOT_SUPPORTED`, `DRIVER`,
   * `NOT_RUNNING` (the reader manager is down), `MANAGER_RESTARTED` (this connection belonged to an earlier one),
   * `UNTRUSTED_WORKSPACE`, `DISPOSED` (your API object or connection was disposed).
   */
  readonly code: string;
}
