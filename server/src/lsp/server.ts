// The helper process: language server for `apdu` and host of the reader
// manager. Created over any connection, so tests drive it over in-memory streams.

import { WORKBENCH_VERSION } from '../util/version';
import { randomBytes } from 'node:crypto';
import {
  type CancellationToken, type Connection, TextDocumentSyncKind, TextDocuments, ResponseError,
} from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { createDrivers, identifyAtr } from '../drivers/registry';
import { SimulatorDriver } from '../drivers/simulator/driver';
import { type Connection as CardConnection, ReaderManager } from '../manager/manager';
import {
  AskPinRequest, CancelRunRequest, DriversRequest, EventsNotification, type HelperSettings, LogHistoryRequest,
  type LogEntry, ReadersChangedNotification, ReadersRequest, RunProgressNotification, RunScriptRequest,
  SimulatorInsertCardRequest, SimulatorRemoveCardRequest, StartedNotification, ClearPinCacheRequest, ConfirmRequest,
  type PinSettings, SettingsNotification, DecodeAtrRequest, type ControlEntry, type ReaderList, type Disposition,
  ReaderConnectRequest, ReaderDisconnectRequest, ReaderResetRequest, ReaderPowerOffRequest, ReaderControlRequest,
  type AskPinParams, askPinAad, openPin, SIMULATOR_PIN_AAD,
} from '../protocol';
import { SessionPinCache } from '../script/pins';
import { describeAtr, parseAtr } from '../codecs/atr';
import { fromHex, toHex, toSpacedHex } from '../util/hex';
import type { Driver } from '../drivers/driver';
import { allocateRunId, runScript } from '../script/engine';
import { parseScript } from '../script/parser';
import type { Script } from '../script/ast';
import { ScError, asScError } from '../util/errors';
import * as features from './features';
import { DecodeExchangeRequest, SendApduRequest, type ExchangeEntry } from '../protocol';
import { checkOneApdu } from './sendApdu';
import { PcscServiceStatusNotification, type PcscServiceSettings, type PcscServiceStatus } from '../protocol';
import { ManagerBackend } from '../service/managerBackend';
import { PcscService } from '../service/session';
import { type PcscServer, startPcscServer } from '../service/server';
import { decodeExchange } from './decodeExchange';
import { ask, handle, notify } from './rpc';
import { checkClient, registerApi } from './api';

export const HELPER_VERSION = WORKBENCH_VERSION;

/** How often at most the Readers view hears that a transaction began or ended (nothing else changing). */
const TRANSACTIONS_SHOWN_EVERY_MS = 100;
/**
 * The log stream (`smartcard/events`) goes out in batches: when one holds EVENTS_BATCH_MAX entries,
 * or EVENTS_BATCH_MS after its first entry (one frame: a row shows at most a frame later), and at
 * once before anything that must follow its entries (every response, readersChanged, runProgress,
 * started, a PIN or confirm prompt, the PC/SC service's status, shutdown and exit). Once per
 * event-loop turn was once per APDU with a vpcd card: a third of the helper's CPU went to IPC writes.
 */
const EVENTS_BATCH_MAX = 1000;
const EVENTS_BATCH_MS = 16;

export interface HelperOptions {
  /** Drivers to use instead of the ones from settings (tests). */
  drivers?: Driver[];
  /** Reader initialization on insertion (default on; tests of a script's own exchanges may turn it off). */
  initializeCards?: boolean;
  /**
   * The key PINs from the editor are sealed with (main.ts takes it from the environment, PIN_KEY_ENV).
   * Without one the helper takes no PIN over JSON-RPC.
   */
  pinKey?: Buffer;
  /** The script parser (tests count its calls); default parseScript. */
  parseScript?: (text: string) => Script;
  /** How the helper's start used V8's code cache (boot.ts), said once in the log. */
  codeCache?: string;
}

export function createHelper(connection: Connection, options: HelperOptions = {}): { manager: () => ReaderManager | null } {
  const documents = new TextDocuments(TextDocument);
  const parsed = new Map<string, { version: number; script: Script }>();
  let manager: ReaderManager | null = null;
  let started: Promise<ReaderManager> | null = null;
  const runs = new Map<number, AbortController>();
  const sessionPins = new SessionPinCache();
  /** The editor's own connections (Connect in the Readers view), by reader name. */
  const editorConnections = new Map<string, CardConnection>();
  /** Readers a Connect is under way on, so two at once cannot both open a connection. */
  const editorConnecting = new Set<string>();
  /** The cache as clients see it: with the editor's connections and what each driver allows. */
  const decorate = (m: ReaderManager, list: ReaderList): ReaderList => ({
    ...list,
    readers: list.readers.map((r) => {
      const c = editorConnections.get(r.name);
      return {
        ...r,
        ...(c ? { editor: { share: c.share, ...(c.requestedProtocol !== undefined ? { protocol: c.requestedProtocol } : {}) } } : {}),
        ...(m.canEject(r.name) ? { canEject: true } : {}),
      };
    }),
  });
  let pinSettings: PinSettings = {};
  /** The PC/SC service for other programs: wanted by the settings, and what runs. */
  let pcscWanted: PcscServiceSettings = {};
  let pcscRunning: { server: PcscServer; service: PcscService; backend: ManagerBackend } | null = null;
  let pcscStatus: PcscServiceStatus = { state: 'stopped' };
  /** Starts and stops run one after another (a setting flipped twice quickly). */
  let pcscQueue: Promise<void> = Promise.resolve();
  const syncPcscService = (): Promise<void> => {
    pcscQueue = pcscQueue.then(async () => {
      const m = manager;
      const want = pcscWanted.enabled === true && m !== null && !shuttingDown;
      if (pcscRunning && (!want || pcscRunning.backend.manager !== m)) {
        const { server, service, backend } = pcscRunning;
        pcscRunning = null;
        await server.close();
        service.dispose();
        backend.dispose();
        log('info', 'PC/SC service stopped; its socket is removed');
        pcscStatus = { state: 'stopped' };
        flush(); notify(connection, PcscServiceStatusNotification, pcscStatus);
      }
      if (!want || pcscRunning || !m) {
        if (!want && pcscStatus.state === 'failed') {
          pcscStatus = { state: 'stopped' };
          flush(); notify(connection, PcscServiceStatusNotification, pcscStatus);
        }
        return;
      }
      const backend = new ManagerBackend(m, { log: (level, message) => log(level, `pcsc service: ${message}`) });
      const service = new PcscService(backend, (level, message) => log(level, `pcsc service: ${message}`));
      try {
        const server = await startPcscServer(service, pcscWanted.socketPath ? { socketPath: pcscWanted.socketPath } : {});
        pcscRunning = { server, service, backend };
        log('info', `PC/SC service listening on ${server.socketPath} (PCSCLITE_CSOCK_NAME)`);
        pcscStatus = { state: 'running', socketPath: server.socketPath };
      } catch (e) {
        service.dispose();
        backend.dispose();
        const message = e instanceof Error ? e.message : String(e);
        log('warn', `PC/SC service not started: ${message}`);
        pcscStatus = { state: 'failed', message };
      }
      flush(); notify(connection, PcscServiceStatusNotification, pcscStatus);
    }).catch((e) => log('error', `PC/SC service: ${asScError(e).message}`));
    return pcscQueue;
  };
  let shuttingDown = false;
  /** The exchange time-out from settings, in ms (undefined: the manager's default, 60 s). */
  let exchangeTimeoutMs: number | undefined;
  /** The idle power-off from settings, in ms (undefined: the manager's default, pcscd's 5 s; 0: never). */
  let powerOffGraceMs: number | undefined;
  const applySettings = (settings: HelperSettings) => {
    const seconds = settings.readerManager?.exchangeTimeoutSeconds;
    if (typeof seconds === 'number' && Number.isFinite(seconds)) {
      exchangeTimeoutMs = Math.max(1, seconds) * 1000;
      manager?.setExchangeTimeout(exchangeTimeoutMs);
    }
    const idle = settings.readerManager?.idlePowerOffSeconds;
    if (typeof idle === 'number' && Number.isFinite(idle) && idle >= 0) {
      powerOffGraceMs = Math.min(idle, 86_400) * 1000;
      manager?.setPowerOffGrace(powerOffGraceMs);
    }
    pinSettings = { ...pinSettings, ...(settings.pin ?? {}) };
    sessionPins.setIdleTimeout((pinSettings.idleTimeoutSeconds ?? 300) * 1000);
    if (pinSettings.cache !== 'session') sessionPins.clear();
    if (settings.pcscService) {
      pcscWanted = { ...pcscWanted, ...settings.pcscService };
      void syncPcscService();
    }
  };

  /** Asks the editor for a PIN; the answer arrives sealed and is opened here, never logged. */
  const askPin = async (p: Omit<AskPinParams, 'challenge'>, cancelled: string): Promise<string> => {
    if (!options.pinKey) throw new ScError('NOT_SUPPORTED', 'This reader manager was started without a PIN key, so it cannot take a PIN from the editor. Run "Smart Card: Restart Reader Manager".');
    const params: AskPinParams = { ...p, challenge: randomBytes(16).toString('base64') };
    flush(); // the rows that led to the prompt first
    const answer = await ask(connection, AskPinRequest, params);
    if ('cancelled' in answer) throw new ScError('CANCELLED', cancelled);
    const pin = openPin(options.pinKey, answer.sealed, askPinAad(params));
    if (pin === undefined) throw new ScError('BAD_REQUEST', `The answer to the PIN prompt "${p.label}" was not sealed for this prompt with this reader manager's key; the PIN was not used.`);
    return pin;
  };

  const log = (level: string, message: string) => {
    const line = `[${level}] ${message}`;
    if (level === 'error') connection.console.error(line);
    else if (level === 'warn') connection.console.warn(line);
    else connection.console.log(line);
  };

  const parseText = options.parseScript ?? parseScript;
  const parse = (doc: TextDocument): Script => {
    const hit = parsed.get(doc.uri);
    if (hit && hit.version === doc.version) return hit.script;
    const script = parseText(doc.getText());
    parsed.set(doc.uri, { version: doc.version, script });
    return script;
  };

  /**
   * The script of a run: "Run APDU Script" sends the editor's text and uri, and the helper has parsed
   * that open document already (diagnostics on every change): exactly that text runs from that parse
   * (a 10,000-line file took 4-14 µs per line to parse again). Any other text is parsed from the request.
   */
  const parseRun = (text: string, uri: string | undefined): Script => {
    const doc = uri ? documents.get(uri) : undefined;
    return doc && doc.getText() === text ? parse(doc) : parseText(text);
  };

  // Batch log entries by size and time (EVENTS_BATCH_MAX, EVENTS_BATCH_MS), not per event-loop turn.
  let batch: LogEntry[] = [];
  let batchTimer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (batchTimer) { clearTimeout(batchTimer); batchTimer = undefined; }
    if (!batch.length) return;
    const entries = batch;
    batch = [];
    notify(connection, EventsNotification, { entries });
  };
  let readersScheduled = false;
  let transactionsTimer: NodeJS.Timeout | undefined;

  async function startManager(settings: HelperSettings): Promise<ReaderManager> {
    const keypad = (prompt: string) => askPin({ label: prompt }, 'PIN entry on the simulated keypad was cancelled.');
    const m = new ReaderManager(options.drivers ?? createDrivers(settings, { keypad, trace: (line) => log('info', line) }), {
      log, identify: (atr) => identifyAtr(atr),
      ...(options.initializeCards === false ? { initializeCards: false } : {}),
      ...(exchangeTimeoutMs !== undefined ? { exchangeTimeoutMs } : {}),
      ...(powerOffGraceMs !== undefined ? { powerOffGraceMs } : {}),
    });
    manager = m;
    m.onEntry((e) => {
      // A card that left, was reset or re-powered takes its cached PINs with it.
      if (e.kind === 'cardRemoved' || e.kind === 'cardReset' || e.kind === 'cardPowered' || e.kind === 'readerRemoved') {
        sessionPins.clearReader(e.reader);
      }
      // The editor's connection goes with its card or reader (like SCARD_W_REMOVED_CARD).
      if (e.kind === 'cardRemoved' || e.kind === 'readerRemoved') {
        const c = editorConnections.get(e.reader);
        if (c) { editorConnections.delete(e.reader); c.close(); }
      }
      if (batch.push(e) >= EVENTS_BATCH_MAX) flush();
      else if (!batchTimer) batchTimer = setTimeout(flush, EVENTS_BATCH_MS);
    });
    const sendReaders = () => {
      readersScheduled = false;
      flush(); // events first, then the cache they changed
      notify(connection, ReadersChangedNotification, { ...decorate(m, m.list()), drivers: m.driverStates() });
    };
    m.onReadersChanged((what) => {
      if (what === 'transactions') {
        // Transactions can begin and end thousands of times a second (PC/SC clients, scripts):
        // the Readers view hears of them at most every TRANSACTIONS_SHOWN_EVERY_MS.
        if (readersScheduled || transactionsTimer) return;
        transactionsTimer = setTimeout(() => { transactionsTimer = undefined; if (!readersScheduled && !shuttingDown) sendReaders(); }, TRANSACTIONS_SHOWN_EVERY_MS);
        return;
      }
      if (readersScheduled) return;
      readersScheduled = true;
      setImmediate(sendReaders);
    });
    await m.start();
    flush();
    const list = decorate(m, m.list());
    log('info', `reader manager started with ${list.readers.length} reader(s)${options.codeCache ? ` (code cache: ${options.codeCache})` : ''}`);
    notify(connection, StartedNotification, { ...list, drivers: m.driverStates(), version: HELPER_VERSION });
    // The PC/SC service on the manager's readers (once they are known, so a first client sees them).
    await syncPcscService();
    return m;
  }

  const ready = (): Promise<ReaderManager> => {
    if (!started) throw new ResponseError(-32002, 'The reader manager has not started yet.');
    return started;
  };

  const wrap = <P, R>(fn: (p: P, token: CancellationToken) => Promise<R>) => async (p: P, token: CancellationToken): Promise<R> => {
    try { return await fn(p, token); } catch (e) {
      if (e instanceof ResponseError) throw e;
      const err = asScError(e);
      throw new ResponseError(1, err.message, { code: err.code, message: err.message });
    } finally {
      flush(); // the entries a request made (a run's rows and scriptEnded) before its response
    }
  };

  let initSettings: HelperSettings = {};
  connection.onInitialize((params) => {
    const given = (params.initializationOptions ?? {}) as HelperSettings;
    initSettings = simulatorPinOpened(given, options.pinKey);
    if (given.simulator?.sealedPin && initSettings.simulator?.pin === undefined) {
      log('warn', 'The simulator card\'s PIN setting could not be opened (not sealed with this reader manager\'s key); the card keeps its default PIN.');
    }
    applySettings(initSettings);
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        codeLensProvider: { resolveProvider: false },
        codeActionProvider: true,
        documentSymbolProvider: true,
        completionProvider: { triggerCharacters: ['$'] },
      },
      serverInfo: { name: 'smartcard-workbench-helper', version: HELPER_VERSION },
    };
  });
  connection.onInitialized(() => {
    started = startManager(initSettings);
    started.catch((e) => log('error', `reader manager failed to start: ${asScError(e).message}`));
  });
  sessionPins.onDropped((_reason, n) => log('info', `${n} session PIN(s) dropped after the idle time-out`));
  connection.onShutdown(async () => {
    for (const c of runs.values()) c.abort();
    sessionPins.dispose();
    shuttingDown = true;
    await syncPcscService();
    await manager?.stop();
    flush(); // nothing the stop logged is lost: the client sends exit right after this response
  });
  connection.onExit(() => flush());

  handle(connection, ReadersRequest, wrap(async () => { const m = await ready(); return decorate(m, m.list()); }));
  handle(connection, DriversRequest, wrap(async () => (await ready()).driverStates()));
  handle(connection, LogHistoryRequest, wrap(async (p) => ({ entries: (await ready()).historySince(p?.since) })));

  handle(connection, RunScriptRequest, wrap(async (p, token) => {
    const m = await ready();
    if (typeof p?.text !== 'string') throw new ScError('BAD_REQUEST', 'runScript needs the script text.');
    if (p.text.length > 10_000_000) throw new ScError('BAD_REQUEST', 'The script is larger than 10 MB.');
    optionalString(p.reader, 'reader');
    optionalString(p.uri, 'uri', 4096);
    const client = p.client === undefined || p.client === null ? undefined : checkClient(p.client);
    for (const k of ['fromLine', 'toLine'] as const) {
      const v = p[k];
      if (v !== undefined && v !== null && (!Number.isInteger(v) || v < 1)) throw new ScError('BAD_REQUEST', `${k} must be a line number (1 or more).`);
    }
    const runId = allocateRunId();
    const abort = new AbortController();
    runs.set(runId, abort);
    // LSP's $/cancelRequest (the editor's Cancel) stops the run between APDUs, like CancelRunRequest.
    const onCancel = token?.onCancellationRequested(() => abort.abort());
    try {
      return await runScript(parseRun(p.text, p.uri), {
        manager: m, runId, signal: abort.signal,
        ...(p.reader ? { reader: p.reader } : {}),
        ...(p.uri ? { uri: p.uri } : {}),
        ...(p.fromLine ? { fromLine: p.fromLine } : {}),
        ...(p.toLine ? { toLine: p.toLine } : {}),
        ...(client ? { client } : {}),
        pinPolicy: pinSettings.cache ?? 'run',
        sessionPins,
        checkRetries: pinSettings.checkRetries !== false,
        confirm: async (message, confirm) => { flush(); return (await ask(connection, ConfirmRequest, { message, confirm })).confirmed === true; },
        askPin: (label, where) => askPin({
          label, ...(where?.reader ? { reader: where.reader } : {}), ...(p.uri ? { uri: p.uri } : {}), ...(where?.line ? { line: where.line } : {}),
          ...(where?.tries !== undefined ? { tries: where.tries } : {}), ...(client ? { client } : {}),
        }, `PIN entry for "${label}" was cancelled.`),
        onProgress: throttle((done, total, line) => {
          flush(); // the rows up to `done` before the progress that counts them
          notify(connection, RunProgressNotification, { runId, done, total, line });
        }),
      });
    } finally {
      runs.delete(runId);
      onCancel?.dispose();
    }
  }));

  // Send APDU…: one typed command, run like a one-line script (reader choice, connection, gate,
  // the log); answers the run's result with the exchanges it made (the command and its automatic steps).
  handle(connection, SendApduRequest, wrap(async (p, token) => {
    const m = await ready();
    if (typeof p?.apdu !== 'string') throw new ScError('BAD_REQUEST', 'sendApdu needs the command APDU in hex.');
    optionalString(p.reader, 'reader');
    const checked = checkOneApdu(p.apdu);
    if ('error' in checked) throw new ScError('BAD_REQUEST', checked.error);
    const runId = allocateRunId();
    const abort = new AbortController();
    runs.set(runId, abort);
    const onCancel = token?.onCancellationRequested(() => abort.abort());
    const exchanges: ExchangeEntry[] = [];
    const off = m.onEntry((e) => { if (e.kind === 'exchange' && e.runId === runId) exchanges.push(e); });
    try {
      const result = await runScript(parseScript(checked.script), {
        manager: m, runId, signal: abort.signal, ...(p.reader ? { reader: p.reader } : {}), uri: 'Send APDU',
      });
      return { ...result, exchanges };
    } finally {
      off();
      runs.delete(runId);
      onCancel?.dispose();
    }
  }));

  // The public API for other extensions (api.ts): their connections, decoders, release on deactivation.
  registerApi(connection, ready, wrap);

  handle(connection, CancelRunRequest, wrap(async (p) => {
    if (!Number.isInteger(p?.runId)) throw new ScError('BAD_REQUEST', 'cancelRun needs the runId of a running script.');
    const c = runs.get(p.runId);
    if (!c) return false;
    c.abort();
    return true;
  }));

  handle(connection, DecodeAtrRequest, wrap(async (p) => {
    if (typeof p?.atr !== 'string' || p.atr.length > 200) throw new ScError('BAD_REQUEST', 'decodeAtr needs an ATR in hex (at most 33 bytes).');
    let atr: Uint8Array;
    try { atr = fromHex(p.atr); } catch (e) { throw new ScError('BAD_REQUEST', `The ATR is not hex: ${(e as Error).message}`); }
    return { lines: describeAtr(parseAtr(atr)), identified: identifyAtr(toSpacedHex(atr)) };
  }));
  handle(connection, DecodeExchangeRequest, wrap(async (p) => decodeExchange(p?.command, p?.response)));
  handle(connection, ClearPinCacheRequest, wrap(async () => sessionPins.clear()));
  connection.onNotification(SettingsNotification.method, (p: HelperSettings) => applySettings(p ?? {}));

  const simulatorSlot = (m: ReaderManager, reader: string) => {
    optionalString(reader, 'reader');
    if (!reader) throw new ScError('BAD_REQUEST', 'Name the simulator reader.');
    const { driver, key } = m.driverOf(m.resolve(reader));
    if (!(driver instanceof SimulatorDriver)) throw new ScError('BAD_REQUEST', `'${reader}' is not a simulator reader.`);
    return { driver, key };
  };
  handle(connection, SimulatorInsertCardRequest, wrap(async (p) => {
    if (p.card !== undefined && p.card !== 'T=0' && p.card !== 'T=1') throw new ScError('BAD_REQUEST', "card is 'T=0' or 'T=1'.");
    const { driver, key } = simulatorSlot(await ready(), p.reader);
    driver.insertCard(key, p.card);
  }));
  handle(connection, SimulatorRemoveCardRequest, wrap(async (p) => {
    const { driver, key } = simulatorSlot(await ready(), p.reader);
    driver.removeCard(key);
  }));

  // Reader operations from the Readers view.
  const exactReader = (m: ReaderManager, reader: unknown): string => {
    if (typeof reader !== 'string' || !reader || reader.length > 256) throw new ScError('BAD_REQUEST', 'Name the reader (a string of at most 256 characters).');
    m.reader(reader); // throws NO_READER with the name
    return reader;
  };
  handle(connection, ReaderConnectRequest, wrap(async (p) => {
    const m = await ready();
    const reader = exactReader(m, p?.reader);
    if (p.share !== undefined && p.share !== 'shared' && p.share !== 'exclusive') throw new ScError('BAD_REQUEST', "share is 'shared' or 'exclusive'.");
    if (p.protocol !== undefined && p.protocol !== 0 && p.protocol !== 1) throw new ScError('BAD_REQUEST', 'protocol is 0 (T=0) or 1 (T=1).');
    const held = editorConnections.get(reader);
    if (held) throw new ScError('BAD_REQUEST', `The editor already holds a ${held.share} connection to '${reader}'; disconnect first.`);
    if (editorConnecting.has(reader)) throw new ScError('BAD_REQUEST', `The editor is already connecting to '${reader}'.`);
    editorConnecting.add(reader);
    let c: CardConnection;
    try {
      c = await m.connect(reader, { share: p.share ?? 'shared', label: 'Connect (editor)', ...(p.protocol !== undefined ? { protocol: p.protocol } : {}) });
    } finally {
      editorConnecting.delete(reader);
    }
    editorConnections.set(reader, c);
    return decorate(m, { readers: [m.reader(reader)], readerListCounter: 0 }).readers[0];
  }));
  handle(connection, ReaderDisconnectRequest, wrap(async (p) => {
    const m = await ready();
    const reader = exactReader(m, p?.reader);
    const disposition: Disposition = p.disposition ?? 'leave';
    if (!['leave', 'reset', 'unpower', 'eject'].includes(disposition)) throw new ScError('BAD_REQUEST', "disposition is 'leave', 'reset', 'unpower' or 'eject'.");
    const c = editorConnections.get(reader);
    if (!c) throw new ScError('BAD_REQUEST', `The editor holds no connection to '${reader}'.`);
    if (disposition === 'eject' && !m.canEject(reader)) throw new ScError('NOT_SUPPORTED', `'${reader}' cannot eject cards; disconnect with leave, reset or unpower.`);
    editorConnections.delete(reader);
    await c.disconnect(disposition);
  }));
  handle(connection, ReaderResetRequest, wrap(async (p) => {
    const m = await ready();
    const reader = exactReader(m, p?.reader);
    const mode = p.mode ?? 'warm';
    if (mode !== 'cold' && mode !== 'warm') throw new ScError('BAD_REQUEST', "mode is 'cold' or 'warm'.");
    const c = editorConnections.get(reader);
    const atr = c ? await c.reset(mode) : await m.resetCard(reader, mode);
    const protocol = m.reader(reader).card?.protocol;
    return { atr: toHex(atr), ...(protocol !== undefined ? { protocol } : {}) };
  }));
  handle(connection, ReaderPowerOffRequest, wrap(async (p) => {
    const m = await ready();
    const reader = exactReader(m, p?.reader);
    const c = editorConnections.get(reader);
    await (c ? c.powerOff() : m.powerOffCard(reader));
  }));
  handle(connection, ReaderControlRequest, wrap(async (p) => {
    const m = await ready();
    const reader = exactReader(m, p?.reader);
    if (!Number.isInteger(p.code) || p.code < 0 || p.code > 0xffffffff) throw new ScError('BAD_REQUEST', 'The control code is a whole number from 0 to 0xFFFFFFFF.');
    if (p.data !== undefined && (typeof p.data !== 'string' || p.data.length > 2 * 65_536)) throw new ScError('BAD_REQUEST', 'The control data is hex of at most 65,536 bytes.');
    let data: Uint8Array;
    try { data = fromHex(p.data ?? ''); } catch (e) { throw new ScError('BAD_REQUEST', `The control data is not hex: ${(e as Error).message}`); }
    const c = editorConnections.get(reader);
    const t0 = performance.now();
    const base = { kind: 'control' as const, reader, code: p.code, command: toHex(data) };
    try {
      const out = await (c ? c.control(p.code, data) : m.controlDirect(reader, p.code, data));
      const durationMs = performance.now() - t0;
      m.emitEntry<ControlEntry>({ ...base, response: toHex(out), durationMs });
      return { response: toHex(out), durationMs };
    } catch (e) {
      m.emitEntry<ControlEntry>({ ...base, error: asScError(e).message, durationMs: performance.now() - t0 });
      throw e;
    }
  }));

  // Language features.
  documents.onDidChangeContent((e) => {
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: features.diagnostics(parse(e.document)) });
  });
  documents.onDidClose((e) => {
    parsed.delete(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });
  const withDoc = <T>(uri: string, fn: (doc: TextDocument, script: Script) => T, empty: T): T => {
    const doc = documents.get(uri);
    return doc ? fn(doc, parse(doc)) : empty;
  };
  connection.onCodeLens((p) => withDoc(p.textDocument.uri, (_d, s) => features.codeLenses(s, p.textDocument.uri), []));
  connection.onHover((p) => withDoc(p.textDocument.uri, (_d, s) => features.hover(s, p.position), null));
  connection.onCodeAction((p) => withDoc(p.textDocument.uri, (_d, s) => features.codeActions(s, p.textDocument.uri, p.range), []));
  connection.onDocumentSymbol((p) => withDoc(p.textDocument.uri, (_d, s) => features.documentSymbols(s), []));
  connection.onCompletion(() => features.completions());

  documents.listen(connection);
  connection.listen();
  return { manager: () => manager };
}

/** The simulator card's PIN arrives sealed (`sealedPin`); a plain `pin` over JSON-RPC is not taken. */
function simulatorPinOpened(settings: HelperSettings, key: Buffer | undefined): HelperSettings {
  const sim = settings.simulator;
  if (!sim) return settings;
  const { pin: _plain, sealedPin, ...rest } = sim;
  const pin = key && sealedPin ? openPin(key, sealedPin, SIMULATOR_PIN_AAD) : undefined;
  return { ...settings, simulator: { ...rest, ...(pin !== undefined && /^[0-9]{4,12}$/.test(pin) ? { pin } : {}) } };
}

function optionalString(v: unknown, name: string, max = 256): void {
  if (v === undefined || v === null) return;
  if (typeof v !== 'string' || v.length > max) throw new ScError('BAD_REQUEST', `${name} must be a string of at most ${max} characters.`);
}

/** At most one call per 100 ms, plus the last one. */
function throttle<A extends unknown[]>(fn: (...a: A) => void): (...a: A) => void {
  let last = 0;
  let timer: NodeJS.Timeout | null = null;
  let pending: A | null = null;
  return (...a: A) => {
    const now = Date.now();
    if (now - last >= 100) { last = now; fn(...a); return; }
    pending = a;
    if (!timer) {
      timer = setTimeout(() => { timer = null; last = Date.now(); if (pending) fn(...pending); }, 100 - (now - last));
    }
  };
}
