// The reader manager: what pcscd / SCardSvr do for an operating system, inside
// the helper. It owns naming, the reader/card cache, card power-up and protocol
// choice, and the event stream. Every driver call for a reader goes through that
// reader's gate (gate.ts: FIFO, deadline, abort, counters, the driver-side
// transaction); the T=0 rules are in t0.ts; a client's handle is connection.ts.
// Drivers only carry bytes (house rule 3); only server/src/manager calls them.

import { EnvelopeSecrets, isEnvelopeIns } from '../codecs/apdu';
import { parseAtr } from '../codecs/atr';
import { describeStatusWordFor } from '../codecs/sw';
import { CM_IOCTL_GET_FEATURE_REQUEST, SECRET_ANSWER_FEATURES, SECRET_FEATURES, isFeatureCall, parseFeatureList } from '../codecs/pcscFeatures';
import {
  type CardInfo, type ControlEntry, type DriverStatus, type EventEntry, type ExchangeEntry, type LogEntry, MAX_READER_CLIENTS, type ReaderClient,
  type ReaderFacts, type ReaderInfo, type ReaderList, type ShareMode,
} from '../protocol';
import type { Driver, DriverSink, LogLevel, PowerMode, Protocol, SlotDescriptor } from '../drivers/driver';
import { ScError, asScError } from '../util/errors';
import { swHex, toHex } from '../util/hex';
import { Connection } from './connection';
import { type GateCallOptions, ReaderGate } from './gate';
import { readerName } from './naming';
import { toT0Tpdu } from './t0';

export { Connection, type ControlOptions, type Disposition } from './connection';

/** How long a PC/SC client's call waits for the driver's look for other programs' resets (R74) before it goes on without it. */
const CHECK_EVENTS_TIMEOUT_MS = 2000;

interface CardState {
  present: boolean;
  powered: boolean;
  atr?: Uint8Array;
  protocol?: Protocol;
  mute?: boolean;
  identified?: string[];
  /** Powered down by the manager after the grace period with nobody using it (R77); the ATR is kept. */
  idle?: boolean;
}

/** One reader in the cache (connection.ts reads it too). */
export interface ReaderEntry {
  name: string;
  driver: Driver;
  slot: SlotDescriptor;
  card: CardState;
  eventCount: number;
  /** Every driver call for this reader goes through it (FIFO, deadline, abort, counters, driver transaction). */
  gate: ReaderGate;
  connections: Set<Connection>;
  /** PC/SC clients' SCARD_SHARE_DIRECT handles (no manager connection), by id: who holds each. */
  directUsers: Map<number, string>;
  transactionTimer?: NodeJS.Timeout;
  removed: boolean;
  waiters: Set<() => void>;
  /** PC/SC part 10 feature list, once read. */
  features?: Array<{ tag: number; name: string; controlCode: number }>;
  /** The reader's facts (Driver.readerFacts), once read. */
  facts?: ReaderFacts;
  /** The facts could not be read (deadline, error): read again at the next power-up. */
  factsAgain?: boolean;
  /** A card just inserted is being powered up by reader initialization (pcscd shows it only once powered). */
  initializing?: boolean;
  /**
   * pcscd's POWER_STATE_IN_USE: set by a connection (not a PC/SC direct handle), cleared when the reader's last
   * connection or direct handle goes (winscard.c ~346, ~1005–1025). While it is clear, a powered card is powered
   * down after the grace period (R77).
   */
  inUse?: boolean;
  /** The grace period's timer (one per reader; unref'd). */
  idleTimer?: NodeJS.Timeout;
  /** The card's chain of ENVELOPEs, whoever sends them: a VERIFY split over several is masked whole (R91). */
  envelopes?: EnvelopeSecrets;
}

export interface ManagerOptions {
  /** Log entries kept for clients that connect late (default 10,000; 0 keeps none, as `scard` does). */
  historySize?: number;
  /** A transaction idle for this long is released (default 30 s, like a sane SCardSvr). */
  transactionTimeoutMs?: number;
  /** A card that does not answer one exchange within this long fails it (default 60 s). */
  exchangeTimeoutMs?: number;
  log?: (level: LogLevel, message: string) => void;
  /** Names a card from its ATR (hex with spaces), e.g. from smartcard_list.txt. */
  identify?: (atrSpacedHex: string) => string[];
  /** Reader initialization: power up an inserted card, read its ATR, pick the protocol (default true). */
  initializeCards?: boolean;
  /**
   * A powered card nobody uses (no connection; after its last user, or after insertion with nobody
   * connecting) is powered down after this long, as pcscd does (default POWER_OFF_GRACE_MS; 0: never).
   */
  powerOffGraceMs?: number;
}

/** pcscd.h PCSCLITE_POWER_OFF_GRACE_PERIOD: how long pcscd keeps a card powered that nobody uses (R77). */
export const POWER_OFF_GRACE_MS = 5000;

export interface TransmitOptions {
  /** Apply T=0 GET RESPONSE / 6Cxx rules (script `set getresponse`), default true. */
  getResponse?: boolean;
  runId?: number;
  line?: number;
  /** Byte ranges [start, end) of the command that hold a PIN: logged as `**`. */
  secret?: Array<[number, number]>;
  /** Marks the command's own exchange as automatic (e.g. the PIN retry-counter check). */
  auto?: ExchangeEntry['auto'];
  /** Abandons the exchange in flight (the run was cancelled); checked before anything is sent. */
  signal?: AbortSignal;
  /** This exchange's time-out (ms) instead of the manager's (script `set timeout`). */
  timeoutMs?: number;
  /** The extension that sent it through the API: its log entries carry the id. */
  client?: string;
}

export interface ConnectOptions {
  share?: ShareMode;
  protocol?: Protocol;
  signal?: AbortSignal;
  keepsIdleTransaction?: boolean;
  /** Its exchanges are logged under this name (an extension's id, a PC/SC program). */
  client?: string;
  /** How the Readers view names it when there is no `client` ("script x.apdu", "Connect (editor)"). */
  label?: string;
  /** A PC/SC client's exclusive connection, which holds the queue as a transaction of depth 1. */
  exclusiveHold?: boolean;
  waitBehindExclusive?: boolean;
  /**
   * A PC/SC client's SCardReconnect to another share mode: the connection (or direct handle) the new one
   * replaces does not count against it, so the swap is atomic (pcscd changes a handle's sharing under the
   * reader lock, winscard.c ~748–818). The caller closes the old one once this resolves; if it fails, the
   * old one is left as it was.
   */
  replaces?: Connection | DirectUser;
  /**
   * With `replaces`: the levels of the client's own transaction the replaced connection holds (its exclusive
   * hold not counted). The new connection takes them over in the same turn of the reader's queue, the
   * system-side transaction with them, so nobody gets the reader in between and the client's
   * EndTransaction still finds them (pcscd keeps hLockId and LockCount across SCardReconnect,
   * readerfactory.c RFLockSharing/RFUnlockSharing, winscard.c ~748–801).
   */
  takesTransaction?: number;
}

/** A PC/SC client's SCARD_SHARE_DIRECT handle in the reader's list (addDirectUser): call it to remove it. */
export type DirectUser = (() => void) & { readonly directId: number };

export interface TransmitResult {
  response: Uint8Array;
  sw: number;
  /** The exchanges made, the first being the command itself. */
  exchanges: ExchangeEntry[];
}

type EntryListener = (entry: LogEntry) => void;
export type ReadersChange = 'readers' | 'transactions';

/** How long a reader may take to tell its facts (a few attribute reads) before the manager moves on: short enough that a card inserted behind it is still powered within start()'s 2 s. */
const FACTS_TIMEOUT_MS = 1000;
/** A fact string from a device is shown in a tree row: one line, at most this long. */
const FACT_TEXT_MAX = 128;

/** pcscd's SCardGetAttrib answers at most MAX_BUFFER_SIZE (264) bytes (getset_struct.pbAttr). */
const FACT_RAW_MAX = 264;

/** A device's strings made safe to show: no control characters, one line, bounded; empty ones dropped. The raw bytes (for SCardGetAttrib) kept as they are, bounded. */
export function cleanFacts(f: ReaderFacts): ReaderFacts {
  const text = (v: string | undefined, max = FACT_TEXT_MAX): string | undefined => {
    if (typeof v !== 'string') return undefined;
    const t = v.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
    if (!t) return undefined;
    return t.length > max ? `${t.slice(0, max - 1)}…` : t;
  };
  const num = (v: number | undefined): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined);
  const out: ReaderFacts = { source: text(f.source) ?? 'driver' };
  const vendorName = text(f.vendorName); if (vendorName) out.vendorName = vendorName;
  const ifdType = text(f.ifdType); if (ifdType) out.ifdType = ifdType;
  const ifdVersion = num(f.ifdVersion); if (ifdVersion !== undefined) out.ifdVersion = ifdVersion;
  const ifdSerial = text(f.ifdSerial); if (ifdSerial) out.ifdSerial = ifdSerial;
  const maxIfsd = num(f.maxIfsd); if (maxIfsd !== undefined) out.maxIfsd = maxIfsd;
  const maxInput = num(f.maxInput); if (maxInput !== undefined) out.maxInput = maxInput;
  const channelId = num(f.channelId); if (channelId !== undefined) out.channelId = channelId;
  if (f.ccid) out.ccid = { ...f.ccid, features: f.ccid.features.slice(0, 32).map((w) => text(w) ?? '').filter(Boolean) };
  if (f.raw && typeof f.raw === 'object') {
    const raw = Object.entries(f.raw).filter(([k, v]) => /^[0-9a-f]{8}$/.test(k) && typeof v === 'string' && v.length <= 2 * FACT_RAW_MAX && /^(?:[0-9a-f]{2})*$/i.test(v)).slice(0, 16);
    if (raw.length) out.raw = Object.fromEntries(raw.map(([k, v]) => [k, v.toLowerCase()]));
  }
  if (f.unanswered?.length) out.unanswered = f.unanswered.slice(0, 16).map((w) => text(w) ?? '').filter(Boolean);
  const note = text(f.note, 4 * FACT_TEXT_MAX); if (note) out.note = note;
  return out;
}

export class ReaderManager {
  private readonly readers = new Map<string, ReaderEntry>(); // by name
  private readonly bySlot = new Map<string, ReaderEntry>(); // by driver id + slot key
  /** driver id → deviceKey → NN */
  private readonly deviceIndex = new Map<string, Map<string, number>>();
  private readonly driverStatus = new Map<string, DriverStatus>();
  private readonly entryListeners = new Set<EntryListener>();
  private readonly readersListeners = new Set<(what: ReadersChange) => void>();
  private readonly outsideResetListeners = new Set<(reader: string) => void>();
  /** A look for other programs' card events in flight per reader, shared by the callers meanwhile (checkCardEvents). */
  private readonly pendingLooks = new WeakMap<ReaderEntry, Promise<void>>();
  private readonly history: LogEntry[] = [];
  private seq = 0;
  private connSeq = 0;
  private readerListCounter = 0;
  private readonly historySize: number;
  private readonly transactionTimeoutMs: number;
  private exchangeTimeoutMs: number;
  private powerOffGraceMs: number;
  /** stop() was called: no idle power-down any more. */
  private stopped = false;

  constructor(readonly drivers: Driver[], private readonly options: ManagerOptions = {}) {
    this.historySize = options.historySize ?? 10_000;
    const grace = options.powerOffGraceMs ?? POWER_OFF_GRACE_MS;
    this.powerOffGraceMs = Number.isFinite(grace) && grace > 0 ? grace : 0;
    this.transactionTimeoutMs = options.transactionTimeoutMs ?? 30_000;
    this.exchangeTimeoutMs = options.exchangeTimeoutMs ?? 60_000;
  }

  /**
   * The grace period before an unused card is powered down, from now on (setting
   * `smartcard.readerManager.idlePowerOff`; 0: never). A period under way starts again with the new length.
   */
  setPowerOffGrace(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.powerOffGraceMs = ms;
    for (const r of this.readers.values()) if (r.idleTimer) this.idleCheck(r, true);
  }

  /** The exchange time-out for calls made from now on (setting `smartcard.readerManager.exchangeTimeout`). */
  setExchangeTimeout(ms: number): void {
    if (Number.isFinite(ms) && ms > 0) this.exchangeTimeoutMs = ms;
  }

  // ------------------------------------------------------------ lifecycle

  /** Initializations under way (reader initialization), so start() can include them. */
  private readonly initializing = new Set<Promise<unknown>>();

  /**
   * Starts every driver; resolves when each has reported its readers or failed,
   * and the cards already present have been powered up (at most 2 s more: a slow
   * card shows its ATR a little later, through the usual change event).
   */
  async start(): Promise<void> {
    this.stopped = false;
    await Promise.all(this.drivers.map(async (driver) => {
      try {
        await driver.start(this.sinkFor(driver));
        // A driver that reported itself waiting or unavailable while starting stays so.
        if (!this.driverStatus.has(driver.id)) this.driverStatus.set(driver.id, { id: driver.id, state: 'running' });
      } catch (e) {
        const err = asScError(e);
        this.driverStatus.set(driver.id, { id: driver.id, state: 'failed', message: err.message });
        this.log('error', `driver ${driver.id} failed to start: ${err.message}`);
      }
    }));
    if (this.initializing.size) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.initializing]), new Promise((r) => { timer = setTimeout(r, 2000); })]);
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const readers = [...this.readers.values()];
    for (const r of readers) {
      this.cancelIdle(r);
      for (const c of [...r.connections]) c.close();
      if (r.transactionTimer) clearTimeout(r.transactionTimer);
    }
    // Closing ended the transactions; their driver-side ends go out before the drivers stop (at most 2 s:
    // an end queued behind a call that hangs would otherwise wait for that call's whole deadline).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(readers.map((r) => r.gate.settled())), new Promise((r) => { timer = setTimeout(r, 2000); })]);
    clearTimeout(timer);
    await Promise.all(this.drivers.map((d) => d.stop().catch((e) => this.log('warn', `driver ${d.id} stop: ${asScError(e).message}`))));
  }

  driverStates(): DriverStatus[] {
    return this.drivers.map((d) => this.driverStatus.get(d.id) ?? { id: d.id, state: 'running' });
  }

  // ------------------------------------------------------------ events

  onEntry(listener: EntryListener): () => void {
    this.entryListeners.add(listener);
    return () => this.entryListeners.delete(listener);
  }

  /**
   * Called after the cache changed: `'transactions'` when only who holds a transaction did (the
   * Readers view shows it; PC/SC's reader state table does not), `'readers'` for anything else.
   */
  onReadersChanged(listener: (what: ReadersChange) => void): () => void {
    this.readersListeners.add(listener);
    return () => this.readersListeners.delete(listener);
  }

  /**
   * Another program of the machine reset a reader's card (a driver call answered CARD_RESET, R74). Card connections
   * hear it through the gate's reset count; a PC/SC client's direct handle has no connection and hears it here.
   */
  onOutsideReset(listener: (reader: string) => void): () => void {
    this.outsideResetListeners.add(listener);
    return () => this.outsideResetListeners.delete(listener);
  }

  historySince(since = 0): LogEntry[] {
    const kept = this.history.length > this.historySize ? this.history.slice(-this.historySize) : this.history.slice();
    return since ? kept.filter((e) => e.seq > since) : kept;
  }

  private emit(entry: LogEntry): void {
    if (this.historySize > 0) {
      this.history.push(entry);
      // Trim in chunks, not per entry: shifting a full array on every APDU was the engine's hot spot.
      if (this.history.length > this.historySize * 1.5) this.history.splice(0, this.history.length - this.historySize);
    }
    for (const l of this.entryListeners) l(entry);
  }

  /**
   * Called by the engine for script and echo entries, and by every caller of a control command
   * (scripts, the editor, the API, the PC/SC service), so they share the sequence. A control
   * entry is masked here, for all of them (R53).
   */
  emitEntry<E extends LogEntry>(partial: Omit<E, 'seq' | 'time'>): E {
    const masked = partial.kind === 'control' ? this.maskedControl(partial as unknown as Omit<ControlEntry, 'seq' | 'time'>) : partial;
    const entry = { ...masked, seq: ++this.seq, time: Date.now() } as E;
    this.emit(entry);
    return entry;
  }

  /**
   * A control call's data as the log may show it: the whole data of a PIN-pad call (its APDU
   * template may hold the PIN), of MCT and escape commands (they may carry a VERIFY), and the
   * answer of GET_KEY (the keys typed), MCT and escape calls are `**`, at the code the reader
   * lists for the feature or at libccid's code for it (`SECRET_FEATURES`, `SECRET_ANSWER_FEATURES`).
   */
  private maskedControl<E extends Omit<ControlEntry, 'seq' | 'time'>>(e: E): E {
    const listed = this.readers.get(e.reader)?.features ?? [];
    const stars = (hex: string): string => '**'.repeat(Math.ceil(hex.replace(/\s/g, '').length / 2));
    const command = isFeatureCall(e.code, SECRET_FEATURES, listed) ? stars(e.command) : e.command;
    const response = e.response !== undefined && isFeatureCall(e.code, SECRET_ANSWER_FEATURES, listed) ? stars(e.response) : e.response;
    return { ...e, command, ...(response !== undefined ? { response } : {}) };
  }

  private readersChanged(what: ReadersChange = 'readers'): void {
    for (const l of this.readersListeners) l(what);
  }

  private log(level: LogLevel, message: string): void {
    this.options.log?.(level, message);
  }

  // ------------------------------------------------------------ cache

  list(): ReaderList {
    return { readers: [...this.readers.values()].map((r) => this.info(r)), readerListCounter: this.readerListCounter };
  }

  reader(name: string): ReaderInfo {
    return this.info(this.entry(name));
  }

  private info(r: ReaderEntry): ReaderInfo {
    let card: CardInfo | null = null;
    if (r.card.present) {
      card = { powered: r.card.powered };
      if (r.card.atr) { card.atr = toHex(r.card.atr); card.protocols = offeredProtocols(r.card.atr); }
      if (r.card.protocol !== undefined) card.protocol = r.card.protocol;
      if (r.card.mute) card.mute = true;
      if (r.card.idle) card.idle = true;
      if (r.card.identified?.length) card.identified = r.card.identified;
    }
    const conns = [...r.connections];
    return {
      name: r.name,
      driver: r.driver.id,
      slot: r.slot.slotIndex,
      eventCount: r.eventCount,
      card,
      connections: conns.length,
      exclusive: conns.some((c) => c.share === 'exclusive'),
      inTransaction: r.gate.queue.owner !== null,
      ...readerClients(conns, r.directUsers, r.gate.queue.owner),
      ...(r.slot.unavailable ? { unavailable: r.slot.unavailable } : {}),
      ...(r.slot.details ? { details: r.slot.details } : {}),
      ...(r.facts ? { facts: r.facts } : {}),
      ...(r.features?.length ? { features: r.features.map((f) => `${f.name} 0x${f.controlCode.toString(16).toUpperCase().padStart(8, '0')}`) } : {}),
    };
  }

  /** The driver and slot key behind a reader (for driver-specific requests such as the simulator's). */
  driverOf(name: string): { driver: Driver; key: string } {
    const r = this.entry(name);
    return { driver: r.driver, key: r.slot.key };
  }

  /**
   * Resolves a reader name or glob (`*` and `?`, case-insensitive) that matches
   * exactly one reader; with none, the only reader with a card.
   */
  resolve(pattern?: string): string {
    const all = [...this.readers.values()];
    if (!pattern) {
      const withCard = all.filter((r) => r.card.present && !r.slot.unavailable);
      if (withCard.length === 1) return withCard[0].name;
      if (all.length === 1) return all[0].name;
      if (!all.length) throw new ScError('NO_READER', 'No reader is connected. Enable the simulator or connect a reader.');
      if (!withCard.length) throw new ScError('NO_CARD', 'No reader holds a card. Insert a card and try again.');
      throw new ScError('BAD_REQUEST', `Several readers hold a card (${withCard.map((r) => r.name).join(', ')}); select one.`);
    }
    if (this.readers.has(pattern)) return pattern;
    const re = globToRegExp(pattern);
    const hits = all.filter((r) => re.test(r.name));
    if (hits.length === 0) {
      const names = all.map((r) => `'${r.name}'`).join(', ') || 'none';
      throw new ScError('NO_READER', `No reader matches '${pattern}'. Readers: ${names}.`);
    }
    // Never pick one of several silently (pcsc-tools users expect a refusal): an exact name always works.
    if (hits.length > 1) {
      throw new ScError('BAD_REQUEST', `'${pattern}' matches ${hits.length} readers: ${hits.map((r) => `'${r.name}'`).join(', ')}; give one of these names or a pattern that matches only one.`);
    }
    return hits[0].name;
  }

  private entry(name: string): ReaderEntry {
    const r = this.readers.get(name);
    if (!r) throw new ScError('NO_READER', `No reader named '${name}'.`);
    return r;
  }

  // ------------------------------------------------------------ driver events

  private sinkFor(driver: Driver): DriverSink {
    return {
      slotAdded: (slot) => this.slotAdded(driver, slot),
      slotRemoved: (key) => this.slotRemoved(driver, key),
      cardInserted: (key) => this.cardChanged(driver, key, true),
      cardRemoved: (key) => this.cardChanged(driver, key, false),
      log: (level, message) => this.log(level, `[${driver.id}] ${message}`),
      timeExtension: (key, ms) => this.bySlot.get(`${driver.id}\u0000${key}`)?.gate.timeExtension(ms),
      status: (state, message, hint) => this.driverStateChanged(driver, state, message, hint),
    };
  }

  /** A driver's own state report: logged once per change (not per retry), shown on its group. */
  private driverStateChanged(driver: Driver, state: 'running' | 'waiting' | 'unavailable', message?: string, hint?: string): void {
    const prev = this.driverStatus.get(driver.id);
    const next: DriverStatus = { id: driver.id, state, ...(message ? { message } : {}), ...(hint ? { hint } : {}) };
    if (prev && prev.state === next.state && prev.message === next.message && prev.hint === next.hint) return;
    // The first "running" of a driver that starts normally is not news.
    const quiet = !prev && state === 'running';
    this.driverStatus.set(driver.id, next);
    if (!quiet) {
      const why = [message, hint].filter(Boolean).join(' ');
      if (state === 'running') this.log('info', `driver ${driver.id} is running${prev ? ` again (was ${prev.state})` : ''}`);
      else this.log('warn', `driver ${driver.id} is ${state === 'waiting' ? 'waiting' : 'unavailable'}: ${why}${state === 'waiting' ? ' (retrying quietly)' : ''}`);
    }
    this.readersChanged();
  }

  private slotAdded(driver: Driver, slot: SlotDescriptor): void {
    const id = `${driver.id}\u0000${slot.key}`;
    const old = this.bySlot.get(id);
    if (old) this.slotRemoved(driver, slot.key);
    const name = readerName(slot, this.indexFor(driver.id, slot.deviceKey));
    const gate = new ReaderGate(driver, slot.key, {
      name,
      exchangeTimeoutMs: () => this.exchangeTimeoutMs,
      log: (level, message) => this.log(level, message),
      cardStateLost: () => {
        if (!r.card.powered) return;
        r.card.powered = false;
        this.readersChanged();
      },
      outsideReset: () => {
        for (const l of [...this.outsideResetListeners]) l(name);
      },
    });
    const r: ReaderEntry = {
      name, driver, slot, gate,
      card: { present: slot.cardPresent, powered: false },
      eventCount: 0,
      connections: new Set(),
      directUsers: new Map(),
      removed: false,
      waiters: new Set(),
    };
    // The transaction's idle time counts from the end of the owner's last operation.
    gate.queue.onSettled = (conn) => { if (conn === gate.queue.owner) this.armTransactionTimer(r); };
    this.readers.set(name, r);
    this.bySlot.set(id, r);
    this.readerListCounter++;
    this.log('info', `reader added: ${name}${slot.unavailable ? ` (unavailable: ${slot.unavailable})` : ''}`);
    this.emitEntry<EventEntry>({ kind: 'readerAdded', reader: name, eventCount: r.eventCount });
    if (slot.cardPresent) this.emitEntry<EventEntry>({ kind: 'cardInserted', reader: name, eventCount: r.eventCount });
    r.initializing = slot.cardPresent && this.initializes(r);
    this.readersChanged();
    this.readFactsOnce(r);
    if (slot.cardPresent) this.initializeCard(r);
  }

  /**
   * Reads the reader's facts once, in its queue (never beside another call of this reader), under
   * a short deadline so a reader that does not answer holds nobody up; start() waits for it like
   * for reader initialization.
   */
  private readFactsOnce(r: ReaderEntry): void {
    if (!r.driver.readerFacts) return;
    const read = r.gate.queue.run(0, async () => { if (!r.removed) await this.readFacts(r); });
    this.initializing.add(read);
    void read.finally(() => this.initializing.delete(read));
  }

  /** Asks the driver for the reader's facts (FACTS_TIMEOUT_MS at most); a failure is kept as a note and retried once at power-up. */
  private async readFacts(r: ReaderEntry, call?: GateCallOptions): Promise<void> {
    const pending = r.gate.readerFacts({ timeoutMs: FACTS_TIMEOUT_MS, ...(call?.signal ? { signal: call.signal } : {}) });
    if (!pending) return;
    try {
      r.facts = cleanFacts(await pending);
      r.factsAgain = false;
    } catch (e) {
      const err = asScError(e);
      // A card event on the card handle (another program reset or removed the card) says nothing about
      // the reader: facts read before are kept, and read again at the next power-up. Any other failure is retried once.
      const cardEvent = err.code === 'CARD_RESET' || err.code === 'CARD_REMOVED';
      r.factsAgain = cardEvent || (!r.factsAgain && r.facts === undefined);
      if (!cardEvent || r.facts === undefined) r.facts = { source: r.driver.id, note: `The reader's facts could not be read: ${err.message}` };
      // The gate has logged a deadline or an abort already.
      if (err.code !== 'TIMEOUT' && err.code !== 'CANCELLED') this.log('debug', `${r.name}: no reader facts (${err.message})`);
    }
    if (!r.removed) this.readersChanged();
  }

  /** NN: the lowest index not used by another present device of the same driver. */
  private indexFor(driverId: string, deviceKey: string): number {
    let map = this.deviceIndex.get(driverId);
    if (!map) { map = new Map(); this.deviceIndex.set(driverId, map); }
    const known = map.get(deviceKey);
    if (known !== undefined) return known;
    const used = new Set(map.values());
    let i = 0;
    while (used.has(i)) i++;
    map.set(deviceKey, i);
    return i;
  }

  private slotRemoved(driver: Driver, key: string): void {
    const id = `${driver.id}\u0000${key}`;
    const r = this.bySlot.get(id);
    if (!r) return;
    this.bySlot.delete(id);
    this.readers.delete(r.name);
    r.removed = true;
    this.cancelIdle(r);
    r.card = { present: false, powered: false };
    r.gate.insertions++;
    for (const c of [...r.connections]) c.invalidate('READER_UNAVAILABLE', `The reader '${r.name}' was removed.`);
    this.releaseTransaction(r);
    // Free the device index once no slot of the device is left.
    if (![...this.bySlot.values()].some((o) => o.driver === driver && o.slot.deviceKey === r.slot.deviceKey)) {
      this.deviceIndex.get(driver.id)?.delete(r.slot.deviceKey);
    }
    this.readerListCounter++;
    this.log('info', `reader removed: ${r.name}`);
    this.emitEntry<EventEntry>({ kind: 'readerRemoved', reader: r.name, eventCount: r.eventCount });
    this.wake(r);
    this.readersChanged();
  }

  private cardChanged(driver: Driver, key: string, present: boolean): void {
    const r = this.bySlot.get(`${driver.id}\u0000${key}`);
    if (!r) return;
    if (r.card.present === present) return;
    r.eventCount++;
    this.cancelIdle(r);
    r.card = { present, powered: false };
    r.envelopes?.cardReset(); // R92: the card forgot its half of a PIN; the user's other half is still the PIN's
    r.gate.insertions++;
    if (!present && r.gate.queue.owner !== null) {
      // A transaction on a card that is gone protects nothing: end it (in the driver too) and let the others in.
      for (const c of r.connections) if (c.id === r.gate.queue.owner) c.transactionLost();
      this.releaseTransaction(r);
    }
    this.log('info', `card ${present ? 'inserted into' : 'removed from'} ${r.name}`);
    this.emitEntry<EventEntry>({ kind: present ? 'cardInserted' : 'cardRemoved', reader: r.name, eventCount: r.eventCount });
    this.wake(r);
    r.initializing = present && this.initializes(r);
    this.readersChanged();
    if (present) this.initializeCard(r);
  }

  private initializes(r: ReaderEntry): boolean {
    return this.options.initializeCards !== false && !r.slot.unavailable;
  }

  /** The connection id holding the reader's transaction, or null (the PC/SC service answers others at once). */
  transactionOwner(name: string): number | null {
    return this.readers.get(name)?.gate.queue.owner ?? null;
  }

  /** Reader initialization is powering up a card just inserted (the PC/SC service shows the card once it is done). */
  cardInitializing(name: string): boolean {
    return this.readers.get(name)?.initializing === true;
  }

  /**
   * Reader initialization (design): a card just inserted is powered up, its ATR
   * read and its protocol chosen, in the reader's queue like any client's
   * operation, so the cache shows the ATR before anyone connects. A card that
   * does not answer is marked mute; the next connect tries again.
   */
  private initializeCard(r: ReaderEntry): void {
    if (this.options.initializeCards === false || r.slot.unavailable) return;
    const insertion = r.gate.insertions;
    const init = r.gate.queue.run(0, async () => {
      if (r.removed || !r.card.present || r.card.powered || r.gate.insertions !== insertion) return;
      // A card the platform already powered (pcscd): its ATR, without connecting to it.
      const atr = r.gate.passiveAtr();
      if (atr) await this.adoptPassiveAtr(r, atr);
      else await this.powerUp(r, 'cold');
      await this.releaseIfUnused(r);
      // Nobody connected yet: pcscd's powerState POWERED, powered down after the grace period unless used (R77).
      this.idleCheck(r);
    }).catch((e) => {
      const err = asScError(e);
      if (err.code === 'NO_CARD' || err.code === 'CARD_REMOVED' || r.gate.insertions !== insertion) return;
      if (err.code === 'TIMEOUT') r.card.mute = true;
      this.log('warn', `${r.name}: the card did not power up: ${err.message}`);
      this.readersChanged();
    });
    this.initializing.add(init);
    void init.finally(() => {
      this.initializing.delete(init);
      if (r.initializing && r.gate.insertions === insertion) {
        r.initializing = false;
        this.readersChanged();
      }
    });
  }

  private wake(r: ReaderEntry): void {
    for (const w of [...r.waiters]) w();
  }

  /** Waits until a card is present (or absent) in a reader; `timeoutMs` 0 = forever. */
  waitForCard(name: string, present: boolean, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const r = this.entry(name);
    if (r.card.present === present) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: Error) => {
        r.waiters.delete(check);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err); else resolve();
      };
      const check = () => {
        if (r.removed) done(new ScError('READER_UNAVAILABLE', `The reader '${name}' was removed.`));
        else if (r.card.present === present) done();
      };
      const onAbort = () => done(new ScError('CANCELLED', 'Cancelled while waiting for the card.'));
      r.waiters.add(check);
      signal?.addEventListener('abort', onAbort);
      if (timeoutMs > 0) {
        timer = setTimeout(() => done(new ScError('TIMEOUT',
          `No card ${present ? 'inserted into' : 'removed from'} '${name}' within ${timeoutMs} ms.`)), timeoutMs);
      }
    });
  }

  // ------------------------------------------------------------ connections

  /** SCardConnect: opens a connection, powering the card if needed. */
  async connect(name: string, opts: ConnectOptions = {}): Promise<Connection> {
    const r = this.entry(name);
    if (r.slot.unavailable) throw new ScError('READER_UNAVAILABLE', `'${name}' cannot be used: ${r.slot.unavailable}`);
    // Refused before queueing: a PC/SC client's exclusive connection holds the queue for as long as it
    // lasts, so a check inside the queued function would never be reached. Scripts (cancellable) may wait.
    const replaced = opts.replaces instanceof Connection ? opts.replaces : undefined;
    const replacedDirect = typeof opts.replaces === 'function' ? opts.replaces.directId : undefined;
    if (!opts.waitBehindExclusive) this.refuseIfExclusive(r, replaced);
    const share = opts.share ?? 'shared';
    const conn = new Connection(this, r, ++this.connSeq, share, opts.protocol, opts.signal, opts.keepsIdleTransaction === true, opts.client, opts.label, opts.exclusiveHold === true);
    const call: GateCallOptions = opts.signal ? { signal: opts.signal } : {};
    // A Cancel while the reader is busy (another client's transaction) ends the wait.
    // Without one (the editor, the API), the wait has a deadline; a PC/SC client's connect waits as pcscd's does.
    const abort = opts.signal ? { signal: opts.signal, error: () => r.gate.notSentError() }
      : opts.keepsIdleTransaction ? undefined : this.queueDeadline(r);
    // A reconnect of the connection holding the reader's transaction runs in its turn, not behind it.
    const replacedId = replaced?.id ?? replacedDirect;
    const turn = replacedId !== undefined && r.gate.queue.owner === replacedId ? replacedId : conn.id;
    await r.gate.queue.run(turn, async () => {
      const others = [...r.connections].filter((c) => c !== replaced);
      // A PC/SC client's direct handle counts too: pcscd's exclusive SCardConnect needs no other handle at all (winscard.c ~462).
      const direct = [...r.directUsers.keys()].filter((id) => id !== replacedDirect).length;
      if (share === 'exclusive' && others.length + direct) {
        throw new ScError('SHARING_VIOLATION', `'${name}' is in use by ${others.length + direct} other connection(s); an exclusive connection must wait until they disconnect.`);
      }
      if (others.some((c) => c.share === 'exclusive')) {
        throw new ScError('SHARING_VIOLATION', `'${name}' is held exclusively by another connection.`);
      }
      if (!r.card.present) throw new ScError('NO_CARD', `No card in '${name}'. Insert a card and try again.`);
      // The card is in use from here (pcscd's POWER_STATE_IN_USE, winscard.c ~346): no idle power-down; one
      // powered down already is powered up below, i.e. the connection gets a freshly reset card (R77).
      this.cancelIdle(r);
      // A protocol the card's ATR does not offer is refused before the card is touched (no power-down for nothing).
      if (opts.protocol !== undefined && r.card.atr) {
        const offered = offeredProtocols(r.card.atr);
        if (!offered.includes(opts.protocol)) {
          throw new ScError('PROTOCOL', `The card offers ${offered.map((p) => `T=${p}`).join(' and ') || 'no known protocol'}, not T=${opts.protocol}; the card was left as it is.`);
        }
      }
      if (!r.card.powered) await this.powerUp(r, 'cold', opts.protocol, call);
      else if (opts.protocol !== undefined && opts.protocol !== r.card.protocol) {
        if (others.length) {
          throw new ScError('PROTOCOL', `The card in '${name}' is already running T=${r.card.protocol}; disconnect with 'reset' to change to T=${opts.protocol}.`);
        }
        // Nobody uses the protocol chosen at initialization (or by an earlier client): power up again with the one asked for.
        await this.powerDown(r, call, false, true);
        await this.powerUp(r, 'cold', opts.protocol, call);
      }
      // The first connection, and every exclusive one, holds the reader in the system's service too
      // (PC/SC): an exclusive connection is exclusive for the machine's other programs as well.
      // A hold that comes through after its deadline (the connect failed meanwhile) is let go again, or the
      // system service keeps the card held (exclusively) by nobody until some connection of ours comes and goes.
      if (share === 'exclusive' || !others.length) await r.gate.hold(share, call, () => this.releaseLater(r));
      conn.seen();
      r.connections.add(conn);
      r.inUse = true;
      if (replacedId !== undefined && opts.takesTransaction && r.gate.queue.owner === replacedId) {
        r.gate.queue.owner = conn.id;
        r.gate.queue.depth = opts.takesTransaction;
        this.armTransactionTimer(r);
      }
    }, false, abort).catch((e: unknown) => {
      // A connect that failed leaves the card to the grace period again if nobody else uses it.
      this.idleCheck(r);
      throw e;
    });
    this.readersChanged();
    return conn;
  }

  /**
   * A PC/SC client's SCARD_SHARE_DIRECT handle: no card session, so no connection, but the Readers
   * view lists who holds it. Returns the function that removes it.
   */
  addDirectUser(name: string, client: string): DirectUser {
    const r = this.entry(name);
    const id = ++this.connSeq;
    r.directUsers.set(id, client);
    this.readersChanged();
    return Object.assign(() => {
      if (!r.directUsers.delete(id)) return;
      // The last direct handle: the driver's watch on the system reader goes (R74).
      if (r.directUsers.size === 0 && !r.removed) void r.gate.watchCardEvents(false).catch(() => undefined);
      if (r.gate.queue.owner === id) {
        this.releaseTransaction(r);
        // A power-up in its transaction left the driver a card connection (R73: the DIRECT holder became it) that
        // nobody uses now: let go of it, as the entry's End does (queued: after the system transaction's end).
        this.releaseLater(r);
      }
      this.idleCheck(r, true);
      this.readersChanged();
    }, { directId: id });
  }

  /**
   * A PC/SC client's direct handle is open on the reader: a driver in front of the system's pcscd keeps a direct
   * handle of its own there, so another program's reset reaches the client (R74). Waited for at most a look's time
   * (CHECK_EVENTS_TIMEOUT_MS): the driver's connect may wait behind a long call of ours (a PIN entry) or in pcscd while
   * another program holds the reader's transaction; the watch is then opened when that ends, or by the next look.
   * Fails with SHARING_VIOLATION when the system service refused the watch's connect: another program holds the
   * reader exclusively, where pcscd refuses the client's direct connect too (winscard.c 279–283, R90).
   */
  watchCardEvents(name: string, since = performance.now()): Promise<void> {
    // At most a look's time from `since` (the client's call, which looked first): pcscd answers a direct connect at
    // once, so behind a long call of ours (a PIN entry) the client goes on; the watch opens when the call ends, or at
    // the next look (review 11, A2).
    const left = this.lookTimeoutMs - (performance.now() - since);
    return this.entry(name).gate.watchCardEvents(true, { timeoutMs: Math.max(1, left) });
  }

  /**
   * pcscd's RFCheckReaderEventState for a PC/SC client's call that looks (SCardStatus, SCardGetAttrib; a direct
   * handle's SCardTransmit and Begin/End too): the driver looks at its own handles in the system service; a reset
   * another program made since is counted (CARD_RESET: card connections and direct handles hear it, R74). Resolves at
   * once for drivers with no system service behind them. The look waits for the reader's call in flight (one call at a
   * time on its context, R69), at most CHECK_EVENTS_TIMEOUT_MS: behind a PIN entry the caller goes on without it, and
   * the reset is heard at the next look (pcscd keeps the mark until it is looked at).
   */
  checkCardEvents(name: string, since?: number): Promise<void> {
    const r = this.entry(name);
    if (!r.gate.checksCardEvents || r.slot.unavailable) return Promise.resolve();
    // Callers while a look is pending share it: pcscd keeps the mark until it is looked at, so one look answers them
    // all, and a client polling SCardStatus during a PIN entry does not queue a look per poll (review 11, A3).
    let look = this.pendingLooks.get(r);
    if (!look) {
      const own: Promise<void> = r.gate.checkCardEvents({ timeoutMs: this.lookTimeoutMs })
        .finally(() => { if (this.pendingLooks.get(r) === own) this.pendingLooks.delete(r); });
      this.pendingLooks.set(r, own);
      look = own;
    }
    if (since === undefined) return look;
    // A call that already waited (a direct reconnect's watch, R92): what is left of its 2 s, then on without the look
    // (still pending: the mark is heard when it answers or at the next look).
    const left = Math.max(0, this.lookTimeoutMs - (performance.now() - since));
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([look, new Promise<void>((resolve) => { timer = setTimeout(resolve, left); })])
      .finally(() => clearTimeout(timer));
  }

  /** How long a look for other programs' card events (or the watch's open) waits behind the reader's call in flight. */
  private get lookTimeoutMs(): number {
    return Math.min(CHECK_EVENTS_TIMEOUT_MS, this.exchangeTimeoutMs);
  }

  /**
   * SCardBeginTransaction on a PC/SC client's direct handle: pcscd locks the reader for any handle
   * (RFLockSharing, readerfactory.c 1061), so the reader's queue is held under the direct entry's id,
   * nested as a connection's, with the system-side transaction too where the driver has one (PC/SC: the
   * machine's other programs are held off as by a card handle's, R73). Never released for being idle
   * (a client's), released when the entry goes.
   *
   * The driver's Begin may wait in the system service behind ANOTHER program's transaction (pcscd's own
   * Begin waits then too). After the gate's deadline the caller hears SHARING_VIOLATION, which a client's
   * libpcsclite answers by asking again (SCardBeginTransaction polls it, winscard_clnt.c 1186–1223): the
   * client goes on waiting as with pcscd; a grant that comes late is ended at once (Gate.beginTransaction).
   */
  beginDirectTransaction(name: string, user: DirectUser): Promise<void> {
    const r = this.entry(name);
    const id = user.directId;
    if (!r.directUsers.has(id)) return Promise.reject(new ScError('BAD_REQUEST', 'The direct handle is closed.'));
    return r.gate.queue.run(id, async () => {
      const q = r.gate.queue;
      if (q.owner === id) q.depth++;
      else {
        try {
          await r.gate.beginTransaction(undefined, true);
        } catch (e) {
          const err = asScError(e);
          if (err.code === 'TIMEOUT') throw new ScError('SHARING_VIOLATION', `${err.message} (asked again by the client's library)`);
          throw err;
        }
        if (!r.directUsers.has(id)) {
          // The handle went while its Begin waited (its client died, R82): nobody takes the queue, and the system
          // transaction granted to nobody ends now, in this task, before anyone else's call (pcscd: a dead client's
          // pending Begin holds nothing).
          await r.gate.endDriverTransaction();
          throw new ScError('BAD_REQUEST', 'The direct handle was closed while its transaction was being begun.');
        }
        q.owner = id;
        q.depth = 1;
      }
      this.transactionChanged();
    });
  }

  /** SCardEndTransaction on a direct handle: one level; the last lets the others in. */
  endDirectTransaction(name: string, user: DirectUser): Promise<void> {
    const r = this.entry(name);
    const id = user.directId;
    return r.gate.queue.run(id, async () => {
      const q = r.gate.queue;
      if (q.owner !== id) throw new ScError('BAD_REQUEST', 'This direct handle holds no transaction to end.');
      if (--q.depth > 0) { this.transactionChanged(); return; }
      // A card handle's transaction handed over to this entry (handOverTransaction) holds the system-side
      // one too: it ends here as a connection's end ends it (third review F1, R55), and with no connection
      // of ours left the driver lets go of the card (the old connection's close could not: the queue was owned).
      try {
        await r.gate.endDriverTransaction();
      } finally {
        this.transactionEnded(r);
      }
      await this.releaseIfUnused(r);
    });
  }

  /**
   * A PC/SC client's SCardReconnect between a card connection and SCARD_SHARE_DIRECT keeps its transaction
   * (pcscd keeps hLockId and LockCount): the reader's queue changes hands from `from` to `to` with `depth`
   * levels, nobody getting in between. The system-side transaction, if any, stays with the reader.
   */
  handOverTransaction(name: string, from: number, to: number, depth: number): boolean {
    const r = this.entry(name);
    const q = r.gate.queue;
    if (q.owner !== from || depth < 1) return false;
    q.owner = to;
    q.depth = depth;
    this.armTransactionTimer(r);
    this.transactionChanged();
    return true;
  }

  /** A connection's transaction began, nested or ended a level: the Readers view shows who holds it. */
  transactionChanged(): void {
    this.readersChanged('transactions');
  }

  // ------------------------------------------------------------ operations without a connection

  /**
   * The Readers view's Reset, Power Off and Send Control Command when the editor
   * holds no connection: one operation in the reader's queue (after any
   * transaction), refused while another client holds the reader exclusively.
   */
  private direct<T>(name: string, fn: (r: ReaderEntry) => Promise<T>, turn = 0): Promise<T> {
    const r = this.entry(name);
    if (r.slot.unavailable) throw new ScError('READER_UNAVAILABLE', `'${name}' cannot be used: ${r.slot.unavailable}`);
    // Before queueing: an exclusive PC/SC client holds the queue, so the check inside would never be reached.
    // `turn`: a PC/SC client's handle (a direct entry, or a card connection whose card is gone), whose own
    // transaction it runs in and whose own exclusive mode does not refuse it.
    const own = turn ? [...r.connections].find((c) => c.id === turn) : undefined;
    try { this.refuseIfExclusive(r, own); } catch (e) { return Promise.reject(e); }
    return r.gate.queue.run(turn, async () => {
      this.refuseIfExclusive(r, own);
      try {
        return await fn(r);
      } finally {
        await this.releaseIfUnused(r);
        // A card the Readers view (or a direct handle's reset) powered with nobody connected: the grace period again.
        this.idleCheck(r);
      }
    }, false, this.queueDeadline(r));
  }

  /**
   * How long a call without a Cancel (the editor's, the API's) waits in the reader's queue behind
   * another connection's transaction: the exchange time-out, then TIMEOUT with nothing sent. A PC/SC
   * client's transaction is never released for being idle, so without this the wait had no end.
   */
  queueDeadline(r: ReaderEntry): { signal: AbortSignal; error: () => ScError } {
    const ms = this.exchangeTimeoutMs;
    return {
      signal: AbortSignal.timeout(ms),
      error: () => new ScError('TIMEOUT', `'${r.name}' stayed in another connection's transaction for ${ms} ms; nothing was sent. Try again when it ends.`),
    };
  }

  /** `except`: the connection a reconnect replaces (its own exclusive mode does not refuse it). */
  private refuseIfExclusive(r: ReaderEntry, except?: Connection): void {
    if ([...r.connections].some((c) => c.share === 'exclusive' && c !== except)) {
      throw new ScError('SHARING_VIOLATION', `'${r.name}' is held exclusively by another connection (a PC/SC program, a script or the editor).`);
    }
  }

  /** Cold (power off, then on) or warm reset; returns the ATR. */
  resetCard(name: string, mode: PowerMode, turn = 0): Promise<Uint8Array> {
    return this.direct(name, async (r) => {
      if (!r.card.present) throw new ScError('NO_CARD', `No card in '${name}'. Insert a card and try again.`);
      if (mode === 'cold') await this.powerDown(r, undefined, false, true);
      await this.powerUp(r, r.card.powered ? mode : 'cold');
      return r.card.atr!;
    }, turn);
  }

  powerOffCard(name: string): Promise<void> {
    return this.direct(name, (r) => this.powerDown(r));
  }

  /** SCardControl without a connection (like SCARD_SHARE_DIRECT): works with no card in the reader. */
  controlDirect(name: string, code: number, data: Uint8Array, opts?: GateCallOptions, turn = 0): Promise<Uint8Array> {
    return this.direct(name, (r) => r.gate.control(code, data, opts), turn);
  }

  /**
   * SCardTransmit on a PC/SC client's SCARD_SHARE_DIRECT handle (no connection): one exchange with the card as it
   * is, in the reader's queue (`turn`: the handle's own transaction), logged under `opts.client`. pcscd passes it
   * to the IFD handler whatever the share mode (winscard.c SCardTransmit); the service checks the PCI first.
   * A T=0 card gets the command as a connection's with `getResponse: false` would (case 4 as case 3, 61xx / 6Cxx
   * back to the caller). Nothing is powered up: a card that is not powered is PROTOCOL (the IFD handler's
   * "ICC inactive": SCARD_E_NOT_TRANSACTED).
   */
  transmitDirect(name: string, apdu: Uint8Array, opts: TransmitOptions, turn = 0): Promise<Uint8Array> {
    return this.direct(name, async (r) => {
      if (!r.card.present) throw new ScError('NO_CARD', `No card in '${name}'.`);
      if (!r.card.powered || r.card.protocol === undefined) throw new ScError('PROTOCOL', `The card in '${name}' is not powered.`);
      const command = r.card.protocol === 0 ? toT0Tpdu(apdu) : apdu;
      return (await this.exchange(r, command, opts)).raw;
    }, turn);
  }

  /** The driver can eject cards (Disconnect with 'eject'). */
  canEject(name: string): boolean {
    return typeof this.entry(name).driver.eject === 'function';
  }

  /** Power up (or reset), read the ATR, choose the protocol and set it on the reader. */
  async powerUp(r: ReaderEntry, mode: PowerMode, wanted?: Protocol, call?: GateCallOptions): Promise<void> {
    r.envelopes?.cardReset(); // a reset card drops the command it was assembling, not the user's rest of a PIN (R92)
    let atr: Uint8Array;
    try {
      atr = await r.gate.powerOn(mode, call);
    } catch (e) {
      const err = asScError(e);
      // Another program holding the card (PC/SC) or resetting it, a caller giving up (Cancel) or the reader
      // going says nothing about the card's answer (R64).
      if (!['NO_CARD', 'CARD_REMOVED', 'SHARING_VIOLATION', 'CARD_RESET', 'CANCELLED', 'READER_UNAVAILABLE'].includes(err.code)) {
        // A card that did not answer its power-up or reset is not powered any more, whatever it was before: no
        // ATR, no protocol (pcscd: readerState SCARD_PRESENT | SCARD_SWALLOWED, cardAtrLength 0, winscard.c ~620,
        // eventhandler.c ~398; R60). The next connection's call powers it up again.
        r.card.mute = true;
        r.card.powered = false;
        r.card.atr = undefined;
        r.card.protocol = undefined;
        r.card.idle = undefined;
        this.readersChanged();
      }
      throw err;
    }
    const info = parseAtr(atr);
    const offered = (info.protocols.length ? info.protocols : [0]).filter((p): p is Protocol => p === 0 || p === 1);
    let protocol: Protocol;
    if (wanted !== undefined) {
      if (!offered.includes(wanted)) {
        throw new ScError('PROTOCOL', `The card offers ${offered.map((p) => `T=${p}`).join(' and ') || 'no known protocol'}, not T=${wanted}.`);
      }
      protocol = wanted;
    } else {
      if (!offered.length) throw new ScError('PROTOCOL', 'The card offers neither T=0 nor T=1.');
      protocol = offered[0];
    }
    await r.gate.setProtocol(protocol, atr, call);
    if (!r.features) await this.readFeatures(r, call);
    if (r.factsAgain) await this.readFacts(r, call);
    r.card.powered = true;
    r.card.mute = false;
    r.card.idle = undefined;
    r.card.atr = atr;
    r.card.protocol = protocol;
    try { r.card.identified = this.options.identify?.(toHex(atr, ' ')) ?? []; } catch (e) {
      this.log('warn', `card identification failed: ${asScError(e).message}`);
    }
    this.emitEntry<EventEntry>({
      kind: mode === 'warm' ? 'cardReset' : 'cardPowered', reader: r.name, eventCount: r.eventCount, atr: toHex(atr), protocol,
      ...(r.card.identified?.length ? { identified: r.card.identified } : {}),
    });
    this.readersChanged();
  }

  /**
   * Reader initialization from an ATR the driver already has (Driver.passiveAtr):
   * the card state and the protocol guess as powerUp would set them, with no
   * driver call but the feature list; the driver connects when a client needs the card.
   */
  private async adoptPassiveAtr(r: ReaderEntry, atr: Uint8Array): Promise<void> {
    const info = parseAtr(atr);
    const offered = (info.protocols.length ? info.protocols : [0]).filter((p): p is Protocol => p === 0 || p === 1);
    if (!offered.length) throw new ScError('PROTOCOL', 'The card offers neither T=0 nor T=1.');
    if (!r.features) await this.readFeatures(r);
    r.card.powered = true;
    r.card.mute = false;
    r.card.atr = atr;
    // pcscd's rule for a card nobody has set a protocol on: T=1 first when offered (prothandler.c).
    r.card.protocol = offered.includes(1) ? 1 : offered[0];
    try { r.card.identified = this.options.identify?.(toHex(atr, ' ')) ?? []; } catch (e) {
      this.log('warn', `card identification failed: ${asScError(e).message}`);
    }
    this.emitEntry<EventEntry>({
      kind: 'cardPowered', reader: r.name, eventCount: r.eventCount, atr: toHex(atr), protocol: r.card.protocol,
      ...(r.card.identified?.length ? { identified: r.card.identified } : {}),
    });
    this.readersChanged();
  }

  /**
   * No connection of ours uses the card: the driver lets go of its system-side
   * connection (Driver.release), so other applications can connect exclusively.
   * Called inside the reader's queue.
   */
  private async releaseIfUnused(r: ReaderEntry): Promise<void> {
    if (!r.gate.canRelease || r.removed || r.connections.size || r.gate.queue.owner !== null) return;
    try { await r.gate.release(); } catch (e) {
      this.log('debug', `${r.name}: release: ${asScError(e).message}`);
    }
  }

  /** releaseIfUnused from outside the reader's queue (a late driver answer): queued like any operation. */
  private releaseLater(r: ReaderEntry): void {
    void r.gate.queue.run(0, () => this.releaseIfUnused(r)).catch((e) => this.log('debug', `${r.name}: release: ${asScError(e).message}`));
  }

  /**
   * `idle`: the grace period's power-down (R77), which keeps the ATR (pcscd keeps it in its table). `coldReset`: a
   * cold reset's power-down, a power-up follows (a system transaction is kept across it, R84).
   */
  async powerDown(r: ReaderEntry, call?: GateCallOptions, idle = false, coldReset = false): Promise<void> {
    if (!r.card.powered) return;
    await r.gate.powerOff(call, coldReset);
    r.card.powered = false;
    if (!idle) r.card.atr = undefined;
    r.card.protocol = undefined;
    if (idle) r.card.idle = true;
    this.emitEntry<EventEntry>({ kind: 'cardUnpowered', reader: r.name, eventCount: r.eventCount, ...(idle ? { idle: true, idleMs: this.powerOffGraceMs } : {}) });
    this.readersChanged();
  }

  // ------------------------------------------------------------ on-demand power (R77)

  /**
   * pcscd's on-demand power (eventhandler.c ~440–495, winscard.c ~1005–1025): with no connection and no
   * direct handle left the reader is no longer in use; a powered card not in use is powered down after the
   * grace period (also one just inserted that nobody connected to, and one beside direct handles only, whose
   * connects never set POWER_STATE_IN_USE). Any use starts the period again; a connection cancels it. Not on
   * a system reader (PC/SC driver): its own pcscd does it once the driver's handle is gone (releaseIfUnused).
   */
  private idleCheck(r: ReaderEntry, lastUserGone = false): void {
    if (!r.connections.size && !r.directUsers.size) r.inUse = false;
    this.cancelIdle(r);
    if (this.stopped || !this.powerOffGraceMs || r.removed || r.inUse || r.connections.size || !r.card.present) return;
    // A card swallowed by a failed reset (R60) while in use goes through the same grace period when its last user
    // goes: pcscd powers it up again only from POWER_STATE_UNPOWERED, i.e. after the period (R64's wait, R77).
    if (!r.card.powered && !(r.card.mute && lastUserGone)) return;
    if (r.gate.canRelease) return;
    r.idleTimer = setTimeout(() => this.idlePowerDown(r), this.powerOffGraceMs);
    r.idleTimer.unref();
  }

  /**
   * The reader's last user went less than the grace period ago and nobody has used it since (pcscd's
   * POWER_STATE_GRACE_PERIOD / POWERED before the power-down): a swallowed card is not powered up again yet (R64).
   */
  inGracePeriod(name: string): boolean {
    return this.readers.get(name)?.idleTimer !== undefined;
  }

  private cancelIdle(r: ReaderEntry): void {
    if (r.idleTimer) clearTimeout(r.idleTimer);
    r.idleTimer = undefined;
  }

  /** The grace period ended: in the reader's queue (after any call or transaction), still unused, power down. */
  private idlePowerDown(r: ReaderEntry): void {
    r.idleTimer = undefined;
    const insertion = r.gate.insertions;
    void r.gate.queue.run(0, async () => {
      if (this.stopped || r.removed || r.inUse || r.connections.size || !r.card.powered || r.gate.insertions !== insertion || r.idleTimer) return;
      this.log('debug', `${r.name}: the card was not used for ${this.powerOffGraceMs} ms; powered down (pcscd's on-demand power)`);
      await this.powerDown(r, undefined, true);
    }).catch((e) => this.log('debug', `${r.name}: idle power-down: ${asScError(e).message}`));
  }

  /** Asks the reader once for its PC/SC part 10 features (CM_IOCTL_GET_FEATURE_REQUEST). */
  private async readFeatures(r: ReaderEntry, call?: GateCallOptions): Promise<void> {
    r.features = [];
    try {
      r.features = parseFeatureList(await r.gate.control(CM_IOCTL_GET_FEATURE_REQUEST, new Uint8Array(0), call));
      if (r.features.length) this.log('info', `${r.name}: features ${r.features.map((f) => f.name).join(', ')}`);
    } catch (e) {
      this.log('debug', `${r.name}: no PC/SC feature list (${asScError(e).message})`);
    }
  }

  /**
   * One exchange with the driver, logged (the T=0 steps; T=1 calls the gate and logExchange itself,
   * connection.ts). The raw answer is returned beside the entry, not stored on it (the entry is kept
   * in the history and sent to clients).
   */
  async exchange(r: ReaderEntry, command: Uint8Array, opts: TransmitOptions, auto?: ExchangeEntry['auto'], parent?: number): Promise<{ entry: ExchangeEntry; raw: Uint8Array }> {
    const envelope = isEnvelopeIns(command[1]);
    if (envelope) opts = this.envelopeSecrets(r, command, opts);
    const t0 = performance.now();
    let raw: Uint8Array;
    try {
      raw = await r.gate.transmit(command, r.card.protocol ?? 1, opts);
    } catch (e) {
      if (envelope) r.envelopes!.answered(command); // R92: never reached the card (or no answer): not counted
      throw e;
    }
    // Only a part the card took is counted (R92: a refused one is not).
    if (envelope) r.envelopes!.answered(command, raw.length >= 2 ? raw[raw.length - 2] : undefined, raw.length >= 2 ? raw[raw.length - 1] : undefined);
    return { entry: this.logExchange(r, command, raw, performance.now() - t0, opts, auto, parent), raw };
  }

  /**
   * An ENVELOPE's secret bytes (R91: a VERIFY & co. it carries, or the rest of one an earlier ENVELOPE began) added to
   * the caller's: fed in the reader's queue, just before the command goes to the card, so the chain is the card's.
   */
  envelopeSecrets(r: ReaderEntry, command: Uint8Array, opts: TransmitOptions): TransmitOptions {
    const more = (r.envelopes ??= new EnvelopeSecrets()).ranges(command);
    if (!more) return opts;
    return { ...opts, secret: opts.secret ? [...opts.secret, ...more] : more };
  }

  /**
   * The log entry of one exchange, emitted: built once with a fixed shape (no spreads), the secret
   * bytes of the command masked. Throws PROTOCOL for an answer without a status word (not logged).
   */
  logExchange(r: ReaderEntry, command: Uint8Array, raw: Uint8Array, durationMs: number, opts: TransmitOptions, auto?: ExchangeEntry['auto'], parent?: number): ExchangeEntry {
    if (raw.length < 2) {
      throw new ScError('PROTOCOL', `The card answered ${raw.length} byte(s); a response needs at least the status word.`);
    }
    const sw1 = raw[raw.length - 2];
    const sw2 = raw[raw.length - 1];
    const info = describeStatusWordFor(command, sw1, sw2);
    // The status word's text is shared by every entry with that status word (one string, not one per
    // entry), and is the whole response of an answer without data.
    const sw = swHex(sw1, sw2);
    const response = raw.length === 2 ? sw : toHex(raw);
    const commandHex = opts.secret ? maskedHex(command, opts.secret) : toHex(command);
    const swMeaning = info.meaning;
    const swCategory = info.category;
    const ms = Math.round(durationMs * 1000) / 1000;
    const seq = ++this.seq;
    const time = Date.now();
    let entry: ExchangeEntry;
    if (opts.runId !== undefined && opts.line !== undefined && !auto && parent === undefined && opts.client === undefined) {
      // A script's exchange, the most frequent entry the history holds: one literal with every field
      // in the order below, so it is allocated whole (no properties added afterwards, which put them in
      // a separate property array, ~40 bytes more per entry kept in the 10,000-entry history).
      entry = {
        kind: 'exchange', reader: r.name, command: commandHex, response, sw, swMeaning, swCategory, durationMs: ms,
        seq, time, runId: opts.runId, line: opts.line,
      };
    } else {
      entry = { kind: 'exchange', reader: r.name, command: commandHex, response, sw, swMeaning, swCategory, durationMs: ms, seq, time };
      if (auto) entry.auto = auto;
      if (parent !== undefined) entry.parent = parent;
      if (opts.runId !== undefined) entry.runId = opts.runId;
      if (opts.line !== undefined) entry.line = opts.line;
      if (opts.client !== undefined) entry.client = opts.client;
    }
    this.emit(entry);
    return entry;
  }

  // ------------------------------------------------------------ transactions

  armTransactionTimer(r: ReaderEntry): void {
    if (r.transactionTimer) clearTimeout(r.transactionTimer);
    if (r.gate.queue.owner === null) return;
    const owner = r.gate.queue.owner;
    if ([...r.connections].some((c) => c.id === owner && c.keepsIdleTransaction) || r.directUsers.has(owner)) return;
    r.transactionTimer = setTimeout(() => {
      const owner = r.gate.queue.owner;
      if (owner === null) return;
      // The owner's operation is still running (a slow key generation, a pinpad): not idle.
      // The idle time starts again when it settles (queue.onSettled).
      if (r.gate.queue.running === owner) return;
      this.log('warn', `transaction on ${r.name} by connection ${owner} released after ${this.transactionTimeoutMs} ms without activity`);
      this.releaseTransaction(r);
      this.readersChanged();
    }, this.transactionTimeoutMs);
  }

  /** The owner ended its transaction (the driver's end is done): stop the idle timer and let the others in. */
  transactionEnded(r: ReaderEntry): void {
    if (r.transactionTimer) clearTimeout(r.transactionTimer);
    r.transactionTimer = undefined;
    r.gate.queue.release();
    this.readersChanged('transactions');
  }

  /** The transaction ends without its owner's `end` (owner gone, idle, card or reader gone): in the driver too. */
  private releaseTransaction(r: ReaderEntry): void {
    if (r.transactionTimer) clearTimeout(r.transactionTimer);
    r.transactionTimer = undefined;
    r.gate.releaseTransaction();
  }

  /** Resolves once the driver has let go of the card (when this was the last connection), so a client's disconnect frees it for others. */
  connectionClosed(r: ReaderEntry, conn: Connection): Promise<void> {
    r.connections.delete(conn);
    if (r.gate.queue.owner === conn.id) this.releaseTransaction(r);
    // The last user gone: pcscd's POWER_STATE_GRACE_PERIOD (R77).
    this.idleCheck(r, true);
    // The last of our connections ended: the driver leaves the card (re-checked in the queue).
    const released = r.gate.canRelease && !r.connections.size
      ? r.gate.queue.run(0, () => this.releaseIfUnused(r)).catch((e) => this.log('debug', `${r.name}: release: ${asScError(e).message}`))
      : Promise.resolve();
    this.readersChanged();
    return released;
  }
}

/** ReaderInfo's `clients` (oldest first, at most MAX_READER_CLIENTS) and `moreClients`. */
function readerClients(conns: readonly Connection[], direct: ReadonlyMap<number, string>, owner: number | null = null): { clients: ReaderClient[]; moreClients?: number } {
  const all: Array<{ id: number; client: ReaderClient }> = conns.map((c) => ({ id: c.id, client: { client: c.who, share: c.share, transaction: c.inTransaction } }));
  for (const [id, who] of direct) all.push({ id, client: { client: who, share: 'direct', transaction: id === owner } });
  all.sort((a, b) => a.id - b.id);
  const clients = all.slice(0, MAX_READER_CLIENTS).map((x) => x.client);
  return all.length > MAX_READER_CLIENTS ? { clients, moreClients: all.length - MAX_READER_CLIENTS } : { clients };
}

/** The protocols an ATR offers (T=0 when it names none), in the ATR's order. */
export function offeredProtocols(atr: Uint8Array): Protocol[] {
  const info = parseAtr(atr);
  return (info.protocols.length ? info.protocols : [0]).filter((p): p is Protocol => p === 0 || p === 1);
}

/** Hex with the secret byte ranges shown as `**`, so a PIN never reaches a log. */
export function maskedHex(bytes: Uint8Array, secret: Array<[number, number]>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    s += secret.some(([a, b]) => i >= a && i < b) ? '**' : toHex(bytes.subarray(i, i + 1));
  }
  return s;
}

export function globToRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i');
}
