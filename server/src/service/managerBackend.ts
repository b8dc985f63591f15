// The PC/SC service's real CardBackend: the reader manager. Every client handle
// (hCard) is one manager connection, so a PC/SC program is one more client of the
// per-reader gate, beside scripts and the Readers view (design: "Every client …
// reaches a card only through a manager connection").
//
// pcscd's semantics on top of the gate:
// - share modes pass through. A client's exclusive connection also holds the
//   reader's queue (a manager transaction) for as long as it lasts, so a script run
//   meanwhile waits behind it instead of failing; other PC/SC clients get
//   SCARD_E_SHARING_VIOLATION at once, as from pcscd. Neither that hold nor a client's
//   transaction is released for being idle (pcscd never does; a dead client's socket closing does);
// - BEGIN and TRANSMIT while another connection holds the reader's transaction:
//   SCARD_E_SHARING_VIOLATION (TRANSMIT at once, BEGIN after pcscd's PCSCLITE_LOCK_POLL_RATE;
//   the client library polls); CONNECT waits, a direct one too (R49);
// - SCARD_W_RESET_CARD and SCARD_W_REMOVED_CARD on every call of a handle after a reset
//   (seen through the gate's counters, or its own EndTransaction(RESET)) or a removal, until
//   its SCardReconnect (pcscd's dwEventStatus, RFCheckReaderEventState); direct handles too,
//   from the manager's card entries (R47); CONTROL does not look (R51); on a system reader a
//   reset another program made through pcscd too, found by the driver's look before each call
//   that looks (R74);
// - a direct handle may hold the reader's transaction, kept across SCardReconnect (R50);
// - CONTROL, RECONNECT and STATUS check the sharing first (SHARING_VIOLATION at once);
// - T=0 as pcscd and libccid do it: a case 4 command goes out as case 3 and 61xx /
//   6Cxx come back to the client (no automatic GET RESPONSE);
// - a client's exchanges reach the APDU Log; the data of VERIFY, CHANGE REFERENCE
//   DATA and RESET RETRY COUNTER (INS 20/21, 24, 2C) and of PIN-pad control calls
//   (VERIFY/MODIFY_PIN_DIRECT and the like, MCT and escape calls that may carry a VERIFY,
//   listed by the reader or in libccid's numbering) is logged as `**`, and so is the answer
//   of GET_KEY (the keys typed), MCT and escape calls (the control part by the manager's
//   emitEntry, the same rule for every caller).

import { setTimeout as delay } from 'node:timers/promises';
import { BackendError, type BackendHandle, type CardBackend, type IoRequest, type TransmitSink } from './backend';
import type { CardCondition, ReaderFacts } from './readerState';
import { Disposition, ProtocolBits, Rv, ShareMode } from './wire';
import type { Connection, DirectUser, Disposition as ManagerDisposition, ReaderManager, TransmitOptions } from '../manager/manager';
import { rawFactKey, type ControlEntry, type ReaderInfo } from '../protocol';
import type { Protocol } from '../drivers/driver';
import { READER_ATTRIBUTES } from '../drivers/pcsc/attributes';
import { CM_IOCTL_GET_FEATURE_REQUEST } from '../codecs/pcscFeatures';
import { secretRanges } from '../codecs/apdu';
import { asScError, type ScErrorCode } from '../util/errors';
import { fromHex, toHex } from '../util/hex';

/** pcscd.h PCSCLITE_LOCK_POLL_RATE (100,000 µs): how long pcscd waits before refusing a transaction. */
export const LOCK_POLL_RATE_MS = 100;

/** pcsc-lite's control code on Unix (reader.h). */
const SCARD_CTL_CODE = (code: number): number => 0x42000000 + code;
const SCARD_ATTR_ATR_STRING = 0x00090303;
const SCARD_ATTR_CHANNEL_ID = 0x00020110;
const SCARD_ATTR_DEVICE_FRIENDLY_NAME = 0x7fff0003;
const SCARD_ATTR_DEVICE_SYSTEM_NAME = 0x7fff0004;
const SCARD_ATTR_VENDOR_NAME = 0x00010100;
const SCARD_ATTR_VENDOR_IFD_TYPE = 0x00010101;
const SCARD_ATTR_VENDOR_IFD_VERSION = 0x00010102;
const SCARD_ATTR_VENDOR_IFD_SERIAL_NO = 0x00010103;
const SCARD_ATTR_MAX_IFSD = 0x00030125;
const SCARD_ATTR_MAXINPUT = 0x0007a007;
/** The attributes ReaderFacts describe: the table the PC/SC driver reads them by. */
const FACT_TAGS: ReadonlySet<number> = new Set(READER_ATTRIBUTES.map((a) => a.tag));

interface Handle {
  readonly reader: string;
  share: number;
  /** null for SCARD_SHARE_DIRECT (no card session; control goes to the reader). */
  conn: Connection | null;
  /** SCARD_PROTOCOL_* negotiated. */
  protocol: number;
  /** The client's own Begin/EndTransaction nesting (the exclusive hold is not counted). */
  transactions: number;
  /** SCARD_W_REMOVED_CARD until a reconnect, as pcscd reports it. */
  removed: boolean;
  /** SCARD_W_RESET_CARD on every call until a reconnect (pcscd's dwEventStatus, RFCheckReaderEventState). */
  reset: boolean;
  closed: boolean;
  /** The program, as the Readers view and its APDU Log rows name it ("pcsc_scan (pid 4711)"). */
  readonly client: string;
  /** A direct handle's entry in the reader's list of who uses it. */
  dropDirect?: DirectUser;
  /** The transmit options of an APDU without a PIN: made once per handle, not per APDU (see transmit). */
  readonly plainTransmit: TransmitOptions;
  /** A transmit failure as the PC/SC return code, bound once per handle. */
  readonly transmitFailed: (e: unknown) => never;
  /** transmitTo's sink while its TRANSMIT is in the manager (one at a time: a client's requests are served in order). */
  sink: TransmitSink | null;
  /** transmitTo's reactions, bound once per handle: the answer or the failure (as the PC/SC return code) to the sink. */
  readonly answeredTo: (r: { response: Uint8Array }) => void;
  readonly failedTo: (e: unknown) => void;
}

export interface ManagerBackendOptions {
  /** The service's log (debug lines only; never data). */
  log?: (level: 'debug' | 'info' | 'warn', message: string) => void;
}

export class ManagerBackend implements CardBackend {
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe: () => void;
  private readonly handles = new Set<Handle>();
  /** Readers a client's connect negotiated a protocol on since the card's last power change (pcscd's cardProtocol). */
  private readonly negotiated = new Map<string, number>();
  /** The ATR of each reader's card, kept while a client has it powered down (pcscd keeps it in the table). */
  private readonly lastAtr = new Map<string, Uint8Array>();

  constructor(readonly manager: ReaderManager, private readonly options: ManagerBackendOptions = {}) {
    // A transaction is not in pcscd's reader state table: only other changes reach the clients.
    this.unsubscribe = manager.onReadersChanged((what) => { if (what !== 'transactions') this.changed(); });
    const off = manager.onEntry((e) => {
      if (e.kind === 'cardPowered' || e.kind === 'cardReset' || e.kind === 'cardUnpowered' || e.kind === 'cardRemoved' || e.kind === 'readerRemoved') {
        this.negotiated.delete(e.reader);
      }
      if (e.kind === 'cardRemoved' || e.kind === 'readerRemoved') this.lastAtr.delete(e.reader);
      // pcscd's RFSetReaderEventState (readerfactory.c 1315): every handle of the reader, direct ones
      // included, gets the event, the last one replacing an earlier one. A card connection also hears
      // resets through the gate's counters; a direct handle has no connection, so it hears them here.
      if (e.kind === 'cardRemoved' || e.kind === 'readerRemoved') this.markEvent(e.reader, 'removed', true);
      // pcscd's on-demand power-down (eventhandler.c ~470–480) tells no handle (R77).
      if (e.kind === 'cardReset' || (e.kind === 'cardUnpowered' && !e.idle)) this.markEvent(e.reader, 'reset', false);
    });
    // Another program of the machine reset the card (a driver saw SCARD_W_RESET_CARD, R74): card connections hear it
    // through the gate's count, direct handles here.
    const offOutside = manager.onOutsideReset((reader) => this.markEvent(reader, 'reset', false));
    const un = this.unsubscribe;
    this.unsubscribe = () => { un(); off(); offOutside(); };
  }

  /**
   * R74: before a call pcscd answers with the handle's event (RFCheckReaderEventState: SCardStatus, SCardGetAttrib,
   * SCardTransmit, Begin/End), and before a connect or reconnect (so a reset from before them is not told to them
   * after), the driver looks in the system service for a reset another program made (PC/SC readers only; others
   * resolve at once). What it finds reaches the handles through onOutsideReset and the gate's count; the look's own
   * failure tells nothing and the call goes on as before.
   */
  private lookOutside(reader: string, since?: number): Promise<void> {
    try {
      return this.manager.checkCardEvents(reader, since).catch(() => undefined);
    } catch {
      return Promise.resolve();
    }
  }

  /** RFSetReaderEventState: `all` false marks the direct handles only (card connections count resets themselves). */
  private markEvent(reader: string, event: 'removed' | 'reset', all: boolean): void {
    for (const h of this.handles) {
      if (h.reader !== reader || h.closed || (!all && h.conn)) continue;
      h.removed = event === 'removed';
      h.reset = event === 'reset';
      // A removal unlocks the reader: hLockId = 0, LockCount = 0 (readerfactory.c 1338–1343). The manager
      // released the queue; a count kept here would be handed over again at a share change (R56).
      if (event === 'removed') h.transactions = 0;
    }
  }

  dispose(): void {
    this.unsubscribe();
    this.listeners.clear();
  }

  private changed(): void {
    for (const l of [...this.listeners]) l();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  readers(): readonly ReaderFacts[] {
    return this.manager.list().readers.map((r) => this.facts(r));
  }

  private facts(r: ReaderInfo): ReaderFacts {
    const direct = [...this.handles].filter((h) => h.reader === r.name && !h.conn && !h.closed).length;
    const base = { name: r.name, handles: r.connections + direct, exclusive: r.exclusive };
    if (r.unavailable) return { ...base, card: 'reader-error', eventCounter: r.eventCount };
    // pcscd shows an inserted card once its eventhandler has powered it: until then, the reader as it was.
    if (r.card && this.manager.cardInitializing(r.name)) return { ...base, card: 'absent', eventCounter: Math.max(0, r.eventCount - 1) };
    let card: CardCondition = 'absent';
    if (r.card?.mute) card = 'mute';
    else if (r.card?.powered && r.card.atr) card = 'powered';
    // pcscd's on-demand power-down changes only cardProtocol (UNDEFINED): the bits and the ATR stay (R77).
    else if (r.card?.idle && r.card.atr) card = 'powered';
    else if (r.card) card = 'unpowered';
    let atr: Uint8Array | undefined;
    if (card === 'powered' && r.card?.atr) {
      atr = fromHex(r.card.atr);
      this.lastAtr.set(r.name, atr);
    } else if (card === 'unpowered') atr = this.lastAtr.get(r.name);
    const protocol = card === 'powered' ? this.negotiated.get(r.name) ?? 0 : 0;
    return { ...base, card, eventCounter: r.eventCount, ...(atr ? { atr } : {}), protocol };
  }

  private live(handle: BackendHandle): Handle {
    const h = handle as Handle;
    if (h.closed) throw new BackendError(Rv.SCARD_E_INVALID_HANDLE, 'handle closed');
    return h;
  }

  /** SCARD_W_REMOVED_CARD stays until a reconnect; then the connection's own once-only RESET/REMOVED check. */
  private checkEvents(h: Handle): Connection {
    this.eventState(h);
    if (!h.conn) throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'a direct connection has no card session');
    try {
      h.conn.checkState();
    } catch (e) {
      throw this.fail(h, e);
    }
    return h.conn;
  }

  /**
   * pcscd's RFCheckReaderEventState (readerfactory.c 1348): the handle's removal or reset until its
   * SCardReconnect, direct handles included; a card connection's once-only check follows in checkEvents.
   */
  private eventState(h: Handle): void {
    if (h.removed) throw new BackendError(Rv.SCARD_W_REMOVED_CARD, 'card removed');
    if (h.reset) throw new BackendError(Rv.SCARD_W_RESET_CARD, 'card reset');
  }

  /** The handle has a removal or a reset to report (recorded now if its connection has one to tell). */
  private eventPending(h: Handle): boolean {
    if (h.removed || h.reset) return true;
    if (!h.conn) return false;
    try {
      h.conn.checkState();
      return false;
    } catch (e) {
      const code = asScError(e).code;
      if (code !== 'CARD_REMOVED' && code !== 'CARD_RESET' && code !== 'NO_CARD') throw this.fail(h, e);
      this.fail(h, e); // records it on the handle (removed / reset)
      return true;
    }
  }

  /** A manager error as the PC/SC return code pcscd gives in the same case. */
  private fail(h: Handle | null, e: unknown, during: 'connect' | 'card' = 'card'): BackendError {
    if (e instanceof BackendError) return e;
    const err = asScError(e);
    const rv = rvFor(err.code, during);
    if (h && rv === Rv.SCARD_W_REMOVED_CARD) h.removed = true;
    if (h && rv === Rv.SCARD_W_RESET_CARD) h.reset = true;
    return new BackendError(rv, err.message);
  }

  /** The id the reader's queue knows this handle by: its connection's, or its direct entry's (R50). */
  private ownId(h: Handle): number | undefined {
    return h.conn?.id ?? h.dropDirect?.directId;
  }

  /** Another connection holds the reader's transaction: pcscd's RFCheckSharing answers at once. */
  private checkSharing(h: Handle): void {
    const owner = this.manager.transactionOwner(h.reader);
    if (owner !== null && owner !== this.ownId(h)) {
      throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'the reader is in another connection\'s transaction');
    }
  }

  /**
   * Until nobody holds the reader's transaction: pcscd polls hLockId every PCSCLITE_LOCK_POLL_RATE
   * (winscard.c ~285); here the manager's change events end the wait at once, the poll is the fall-back.
   */
  private async untilNoTransaction(reader: string): Promise<void> {
    while (this.manager.transactionOwner(reader) !== null) {
      await new Promise<void>((resolve) => {
        const done = (): void => { off(); clearTimeout(timer); resolve(); };
        const off = this.manager.onReadersChanged(done);
        const timer = setTimeout(done, LOCK_POLL_RATE_MS);
      });
    }
  }

  /** Whether any handle is open on the reader: a connection (ours or the workbench's) or a direct user. */
  private inUse(reader: string, info: ReaderInfo): boolean {
    if (info.connections > 0 || (info.clients?.length ?? 0) > 0) return true;
    for (const h of this.handles) if (h.reader === reader && !h.closed) return true;
    return false;
  }

  private static wanted(preferred: number, share: number): Protocol | undefined {
    if (share === ShareMode.SCARD_SHARE_DIRECT) return undefined;
    const t0 = (preferred & ProtocolBits.SCARD_PROTOCOL_T0) !== 0;
    const t1 = (preferred & (ProtocolBits.SCARD_PROTOCOL_T1 | ProtocolBits.SCARD_PROTOCOL_ANY_OLD)) !== 0;
    if (t0 && !t1) return 0;
    if (t1 && !t0) return 1;
    return undefined; // either: the card's current one
  }

  /**
   * A new connection in this share mode. `replaces`: the handle's own connection (or direct entry) an
   * SCardReconnect swaps out; it does not count against the new one, and is left alone if this fails.
   */
  private async open(
    reader: string, share: number, preferred: number, client: string,
    replaces?: Connection | DirectUser, swapped?: (conn: Connection) => Promise<void>, transactions = 0,
  ): Promise<{ conn: Connection | null; protocol: number }> {
    let info: ReaderInfo;
    try { info = this.manager.reader(reader); } catch (e) { throw this.fail(null, e, 'connect'); }
    // pcscd refuses every SCardConnect, DIRECT included, while another handle holds the reader
    // exclusively (winscard.c ~279); the handle's own exclusive connection does not refuse its reconnect.
    const ownExclusive = typeof replaces === 'object' && replaces.share === 'exclusive';
    if (info.exclusive && !ownExclusive) throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'the reader is held exclusively');
    // pcscd answers a direct connection with the card's protocol as the table has it: the one
    // negotiated since the last power-up, else SCARD_PROTOCOL_UNDEFINED (winscard.c SCardConnect).
    if (share === ShareMode.SCARD_SHARE_DIRECT) {
      // pcscd's SCardConnect waits for another handle's transaction before it looks at the share mode
      // (winscard.c ~280–289), so a direct connect waits as a shared one does (R49); a reconnect does not.
      if (!replaces) {
        await this.untilNoTransaction(reader);
        try { this.manager.reader(reader); } catch (e) { throw this.fail(null, e, 'connect'); }
      }
      // RAW asked for (R78) is set by the caller once the connect or reconnect is sure to succeed (R90).
      return { conn: null, protocol: this.negotiated.get(reader) ?? ProtocolBits.SCARD_PROTOCOL_UNDEFINED };
    }
    if (!info.card) throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no card');
    // A cardProtocol of RAW set by someone (R78) is a protocol the card runs that a T=0/T=1 connect did not ask for
    // (winscard.c ~408–414: `if (! (dwPreferredProtocols & cardProtocol))`).
    const rawSet = this.negotiated.get(reader) === ProtocolBits.SCARD_PROTOCOL_RAW;
    if (rawSet && !(preferred & ProtocolBits.SCARD_PROTOCOL_RAW) && !replaces) {
      throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'the reader\'s protocol is RAW (another client asked for it)');
    }
    // pcscd's SCardConnect finds a swallowed card not POWERED: SCARD_W_UNPOWERED_CARD (winscard.c ~336, R60) while
    // handles are open (powerState stays IN_USE). When the last one has gone, pcscd powers the card down
    // (SCardDisconnect ~1014–1019, eventhandler.c ~470–490) after its grace period, and the next connect powers it up
    // again (~312–336): here the manager's connect does, once the manager's grace period is over (R64, R77).
    const mute = info.card.mute === true;
    if (mute && (this.inUse(reader, info) || this.manager.inGracePeriod(reader))) {
      throw new BackendError(Rv.SCARD_W_UNPOWERED_CARD, 'the card did not answer its power-up or reset');
    }
    const exclusive = share === ShareMode.SCARD_SHARE_EXCLUSIVE;
    let conn: Connection;
    try {
      // pcscd never takes a transaction (or here the exclusive hold) away from a live client.
      conn = await this.manager.connect(reader, {
        share: exclusive ? 'exclusive' : 'shared', keepsIdleTransaction: true, client, exclusiveHold: exclusive, ...protocolOpt(ManagerBackend.wanted(preferred, share)),
        ...(replaces ? { replaces } : {}), ...(transactions ? { takesTransaction: transactions } : {}),
      });
    } catch (e) {
      // A power-up that failed again: pcscd's SCardConnect answers SCARD_W_UNPOWERED_CARD (~322–341).
      let still = false;
      try { still = this.manager.reader(reader).card?.mute === true; } catch { /* the reader went: fail() says so */ }
      if (mute && still) throw new BackendError(Rv.SCARD_W_UNPOWERED_CARD, 'the card did not answer its power-up');
      throw this.fail(null, e, 'connect');
    }
    // A reconnect's swap is done here: the handle takes the new connection (and the client's transaction,
    // taken over in the connect's turn) and the old one goes before the new one takes the exclusive hold,
    // which would otherwise wait behind the old one's transaction.
    await swapped?.(conn);
    try {
      // The exclusive connection holds the reader's queue: scripts wait behind it. Over a transaction the new
      // connection took over, it is one level more, as pcscd's RFLockSharing adds one to LockCount.
      if (exclusive) await conn.beginTransaction();
    } catch (e) {
      // A reconnect keeps its new connection (the old one is gone): the client hears why, as from a card call.
      if (swapped) throw new BackendError(rvFor(asScError(e).code, 'card'), asScError(e).message);
      await conn.disconnect('leave').catch(() => {});
      throw this.fail(null, e, 'connect');
    }
    const protocol = preferred & ProtocolBits.SCARD_PROTOCOL_RAW ? ProtocolBits.SCARD_PROTOCOL_RAW
      : conn.protocol === 0 ? ProtocolBits.SCARD_PROTOCOL_T0 : ProtocolBits.SCARD_PROTOCOL_T1;
    this.negotiate(reader, protocol);
    return { conn, protocol };
  }

  /**
   * pcscd's SCardConnect/SCardReconnect write the negotiated protocol into the reader state
   * table (cardProtocol), and the client library's SCardStatus answers pdwProtocol from that
   * table (Java's smartcardio takes its Card's protocol only from there). The manager's
   * "connections changed" event came before the protocol was known: publish the table again.
   */
  private negotiate(reader: string, protocol: number): void {
    if (this.negotiated.get(reader) === protocol) return;
    this.negotiated.set(reader, protocol);
    // pcscd's SCardTransmit compares the PCI with the reader's cardProtocol, not the handle's (winscard.c ~1551–1560):
    // once a client has set RAW, every card handle's T=0/T=1 PCI is SCARD_E_PROTO_MISMATCH (R78).
    if (protocol === ProtocolBits.SCARD_PROTOCOL_RAW) {
      for (const h of this.handles) if (h.reader === reader && h.conn && !h.closed) h.protocol = protocol;
    }
    this.changed();
  }

  async connect(reader: string, shareMode: number, preferredProtocols: number, client = 'PC/SC client'): Promise<{ handle: BackendHandle; activeProtocol: number }> {
    const t0 = performance.now();
    await this.lookOutside(reader);
    const { conn, protocol } = await this.open(reader, shareMode, preferredProtocols, client);
    const h: Handle = {
      reader, share: shareMode, conn, protocol, transactions: 0, removed: false, reset: false, closed: false, client,
      // The client named here, so the connection does not copy the options to add it (per APDU).
      plainTransmit: { getResponse: false, client },
      transmitFailed: (e) => { throw this.fail(h, e); },
      sink: null,
      answeredTo: (r) => { const sink = h.sink!; h.sink = null; sink.answered(r.response); },
      failedTo: (e) => { const sink = h.sink!; h.sink = null; sink.failed(this.fail(h, e)); },
    };
    this.handles.add(h);
    if (!conn) {
      this.directOpened(h); // a direct handle counts in the sharing; a manager connection reports itself
      if (await this.watchOutside(h, t0)) {
        await this.close(h, 'leave');
        throw heldElsewhere();
      }
      // Asking for RAW sets the reader's cardProtocol to RAW for every client, whatever the share mode (winscard.c
      // ~357, R78): after the sharing check (~279), so a refused connect leaves it as it was.
      if (preferredProtocols & ProtocolBits.SCARD_PROTOCOL_RAW) {
        this.negotiate(reader, ProtocolBits.SCARD_PROTOCOL_RAW);
        h.protocol = ProtocolBits.SCARD_PROTOCOL_RAW;
      }
    }
    return { handle: h, activeProtocol: h.protocol };
  }

  async reconnect(handle: BackendHandle, shareMode: number, preferredProtocols: number, initialization: number): Promise<{ activeProtocol: number }> {
    const t0 = performance.now();
    const h = this.live(handle);
    // pcscd's SCardReconnect: RFCheckSharing first, whatever the initialization (winscard.c ~570).
    this.checkSharing(h);
    // Another program's exclusive hold keeps pcscd's lock (RFLockSharing, winscard.c 463–468), which RFCheckSharing
    // refuses. pcscd never lets it beside a live handle; a direct handle here can meet it when the driver's watch was
    // not open to count in the reader's sharing (R90): the watch's connect tells, before any reset.
    if (!h.conn && await this.watchOutside(h, t0)) throw heldElsewhere();
    // A reset before it is cleared by it, not told after it (R74); within what is left of the call's 2 s (R89's bound,
    // R92: the watch above may have used them behind a long call of ours).
    await this.lookOutside(h.reader, t0);
    const changing = shareMode !== h.share;
    const toDirect = shareMode === ShareMode.SCARD_SHARE_DIRECT;
    const raw = (preferredProtocols & ProtocolBits.SCARD_PROTOCOL_RAW) !== 0;
    // pcscd's order (winscard.c ~573–804): the reset (which marks every handle of the reader, this one
    // too, RFSetReaderEventState ~580), then the protocol, then the share mode; the handle's event state
    // is cleared only on success. A direct handle's reset resets the card as well (R48).
    let wasReset = false;
    const resetFailed = (e: unknown): BackendError => {
      // The handle keeps the reset pcscd marked it with before the power-up (no RFClearReaderEventState).
      h.removed = false;
      h.reset = true;
      // "the protocol is unset after a power on" (winscard.c ~596), whether or not the card answered.
      if (this.negotiated.delete(h.reader)) this.changed();
      if (e instanceof BackendError) return e;
      const err = asScError(e);
      // IFDPowerICC on an absent card is SCARD_W_REMOVED_CARD, which SCardReconnect answers as SCARD_E_NO_SMARTCARD (~617–620).
      if (err.code === 'NO_CARD' || err.code === 'CARD_REMOVED') return new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no card to reset');
      // Every other IFDPowerICC failure is SCARD_W_UNRESPONSIVE_CARD (winscard.c 621–628, R58): a card that does
      // not answer the reset or answers garbage; the reader's or the handle's own failures keep their codes.
      if (err.code === 'TIMEOUT' || err.code === 'PROTOCOL' || err.code === 'DRIVER') return new BackendError(Rv.SCARD_W_UNRESPONSIVE_CARD, err.message);
      return new BackendError(rvFor(err.code, 'card'), err.message);
    };
    const mode = initialization === Disposition.SCARD_RESET_CARD ? 'warm' : 'cold';
    const resetOn = async (conn: Connection): Promise<void> => {
      wasReset = true;
      try {
        await conn.reset(mode);
      } catch (e) {
        throw resetFailed(e);
      }
      // The protocol is negotiated again from the preferred ones (ANY_OLD is T=0 or T=1 there, ~678).
      const accepted = preferredProtocols & ProtocolBits.SCARD_PROTOCOL_ANY_OLD ? ProtocolBits.SCARD_PROTOCOL_T0 | ProtocolBits.SCARD_PROTOCOL_T1 : preferredProtocols;
      const now = protocolBits(conn);
      this.negotiate(h.reader, now);
      if (!toDirect && !raw && !(accepted & now)) {
        h.reset = true;
        throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'the card\'s protocol after the reset is not among the preferred ones');
      }
    };
    const reinit = initialization === Disposition.SCARD_RESET_CARD || initialization === Disposition.SCARD_UNPOWER_CARD;
    if (reinit) {
      this.markEvent(h.reader, 'reset', true);
      if (h.conn) await resetOn(h.conn);
      else {
        // A direct handle has no card connection: the reader's card is reset in the reader's queue, as the
        // Readers view's Reset is (its cardReset / cardUnpowered marks the direct handles, this one too).
        wasReset = true;
        try {
          await this.manager.resetCard(h.reader, mode, h.dropDirect?.directId);
        } catch (e) {
          throw resetFailed(e);
        }
      }
    } else {
      // LEAVE_CARD (winscard.c ~631–645): no card is SCARD_E_NO_SMARTCARD, a mute one SCARD_W_UNRESPONSIVE_CARD,
      // whatever the share mode (R46).
      let info: ReaderInfo;
      try { info = this.manager.reader(h.reader); } catch (e) { throw this.fail(h, e); }
      if (!info.card) throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no card');
      if (info.card.mute) throw new BackendError(Rv.SCARD_W_UNRESPONSIVE_CARD, 'the card did not answer its power-up');
      if (!toDirect && !raw) {
        // A protocol already in use that the caller does not accept is SCARD_E_PROTO_MISMATCH
        // (winscard.c ~711, ANY_OLD not expanded there), before the share mode changes.
        // pcscd compares with the READER's cardProtocol: once a client set RAW (R78) that is RAW for every
        // handle, whatever its own connection negotiated, so a T0|T1 (or ANY_OLD) LEAVE is refused (R80).
        const readerProtocol = this.negotiated.get(h.reader);
        const current = readerProtocol === ProtocolBits.SCARD_PROTOCOL_RAW ? readerProtocol
          : h.conn && h.conn.protocol !== undefined ? protocolBits(h.conn) : readerProtocol;
        if (current !== undefined && current !== ProtocolBits.SCARD_PROTOCOL_UNDEFINED && !(preferredProtocols & current)) {
          throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'the card\'s protocol is not among the preferred ones');
        }
      }
    }
    if (changing) {
      // pcscd refuses a share mode the others do not allow, after the reset and the protocol, and leaves the
      // handle's sharing as it was (winscard.c ~748–801).
      let info: ReaderInfo;
      try { info = this.manager.reader(h.reader); } catch (e) { if (wasReset) h.reset = true; throw this.fail(h, e); }
      const mine = h.conn ? 1 : 0;
      const direct = [...this.handles].filter((o) => o !== h && o.reader === h.reader && !o.conn && !o.closed).length;
      if (shareMode === ShareMode.SCARD_SHARE_EXCLUSIVE && info.connections - mine + direct > 0) {
        throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'other handles use the reader');
      }
      if (info.exclusive && !(h.conn && h.share === ShareMode.SCARD_SHARE_EXCLUSIVE)) {
        throw new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'the reader is held exclusively');
      }
    }
    if (changing) {
      try {
        await this.swap(h, shareMode, preferredProtocols);
      } catch (e) {
        if (wasReset) h.reset = true;
        throw e;
      }
    }
    h.removed = false;
    h.reset = false;
    const conn = h.conn;
    if (conn && !wasReset) conn.seen();
    // A card handle turned direct: the driver's card handle, which kept other programs' exclusive connects out
    // (winscard.c 279–283), was let go in the swap; the watch takes its place. pcscd's own handle would have stayed,
    // so its SCardReconnect answers 0, and so does this one; a refusal means another program got in between: said
    // at debug, and the handle's next SCardReconnect and every direct connect answer SCARD_E_SHARING_VIOLATION (R90).
    if (changing && toDirect && !conn && await this.watchOutside(h)) {
      this.options.log?.('debug', `${h.reader}: no watch on the reader after a reconnect to SCARD_SHARE_DIRECT: another program took it exclusively when our card handle was let go`);
    }
    if (raw) {
      // RAW asked for: the reader's cardProtocol for every client, whatever the share mode (winscard.c ~657; R78).
      this.negotiate(h.reader, ProtocolBits.SCARD_PROTOCOL_RAW);
      h.protocol = ProtocolBits.SCARD_PROTOCOL_RAW;
      return { activeProtocol: h.protocol };
    }
    if (!conn) {
      if (toDirect) h.protocol = this.negotiated.get(h.reader) ?? ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
      return { activeProtocol: h.protocol };
    }
    h.protocol = protocolBits(conn);
    this.negotiate(h.reader, h.protocol);
    return { activeProtocol: h.protocol };
  }

  /**
   * The handle's new share mode, atomically: the new connection (or direct entry) is made while the old
   * one still counts for this handle, and only then the old one goes. On failure the handle is as it was
   * (review finding 1: it was left with no connection, "a direct connection has no card session").
   */
  private async swap(h: Handle, shareMode: number, preferredProtocols: number): Promise<void> {
    const old = h.conn;
    const oldDirect = h.dropDirect;
    // The client's transaction survives the share change (pcscd keeps hLockId and LockCount: readerfactory.c
    // ~1061–1107, winscard.c ~748–801), so its EndTransaction still succeeds and nobody gets the reader in
    // between (second review, finding 2): the new connection takes it over in the old one's turn; to or
    // from DIRECT the direct entry takes it over (R50).
    const oldId = old?.id ?? oldDirect?.directId;
    const held = oldId !== undefined && h.transactions > 0 && this.manager.transactionOwner(h.reader) === oldId ? h.transactions : 0;
    const commit = async (conn: Connection | null): Promise<void> => {
      h.conn = conn;
      h.share = shareMode;
      h.dropDirect = undefined;
      if (!conn) {
        this.directOpened(h);
        const entry = h.dropDirect as DirectUser | undefined; // set by directOpened
        if (held && old && entry) this.manager.handOverTransaction(h.reader, old.id, entry.directId, held);
      }
      const now = this.ownId(h);
      h.transactions = held && now !== undefined && this.manager.transactionOwner(h.reader) === now ? held : 0;
      oldDirect?.(); // after the hand-over: an entry that still held the transaction would release it
      // Handed over to the direct entry, the old connection's close cannot let the driver go of the card
      // (its release waits in the reader's queue behind the transaction this handle now holds): not awaited,
      // or the reconnect waits for its own End (R55). The entry's End or drop ends it.
      const closing = old?.disconnect('leave').catch(() => {});
      if (!(held && old && !conn)) await closing;
    };
    const { conn, protocol } = await this.open(h.reader, shareMode, preferredProtocols, h.client, old ?? oldDirect, commit, held);
    if (!conn) await commit(null);
    h.protocol = protocol;
  }

  async disconnect(handle: BackendHandle, disposition: number): Promise<void> {
    const h = this.live(handle);
    await this.close(h, managerDisposition(disposition));
  }

  /**
   * R74: a direct handle hears other programs' resets through the driver's own direct handle in the system service
   * (PC/SC readers), opened now if it is not open yet; not waited for beyond a look's 2 s from `since` (a PIN entry of
   * ours or another program's transaction keeps the driver's connect waiting): it opens when that ends, or at the
   * driver's next look (R89). True when the system service refused that connect with SCARD_E_SHARING_VIOLATION:
   * another program of the machine holds the reader exclusively (R90); an open watch, or none tried, is false.
   */
  private async watchOutside(h: Handle, since?: number): Promise<boolean> {
    try {
      await this.manager.watchCardEvents(h.reader, since);
    } catch (e) {
      const err = asScError(e);
      if (err.code === 'SHARING_VIOLATION') return true;
      this.options.log?.('debug', `${h.reader}: watching for other programs' resets: ${err.message}`);
    }
    return false;
  }

  /** A direct handle: listed on its reader as the client's, and counted in the table's sharing. */
  private directOpened(h: Handle): void {
    try {
      h.dropDirect = this.manager.addDirectUser(h.reader, h.client); // the manager's change reaches changed()
    } catch {
      this.changed(); // the reader went meanwhile: nothing to list
    }
  }

  private async close(h: Handle, disposition: ManagerDisposition): Promise<void> {
    h.closed = true;
    this.handles.delete(h);
    const conn = h.conn;
    h.conn = null;
    h.dropDirect?.();
    h.dropDirect = undefined;
    if (!conn) { this.changed(); return; }
    try {
      await conn.disconnect(disposition);
    } catch (e) {
      // The card may be gone: the connection is closed either way (Connection.disconnect's finally).
      this.options.log?.('debug', `${h.reader}: disconnect: ${asScError(e).message}`);
    }
  }

  async beginTransaction(handle: BackendHandle): Promise<void> {
    const h = this.live(handle);
    if (!h.conn) return this.beginDirect(h);
    const conn = this.checkEvents(h);
    try {
      this.checkSharing(h);
    } catch (e) {
      // winscard.c SCardBeginTransaction: "if the transaction is not yet ready we sleep a bit so the
      // client do not retry immediately" (PCSCLITE_LOCK_POLL_RATE before SCARD_E_SHARING_VIOLATION);
      // only this client's session waits, as only its thread sleeps in pcscd.
      await delay(LOCK_POLL_RATE_MS);
      throw e;
    }
    try {
      await conn.beginTransaction();
    } catch (e) {
      throw this.fail(h, e);
    }
    h.transactions++;
  }

  /** SCardBeginTransaction on a direct handle: pcscd locks the reader for it as for any handle (R50). */
  private async beginDirect(h: Handle): Promise<void> {
    await this.lookOutside(h.reader);
    this.eventState(h);
    try {
      this.checkSharing(h);
    } catch (e) {
      await delay(LOCK_POLL_RATE_MS); // as for a card handle: pcscd sleeps before it refuses
      throw e;
    }
    if (!h.dropDirect) throw new BackendError(Rv.SCARD_E_READER_UNAVAILABLE, 'the reader is gone');
    try {
      await this.manager.beginDirectTransaction(h.reader, h.dropDirect);
    } catch (e) {
      throw this.fail(h, e);
    }
    h.transactions++;
  }

  /** SCardEndTransaction on a direct handle; RESET/UNPOWER reset the reader's card in its own turn, as pcscd's. */
  private async endDirect(h: Handle, disposition: number): Promise<void> {
    await this.lookOutside(h.reader);
    this.eventState(h); // pcscd's SCardEndTransaction: RFCheckReaderEventState first (winscard.c ~1118)
    const user = h.dropDirect;
    if (!user || h.transactions === 0 || this.manager.transactionOwner(h.reader) !== user.directId) {
      h.transactions = 0; // the card's removal ended it (pcscd's RFSetReaderEventState clears LockCount)
      throw new BackendError(Rv.SCARD_E_NOT_TRANSACTED, 'no transaction');
    }
    if (disposition === Disposition.SCARD_RESET_CARD || disposition === Disposition.SCARD_UNPOWER_CARD) {
      // pcscd does not answer the power-up's failure here (winscard.c ~1126–1170): the unlock's result is the answer.
      await this.manager.resetCard(h.reader, disposition === Disposition.SCARD_RESET_CARD ? 'warm' : 'cold', user.directId).catch((e: unknown) => {
        this.options.log?.('debug', `${h.reader}: end transaction reset: ${asScError(e).message}`);
      });
      h.removed = false;
      h.reset = true;
    }
    try {
      await this.manager.endDirectTransaction(h.reader, user);
    } catch (e) {
      throw this.fail(h, e);
    } finally {
      h.transactions--;
    }
  }

  async endTransaction(handle: BackendHandle, disposition: number): Promise<void> {
    const h = this.live(handle);
    // pcscd: another handle's transaction is SCARD_E_SHARING_VIOLATION (its "No card reset within a
    // transaction", then RFUnlockSharing's RFCheckSharing) before SCARD_E_NOT_TRANSACTED (winscard.c).
    this.checkSharing(h);
    if (!h.conn) return this.endDirect(h, disposition);
    if (h.transactions === 0) {
      // The removal that cleared the count is answered first (RFCheckReaderEventState, winscard.c ~1118), as on a direct handle.
      if (this.eventPending(h)) this.eventState(h);
      throw new BackendError(Rv.SCARD_E_NOT_TRANSACTED, 'no transaction');
    }
    try {
      await h.conn.endTransaction(managerDisposition(disposition));
    } catch (e) {
      throw this.fail(h, e);
    } finally {
      h.transactions--;
    }
    // pcscd's RFSetReaderEventState marks every handle of the reader, the caller's own too (winscard.c ~1156).
    if (disposition === Disposition.SCARD_RESET_CARD || disposition === Disposition.SCARD_UNPOWER_CARD) h.reset = true;
  }

  /**
   * The call of every APDU, so no async frame and nothing made per APDU here but the manager's
   * promise: the handle's own options object (a VERIFY's gets its secret ranges) and its bound
   * failure mapping. The rules are the connection's and the gate's, as for every other call.
   */
  transmit(handle: BackendHandle, sendPci: IoRequest, command: Uint8Array, maxResponse: number): Promise<Uint8Array> {
    void maxResponse;
    let h: Handle;
    let conn: Connection | null;
    try {
      h = this.live(handle);
      conn = this.transmitChecks(h, sendPci, command);
      if (!conn) return this.transmitDirect(h, sendPci.protocol, command);
    } catch (e) {
      return Promise.reject(e);
    }
    return conn.transmit(command, this.transmitOptions(h, command)).then(responseOf, h.transmitFailed);
  }

  /**
   * transmit, the service's way: the same checks and the same connection call, its outcome handed to
   * the session's sink by the handle's bound reactions (no promise of its own per APDU). A check that
   * fails throws at once, as transmit's rejects before anything is sent.
   */
  transmitTo(handle: BackendHandle, sendPci: IoRequest, command: Uint8Array, maxResponse: number, sink: TransmitSink): void {
    void maxResponse;
    const h = this.live(handle);
    const conn = this.transmitChecks(h, sendPci, command);
    if (!conn) {
      this.transmitDirect(h, sendPci.protocol, command).then((r) => sink.answered(r), (e: unknown) => sink.failed(e));
      return;
    }
    const pending = conn.transmit(command, this.transmitOptions(h, command));
    h.sink = sink;
    pending.then(h.answeredTo, h.failedTo);
  }

  /** The handle's transmit options, with the command's secret bytes (a VERIFY's PIN) named for the log's masking. */
  private transmitOptions(h: Handle, command: Uint8Array): TransmitOptions {
    const secret = secretRanges(command);
    return secret ? { ...h.plainTransmit, secret } : h.plainTransmit;
  }

  /** transmit's checks before the card, in pcscd's order: the handle's connection, or null for a direct handle (R59). */
  private transmitChecks(h: Handle, sendPci: IoRequest, command: Uint8Array): Connection | null {
    // pcscd's order (R57): RFCheckSharing (winscard.c 1521), then RFCheckReaderEventState (1535), so another
    // handle's transaction is SCARD_E_SHARING_VIOLATION (polled by libpcsclite) before a pending reset or
    // removal; a direct handle's call goes to the card too (R59).
    this.checkSharing(h);
    if (!h.conn) return null;
    const conn = this.checkEvents(h);
    // pcscd lets a RAW or ANY_OLD PCI through whatever the protocol (winscard.c ~1542–1560, R59).
    if (sendPci.protocol !== h.protocol && sendPci.protocol !== ProtocolBits.SCARD_PROTOCOL_RAW && sendPci.protocol !== ProtocolBits.SCARD_PROTOCOL_ANY_OLD) {
      throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'the send PCI names another protocol');
    }
    if (command.length < 4) throw new BackendError(Rv.SCARD_E_INVALID_PARAMETER, 'a command APDU has at least 4 bytes');
    return conn;
  }

  /**
   * SCardTransmit on a SCARD_SHARE_DIRECT handle (R59). pcscd's SCardTransmit does not look at the share mode
   * (winscard.c ~1491–1640): after the sharing and the handle's event, a PCI other than RAW needs a card
   * (SCARD_E_NO_SMARTCARD) and, unless ANY_OLD, the reader's cardProtocol (what a connect negotiated since the
   * last power change, UNDEFINED after a reset: SCARD_E_PROTO_MISMATCH); then the command goes to the card as
   * it is, in the handle's own turn of the reader's queue (its transaction), and is logged as the client's.
   */
  private async transmitDirect(h: Handle, pci: number, command: Uint8Array): Promise<Uint8Array> {
    await this.lookOutside(h.reader);
    this.eventState(h);
    let info: ReaderInfo;
    try { info = this.manager.reader(h.reader); } catch (e) { throw this.fail(h, e); }
    if (pci !== ProtocolBits.SCARD_PROTOCOL_RAW) {
      if (!info.card) throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no card');
      const cardProtocol = this.negotiated.get(h.reader) ?? ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
      if (pci !== ProtocolBits.SCARD_PROTOCOL_ANY_OLD && pci !== cardProtocol) throw new BackendError(Rv.SCARD_E_PROTO_MISMATCH, 'the send PCI is not the card\'s protocol');
    }
    if (command.length < 4) throw new BackendError(Rv.SCARD_E_INVALID_PARAMETER, 'a command APDU has at least 4 bytes');
    return this.manager.transmitDirect(h.reader, command, this.transmitOptions(h, command), this.ownId(h)).catch((e: unknown) => {
      const code = asScError(e).code;
      // The IFD handler's IFD_ICC_NOT_PRESENT (ifdwrapper.c IFDTransmit): not an event of the handle's.
      if (code === 'NO_CARD' || code === 'CARD_REMOVED') throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, asScError(e).message);
      throw this.fail(h, e);
    });
  }

  async control(handle: BackendHandle, wireCode: number, data: Uint8Array): Promise<Uint8Array> {
    const h = this.live(handle);
    // SCardControl: RFCheckSharing at once (winscard.c ~1383), not a wait behind the transaction.
    this.checkSharing(h);
    // pcsc-lite's SCARD_CTL_CODE(3400) is the manager's plain function number of the feature request.
    const code = wireCode === SCARD_CTL_CODE(CM_IOCTL_GET_FEATURE_REQUEST) ? CM_IOCTL_GET_FEATURE_REQUEST : wireCode;
    const t0 = performance.now();
    // The manager masks PIN-pad, MCT and escape data and GET_KEY's answer (emitEntry), for every caller.
    const entry = { kind: 'control' as const, reader: h.reader, code, command: toHex(data), client: h.client };
    try {
      // A direct handle's call runs in its own turn of the reader's queue (its own transaction, R50). pcscd's
      // SCardControl does not look at the handle's event (R51): after a removal or another's reset a card
      // handle's call goes to the reader as a direct one's, the event kept for its next call that looks.
      const out = h.conn && !this.eventPending(h) ? await h.conn.control(code, data) : await this.manager.controlDirect(h.reader, code, data, undefined, this.ownId(h));
      this.manager.emitEntry<ControlEntry>({ ...entry, response: toHex(out), durationMs: performance.now() - t0 });
      return out;
    } catch (e) {
      const err = asScError(e);
      this.manager.emitEntry<ControlEntry>({ ...entry, error: err.message, durationMs: performance.now() - t0 });
      if (err.code === 'NOT_SUPPORTED' || err.code === 'DRIVER' || err.code === 'BAD_REQUEST') throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, err.message);
      throw this.fail(h, e);
    }
  }

  async status(handle: BackendHandle): Promise<void> {
    const h = this.live(handle);
    // SCardStatus: RFCheckSharing first (winscard.c ~1271), then the event state, another program's reset too (R74).
    this.checkSharing(h);
    await this.lookOutside(h.reader);
    if (h.conn) this.checkEvents(h);
    else this.eventState(h); // a direct handle hears the removal and resets too (R47)
  }

  /**
   * pcscd's checks before SCardGetAttrib and SCardSetAttrib ask the IFD handler: RFCheckSharing, then
   * RFCheckReaderEventState (winscard.c ~1397, 1472): a reset or removed card is the handle's SCARD_W_RESET_CARD /
   * SCARD_W_REMOVED_CARD until its SCardReconnect, a direct handle's too (R47). The reader, for the answer.
   */
  private async attribReader(handle: BackendHandle): Promise<{ h: Handle; info: ReaderInfo }> {
    const h = this.live(handle);
    this.checkSharing(h);
    await this.lookOutside(h.reader);
    if (h.conn) this.checkEvents(h);
    else this.eventState(h);
    try { return { h, info: this.manager.reader(h.reader) }; } catch (e) { throw this.fail(h, e); }
  }

  async getAttrib(handle: BackendHandle, attrId: number): Promise<Uint8Array> {
    const { h, info } = await this.attribReader(handle);
    // The reader driver's own bytes, as pcscd passes the IFD handler's answer through (winscard.c ~1401);
    // the facts' text fields are cleaned for the Readers view.
    const raw = attrId !== SCARD_ATTR_ATR_STRING && attrId !== SCARD_ATTR_DEVICE_FRIENDLY_NAME && attrId !== SCARD_ATTR_DEVICE_SYSTEM_NAME ? info.facts?.raw?.[rawFactKey(attrId)] : undefined;
    if (raw !== undefined) return fromHex(raw);
    // A driver that gives the IFD handler's bytes gives all it answers (the system's readers, USB CCID as libccid):
    // a reader-fact tag missing from them is the handler's IFD_ERROR_TAG, SCARD_E_UNSUPPORTED_FEATURE through pcscd
    // (winscard.c 2.5.1 1407–1426), not the facts' text made for the Readers view (R100).
    if (info.facts?.raw && FACT_TAGS.has(attrId)) throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'the reader\'s driver does not answer this attribute');
    switch (attrId) {
      case SCARD_ATTR_ATR_STRING: {
        if (!info.card?.atr) throw new BackendError(Rv.SCARD_E_NO_SMARTCARD, 'no ATR');
        return fromHex(info.card.atr);
      }
      case SCARD_ATTR_CHANNEL_ID:
        // The reader's own when it told one; else not supported, as pcscd answers an IFD handler that does
        // not know the tag (pcscd + vpcd: 0x8010001F) (R45).
        return number(info.facts?.channelId);
      // pcscd answers both with the reader's name when the IFD handler does not know them (winscard.c 1407–1424).
      case SCARD_ATTR_DEVICE_FRIENDLY_NAME:
      case SCARD_ATTR_DEVICE_SYSTEM_NAME:
        return new TextEncoder().encode(h.reader + '\0');
      // The reader's facts (the driver's, read once when it appeared), as libccid answers them through
      // pcscd: strings NUL-terminated, numbers as a 4-byte little-endian DWORD. What the reader did not
      // tell is not supported, as pcscd answers an IFD handler's IFD_ERROR_TAG.
      case SCARD_ATTR_VENDOR_NAME: return text(info.facts?.vendorName);
      case SCARD_ATTR_VENDOR_IFD_TYPE: return text(info.facts?.ifdType);
      case SCARD_ATTR_VENDOR_IFD_SERIAL_NO: return text(info.facts?.ifdSerial);
      case SCARD_ATTR_VENDOR_IFD_VERSION: return number(info.facts?.ifdVersion);
      case SCARD_ATTR_MAX_IFSD: return number(info.facts?.maxIfsd);
      case SCARD_ATTR_MAXINPUT: return number(info.facts?.maxInput);
      default:
        throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'attribute not supported');
    }
  }

  async setAttrib(handle: BackendHandle, _attrId: number, _value: Uint8Array): Promise<void> {
    const { info } = await this.attribReader(handle);
    // No reader of ours takes an attribute; pcscd reports the IFD handler's refusal (winscard.c 1476–1483): vpcd's
    // IFDHSetCapabilities answers IFD_NOT_SUPPORTED to every tag (SCARD_E_NOT_TRANSACTED), libccid's (1.5.0 on)
    // IFD_ERROR_TAG (SCARD_E_UNSUPPORTED_FEATURE), which the simulator, USB CCID and system readers answer as.
    throw new BackendError(info.driver === 'vpcd' ? Rv.SCARD_E_NOT_TRANSACTED : Rv.SCARD_E_UNSUPPORTED_FEATURE, 'the reader takes no attribute');
  }

  cancel(): void {
    // pcscd cancels only the context's status-change wait, which the session does.
  }

  async abandon(handle: BackendHandle): Promise<void> {
    const h = handle as Handle;
    if (h.closed) return;
    // MSGRemoveContext: the lock holder's card is reset (a transaction or an exclusive hold: both are
    // pcscd's hLockId), unless it was already reset or removed (winscard_svc.c ~1037).
    const owner = this.manager.transactionOwner(h.reader);
    const held = !h.removed && !h.reset && owner !== null && owner === this.ownId(h);
    if (held && !h.conn) {
      // A direct handle holding the reader (R50): its card is reset in its turn, then the entry goes.
      await this.manager.resetCard(h.reader, 'warm', owner).catch(() => {});
      await this.close(h, 'leave');
      return;
    }
    await this.close(h, held ? 'reset' : 'leave');
  }
}

function responseOf(r: { response: Uint8Array }): Uint8Array {
  return r.response;
}

/** The SCARD_PROTOCOL_* bit of a connection's protocol. */
function protocolBits(conn: Connection): number {
  return conn.protocol === 0 ? ProtocolBits.SCARD_PROTOCOL_T0 : ProtocolBits.SCARD_PROTOCOL_T1;
}

function protocolOpt(p: Protocol | undefined): { protocol?: Protocol } {
  return p === undefined ? {} : { protocol: p };
}

function managerDisposition(d: number): ManagerDisposition {
  switch (d) {
    case Disposition.SCARD_RESET_CARD: return 'reset';
    case Disposition.SCARD_UNPOWER_CARD: return 'unpower';
    case Disposition.SCARD_EJECT_CARD: return 'eject';
    default: return 'leave';
  }
}

/** pcscd's refusal of a connect or reconnect while another program of the machine holds the reader exclusively (R90). */
function heldElsewhere(): BackendError {
  return new BackendError(Rv.SCARD_E_SHARING_VIOLATION, 'another program of the machine holds the reader exclusively');
}

function rvFor(code: ScErrorCode, during: 'connect' | 'card'): number {
  switch (code) {
    case 'NO_READER': return Rv.SCARD_E_UNKNOWN_READER;
    case 'NO_CARD': return during === 'connect' ? Rv.SCARD_E_NO_SMARTCARD : Rv.SCARD_W_REMOVED_CARD;
    case 'CARD_REMOVED': return Rv.SCARD_W_REMOVED_CARD;
    case 'CARD_RESET': return Rv.SCARD_W_RESET_CARD;
    case 'READER_UNAVAILABLE': return during === 'connect' ? Rv.SCARD_E_READER_UNAVAILABLE : Rv.SCARD_W_REMOVED_CARD;
    case 'SHARING_VIOLATION': return Rv.SCARD_E_SHARING_VIOLATION;
    case 'PROTOCOL': return during === 'connect' ? Rv.SCARD_E_PROTO_MISMATCH : Rv.SCARD_E_NOT_TRANSACTED;
    case 'TIMEOUT': return during === 'connect' ? Rv.SCARD_W_UNRESPONSIVE_CARD : Rv.SCARD_E_NOT_TRANSACTED;
    case 'CANCELLED': return Rv.SCARD_E_CANCELLED;
    case 'BAD_REQUEST': return Rv.SCARD_E_INVALID_PARAMETER;
    case 'NOT_SUPPORTED': return Rv.SCARD_E_UNSUPPORTED_FEATURE;
    case 'DRIVER': return Rv.SCARD_F_COMM_ERROR;
    default: return Rv.SCARD_F_INTERNAL_ERROR;
  }
}

function dword(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

function text(v: string | undefined): Uint8Array {
  if (v === undefined) throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'the reader did not tell this attribute');
  return new TextEncoder().encode(v + '\0');
}

function number(v: number | undefined): Uint8Array {
  if (v === undefined) throw new BackendError(Rv.SCARD_E_UNSUPPORTED_FEATURE, 'the reader did not tell this attribute');
  return dword(v);
}
