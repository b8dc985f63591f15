// The reader manager: what pcscd / SCardSvr do for an operating system, inside
// the helper. It owns naming, the reader/card cache, per-reader queues and
// transactions, card power-up and protocol choice, the T=0 rules, and the event
// stream. Drivers only carry bytes (house rule 3); this is the only module that
// calls the Driver interface.

import { parseAtr } from '../codecs/atr';
import { describeStatusWord } from '../codecs/sw';
import { CM_IOCTL_GET_FEATURE_REQUEST, parseFeatureList } from '../codecs/pcscFeatures';
import type {
  CardInfo, DriverStatus, EventEntry, ExchangeEntry, LogEntry, ReaderInfo, ReaderList, ShareMode,
} from '../protocol';
import type { Driver, DriverSink, LogLevel, PowerMode, Protocol, SlotDescriptor } from '../drivers/driver';
import { ScError, asScError } from '../util/errors';
import { concatBytes, toHex } from '../util/hex';
import { ReaderQueue } from './queue';
import { readerName } from './naming';

export type Disposition = 'leave' | 'reset' | 'unpower' | 'eject';

interface CardState {
  present: boolean;
  powered: boolean;
  atr?: Uint8Array;
  protocol?: Protocol;
  mute?: boolean;
  identified?: string[];
  /** Bumped on every insertion, so a connection to an old card can tell. */
  generation: number;
}

interface ReaderEntry {
  name: string;
  driver: Driver;
  slot: SlotDescriptor;
  card: CardState;
  eventCount: number;
  queue: ReaderQueue;
  connections: Set<Connection>;
  transactionTimer?: NodeJS.Timeout;
  removed: boolean;
  waiters: Set<() => void>;
  /** PC/SC part 10 feature list, once read. */
  features?: Array<{ tag: number; name: string; controlCode: number }>;
  /** Driver calls racing the exchange time-out (withDeadline); one timer per reader checks them all. Usually 0 or 1. */
  pending?: PendingCall[];
  deadlineTimer?: NodeJS.Timeout;
  /** The abort signal this reader listens to (one listener per run, not per exchange). */
  watchedSignal?: AbortSignal;
  onAbort?: () => void;
}

interface PendingCall {
  deadline: number;
  signal?: AbortSignal;
  fail(err: ScError): void;
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
}

export interface TransmitOptions {
  /** Apply T=0 GET RESPONSE / 6Cxx rules (script `set getresponse`), default true. */
  getResponse?: boolean;
  runId?: number;
  line?: number;
  /** Byte ranges [start, end) of the command that hold a PIN: logged as `**`. */
  secret?: Array<[number, number]>;
  /** Marks the command's own exchange as automatic (e.g. the PIN retry-counter check). */
  auto?: ExchangeEntry['auto'];
  /** Abandons the exchange in flight (the run was cancelled). */
  signal?: AbortSignal;
}

export interface TransmitResult {
  response: Uint8Array;
  sw: number;
  /** The exchanges made, the first being the command itself. */
  exchanges: ExchangeEntry[];
}

type EntryListener = (entry: LogEntry) => void;

export class ReaderManager {
  private readonly readers = new Map<string, ReaderEntry>(); // by name
  private readonly bySlot = new Map<string, ReaderEntry>(); // by driver id + slot key
  /** driver id → deviceKey → NN */
  private readonly deviceIndex = new Map<string, Map<string, number>>();
  private readonly driverStatus = new Map<string, DriverStatus>();
  private readonly entryListeners = new Set<EntryListener>();
  private readonly readersListeners = new Set<() => void>();
  private readonly history: LogEntry[] = [];
  private seq = 0;
  private connSeq = 0;
  private readerListCounter = 0;
  private readonly historySize: number;
  private readonly transactionTimeoutMs: number;
  private readonly exchangeTimeoutMs: number;

  constructor(readonly drivers: Driver[], private readonly options: ManagerOptions = {}) {
    this.historySize = options.historySize ?? 10_000;
    this.transactionTimeoutMs = options.transactionTimeoutMs ?? 30_000;
    this.exchangeTimeoutMs = options.exchangeTimeoutMs ?? 60_000;
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
    await Promise.all(this.drivers.map(async (driver) => {
      try {
        await driver.start(this.sinkFor(driver));
        this.driverStatus.set(driver.id, { id: driver.id, state: 'running' });
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
    for (const r of this.readers.values()) {
      for (const c of [...r.connections]) c.close();
      if (r.transactionTimer) clearTimeout(r.transactionTimer);
    }
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

  onReadersChanged(listener: () => void): () => void {
    this.readersListeners.add(listener);
    return () => this.readersListeners.delete(listener);
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

  /** Called by the engine for script and echo entries, so they share the sequence. */
  emitEntry<E extends LogEntry>(partial: Omit<E, 'seq' | 'time'>): E {
    const entry = { ...partial, seq: ++this.seq, time: Date.now() } as E;
    this.emit(entry);
    return entry;
  }

  private readersChanged(): void {
    for (const l of this.readersListeners) l();
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
      if (r.card.atr) card.atr = toHex(r.card.atr);
      if (r.card.protocol !== undefined) card.protocol = r.card.protocol;
      if (r.card.mute) card.mute = true;
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
      inTransaction: r.queue.owner !== null,
      ...(r.slot.unavailable ? { unavailable: r.slot.unavailable } : {}),
      ...(r.slot.details ? { details: r.slot.details } : {}),
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
    };
  }

  private slotAdded(driver: Driver, slot: SlotDescriptor): void {
    const id = `${driver.id}\u0000${slot.key}`;
    const old = this.bySlot.get(id);
    if (old) this.slotRemoved(driver, slot.key);
    const name = readerName(slot, this.indexFor(driver.id, slot.deviceKey));
    const r: ReaderEntry = {
      name, driver, slot,
      card: { present: slot.cardPresent, powered: false, generation: 1 },
      eventCount: 0,
      queue: new ReaderQueue(),
      connections: new Set(),
      removed: false,
      waiters: new Set(),
    };
    this.readers.set(name, r);
    this.bySlot.set(id, r);
    this.readerListCounter++;
    this.log('info', `reader added: ${name}${slot.unavailable ? ` (unavailable: ${slot.unavailable})` : ''}`);
    this.emitEntry<EventEntry>({ kind: 'readerAdded', reader: name, eventCount: r.eventCount });
    if (slot.cardPresent) this.emitEntry<EventEntry>({ kind: 'cardInserted', reader: name, eventCount: r.eventCount });
    this.readersChanged();
    if (slot.cardPresent) this.initializeCard(r);
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
    r.card = { present: false, powered: false, generation: r.card.generation + 1 };
    for (const c of [...r.connections]) c.invalidate('READER_UNAVAILABLE', `The reader '${r.name}' was removed.`);
    this.transactionEnded(r);
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
    r.card = { present, powered: false, generation: r.card.generation + 1 };
    if (!present) {
      for (const c of [...r.connections]) c.invalidate('CARD_REMOVED', `The card was removed from '${r.name}'.`);
      // A transaction on a card that is gone protects nothing: let the others in.
      if (r.queue.owner !== null) this.transactionEnded(r);
    }
    this.log('info', `card ${present ? 'inserted into' : 'removed from'} ${r.name}`);
    this.emitEntry<EventEntry>({ kind: present ? 'cardInserted' : 'cardRemoved', reader: r.name, eventCount: r.eventCount });
    this.wake(r);
    this.readersChanged();
    if (present) this.initializeCard(r);
  }

  /**
   * Reader initialization (design): a card just inserted is powered up, its ATR
   * read and its protocol chosen, in the reader's queue like any client's
   * operation, so the cache shows the ATR before anyone connects. A card that
   * does not answer is marked mute; the next connect tries again.
   */
  private initializeCard(r: ReaderEntry): void {
    if (this.options.initializeCards === false || r.slot.unavailable) return;
    const generation = r.card.generation;
    const init = r.queue.run(0, async () => {
      if (r.removed || !r.card.present || r.card.powered || r.card.generation !== generation) return;
      // A card the platform already powered (pcscd): its ATR, without connecting to it.
      const atr = r.driver.passiveAtr?.(r.slot.key);
      if (atr) await this.adoptPassiveAtr(r, atr);
      else await this.withDeadline(r, this.powerUp(r, 'cold'));
      await this.releaseIfUnused(r);
    }).catch((e) => {
      const err = asScError(e);
      if (err.code === 'NO_CARD' || err.code === 'CARD_REMOVED' || r.card.generation !== generation) return;
      if (err.code === 'TIMEOUT') r.card.mute = true;
      this.log('warn', `${r.name}: the card did not power up: ${err.message}`);
      this.readersChanged();
    });
    this.initializing.add(init);
    void init.finally(() => this.initializing.delete(init));
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
  async connect(name: string, opts: { share?: ShareMode; protocol?: Protocol } = {}): Promise<Connection> {
    const r = this.entry(name);
    if (r.slot.unavailable) throw new ScError('READER_UNAVAILABLE', `'${name}' cannot be used: ${r.slot.unavailable}`);
    const share = opts.share ?? 'shared';
    const conn = new Connection(this, r, ++this.connSeq, share, opts.protocol);
    await r.queue.run(conn.id, async () => {
      const others = [...r.connections];
      if (share === 'exclusive' && others.length) {
        throw new ScError('SHARING_VIOLATION', `'${name}' is in use by ${others.length} other connection(s); an exclusive connection must wait until they disconnect.`);
      }
      if (others.some((c) => c.share === 'exclusive')) {
        throw new ScError('SHARING_VIOLATION', `'${name}' is held exclusively by another connection.`);
      }
      if (!r.card.present) throw new ScError('NO_CARD', `No card in '${name}'. Insert a card and try again.`);
      if (!r.card.powered) await this.powerUp(r, 'cold', opts.protocol);
      else if (opts.protocol !== undefined && opts.protocol !== r.card.protocol) {
        if (others.length) {
          throw new ScError('PROTOCOL', `The card in '${name}' is already running T=${r.card.protocol}; disconnect with 'reset' to change to T=${opts.protocol}.`);
        }
        // Nobody uses the protocol chosen at initialization (or by an earlier client): power up again with the one asked for.
        await this.powerDown(r);
        await this.powerUp(r, 'cold', opts.protocol);
      }
      conn.generation = r.card.generation;
      r.connections.add(conn);
    });
    this.readersChanged();
    return conn;
  }

  // ------------------------------------------------------------ operations without a connection

  /**
   * The Readers view's Reset, Power Off and Send Control Command when the editor
   * holds no connection: one operation in the reader's queue (after any
   * transaction), refused while another client holds the reader exclusively.
   */
  private direct<T>(name: string, fn: (r: ReaderEntry) => Promise<T>): Promise<T> {
    const r = this.entry(name);
    if (r.slot.unavailable) throw new ScError('READER_UNAVAILABLE', `'${name}' cannot be used: ${r.slot.unavailable}`);
    return r.queue.run(0, async () => {
      if ([...r.connections].some((c) => c.share === 'exclusive')) {
        throw new ScError('SHARING_VIOLATION', `'${name}' is held exclusively by another connection.`);
      }
      try {
        return await fn(r);
      } finally {
        await this.releaseIfUnused(r);
      }
    });
  }

  /** Cold (power off, then on) or warm reset; returns the ATR. */
  resetCard(name: string, mode: PowerMode): Promise<Uint8Array> {
    return this.direct(name, async (r) => {
      if (!r.card.present) throw new ScError('NO_CARD', `No card in '${name}'. Insert a card and try again.`);
      if (mode === 'cold') await this.powerDown(r);
      await this.withDeadline(r, this.powerUp(r, r.card.powered ? mode : 'cold'));
      return r.card.atr!;
    });
  }

  powerOffCard(name: string): Promise<void> {
    return this.direct(name, (r) => this.powerDown(r));
  }

  /** SCardControl without a connection (like SCARD_SHARE_DIRECT): works with no card in the reader. */
  controlDirect(name: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    return this.direct(name, (r) => this.withDeadline(r, r.driver.control(r.slot.key, code, data)));
  }

  /** The driver can eject cards (Disconnect with 'eject'). */
  canEject(name: string): boolean {
    return typeof this.entry(name).driver.eject === 'function';
  }

  /** Power up (or reset), read the ATR, choose the protocol and set it on the reader. */
  async powerUp(r: ReaderEntry, mode: PowerMode, wanted?: Protocol): Promise<void> {
    let atr: Uint8Array;
    try {
      atr = await r.driver.powerOn(r.slot.key, mode);
    } catch (e) {
      const err = asScError(e);
      if (err.code !== 'NO_CARD' && err.code !== 'CARD_REMOVED') r.card.mute = true;
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
    await r.driver.setProtocol(r.slot.key, protocol, atr);
    if (!r.features) await this.readFeatures(r);
    r.card.powered = true;
    r.card.mute = false;
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
    r.card.protocol = offered[0];
    try { r.card.identified = this.options.identify?.(toHex(atr, ' ')) ?? []; } catch (e) {
      this.log('warn', `card identification failed: ${asScError(e).message}`);
    }
    this.emitEntry<EventEntry>({
      kind: 'cardPowered', reader: r.name, eventCount: r.eventCount, atr: toHex(atr), protocol: offered[0],
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
    if (!r.driver.release || r.removed || r.connections.size || r.queue.owner !== null) return;
    try { await r.driver.release(r.slot.key); } catch (e) {
      this.log('debug', `${r.name}: release: ${asScError(e).message}`);
    }
  }

  async powerDown(r: ReaderEntry): Promise<void> {
    if (!r.card.powered) return;
    await r.driver.powerOff(r.slot.key);
    r.card.powered = false;
    r.card.atr = undefined;
    r.card.protocol = undefined;
    this.emitEntry<EventEntry>({ kind: 'cardUnpowered', reader: r.name, eventCount: r.eventCount });
    this.readersChanged();
  }

  /** Asks the reader once for its PC/SC part 10 features (CM_IOCTL_GET_FEATURE_REQUEST). */
  private async readFeatures(r: ReaderEntry): Promise<void> {
    r.features = [];
    try {
      r.features = parseFeatureList(await this.withDeadline(r, r.driver.control(r.slot.key, CM_IOCTL_GET_FEATURE_REQUEST, new Uint8Array(0))));
      if (r.features.length) this.log('info', `${r.name}: features ${r.features.map((f) => f.name).join(', ')}`);
    } catch (e) {
      this.log('debug', `${r.name}: no PC/SC feature list (${asScError(e).message})`);
    }
  }

  /**
   * One exchange with the driver, logged. The hot path of every APDU: the entry
   * is built once with a fixed shape (no spreads), and the raw answer is returned
   * beside it, not stored on it (the entry is kept in the history and sent to clients).
   */
  async exchange(r: ReaderEntry, command: Uint8Array, opts: TransmitOptions, auto?: ExchangeEntry['auto'], parent?: number): Promise<{ entry: ExchangeEntry; raw: Uint8Array }> {
    const t0 = performance.now();
    const raw = await this.withDeadline(r, r.driver.transmit(r.slot.key, command, r.card.protocol ?? 1), opts.signal);
    const durationMs = performance.now() - t0;
    if (raw.length < 2) {
      throw new ScError('PROTOCOL', `The card answered ${raw.length} byte(s); a response needs at least the status word.`);
    }
    const sw1 = raw[raw.length - 2];
    const sw2 = raw[raw.length - 1];
    const info = describeStatusWord(sw1, sw2);
    const response = toHex(raw);
    const entry: ExchangeEntry = {
      kind: 'exchange', reader: r.name,
      command: opts.secret ? maskedHex(command, opts.secret) : toHex(command), response,
      sw: response.slice(-4), swMeaning: info.meaning, swCategory: info.category,
      durationMs: Math.round(durationMs * 1000) / 1000,
      seq: ++this.seq, time: Date.now(),
    };
    if (auto) entry.auto = auto;
    if (parent !== undefined) entry.parent = parent;
    if (opts.runId !== undefined) entry.runId = opts.runId;
    if (opts.line !== undefined) entry.line = opts.line;
    this.emit(entry);
    return { entry, raw };
  }

  /**
   * Races a driver call with the exchange time-out and the caller's abort signal,
   * so a silent card or a stuck driver never blocks the reader's queue. The
   * card's state is then unknown: it is powered up again on next use, and a
   * late answer from the driver is dropped. Per call only a small record: the
   * reader has one deadline timer and one abort listener for all its calls.
   */
  private withDeadline<T>(r: ReaderEntry, p: Promise<T>, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const call: PendingCall = { deadline: performance.now() + this.exchangeTimeoutMs, signal, fail: (err) => finish(err) };
      const pending = (r.pending ??= []);
      const finish = (err: ScError | null, value?: T) => {
        if (settled) return;
        settled = true;
        unlist(pending, call);
        if (pending.length === 0) r.deadlineTimer?.unref(); // nothing to wait for: the timer keeps no process alive
        if (err) {
          r.card.powered = false;
          this.log('warn', `${r.name}: ${err.message}`);
          this.readersChanged();
          reject(err);
        } else resolve(value as T);
      };
      if (signal?.aborted) { finish(this.cancelledError(r)); return; }
      pending.push(call);
      if (r.deadlineTimer) r.deadlineTimer.ref();
      else r.deadlineTimer = setTimeout(() => this.checkDeadlines(r), this.exchangeTimeoutMs);
      if (signal && r.watchedSignal !== signal) this.watchSignal(r, signal);
      p.then((v) => finish(null, v), (e) => {
        if (settled) return;
        settled = true;
        unlist(pending, call);
        if (pending.length === 0) r.deadlineTimer?.unref();
        reject(e);
      });
    });
  }

  /** The reader's deadline timer fired: fail the calls that are overdue, wait again for the others. */
  private checkDeadlines(r: ReaderEntry): void {
    r.deadlineTimer = undefined;
    if (!r.pending?.length) return;
    const now = performance.now();
    let next = Infinity;
    for (const call of [...r.pending]) {
      if (call.deadline <= now + 1) {
        call.fail(new ScError('TIMEOUT',
          `The card in '${r.name}' did not answer within ${this.exchangeTimeoutMs} ms; it will be powered up again on next use (remove and reinsert it if it stays silent).`));
      } else next = Math.min(next, call.deadline);
    }
    if (next !== Infinity) r.deadlineTimer = setTimeout(() => this.checkDeadlines(r), next - now);
  }

  /** Listens to a run's abort signal (instead of the last one) to abandon the reader's calls made under it. */
  private watchSignal(r: ReaderEntry, signal: AbortSignal): void {
    if (r.watchedSignal && r.onAbort) r.watchedSignal.removeEventListener('abort', r.onAbort);
    r.onAbort ??= () => {
      for (const call of [...(r.pending ?? [])]) if (call.signal?.aborted) call.fail(this.cancelledError(r));
    };
    r.watchedSignal = signal;
    signal.addEventListener('abort', r.onAbort);
  }

  private cancelledError(r: ReaderEntry): ScError {
    return new ScError('CANCELLED', `Cancelled while waiting for the card in '${r.name}'; it will be powered up again on next use.`);
  }

  // ------------------------------------------------------------ transactions

  armTransactionTimer(r: ReaderEntry): void {
    if (r.transactionTimer) clearTimeout(r.transactionTimer);
    if (r.queue.owner === null) return;
    r.transactionTimer = setTimeout(() => {
      if (r.queue.owner === null) return;
      this.log('warn', `transaction on ${r.name} by connection ${r.queue.owner} released after ${this.transactionTimeoutMs} ms without activity`);
      r.queue.release();
      this.readersChanged();
    }, this.transactionTimeoutMs);
  }

  /** The transaction ended (or its card went away): stop its idle timer and let the others in. */
  transactionEnded(r: ReaderEntry): void {
    if (r.transactionTimer) clearTimeout(r.transactionTimer);
    r.transactionTimer = undefined;
    r.queue.release();
  }

  connectionClosed(r: ReaderEntry, conn: Connection): void {
    r.connections.delete(conn);
    if (r.queue.owner === conn.id) this.transactionEnded(r);
    // The last of our connections ended: the driver leaves the card (re-checked in the queue).
    if (r.driver.release && !r.connections.size) void r.queue.run(0, () => this.releaseIfUnused(r));
    this.readersChanged();
  }
}

/** An open connection (SCARDHANDLE). */
export class Connection {
  generation = 0;
  private closed: ScError | null = null;

  constructor(
    private readonly manager: ReaderManager,
    private readonly r: ReaderEntry,
    readonly id: number,
    readonly share: ShareMode,
    readonly requestedProtocol?: Protocol,
  ) {}

  get readerName(): string { return this.r.name; }
  get protocol(): Protocol | undefined { return this.r.card.protocol; }
  get atr(): Uint8Array | undefined { return this.r.card.atr; }

  /** Marks the connection unusable (card removed, reader gone). */
  invalidate(code: 'CARD_REMOVED' | 'READER_UNAVAILABLE', message: string): void {
    if (!this.closed) this.closed = new ScError(code, message);
  }

  close(): void {
    if (!this.closed) this.closed = new ScError('BAD_REQUEST', 'The connection is closed.');
    this.manager.connectionClosed(this.r, this);
  }

  private check(): void {
    if (this.closed) throw this.closed;
    if (this.r.card.generation !== this.generation || !this.r.card.present) {
      throw new ScError('CARD_REMOVED', `The card in '${this.r.name}' was removed or replaced; connect again.`);
    }
  }

  private op<T>(fn: () => Promise<T>): Promise<T> {
    return this.r.queue.run(this.id, async () => {
      this.check();
      if (this.r.queue.owner === this.id) this.manager.armTransactionTimer(this.r);
      return fn();
    });
  }

  /** SCardTransmit with the T=0 rules applied (case 4, 61xx, 6Cxx), each step logged. */
  transmit(apdu: Uint8Array, opts: TransmitOptions = {}): Promise<TransmitResult> {
    // op() without its async wrapper: this runs for every APDU.
    return this.r.queue.run(this.id, () => {
      this.check();
      if (this.r.queue.owner === this.id) this.manager.armTransactionTimer(this.r);
      return this.transmitLocked(apdu, opts);
    });
  }

  private async transmitLocked(apdu: Uint8Array, opts: TransmitOptions): Promise<TransmitResult> {
    if (apdu.length < 4) throw new ScError('BAD_REQUEST', `A command APDU has at least 4 bytes (CLA INS P1 P2); this one has ${apdu.length}.`);
    const r = this.r;
    if (!r.card.powered) await this.manager.powerUp(r, 'cold', this.requestedProtocol);
    const t0 = r.card.protocol === 0;
    const getResponse = opts.getResponse ?? true;
    let command = apdu;
    if (t0) {
      if (apdu.length > 5 && apdu[4] === 0 && apdu.length >= 7) {
        throw new ScError('NOT_SUPPORTED', 'Extended-length APDUs cannot be sent over T=0 (they need ENVELOPE); use a T=1 card or reader.');
      }
      if (apdu.length === 4) command = concatBytes(apdu, new Uint8Array([0])); // case 1: P3 = 00
      else if (apdu.length > 5 && apdu.length === 6 + apdu[4]) command = apdu.subarray(0, apdu.length - 1); // case 4 → case 3 TPDU
    }
    const { entry: first, raw: firstRaw } = await this.manager.exchange(r, command, opts, opts.auto);
    const exchanges: ExchangeEntry[] = [first];
    let last = firstRaw;
    if (!t0 || !getResponse) return { response: last, sw: swOf(last), exchanges };

    const parts: Uint8Array[] = [];
    for (let guard = 0; guard < 256; guard++) {
      const sw1 = last[last.length - 2];
      const sw2 = last[last.length - 1];
      if (sw1 === 0x6c && command.length === 5) {
        // Wrong Le: resend the same case-2 command with the Le the card asked for.
        command = concatBytes(command.subarray(0, 4), new Uint8Array([sw2]));
        const e = await this.manager.exchange(r, command, opts, 'resendWithLe', first.seq);
        exchanges.push(e.entry);
        last = e.raw;
        continue;
      }
      if (sw1 === 0x61) {
        parts.push(last.subarray(0, last.length - 2));
        const cla = (apdu[0] & 0x80) === 0 ? apdu[0] & 0x03 : 0x00;
        command = new Uint8Array([cla, 0xc0, 0x00, 0x00, sw2]);
        const e = await this.manager.exchange(r, command, opts, 'getResponse', first.seq);
        exchanges.push(e.entry);
        last = e.raw;
        continue;
      }
      break;
    }
    parts.push(last);
    const response = parts.length === 1 ? last : concatBytes(...parts);
    return { response, sw: swOf(response), exchanges };
  }

  /** Cold or warm reset (SCardReconnect with SCARD_RESET_CARD / SCARD_UNPOWER_CARD). */
  reset(mode: PowerMode = 'warm'): Promise<Uint8Array> {
    return this.op(async () => {
      if (mode === 'cold') await this.manager.powerDown(this.r);
      await this.manager.powerUp(this.r, mode, this.requestedProtocol);
      this.generation = this.r.card.generation;
      return this.r.card.atr!;
    });
  }

  /** Removes power from the card (SCardDisconnect's SCARD_UNPOWER_CARD, keeping the connection). */
  powerOff(): Promise<void> {
    return this.op(() => this.manager.powerDown(this.r));
  }

  control(code: number, data: Uint8Array): Promise<Uint8Array> {
    return this.r.queue.run(this.id, async () => {
      if (this.closed) throw this.closed;
      return this.r.driver.control(this.r.slot.key, code, data);
    });
  }

  beginTransaction(): Promise<void> {
    return this.op(async () => {
      const q = this.r.queue;
      if (q.owner === this.id) { q.depth++; return; }
      await this.r.driver.beginTransaction?.(this.r.slot.key);
      q.owner = this.id;
      q.depth = 1;
      this.manager.armTransactionTimer(this.r);
    });
  }

  endTransaction(disposition: Disposition = 'leave'): Promise<void> {
    return this.r.queue.run(this.id, async () => {
      const q = this.r.queue;
      if (q.owner !== this.id) {
        if (this.closed) return; // the card or reader went away and took the transaction with it
        throw new ScError('BAD_REQUEST', 'This connection holds no transaction to end.');
      }
      await this.applyDisposition(disposition);
      if (--q.depth > 0) return;
      try {
        await this.r.driver.endTransaction?.(this.r.slot.key, 'leave');
      } finally {
        this.manager.transactionEnded(this.r);
      }
    });
  }

  /** SCardDisconnect with what to do with the card. */
  async disconnect(disposition: Disposition = 'leave'): Promise<void> {
    if (this.closed) { this.manager.connectionClosed(this.r, this); return; }
    try {
      await this.r.queue.run(this.id, () => this.applyDisposition(disposition));
    } finally {
      this.close();
    }
  }

  private async applyDisposition(disposition: Disposition): Promise<void> {
    if (!this.r.card.present || this.r.removed) return;
    switch (disposition) {
      case 'leave': return;
      case 'reset': await this.manager.powerUp(this.r, 'warm', this.requestedProtocol); return;
      case 'unpower': await this.manager.powerDown(this.r); return;
      case 'eject':
        if (!this.r.driver.eject) throw new ScError('NOT_SUPPORTED', `'${this.r.name}' cannot eject cards.`);
        await this.r.driver.eject(this.r.slot.key);
        return;
    }
  }
}

/** Removes an item from a small unordered list without allocating. */
function unlist<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i < 0) return;
  list[i] = list[list.length - 1];
  list.pop();
}

function swOf(response: Uint8Array): number {
  return (response[response.length - 2] << 8) | response[response.length - 1];
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
