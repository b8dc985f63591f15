// Every message between the extension and the helper, declared once.
// The extension imports this file only (house rule 1). Bytes are hex strings.
// The client and the server bundle different vscode-jsonrpc versions, whose
// message-type classes are not interchangeable; so messages are plain typed
// descriptors and each side sends them through its own typed wrapper
// (server: server/src/lsp/rpc.ts; the extension has its twin).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

import type { DecodedExchange } from './wire';

/** A request: method name plus phantom parameter and result types. */
export interface Request<P, R> { readonly method: string; readonly _types?: [P, R] }
/** A notification: method name plus a phantom parameter type. */
export interface Notification<P> { readonly method: string; readonly _types?: P }
export type ParamsOf<T> = T extends Request<infer P, unknown> ? P : T extends Notification<infer P> ? P : never;
export type ResultOf<T> = T extends Request<unknown, infer R> ? R : never;

const request = <P, R>(method: string): Request<P, R> => ({ method });
const notification = <P>(method: string): Notification<P> => ({ method });

// ---------------------------------------------------------------- data

export type ProtocolNumber = 0 | 1;
export type ShareMode = 'shared' | 'exclusive';

export interface CardInfo {
  /** ATR as hex, once the card has been powered. */
  atr?: string;
  /** Active protocol after power-up. */
  protocol?: ProtocolNumber;
  /** The protocols the ATR offers (T=0 when it names none), once the ATR is known. */
  protocols?: ProtocolNumber[];
  powered: boolean;
  /** Present but did not answer to reset. */
  mute?: boolean;
  /** Powered down by the manager because nobody used it for the grace period (as pcscd does); the next connection powers it up (reset). */
  idle?: boolean;
  /** Card names matching the ATR in pcsc-tools' smartcard_list.txt. */
  identified?: string[];
}

export interface ReaderInfo {
  /** Unique pcsc-lite style name: `<name> [<interface>] (<serial>) NN SS`. */
  name: string;
  /** Driver id: `simulator`, `vpcd`, `pcsc`, `usb-ccid`. */
  driver: string;
  slot: number;
  /** Per-reader event counter (like the upper 16 bits of dwEventState). */
  eventCount: number;
  /** null when no card is in the reader. */
  card: CardInfo | null;
  /** Open connections and how they hold the reader. */
  connections: number;
  exclusive: boolean;
  inTransaction: boolean;
  /**
   * Who uses the reader, one entry per connection (PC/SC service clients' SCARD_SHARE_DIRECT
   * handles included), oldest first, at most MAX_READER_CLIENTS; absent from older helpers.
   */
  clients?: ReaderClient[];
  /** Connections beyond the ones `clients` lists. */
  moreClients?: number;
  /** Why the reader cannot be used, and what to do about it. */
  unavailable?: string;
  /** PC/SC part 10 features (e.g. `VERIFY_PIN_DIRECT 0x42330006`), read at the first power-up. */
  features?: string[];
  details?: Record<string, string>;
  /** What the reader says about itself (SCardGetAttrib, USB descriptors), read once after it appears. */
  facts?: ReaderFacts;
  /** Set while the editor holds a connection (Connect in the Readers view). */
  editor?: EditorConnection;
  /** The driver can eject the card (Disconnect with 'eject'). */
  canEject?: boolean;
}

/**
 * A reader's facts, as its driver reports them (PC/SC part 3 attributes, CCID descriptors). Numbers are
 * raw; the Readers view words them. Strings are cut to 128 characters, control characters removed.
 */
export interface ReaderFacts {
  /** Where they come from: `SCardGetAttrib`, `USB descriptors`, `built in`, `vpcd`. */
  source: string;
  /** SCARD_ATTR_VENDOR_NAME (USB iManufacturer). */
  vendorName?: string;
  /** SCARD_ATTR_VENDOR_IFD_TYPE, the model (USB iProduct). */
  ifdType?: string;
  /** SCARD_ATTR_VENDOR_IFD_VERSION as the driver reports it: 0xMMmmbbbb (libccid: bcdDevice << 16). */
  ifdVersion?: number;
  /** SCARD_ATTR_VENDOR_IFD_SERIAL_NO (USB iSerialNumber). */
  ifdSerial?: string;
  /** SCARD_ATTR_MAX_IFSD (CCID dwMaxIFSD): the longest T=1 information field the reader accepts. */
  maxIfsd?: number;
  /** SCARD_ATTR_MAXINPUT (libccid: dwMaxCCIDMessageLength − 10): the longest command the reader takes. */
  maxInput?: number;
  /** SCARD_ATTR_CHANNEL_ID: 0xDDDDCCCC, DDDD the channel type (0x0020 USB), CCCC its number. */
  channelId?: number;
  /** From the CCID class descriptor (usb-ccid). */
  ccid?: {
    /** dwFeatures, decoded. */
    features: string[];
    /** dwDataRate / dwMaxDataRate, bps. */
    dataRate: number;
    maxDataRate: number;
    /** dwDefaultClock / dwMaximumClock, kHz. */
    defaultClockKHz: number;
    maxClockKHz: number;
  };
  /**
   * The attributes' bytes as the reader's driver gave them (SCardGetAttrib's answer, NUL and all),
   * by tag as 8 hex digits ("00010100") → hex: what the PC/SC service answers to SCardGetAttrib, as
   * pcscd passes the IFD handler's bytes through. The fields above are the text for the view.
   */
  raw?: Record<string, string>;
  /** Attributes asked for and not answered, with the answer (`VENDOR_IFD_TYPE: SCARD_E_UNSUPPORTED_FEATURE`). */
  unanswered?: string[];
  /** Why there are no facts, or what limits them ("vpcd gives no reader attributes"). */
  note?: string;
}

/** The tag of a reader attribute as the key of ReaderFacts.raw: 8 lower-case hex digits. */
export function rawFactKey(tag: number): string {
  return (tag >>> 0).toString(16).padStart(8, '0');
}

/** At most this many entries in ReaderInfo.clients (the rest is counted in moreClients). */
export const MAX_READER_CLIENTS = 32;

/** One connection on a reader: who holds it, how, and whether it holds the reader's transaction. */
export interface ReaderClient {
  /**
   * A PC/SC program ("pcsc_scan (pid 4711)", or "client#3" where the system does not tell),
   * an extension's id (API), "script NAME.apdu", or "Connect (editor)".
   */
  client: string;
  share: ShareMode | 'direct';
  /** It holds the reader's transaction (SCardBeginTransaction; not a PC/SC client's exclusive hold by itself). */
  transaction: boolean;
}

/** The editor's own connection to a reader, opened from the Readers view. */
export interface EditorConnection {
  share: ShareMode;
  /** The protocol asked for; undefined = whichever the card offers first. */
  protocol?: ProtocolNumber;
}

/** What SCardDisconnect does with the card. */
export type Disposition = 'leave' | 'reset' | 'unpower' | 'eject';

export interface ReaderList {
  readers: ReaderInfo[];
  /** Bumped on every reader arrival or removal. */
  readerListCounter: number;
}

export interface DriverStatus {
  id: string;
  /**
   * running: reporting its readers; waiting: retrying quietly for something outside the workbench
   * (pcscd not running); unavailable: idle for a reason it cannot overcome (no USB here);
   * failed: could not start; disabled: turned off in the settings.
   */
  state: 'running' | 'waiting' | 'unavailable' | 'failed' | 'disabled';
  /** Why it is waiting, unavailable or failed. */
  message?: string;
  /** The way out, in words for this platform (how to start pcscd…). */
  hint?: string;
}

interface EntryBase {
  /** Monotonic across the helper's life. */
  seq: number;
  /** Milliseconds since the epoch. */
  time: number;
  reader?: string;
}

/** One command/response pair as the card saw it. */
export interface ExchangeEntry extends EntryBase {
  kind: 'exchange';
  reader: string;
  command: string;
  response: string;
  /** Status word as 4 hex digits, e.g. `9000`. */
  sw: string;
  swMeaning: string;
  swCategory: 'success' | 'warning' | 'error';
  durationMs: number;
  /** Set on exchanges made automatically (T=0 rules; the PIN retry-counter check before a VERIFY). */
  auto?: 'getResponse' | 'resendWithLe' | 'retryCounter';
  /** seq of the exchange the script asked for, on automatic steps. */
  parent?: number;
  runId?: number;
  /** 1-based script line. */
  line?: number;
  /** Who made it: an extension through the API (its id, e.g. `acme.applet-tools`) or a PC/SC program ("python3 (pid 4711)"). */
  client?: string;
}

export interface EventEntry extends EntryBase {
  kind: 'readerAdded' | 'readerRemoved' | 'cardInserted' | 'cardRemoved' | 'cardPowered' | 'cardUnpowered' | 'cardReset';
  reader: string;
  eventCount?: number;
  atr?: string;
  protocol?: ProtocolNumber;
  /** On power-up: card names matching the ATR in smartcard_list.txt. */
  identified?: string[];
  /** cardUnpowered: the manager's power-down of a card nobody used for the grace period (R77), not a client's. */
  idle?: boolean;
  /** With `idle`: the grace period it waited (ms; `smartcard.readerManager.idlePowerOff`), for "unused for N s". */
  idleMs?: number;
}

export interface ControlEntry extends EntryBase {
  kind: 'control';
  reader: string;
  code: number;
  command: string;
  response?: string;
  error?: string;
  durationMs: number;
  runId?: number;
  line?: number;
  /** Who sent it: an extension through the API (its id) or a PC/SC program ("python3 (pid 4711)"). */
  client?: string;
}

export interface ScriptEntry extends EntryBase {
  kind: 'scriptStarted' | 'scriptEnded' | 'echo';
  runId: number;
  file?: string;
  /** A run of one line (CodeLens "Run line"): its exchange is the log's row, without start/end rows around it. */
  lineRun?: boolean;
  ok?: boolean;
  message?: string;
  line?: number;
  /** The extension that ran the script through the API. */
  client?: string;
}

export type LogEntry = ExchangeEntry | EventEntry | ControlEntry | ScriptEntry;

export interface ErrorValue {
  code: string;
  message: string;
}

export interface RunScriptParams {
  /** Script text (the editor's buffer, saved or not). */
  text: string;
  /** Where it came from, for messages and the log. */
  uri?: string;
  /** Reader name or glob; default: the only reader with a card. */
  reader?: string;
  /** Run only these 1-based lines (inclusive); default the whole script. */
  fromLine?: number;
  toLine?: number;
  /** The extension that runs it through the API (its id): its rows in the log carry it. */
  client?: string;
}

/** One per command line of the script; a line inside `repeat` reports its last run. */
export interface LineResult {
  line: number;
  sw?: string;
  /** The line's last response as hex, data and status word (data cut to its first 256 bytes; `responseBytes` says how long it was). */
  response?: string;
  responseBytes?: number;
  /** What the status word means. */
  swMeaning?: string;
  ok: boolean;
  message?: string;
  /** How many times the line ran (the sum over lines equals `commands`). */
  count: number;
}

export interface RunScriptResult {
  runId: number;
  ok: boolean;
  reader?: string;
  commands: number;
  durationMs: number;
  /** Per command line, in order. */
  lines: LineResult[];
  /** The first failure: a failed expectation, a card error, a syntax error. */
  failure?: ErrorValue & { line?: number };
}

// ---------------------------------------------------------------- messages

/** helper → extension, once: the reader cache is filled and every driver has reported. */
export const StartedNotification = notification<ReaderList & { drivers: DriverStatus[]; version: string }>('smartcard/started');

/** helper → extension: log entries (exchanges and plug-and-play events), batched. */
export const EventsNotification = notification<{ entries: LogEntry[] }>('smartcard/events');

/** helper → extension: the reader cache changed (sent after the events that changed it). */
export const ReadersChangedNotification = notification<ReaderList & { drivers?: DriverStatus[] }>('smartcard/readersChanged');

/** helper → extension: progress of a running script. */
export const RunProgressNotification = notification<{ runId: number; done: number; total: number; line: number }>('smartcard/runProgress');

/** extension → helper: the reader cache. */
export const ReadersRequest = request<Record<string, never>, ReaderList>('smartcard/readers');

/** extension → helper: the state of each driver. */
export const DriversRequest = request<Record<string, never>, DriverStatus[]>('smartcard/drivers');

/** extension → helper: run a script; resolves when it ends (ok or not). */
export const RunScriptRequest = request<RunScriptParams, RunScriptResult>('smartcard/runScript');

/** extension → helper: stop a running script between two APDUs. */
export const CancelRunRequest = request<{ runId: number }, boolean>('smartcard/cancelRun');

/** extension → helper: insert the simulator's demo card into a simulator reader. */
export const SimulatorInsertCardRequest = request<{ reader: string; card?: 'T=0' | 'T=1' }, void>('smartcard/simulator/insertCard');

/** extension → helper: remove the card from a simulator reader. */
export const SimulatorRemoveCardRequest = request<{ reader: string }, void>('smartcard/simulator/removeCard');

/** extension → helper: the log entries kept in the helper (for a panel opened late). */
export const LogHistoryRequest = request<{ since?: number }, { entries: LogEntry[] }>('smartcard/logHistory');

/** extension → helper: an ATR decoded (ISO 7816-3) and identified (smartcard_list.txt), as readable lines. */
export const DecodeAtrRequest = request<{ atr: string }, { lines: string[]; identified: string[] }>('smartcard/decodeAtr');

// Reader operations from the Readers view. The reader is named exactly (no glob).
// Reset, power off and control use the editor's connection when it holds one.

/** extension → helper: open the editor's connection to a reader (powers the card if needed). */
export const ReaderConnectRequest = request<{ reader: string; share?: ShareMode; protocol?: ProtocolNumber }, ReaderInfo>('smartcard/reader/connect');

/** extension → helper: close the editor's connection, leaving, resetting, unpowering or ejecting the card. */
export const ReaderDisconnectRequest = request<{ reader: string; disposition?: Disposition }, void>('smartcard/reader/disconnect');

/** extension → helper: cold or warm reset; answers the new ATR (hex). */
export const ReaderResetRequest = request<{ reader: string; mode?: 'cold' | 'warm' }, { atr: string; protocol?: ProtocolNumber }>('smartcard/reader/reset');

/** extension → helper: remove power from the card. */
export const ReaderPowerOffRequest = request<{ reader: string }, void>('smartcard/reader/powerOff');

/** extension → helper: a reader control command (SCardControl / PC_to_RDR_Escape); logged as a control entry. */
export const ReaderControlRequest = request<{ reader: string; code: number; data?: string }, { response: string; durationMs: number }>('smartcard/reader/control');

/**
 * helper → extension: ask the user for a PIN with a masked input box, naming the reader and the
 * script line. The PIN comes back only sealed (`sealPin`), so no JSON-RPC trace or log sees it.
 */
export const AskPinRequest = request<AskPinParams, { sealed: SealedPin } | { cancelled: true }>('smartcard/askPin');

export interface AskPinParams {
  label: string;
  /** The reader the PIN goes to. */
  reader?: string;
  /** The script's file (URI) and 1-based line that asks. */
  uri?: string;
  line?: number;
  /** Tries left, when the retry counter was read just before (63 Cx). */
  tries?: number;
  /** The extension whose script asks (API runs), so the person knows who wants the PIN. */
  client?: string;
  /** Fresh random value per prompt (base64), bound into the sealed answer: an answer fits one prompt only. */
  challenge: string;
}

// ---------------------------------------------------------------- sealed PINs
// A PIN crosses JSON-RPC only sealed: AES-256-GCM under a key the extension makes per helper
// process and hands over outside JSON-RPC, in the helper's environment (PIN_KEY_ENV; the helper
// removes it from its environment at start). vscode-languageclient's trace (`smartcard.trace.server`)
// and VS Code's log files see only nonce and ciphertext.

/** Name of the environment variable that carries the key (base64, 32 bytes) to the helper. */
export const PIN_KEY_ENV = 'SMARTCARD_PIN_KEY';
/**
 * The folder (the extension's global storage, only the user's) where the helper keeps V8's code
 * cache of its bundle (server/src/codeCache.ts); handed over in the helper's environment.
 */
export const CODE_CACHE_ENV = 'SMARTCARD_HELPER_CODE_CACHE';

/** A sealed PIN: fresh 12-byte nonce, ciphertext with the 16-byte tag appended; both base64. */
export interface SealedPin { nonce: string; data: string }

export function newPinKey(): Buffer {
  return randomBytes(32);
}

/** The additional data a sealed answer is bound to: this prompt's challenge, label and reader. */
export function askPinAad(p: Pick<AskPinParams, 'challenge' | 'label' | 'reader'>): string {
  return `${AskPinRequest.method}\0${p.challenge}\0${p.label}\0${p.reader ?? ''}`;
}

/**
 * GCM's ciphertext is as long as its plaintext: the PIN goes in padded (a 2-byte length, the PIN,
 * zeros) to a multiple of PIN_BLOCK bytes, so a trace does not tell how many digits it has.
 */
const PIN_BLOCK = 32;

export function sealPin(key: Buffer, pin: string, aad: string): SealedPin {
  const bytes = Buffer.from(pin, 'utf8');
  const padded = Buffer.alloc(Math.ceil((bytes.length + 2) / PIN_BLOCK) * PIN_BLOCK);
  padded.writeUInt16BE(bytes.length, 0);
  bytes.copy(padded, 2);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const data = Buffer.concat([cipher.update(padded), cipher.final(), cipher.getAuthTag()]);
  padded.fill(0);
  bytes.fill(0);
  return { nonce: nonce.toString('base64'), data: data.toString('base64') };
}

/** The PIN, or undefined when `sealed` is not a PIN sealed with this key for this `aad`. */
export function openPin(key: Buffer, sealed: unknown, aad: string): string | undefined {
  if (!sealed || typeof sealed !== 'object') return undefined;
  const { nonce, data } = sealed as Partial<SealedPin>;
  if (typeof nonce !== 'string' || typeof data !== 'string' || data.length > 1024) return undefined;
  const iv = Buffer.from(nonce, 'base64');
  const body = Buffer.from(data, 'base64');
  if (iv.length !== 12 || body.length < 16 + PIN_BLOCK || (body.length - 16) % PIN_BLOCK !== 0) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - 16));
    const padded = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
    const n = padded.readUInt16BE(0);
    const pin = n + 2 <= padded.length ? padded.subarray(2, 2 + n).toString('utf8') : undefined;
    padded.fill(0);
    return pin;
  } catch {
    return undefined;
  }
}

/** The additional data of the simulator card's PIN in `initializationOptions`. */
export const SIMULATOR_PIN_AAD = 'smartcard/initialize\0simulator.pin';

/** Settings the extension passes at start-up (initializationOptions) and on change. */
export interface HelperSettings {
  /** `pin` in process (the CLI); over JSON-RPC the extension sends `sealedPin` (with SIMULATOR_PIN_AAD) instead. */
  simulator?: { enabled?: boolean; card?: 'T=0' | 'T=1'; readers?: number; pin?: string; sealedPin?: SealedPin; pinpad?: boolean };
  vpcd?: { enabled?: boolean; ports?: number[] };
  pcsc?: { enabled?: boolean; library?: string };
  usbCcid?: { enabled?: boolean; rawTrace?: boolean };
  pin?: PinSettings;
  /** The reader manager's own settings (no restart needed: sent again when they change). */
  readerManager?: ReaderManagerSettings;
  /** The PC/SC service for other programs (`smartcard.pcscService.enabled`; no restart: it starts and stops). */
  pcscService?: PcscServiceSettings;
}

export interface PcscServiceSettings {
  enabled?: boolean;
  /** The socket (default: the design's path); tests only, the editor never sends one. */
  socketPath?: string;
}

/** The PC/SC service's state as the helper reports it. */
export interface PcscServiceStatus {
  state: 'running' | 'stopped' | 'failed';
  /** While running: the socket PCSCLITE_CSOCK_NAME names. */
  socketPath?: string;
  /** Why it failed (a folder of another user, another service on the socket). */
  message?: string;
}

/** The line a shell evaluates to use the PC/SC service (`scard serve` prints it; the editor copies it). */
export function pcscServiceExportLine(socketPath: string): string {
  const word = /^[A-Za-z0-9_@%+=:,./-]+$/.test(socketPath) ? socketPath : `'${socketPath.replace(/'/g, `'\\''`)}'`;
  return `export PCSCLITE_CSOCK_NAME=${word}`;
}

/** helper → extension: the PC/SC service started, stopped or failed (sent on every change, and after start). */
export const PcscServiceStatusNotification = notification<PcscServiceStatus>('smartcard/pcscService/status');

export interface ReaderManagerSettings {
  /** A card or reader that does not answer one driver call within this long fails it (seconds, at least 1; default 60). */
  exchangeTimeoutSeconds?: number;
  /** A card nobody uses is powered down after this long, as pcscd does (seconds; default 5; 0: never). */
  idlePowerOffSeconds?: number;
}

export type PinCachePolicy = 'none' | 'run' | 'session';

export interface PinSettings {
  /** none: ask every time; run: once per script run; session: until idle time-out, card removal or reset. */
  cache?: PinCachePolicy;
  /** Session cache: forget a PIN not used for this long (seconds). */
  idleTimeoutSeconds?: number;
  /** Read the retry counter before a VERIFY and ask before using the last try. */
  checkRetries?: boolean;
}

/** extension → helper: settings changed (only the parts that need no restart). */
export const SettingsNotification = notification<HelperSettings>('smartcard/settings');

/** extension → helper: forget every cached PIN. Returns how many were forgotten. */
export const ClearPinCacheRequest = request<Record<string, never>, number>('smartcard/clearPinCache');

/** helper → extension: ask the user to confirm something risky (a VERIFY with one try left). */
export const ConfirmRequest = request<{ message: string; confirm: string }, { confirmed: boolean }>('smartcard/confirm');

// TlvView and DecodedExchange travel on to the APDU Log panel: declared once, in ./wire.
export type { DecodedExchange, SwCategory, TlvView } from './wire';

/** extension → helper: decode a logged exchange (command and response hex as in the log, `**` for masked bytes). */
export const DecodeExchangeRequest = request<{ command: string; response: string }, DecodedExchange>('smartcard/decodeExchange');

/**
 * extension → helper: send one command APDU ("Smart Card: Send APDU…"), typed in hex with an optional
 * `=> expected`, checked as a script line and run like a one-line script (same reader choice, connection and gate).
 */
export const SendApduRequest = request<{ apdu: string; reader?: string }, RunScriptResult & { exchanges: ExchangeEntry[] }>('smartcard/sendApdu');

// ---------------------------------------------------------------- the API for other extensions
// The extension's public API (api/smartcard-workbench.d.ts) goes through these: each call names
// the calling extension (`client`), whose rows in the log carry its id, and the API object's
// `session` (a random id per object handed out): a handle belongs to the session that opened it. A
// handle is a manager connection in this helper process; a restarted helper knows none of the old ones.

export interface ApiConnectParams {
  client: string;
  /** The API object's own random id: its handles are reachable from it only. */
  session?: string;
  /** The reader's exact name. */
  reader: string;
  share?: ShareMode;
  protocol?: ProtocolNumber;
}

export interface ApiConnectResult {
  handle: number;
  reader: string;
  /** ATR as hex. */
  atr: string;
  protocol?: ProtocolNumber;
}

/** extension → helper: open a connection for an extension (SCardConnect). */
export const ApiConnectRequest = request<ApiConnectParams, ApiConnectResult>('smartcard/api/connect');

/** extension → helper: one command APDU on an API connection, T=0 rules applied; answers response and status word (hex). */
export const ApiTransmitRequest = request<{ client: string; session?: string; handle: number; apdu: string }, { response: string; sw: string }>('smartcard/api/transmit');

/** extension → helper: a control command (SCardControl) on an API connection. */
export const ApiControlRequest = request<{ client: string; session?: string; handle: number; code: number; data?: string }, { response: string }>('smartcard/api/control');

/** extension → helper: begin (SCardBeginTransaction) or end a transaction on an API connection. */
export const ApiTransactionRequest = request<{ client: string; session?: string; handle: number; action: 'begin' | 'end'; disposition?: Disposition }, void>('smartcard/api/transaction');

/** extension → helper: reconnect an API connection with a warm or cold reset; answers the ATR. */
export const ApiResetRequest = request<{ client: string; session?: string; handle: number; mode?: 'cold' | 'warm' }, { atr: string; protocol?: ProtocolNumber }>('smartcard/api/reset');

/** extension → helper: close an API connection (SCardDisconnect). Unknown handles are already closed. */
export const ApiDisconnectRequest = request<{ client: string; session?: string; handle: number; disposition?: Disposition }, void>('smartcard/api/disconnect');

/** extension → helper: close every connection of an extension (it deactivated). Answers how many were open. */
export const ApiReleaseRequest = request<{ client: string; session?: string }, number>('smartcard/api/release');

export type ApiDecodeKind = 'atr' | 'command' | 'sw' | 'tlv';

/** extension → helper: decode an ATR, a command APDU, a status word or BER-TLV with the helper's decoders. */
export const ApiDecodeRequest = request<{ kind: ApiDecodeKind; hex: string }, unknown>('smartcard/api/decode');
