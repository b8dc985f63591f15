// TEST DOUBLE of the PC/SC service's CardBackend, over the real simulator driver
// and its demo card, for the session's unit tests (no manager, no gate). The
// product's backend is server/src/service/managerBackend.ts, which the refstack
// tests serve real clients with. This one behaves like pcscd's winscard.c for one
// or more simulator readers: share modes, a transaction lock that blocks like
// pcscd's, RESET/REMOVED reported once per handle, dispositions, abandon on a dead
// client. Deliberately minimal; test code only.
import { readerName } from '../../server/src/manager/naming';
import { BackendError, type BackendHandle, type CardBackend, type IoRequest } from '../../server/src/service/backend';
import type { CardCondition, ReaderFacts } from '../../server/src/service/readerState';
import { Disposition, ProtocolBits, Rv, ShareMode } from '../../server/src/service/wire';
import { SimulatorDriver, type SimulatorOptions } from '../../server/src/drivers/simulator/driver';
import type { DriverSink, SlotDescriptor } from '../../server/src/drivers/driver';

const SCARD_ATTR_ATR_STRING = 0x00090303;
const SCARD_ATTR_CHANNEL_ID = 0x00020110;

interface SimReader {
  key: string;
  name: string;
  card: CardCondition;
  atr: Uint8Array;
  protocol: number;
  eventCounter: number;
  handles: Set<SimHandle>;
  exclusive: SimHandle | null;
  lock: SimHandle | null;
  lockWaiters: (() => void)[];
}

interface SimHandle {
  reader: SimReader;
  share: number;
  protocol: number;
  /** SCARD_W_RESET_CARD / SCARD_W_REMOVED_CARD to report once, like pcscd's per-handle event state. */
  pending: number | null;
  closed: boolean;
}

export class SimPcscBackend implements CardBackend {
  readonly driver: SimulatorDriver;
  private readonly readersByKey = new Map<string, SimReader>();
  private readonly listeners = new Set<() => void>();
  /** Calls made, by name, without data (tests assert on them; a PIN never lands here). */
  readonly calls: string[] = [];

  private constructor(options: SimulatorOptions) {
    this.driver = new SimulatorDriver(options);
  }

  static async create(options: SimulatorOptions = {}): Promise<SimPcscBackend> {
    const b = new SimPcscBackend(options);
    const slots: SlotDescriptor[] = [];
    const sink: DriverSink = {
      slotAdded: (s) => slots.push(s),
      slotRemoved: () => {},
      cardInserted: (key) => void b.inserted(key),
      cardRemoved: (key) => b.removed(key),
      log: () => {},
    };
    await b.driver.start(sink);
    for (const [i, s] of slots.entries()) {
      const r: SimReader = {
        key: s.key, name: readerName(s, i), card: 'absent', atr: new Uint8Array(0), protocol: 0, eventCounter: 0,
        handles: new Set(), exclusive: null, lock: null, lockWaiters: [],
      };
      b.readersByKey.set(s.key, r);
      if (s.cardPresent) await b.powerUp(r);
    }
    return b;
  }

  /** Every reader's key, for insertCard/removeCard. */
  get keys(): string[] {
    return [...this.readersByKey.keys()];
  }

  /**
   * Unplugs (false) or plugs back (true) a simulator reader, as a USB reader would
   * come and go: its handles see SCARD_W_REMOVED_CARD, it leaves the table, and a
   * reader plugged back starts again with event counter 0 (pcsc-lite 2.0.0 on).
   */
  setPlugged(plugged: boolean, key = this.keys[0]): void {
    const r = this.readersByKey.get(key)!;
    if (plugged === !this.unplugged.has(key)) return;
    if (plugged) {
      this.unplugged.delete(key);
      r.eventCounter = 0;
    } else {
      this.unplugged.add(key);
      for (const h of r.handles) h.pending = Rv.SCARD_W_REMOVED_CARD;
    }
    this.changed();
  }
  private readonly unplugged = new Set<string>();

  insertCard(key = this.keys[0]): void {
    this.driver.insertCard(key);
  }
  removeCard(key = this.keys[0]): void {
    this.driver.removeCard(key);
  }

  /** pcscd's eventhandler: a card inserted is powered at once and counted. */
  private async inserted(key: string): Promise<void> {
    const r = this.readersByKey.get(key);
    if (!r) return;
    r.eventCounter++;
    await this.powerUp(r);
  }

  private removed(key: string): void {
    const r = this.readersByKey.get(key);
    if (!r) return;
    r.eventCounter++;
    r.card = 'absent';
    r.atr = new Uint8Array(0);
    r.protocol = 0;
    for (const h of r.handles) h.pending = Rv.SCARD_W_REMOVED_CARD;
    this.changed();
  }

  private async powerUp(r: SimReader): Promise<void> {
    try {
      r.atr = await this.driver.powerOn(r.key, 'cold');
      r.card = 'powered';
    } catch {
      r.card = 'mute';
      r.atr = new Uint8Array(0);
    }
    r.protocol = 0;
    this.changed();
  }

  private changed(): void {
    for (const l of [...this.listeners]) l();
  }

  readers(): readonly ReaderFacts[] {
    return [...this.readersByKey.values()].filter((r) => !this.unplugged.has(r.key)).map((r) => ({
      name: r.name, card: r.card, eventCounter: r.eventCounter, atr: r.atr, protocol: r.protocol,
      handles: r.handles.size, exclusive: r.exclusive !== null,
    }));
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private reader(name: string): SimReader {
    for (const r of this.readersByKey.values()) if (r.name === name && !this.unplugged.has(r.key)) return r;
    throw new BackendError(Rv.SCARD_E_UNKNOWN_READER, `no reader ${name}`);
  }

  private live(handle: BackendHandle): SimHandle {
    const h = handle as SimHandle;
    if (h.closed) throw new BackendError(Rv.SCARD_E_INVALID_HANDLE, 'handle closed');
    return h;
  }

  /** RESET/REMOVED once, then the handle goes on (pcscd's RFCheckReaderEventState). */
  private checkEvents(h: SimHandle): void {
    if (h.pending !== null) {
      const rv = h.pending;
      if (rv === Rv.SCARD_W_RESET_CARD) h.pending = null;
      throw new BackendError(rv, rv === Rv.SCARD_W_RESET_CARD ? 'card reset' : 'card removed');
    }
  }

  private negotiate(r: SimReader, preferred: number, share: number): number {
    if (share === ShareMode.SCARD_SHARE_DIRECT) return ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
    const cardProto = this.driver.cardIn(r.key)?.protocol === 0 ? ProtocolBits.SCARD_PROTOCOL_T0 : ProtocolBits.SCARD_PROTOCOL_T1;
    if (!(preferred & cardProto)) throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'protocol not offered by the card');
    r.protocol = cardProto;
    return cardProto;
  }

  async connect(reader: string, shareMode: number, preferredProtocols: number): Promise<{ handle: BackendHandle; activeProtocol: number }> {
    this.calls.push('connect');
    const r = this.reader(reader);
    await this.waitUnlocked(r);
    if (r.exclusive) throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'reader held exclusively');
    if (shareMode === ShareMode.SCARD_SHARE_EXCLUSIVE && r.handles.size) throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'reader in use');
    if (shareMode !== ShareMode.SCARD_SHARE_DIRECT) {
      if (r.card === 'absent') throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no card');
      if (r.card === 'unpowered') await this.powerUp(r);
      if (r.card !== 'powered') throw new BackendError(Rv.SCARD_W_UNPOWERED_CARD, 'card not powered');
    }
    const protocol = this.negotiate(r, preferredProtocols, shareMode);
    const h: SimHandle = { reader: r, share: shareMode, protocol, pending: null, closed: false };
    r.handles.add(h);
    if (shareMode === ShareMode.SCARD_SHARE_EXCLUSIVE) r.exclusive = h;
    this.changed();
    return { handle: h, activeProtocol: protocol };
  }

  async reconnect(handle: BackendHandle, shareMode: number, preferredProtocols: number, initialization: number): Promise<{ activeProtocol: number }> {
    this.calls.push('reconnect');
    const h = this.live(handle);
    const r = h.reader;
    if (r.card === 'absent') throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no card');
    h.pending = null;
    if (initialization === Disposition.SCARD_RESET_CARD || initialization === Disposition.SCARD_UNPOWER_CARD) await this.resetFor(h);
    if (shareMode === ShareMode.SCARD_SHARE_EXCLUSIVE) {
      if (r.handles.size > 1) throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'reader in use');
      r.exclusive = h;
    } else if (r.exclusive === h) r.exclusive = null;
    h.share = shareMode;
    h.protocol = this.negotiate(r, preferredProtocols, shareMode);
    this.changed();
    return { activeProtocol: h.protocol };
  }

  /** A reset by one handle: every other handle sees SCARD_W_RESET_CARD once. */
  private async resetFor(h: SimHandle): Promise<void> {
    for (const o of h.reader.handles) if (o !== h) o.pending ??= Rv.SCARD_W_RESET_CARD;
    await this.powerUp(h.reader);
  }

  async disconnect(handle: BackendHandle, disposition: number): Promise<void> {
    this.calls.push('disconnect');
    const h = this.live(handle);
    await this.close(h, disposition);
  }

  private async close(h: SimHandle, disposition: number): Promise<void> {
    const r = h.reader;
    h.closed = true;
    r.handles.delete(h);
    if (r.exclusive === h) r.exclusive = null;
    if (r.lock === h) this.unlock(r);
    if (r.card !== 'absent') {
      if (disposition === Disposition.SCARD_RESET_CARD) await this.resetFor(h);
      else if (disposition === Disposition.SCARD_UNPOWER_CARD) {
        await this.driver.powerOff(r.key);
        for (const o of r.handles) o.pending ??= Rv.SCARD_W_RESET_CARD;
        r.card = 'unpowered';
        r.protocol = 0;
      }
    }
    this.changed();
  }

  /** Wakes every waiter; each checks again (a transmit waits for the lock without taking it). */
  private unlock(r: SimReader): void {
    r.lock = null;
    const waiters = r.lockWaiters.splice(0);
    for (const w of waiters) w();
  }

  /** winscard.c SCardConnect waits (server side) while any handle holds the reader's lock. */
  private async waitUnlocked(r: SimReader): Promise<void> {
    while (r.lock !== null) await new Promise<void>((resolve) => r.lockWaiters.push(resolve));
  }

  /** RFCheckSharing: another handle's transaction is SCARD_E_SHARING_VIOLATION at once; the client library retries. */
  private checkSharing(h: SimHandle): void {
    if (h.reader.lock !== null && h.reader.lock !== h) throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'reader locked by another handle');
  }

  async beginTransaction(handle: BackendHandle): Promise<void> {
    this.calls.push('begin');
    const h = this.live(handle);
    this.checkEvents(h);
    this.checkSharing(h);
    h.reader.lock = h;
  }

  async endTransaction(handle: BackendHandle, disposition: number): Promise<void> {
    this.calls.push('end');
    const h = this.live(handle);
    const r = h.reader;
    if (r.lock !== h) throw new BackendError(Rv.SCARD_E_NOT_TRANSACTED, 'no transaction');
    if (disposition === Disposition.SCARD_RESET_CARD) await this.resetFor(h);
    this.unlock(r);
  }

  async transmit(handle: BackendHandle, sendPci: IoRequest, command: Uint8Array, maxResponse: number): Promise<Uint8Array> {
    this.calls.push('transmit');
    const h = this.live(handle);
    this.checkEvents(h);
    const r = h.reader;
    this.checkSharing(h);
    if (h.share === ShareMode.SCARD_SHARE_DIRECT) throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'direct connection');
    if (sendPci.protocol !== h.protocol) throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'wrong protocol');
    if (command.length < 4) throw new BackendError(Rv.SCARD_E_INVALID_PARAMETER, 'command too short');
    // Raw bytes as pcscd passes them to the IFD handler; T=0 case rules are the real backend's (the manager's t0 rules).
    const response = await this.driver.transmit(r.key, command);
    void maxResponse;
    return response;
  }

  async control(handle: BackendHandle, code: number, data: Uint8Array): Promise<Uint8Array> {
    this.calls.push('control');
    const h = this.live(handle);
    try {
      return await this.driver.control(h.reader.key, code, data);
    } catch {
      throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'control code not supported');
    }
  }

  async status(handle: BackendHandle): Promise<void> {
    this.calls.push('status');
    this.checkEvents(this.live(handle));
  }

  async getAttrib(handle: BackendHandle, attrId: number): Promise<Uint8Array> {
    this.calls.push('getAttrib');
    const h = this.live(handle);
    if (attrId === SCARD_ATTR_ATR_STRING) return h.reader.atr.slice();
    if (attrId === SCARD_ATTR_CHANNEL_ID) return Uint8Array.of(0, 0, 0x20, 0); // DWORD 0x00200000 LE: "reader-specific", none here
    throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'attribute not supported');
  }

  async setAttrib(): Promise<void> {
    this.calls.push('setAttrib');
    throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'the reader takes no attribute (as pcscd with libccid)');
  }

  cancel(): void {
    this.calls.push('cancel');
  }

  async abandon(handle: BackendHandle): Promise<void> {
    this.calls.push('abandon');
    const h = handle as SimHandle;
    if (h.closed) return;
    // MSGRemoveContext: the transaction holder's card is reset, unless it was already reset or removed.
    const held = h.reader.lock === h && h.pending === null;
    await this.close(h, held ? Disposition.SCARD_RESET_CARD : Disposition.SCARD_LEAVE_CARD);
  }

  /** Lock state, for tests. */
  transactionHeld(key = this.keys[0]): boolean {
    return this.readersByKey.get(key)!.lock !== null;
  }
}
