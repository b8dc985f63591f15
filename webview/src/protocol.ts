// The one message protocol between the extension and the APDU Log webview.
// Imported by both sides: no DOM, no vscode, no server code (the wire types of
// server/src/wire.ts are imported as types only, erased from the bundle). The row types are
// the panel's own view model; the extension maps the helper's log entries onto them.
import type { DecodedExchange, SwCategory } from '../../server/src/wire';

// ---------------------------------------------------------------- rows

export type { SwCategory } from '../../server/src/wire';

interface RowBase {
  /** Unique in the panel: helper generation and sequence number, e.g. `1:42`. */
  id: string;
  /** Milliseconds since the epoch. */
  time: number;
  reader?: string;
  /** The extension that made the row through the workbench's API (its id). */
  client?: string;
}

/** T=0 rules (61xx, 6Cxx) and the PIN retry-counter check before a VERIFY. */
export type AutoStep = 'getResponse' | 'resendWithLe' | 'retryCounter';

export interface ExchangeRow extends RowBase {
  kind: 'exchange';
  reader: string;
  /** Hex, no spaces. */
  command: string;
  response: string;
  /** 4 hex digits, e.g. `9000`. */
  sw: string;
  swMeaning: string;
  swCategory: SwCategory;
  durationMs: number;
  /** Automatic step made by the reader manager, nested under `parent`. */
  auto?: AutoStep;
  parent?: string;
  /** 1-based script line and the script it came from. */
  line?: number;
  uri?: string;
}

export interface ControlRow extends RowBase {
  kind: 'control';
  reader: string;
  code: number;
  command: string;
  response?: string;
  error?: string;
  durationMs: number;
  line?: number;
  uri?: string;
}

export type CardEventKind = 'readerAdded' | 'readerRemoved' | 'cardInserted' | 'cardRemoved' | 'cardPowered' | 'cardUnpowered' | 'cardReset';

export interface EventRow extends RowBase {
  kind: CardEventKind;
  reader: string;
  atr?: string;
  protocol?: 0 | 1;
  /** The card's name from smartcard_list.txt (first line of its description). */
  card?: string;
  /** cardUnpowered: powered down by the reader manager because nobody used it (R77), not by a person or a program. */
  idle?: boolean;
  /** With `idle`: how long it was unused (ms, the `smartcard.readerManager.idlePowerOff` period). */
  idleMs?: number;
}

export interface ScriptRow extends RowBase {
  kind: 'scriptStarted' | 'scriptEnded' | 'echo';
  file?: string;
  ok?: boolean;
  message?: string;
  line?: number;
  uri?: string;
}

/** The reader manager itself started, crashed or stopped (written by the extension). */
export interface ManagerRow extends RowBase {
  kind: 'manager';
  state: ManagerState;
  message: string;
}

export type LogRow = ExchangeRow | ControlRow | EventRow | ScriptRow | ManagerRow;

export type ManagerState = 'starting' | 'running' | 'restarting' | 'stopped';

/**
 * A batch of rows in column form, as the extension posts every row (plain JSON values and one
 * typed array; packed and read by ./packed, which says the layout of `num`).
 */
export interface PackedRows {
  /** Rows in the batch. */
  n: number;
  /**
   * The number-like columns as bytes (layout: ./packed). A typed array: VS Code sends its buffer
   * beside the message's JSON and the workbench transfers it to the webview, so no renderer's
   * JavaScript heap holds it as a string (webviews share the workbench's heap in code-server).
   */
  num: Uint8Array;
  /** Reader, client, status word, meaning, script URI, short hex: each distinct string once. */
  strings: string[];
  /** Hex longer than ./packed's SHARED_HEX_MAX (24 digits), in the order the columns refer to them. */
  long: string[];
  /** `[row, fields, row, fields, …]`, rows ascending: the fields the columns do not hold. */
  rare: unknown[];
}

// ---------------------------------------------------------------- the log's bound

/**
 * Rows the APDU Log keeps: the extension's store (extension/src/logStore.ts) and the panel's
 * model (./model.ts) both hold the newest this many, so a row the panel shows is one the
 * extension can still decode.
 */
export const LOG_CAPACITY = 100_000;

/**
 * Both trim back to their capacity only once they hold a quarter more, so a busy log does not
 * copy its rows on every batch.
 */
export function logHighWater(capacity: number): number {
  return capacity + Math.floor(capacity / 4);
}

// ---------------------------------------------------------------- decoding

// TlvView and DecodedExchange (an exchange decoded by the helper, shown when its row is
// expanded) come from the helper unchanged: declared once, in server/src/wire.ts (types only).
export type { DecodedExchange, TlvView } from '../../server/src/wire';

// ---------------------------------------------------------------- filters

/** What the panel shows; also what an export from the panel writes (see ./filter). */
export interface LogFilter {
  /** Free text: hex with or without spaces, reader, SW, meaning. */
  text: string;
  /** One reader's rows only; '' for all. */
  reader: string;
  /**
   * One client's rows only (a row's `client`), or the workbench's own (WORKBENCH_CLIENT in
   * ./filter: rows without a client); '' or absent for all. Events and manager rows are nobody's
   * and pass.
   */
  client?: string;
  /** Status-word classes of the exchanges shown. */
  success: boolean;
  warning: boolean;
  error: boolean;
  /** Plug-and-play and power events. */
  events: boolean;
}

export type ExportFormat = 'text' | 'jsonl';

/** The answer to `decode` for a row the extension's log has trimmed (or cleared) meanwhile. */
export interface TrimmedRow {
  trimmed: true;
}

// ---------------------------------------------------------------- messages

export interface ErrorValue {
  code: string;
  message: string;
}

/** Requests the webview may send, with their parameters and results. */
export interface WebviewRequests {
  /** Forget every row (in the extension's buffer too). */
  clear: { params: Record<string, never>; result: { cleared: number } };
  /** Open the script a row came from at its line. */
  revealLine: { params: { uri: string; line: number }; result: void };
  /** Put text on the clipboard. */
  copy: { params: { text: string }; result: void };
  /**
   * Decode one exchange (the helper does it), for an expanded row; `trimmed` when the
   * extension's log no longer holds the row (it keeps the newest LOG_CAPACITY rows).
   */
  decode: { params: { id: string }; result: DecodedExchange | TrimmedRow };
  /** Export the extension's whole log, with the panel's filter; asks the format and the file. */
  export: { params: { filter: LogFilter }; result: { path: string; rows: number } | null };
}
export type WebviewRequestMethod = keyof WebviewRequests;

/** webview → extension */
export type WebviewMessage =
  | { type: 'ready' }
  | { [M in WebviewRequestMethod]: { type: 'request'; id: number; method: M; params: WebviewRequests[M]['params'] } }[WebviewRequestMethod];

/** extension → webview */
export type HostMessage =
  /** New rows, batched; `reset` replaces everything shown (history after `ready`, or a clear). */
  | { type: 'rows'; rows: LogRow[]; reset?: boolean }
  /**
   * The same in column form (./packed): the history, so that no object is made per row on the way.
   * `total`, with `reset`: the rows the whole history has (its batches follow), so that the panel
   * sizes its columns once.
   */
  | { type: 'packedRows'; rows: PackedRows; reset?: boolean; total?: number }
  | { type: 'state'; state: ManagerState; readers: number; detail?: string }
  | { type: 'response'; id: number; result: unknown }
  | { type: 'error'; id: number; error: ErrorValue };

// ---------------------------------------------------------------- validation

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/** Parameter checks per request, as data. */
const paramChecks: { [M in WebviewRequestMethod]: (p: Record<string, unknown>) => boolean } = {
  clear: () => true,
  revealLine: (p) => typeof p.uri === 'string' && p.uri.length < 4096 && isInt(p.line) && p.line >= 1,
  copy: (p) => typeof p.text === 'string' && p.text.length < 10_000_000,
  decode: (p) => typeof p.id === 'string' && p.id.length > 0 && p.id.length < 100,
  export: (p) => isFilter(p.filter),
};

/** A filter as the webview sends it, checked field by field. */
export function isFilter(v: unknown): v is LogFilter {
  return isObject(v) && typeof v.text === 'string' && v.text.length < 10_000 && typeof v.reader === 'string' && v.reader.length < 1000
    && (v.client === undefined || (typeof v.client === 'string' && v.client.length < 1000))
    && typeof v.success === 'boolean' && typeof v.warning === 'boolean' && typeof v.error === 'boolean' && typeof v.events === 'boolean';
}

/**
 * A message from the webview, checked field by field; anything else is rejected
 * with the reason (the webview is untrusted content as far as the host goes).
 */
export function parseWebviewMessage(raw: unknown): { ok: true; message: WebviewMessage } | { ok: false; reason: string } {
  if (!isObject(raw)) return { ok: false, reason: 'message is not an object' };
  if (raw.type === 'ready') return { ok: true, message: { type: 'ready' } };
  if (raw.type !== 'request') return { ok: false, reason: `unknown message type ${JSON.stringify(raw.type)}` };
  if (!isInt(raw.id) || raw.id < 0) return { ok: false, reason: 'request id must be a non-negative integer' };
  const method = raw.method;
  if (typeof method !== 'string' || !Object.prototype.hasOwnProperty.call(paramChecks, method)) {
    return { ok: false, reason: `unknown request ${JSON.stringify(method)}` };
  }
  const params = raw.params ?? {};
  if (!isObject(params) || !paramChecks[method as WebviewRequestMethod](params)) {
    return { ok: false, reason: `bad parameters for ${method}` };
  }
  return { ok: true, message: { type: 'request', id: raw.id, method, params } as WebviewMessage };
}
