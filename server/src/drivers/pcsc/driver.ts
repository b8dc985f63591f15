// The pcsc driver: the operating system's PC/SC service (pcscd, Windows Smart
// Card service, macOS CryptoTokenKit) through transport.ts.
//
// Plug and play without polling: one SCardGetStatusChange call on a koffi worker
// thread watches every reader plus the `\\?PnP?\Notification` pseudo-reader
// (ending every 10 s to re-read the list, a watchdog against a missed arrival);
// SCardCancel ends it on stop or when the reader list changes.
// The reader list is read on a second context (only ever one call on it), and each
// reader's card calls run on a context of that reader's own (R69): libpcsclite waits
// for a busy context while holding its process-wide clientMutex (winscard_clnt.c
// 3414–3425, 3572–3583), so one context shared by two readers let a long call on one
// (a PIN-pad entry) stall every call of the helper, the watcher's too. If the service stops (SCARD_E_NO_SERVICE / SERVICE_STOPPED)
// every slot is removed and the context is re-established with a back-off;
// the readers come back when the service does, without restarting the helper.

import fs from 'node:fs';
import path from 'node:path';
import { ScError } from '../../util/errors';
import { defaultSocketPath, SOCKET_NAME } from '../../service/server';
import type { Driver, DriverSink, PowerMode, Protocol, ReaderFacts, SlotDescriptor } from '../driver';
import { rawFactKey } from '../../protocol';
import { READER_ATTRIBUTES, decodeAttribute, setFact } from './attributes';
import {
  PNP_NOTIFICATION,
  SCARD_LEAVE_CARD,
  SCARD_PROTOCOL_T0,
  SCARD_PROTOCOL_T1,
  SCARD_RESET_CARD,
  SCARD_SCOPE_SYSTEM,
  SCARD_SHARE_DIRECT,
  SCARD_SHARE_EXCLUSIVE,
  SCARD_SHARE_SHARED,
  SCARD_STATE,
  SCARD_UNPOWER_CARD,
  SCARD_EJECT_CARD,
  SCARD_STATUS_PRESENT,
} from './constants';
import {
  isServiceLost,
  PcscError,
  pcscErrorName,
  SCARD_E_CANCELLED,
  SCARD_E_NO_SMARTCARD,
  SCARD_E_SHARING_VIOLATION,
  SCARD_E_TIMEOUT,
  SCARD_E_UNKNOWN_READER,
  SCARD_F_COMM_ERROR,
  SCARD_W_REMOVED_CARD,
  SCARD_W_RESET_CARD,
  toScError,
} from './errors';
import { loadWinscard, type CardStatus, type Handle, type ReaderState, type Winscard } from './transport';

export interface PcscOptions {
  /** Path or name of the PC/SC library (default per platform: libpcsclite.so.1, winscard.dll, PCSC.framework). */
  library?: string;
  /** Back-off between attempts to reach the service again after it stopped (ms). */
  reconnectDelaysMs?: number[];
  /** Only for tests: a fake winscard. */
  winscard?: Winscard;
  /** Transmit on the calling thread while the card answers fast (default true; see SYNC_AFTER_FAST). */
  syncTransmit?: boolean;
  /** Only for tests: the clock that times exchanges (ms). */
  clock?: () => number;
  /** Only for tests: the environment libpcsclite reads PCSCLITE_CSOCK_NAME from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Sockets of the workbench's own PC/SC service besides the default paths (`scard serve --socket`). */
  ownServiceSockets?: readonly string[];
  /** Only for tests: the platform whose PC/SC service rules apply (default process.platform). */
  platform?: NodeJS.Platform;
}

/**
 * Does PCSCLITE_CSOCK_NAME name the workbench's own PC/SC service? Its default path,
 * any workbench socket (`…/smartcard-workbench/pcscd.comm`, `/tmp/smartcard-workbench-UID/pcscd.comm`),
 * or one of `own`. Symlinks are followed where the path exists.
 */
export function namesOwnService(value: string | undefined, own: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): boolean {
  if (!value) return false;
  const real = (p: string): string => {
    const abs = path.resolve(p);
    try { return fs.realpathSync(abs); } catch { return abs; }
  };
  const v = real(value);
  if ([defaultSocketPath(env), ...own].some((o) => real(o) === v)) return true;
  return path.basename(v) === SOCKET_NAME && /^smartcard-workbench(-\d+)?$/.test(path.basename(path.dirname(v)));
}

/**
 * The loop guard: the helper's own libpcsclite must never reach the helper's own
 * service (VS Code started from a workbench terminal inherits PCSCLITE_CSOCK_NAME).
 * When the variable names our socket it is removed from the environment before
 * libpcsclite first reads it, so the driver uses the system's pcscd. True when removed.
 */
export function avoidOwnService(env: NodeJS.ProcessEnv, own: readonly string[] = []): boolean {
  const value = env.PCSCLITE_CSOCK_NAME;
  if (!namesOwnService(value, own, env)) return false;
  delete env.PCSCLITE_CSOCK_NAME;
  return true;
}

/**
 * libpcsclite's client side answers pcscd's SCARD_E_SHARING_VIOLATION to SCardReconnect, SCardStatus and
 * SCardTransmit by asking again every 100 ms, with no end (winscard_clnt.c 1032, 1508, 2852), unless
 * PCSCLITE_NO_BLOCKING is in the environment when the library initialises: init_lib reads it once, in the
 * first SCardEstablishContext that finds pcscd running (winscard_clnt.c 473–478, 529). Such a call blocks a koffi worker thread (SCardStatus:
 * the event loop) and the reader's chain behind it. The driver sets it until an SCardEstablishContext succeeds and takes it away
 * then, so the refusal comes back at once, as pcscd gives it (winscard.c ~779, RFCheckSharing), and goes to
 * the caller: a PC/SC client's own library polls it as it would pcscd's. Returns the undo.
 */
export function disableSharingBlock(env: NodeJS.ProcessEnv): () => void {
  if (env.PCSCLITE_NO_BLOCKING !== undefined) return () => undefined;
  env.PCSCLITE_NO_BLOCKING = '1';
  return () => {
    delete env.PCSCLITE_NO_BLOCKING;
  };
}

const DEFAULT_RECONNECT_DELAYS = [200, 500, 1000, 2000, 5000];

/**
 * SCardStatus's dwState says a card is in the reader. pcsc-lite and Apple's PC/SC give bit flags (SCARD_PRESENT 0x0004,
 * pcsclite.h); Windows gives one value, SCARD_ABSENT 1, SCARD_PRESENT 2, SCARD_SWALLOWED 3 … SCARD_SPECIFIC 6 (winscard.h):
 * a card is in from 2 up, unpowered ones included (2 & 0x0004 is 0).
 */
export function cardInReader(state: number, platform: NodeJS.Platform = process.platform): boolean {
  return platform === 'win32' ? state >= 2 : (state & SCARD_STATUS_PRESENT) !== 0;
}

/**
 * Why the PC/SC driver could not start, and what to do: koffi's own native module missing is a package built for
 * another machine (koffi: "Cannot find the native Koffi module", "Mismatched native Koffi modules"); otherwise the PC/SC
 * library itself did not load (or koffi's module did for another reason, such as a C library too old: said as it is).
 */
export function libraryLoadFailure(message: string, platform: NodeJS.Platform = process.platform, arch: string = process.arch, library?: string): string {
  if (/native Koffi module/i.test(message)) {
    return `The system PC/SC driver's native part does not load in this VS Code (${platform}-${arch}): ${message}. Install the Smart Card Workbench package built for ${platform}-${arch} (docs/install.md: the VS Code build counts, Help → About). The simulator and the other drivers work without it.`;
  }
  const what = platform === 'win32'
    ? 'winscard.dll is part of Windows: check that the "Smart Card" service (SCardSvr) is not disabled'
    : platform === 'darwin'
      ? 'PCSC.framework is part of macOS: check smartcard.pcsc.library if it was set'
      : 'install pcscd and libpcsclite1 (Debian, Ubuntu: sudo apt install pcscd libpcsclite1; Fedora: sudo dnf install pcsc-lite pcsc-lite-libs; in a clone of the workbench: npm run setup:system), or check smartcard.pcsc.library if it was set';
  return `The PC/SC library${library ? ` ${library}` : ''} could not be loaded (${message}): ${what}. The simulator and the other drivers work without it.`;
}

/**
 * A shared connect's refusals that are about the card, not the reader: SCARD_W_UNSUPPORTED_CARD, SCARD_W_UNRESPONSIVE_CARD,
 * SCARD_W_UNPOWERED_CARD, SCARD_E_PROTO_MISMATCH, SCARD_E_NO_SMARTCARD, SCARD_W_REMOVED_CARD. A reader call needs no
 * card: after one of these it is made on a direct connection (`connectForReaderCall`).
 */
const SHARED_CONNECT_CARD_REFUSALS = new Set([0x80100065, 0x80100066, 0x80100067, 0x8010000f, 0x8010000c, 0x80100069]);

/** How to start the PC/SC service on this platform (shown on the PC/SC group while the driver waits). */
export function pcscdHint(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return 'Start the Smart Card service (SCardSvr): "sc start SCardSvr" in an administrator prompt, or Services → Smart Card → Start. Windows starts it when a reader is plugged in. The workbench retries by itself.';
  if (platform === 'darwin') return 'macOS starts its PC/SC service (com.apple.ctkpcscd) when a reader is plugged in: plug one in. The workbench retries by itself.';
  return 'Start pcscd: "sudo systemctl start pcscd.socket" (or run "sudo pcscd"); install it with "sudo apt install pcscd" (Debian/Ubuntu) or "sudo dnf install pcsc-lite" (Fedora). The workbench retries by itself.';
}
/** Without PnP notifications (some platforms), the reader list is re-read this often. */
const NO_PNP_POLL_MS = 1000;
/**
 * With PnP notifications, the wait still ends this often and the list is re-read:
 * a watchdog against a missed arrival (a notification racing the first wait),
 * one cheap call per interval, never a busy loop.
 */
const PNP_WATCHDOG_MS = 10_000;
/** How long closing the service waits for the readers' calls still in flight (a PIN entry at stop) before going on. */
const CLOSE_WAIT_MS = 2000;
/**
 * A transmit runs on the calling thread (no worker-thread hop, which costs more
 * than a fast card's whole exchange: 2-5x the CPU) once the card has answered
 * this many exchanges in a row within FAST_EXCHANGE_MS, and while no other call
 * of this driver is in flight (they share the service connection). Real readers
 * take milliseconds per exchange and always use the worker thread; card
 * emulators behind pcscd answer in tens of microseconds. One slow answer goes
 * back to the worker thread, so the event loop waits at most for that one.
 */
const SYNC_AFTER_FAST = 8;
const FAST_EXCHANGE_MS = 1;

interface Reader {
  name: string;
  /** dwEventState as last seen (without CHANGED), fed back as dwCurrentState. */
  state: number;
  present: boolean;
  /** The ATR pcscd reported with the reader's state (it powers cards at insertion); empty when none. */
  atr: Uint8Array;
  /**
   * Our connection to the card, open only while a client of the manager needs
   * it (connected on first use, dropped by release()), so other applications
   * can connect, exclusively too, whenever the workbench is not using the card.
   */
  handle: Handle | null;
  /**
   * The share mode our connection takes in the system's service: SCARD_SHARE_EXCLUSIVE while a
   * connection of the manager holds the reader exclusively (hold()), so other programs of the
   * machine get SCARD_E_SHARING_VIOLATION as they would from pcscd; else SCARD_SHARE_SHARED.
   */
  share: number;
  protocol: number;
  inTransaction: boolean;
  /**
   * A SCARD_SHARE_DIRECT handle of ours that holds the reader's system transaction for a PC/SC client's direct handle
   * when we had no card handle to begin on (R73). Set only with `inTransaction` and `handle` null: while it is set every
   * reader call of the driver uses it (control, facts, eject), and a call that needs the card turns it into our card
   * handle with SCardReconnect (promote): never a new SCardConnect under our own lock; a cold reset's power-off half is
   * SCardReconnect(UNPOWER) on it. Disconnected at End, at the reader's retirement (removal, stop), and by an eject.
   */
  txHandle: Handle | null;
  /** Our transaction is a PC/SC client's direct handle's (begun with `direct`, on `txHandle` or on our card handle). */
  directTransaction: boolean;
  /**
   * R74: a SCARD_SHARE_DIRECT handle of ours, open while a PC/SC client of the workbench has a direct handle on the
   * reader (`watchWanted`), so a reset another program makes through pcscd reaches us when we have no card handle
   * (RFSetReaderEventState marks every handle of the reader, winscard.c 582/894/1156). Looked at by checkCardEvents
   * (SCardStatus, winscard.c 1290), cleared with SCardReconnect(LEAVE) (RFClearReaderEventState, 813) after each
   * reset counted and after each reset of our own. Made through the connect guard, never under our own transaction;
   * disconnected when the last direct handle goes, before an exclusive hold (pcscd counts a direct handle in the
   * reader's sharing) and with the reader (removal, service loss, stop).
   */
  watch: Handle | null;
  watchWanted: boolean;
  /** A reset of ours marked `watch` and could not be cleared yet (under a transaction, pcscd refuses its calls). */
  watchOwn: boolean;
  /**
   * This reader's own context for its card calls (established at its first call, released with the reader). Only its
   * chain calls on it, one call at a time, so no call of the driver ever waits for a busy context in libpcsclite, which
   * would hold the process-wide clientMutex meanwhile and stall every other call of the helper (fifth review F3, R69).
   */
  ctx: Handle | null;
  /** A disconnect of a dropped handle on `ctx`, still on its way: the next call on `ctx` waits for it (R69). */
  pending: Promise<void> | null;
  /**
   * Handles the watcher dropped (the card left or was swapped) and not yet disconnected. pcscd keeps such a handle's
   * transaction (hLockId) and exclusive hold until its SCardDisconnect, so every call of the chain disconnects these
   * first, before anything else on `ctx` (a connect under them would wait for ever or get SHARING_VIOLATION, R70).
   */
  stale: Handle[];
  /** Taken out of the driver (stop, service loss, reader gone): a call of the chain that starts now is refused (R71). */
  retired: boolean;
  /** The call in the chain resets the card itself (pcscd marks `watch` too): the watch is cleared after it (R74). */
  ownReset: boolean;
  /**
   * Our transaction ended with our handle (SCardDisconnect of an eject, a power-off, a release, a dropped handle: pcscd's
   * RFUnlockAllSharing) while the manager still holds it: the manager's End then finds nothing left to end (R68).
   */
  transactionGone: boolean;
  chain: Promise<unknown>;
  /** Exchanges in a row answered within FAST_EXCHANGE_MS. */
  fastInARow: number;
}

/**
 * SCardStatus off the event loop where the library offers it (fourth review F3): a handle call can wait on
 * libpcsclite's context mutex; since R69 nothing else of the driver is on the reader's context then, but a
 * round trip to pcscd is still no call for the event loop.
 */
async function cardStatus(api: Winscard, handle: Handle): Promise<CardStatus> {
  return api.statusAsync ? api.statusAsync(handle) : api.status(handle);
}

/**
 * Splits pcsc-lite's reader name `<name> [<interface>] (<serial>) NN SS` so the
 * manager can add its own NN SS; the full system name stays in `details`.
 * Windows names have no such suffix and are kept whole.
 */
export function splitReaderName(systemName: string): { name: string; interfaceName?: string; serial?: string; device: string; slot: number } {
  const m = /^(.*?)(?: \[(.*)\])?(?: \(([^()]*)\))? ([0-9A-F]{2}) ([0-9A-F]{2})$/.exec(systemName);
  if (!m) return { name: systemName, device: systemName, slot: 0 };
  return {
    name: m[1],
    ...(m[2] ? { interfaceName: m[2] } : {}),
    ...(m[3] ? { serial: m[3] } : {}),
    device: systemName.slice(0, -3),
    slot: parseInt(m[5], 16),
  };
}

export function createPcscDriver(options: PcscOptions = {}): PcscDriver {
  return new PcscDriver(options);
}

export class PcscDriver implements Driver {
  readonly id = 'pcsc';
  private api: Winscard | null = null;
  private sink: DriverSink | null = null;
  private monitorCtx: Handle | null = null;
  private workCtx: Handle | null = null;
  private readonly readers = new Map<string, Reader>();
  private pnpState = 0;
  private pnpSupported = true;
  private running = false;
  /** Bumped whenever the service connection is rebuilt, so an old loop ends quietly. */
  private generation = 0;
  /**
   * Counts the work context's lives (one per establish, one per release), so an attempt knows it was
   * overtaken even when a new context has the same handle value as its own (R72: pcsc-lite's are random,
   * other platforms' need not be).
   */
  private workEpoch = 0;
  private monitor: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryIndex = 0;
  private readonly delays: number[];
  /** Calls of this driver in flight (serialized ones), so a synchronous transmit never waits behind another. */
  private active = 0;
  /** An SCardEstablishContext succeeded: the library has read PCSCLITE_NO_BLOCKING (disableSharingBlock). */
  private libraryInitialised = false;
  /** Takes PCSCLITE_NO_BLOCKING away again (set while no SCardEstablishContext has succeeded). */
  private restoreBlocking?: () => void;

  constructor(private readonly options: PcscOptions = {}) {
    this.delays = options.reconnectDelaysMs?.length ? options.reconnectDelaysMs : DEFAULT_RECONNECT_DELAYS;
  }

  private get platform(): NodeJS.Platform {
    return this.options.platform ?? process.platform;
  }

  /**
   * dwPreferredProtocols for a SCARD_SHARE_DIRECT connect or reconnect. pcsc-lite ignores it there (winscard.c
   * SCardConnect checks it only for the other share modes) and Windows negotiates nothing when it is 0, as wanted;
   * Apple's PC/SC answers SCARD_E_INVALID_VALUE to 0 (pyscard #57, jnasmartcardio #29 on 10.11, libnfc #762 on
   * macOS 15), so there it names T=0 and T=1.
   */
  private get directProtocols(): number {
    return this.platform === 'darwin' ? SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1 : 0;
  }

  async start(sink: DriverSink): Promise<void> {
    this.sink = sink;
    this.running = true;
    const env = this.options.env ?? process.env;
    const named = env.PCSCLITE_CSOCK_NAME;
    if (avoidOwnService(env, this.options.ownServiceSockets)) {
      sink.log('info', `pcsc: PCSCLITE_CSOCK_NAME named the workbench's own PC/SC service (${named}); using the system's PC/SC service instead`);
    }
    try {
      this.api = this.options.winscard ?? loadWinscard(this.options.library);
    } catch (e) {
      this.running = false;
      throw new ScError('READER_UNAVAILABLE', libraryLoadFailure((e as Error).message, this.platform, process.arch, this.options.library));
    }
    if (!(await this.connectService())) this.scheduleReconnect();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // SCardCancel only wakes a call already waiting in the service; the watcher's
    // next call may still be on its way to the worker thread, so cancel until it ends.
    const monitor = this.monitor;
    let ended = false;
    monitor?.then(
      () => (ended = true),
      () => (ended = true),
    );
    while (monitor && !ended) {
      this.cancelMonitor();
      await Promise.race([monitor, new Promise((r) => setTimeout(r, 50))]);
    }
    this.monitor = null;
    await this.closeService(false);
    this.sink = null;
  }

  // ---- service connection -------------------------------------------------------

  /** Establishes both contexts and reports every reader; false if the service is not there. */
  private async connectService(): Promise<boolean> {
    const api = this.api!;
    // The library reads the variable once, in the first SCardEstablishContext that finds pcscd running
    // (SCardCheckDaemonAvailability comes first, winscard_clnt.c 473–478): kept until one succeeds.
    if (!this.libraryInitialised) this.restoreBlocking ??= disableSharingBlock(this.options.env ?? process.env);
    try {
      this.monitorCtx = api.establishContext(SCARD_SCOPE_SYSTEM);
      this.workCtx = api.establishContext(SCARD_SCOPE_SYSTEM);
      this.workEpoch++;
    } catch (e) {
      this.releaseContexts();
      const rv = e instanceof PcscError ? e.rv : 0;
      // Once per state change (the manager logs it and shows it on the group); the retries are quiet.
      this.reportWaiting(toScError(e).message, isServiceLost(rv));
      return false;
    }
    this.restoreBlocking?.();
    this.restoreBlocking = undefined;
    this.libraryInitialised = true;
    this.retryIndex = 0;
    this.pnpState = 0;
    this.sink?.log('info', `pcsc: connected to the PC/SC service (${api.library})`);
    this.sink?.status?.('running');
    const epoch = this.workEpoch;
    try {
      await this.syncReaders();
    } catch (e) {
      if (!this.running || this.workEpoch !== epoch) return true; // stopped meanwhile: nothing of this attempt is left
      await this.closeService(true);
      this.sink?.log('warn', `pcsc: ${toScError(e).message}`);
      return false;
    }
    // stop() (and perhaps a new start()) came during the reader list: this attempt's contexts are gone, no watcher (R72).
    if (!this.running || this.workEpoch !== epoch) return true;
    const generation = ++this.generation;
    this.monitor = this.watch(generation);
    return true;
  }

  private scheduleReconnect(): void {
    if (!this.running || this.retryTimer) return;
    const delay = this.delays[Math.min(this.retryIndex, this.delays.length - 1)];
    this.retryIndex++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.running) return;
      void this.connectService().then((ok) => {
        if (!ok) this.scheduleReconnect();
      });
    }, delay);
  }

  /** Says the driver waits for the service: through the sink's state when it has one, else logged once. */
  private reportWaiting(message: string, serviceDown: boolean): void {
    const hint = serviceDown ? pcscdHint() : undefined;
    if (this.sink?.status) this.sink.status('waiting', message, hint);
    else if (this.retryIndex === 0) this.sink?.log('warn', `pcsc: ${message}${hint ? ` ${hint}` : ''}`);
  }

  private async serviceLost(error: unknown): Promise<void> {
    this.sink?.log('warn', `pcsc: ${toScError(error).message} Its readers are removed until it is back.`);
    this.reportWaiting(toScError(error).message, true);
    await this.closeService(true);
    this.scheduleReconnect();
  }

  /**
   * Forgets every reader (reporting removals if asked) and releases the contexts. Each reader's handle and context go
   * at the end of its chain (never beside a call still on that context, R69); a call that outlasts CLOSE_WAIT_MS (a PIN
   * entry at stop) is not waited for: its reader's context is released when it ends.
   */
  private async closeService(report: boolean): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const r of [...this.readers.values()]) {
      closing.push(this.retire(r));
      this.readers.delete(r.name);
      if (report) this.sink?.slotRemoved(r.name);
    }
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      Promise.all(closing).then(() => false),
      new Promise<boolean>((res) => { timer = setTimeout(() => res(true), CLOSE_WAIT_MS); }),
    ]);
    clearTimeout(timer);
    if (late) this.sink?.log('warn', 'pcsc: a call on a reader (a PIN entry?) is still in the PC/SC service; its connection is closed when it ends');
    this.releaseContexts();
  }

  /** At the end of the reader's chain: its handle disconnected (leaving the card), its context released. */
  private retire(r: Reader): Promise<void> {
    const api = this.api;
    r.retired = true;
    const tail = r.chain.then(async () => {
      await this.settleDrops(r, api);
      const handle = r.handle;
      const tx = r.txHandle;
      const watch = r.watch;
      r.handle = null;
      r.txHandle = null;
      r.watch = null;
      this.transactionEndsWithHandle(r);
      if (handle !== null && api) await api.disconnect(handle, SCARD_LEAVE_CARD).catch(() => undefined);
      if (watch !== null && api) await api.disconnect(watch, SCARD_LEAVE_CARD).catch(() => undefined);
      // A direct handle of ours holding a client's transaction goes with the reader too (fourth review F6).
      if (tx !== null && api) await api.disconnect(tx, SCARD_LEAVE_CARD).catch(() => undefined);
      const ctx = r.ctx;
      r.ctx = null;
      if (ctx !== null) {
        try { api?.releaseContext(ctx); } catch { /* the service may be gone already */ }
      }
    });
    r.chain = tail;
    return tail;
  }

  private releaseContexts(): void {
    for (const ctx of [this.monitorCtx, this.workCtx]) {
      if (ctx === null) continue;
      try {
        this.api?.releaseContext(ctx);
      } catch {
        // the service may already be gone; nothing left to release
      }
    }
    this.monitorCtx = null;
    if (this.workCtx !== null) this.workEpoch++;
    this.workCtx = null;
  }

  private cancelMonitor(): void {
    if (this.monitorCtx === null) return;
    try {
      this.api?.cancel(this.monitorCtx);
    } catch {
      // a dead context cancels nothing; the loop ends on its own error
    }
  }

  // ---- plug and play -------------------------------------------------------------

  /**
   * Reads the reader list and reports arrivals (with their card state, from a
   * zero-timeout status query) and removals.
   */
  private async syncReaders(): Promise<void> {
    const api = this.api!;
    const ctx = this.workCtx;
    const epoch = this.workEpoch;
    if (ctx === null) return;
    let names: string[];
    try {
      names = api.listReaders(ctx);
    } catch (e) {
      if (e instanceof PcscError && isServiceLost(e.rv)) throw e;
      this.sink?.log('warn', `pcsc: ${toScError(e).message}`);
      return;
    }
    for (const r of [...this.readers.values()]) {
      if (names.includes(r.name)) continue;
      this.readers.delete(r.name);
      void this.retire(r);
      this.sink?.log('info', `pcsc: reader "${r.name}" removed`);
      this.sink?.slotRemoved(r.name);
    }
    const fresh = names.filter((n) => !this.readers.has(n));
    if (!fresh.length) return;
    let states: ReaderState[] = [];
    try {
      states = await api.getStatusChange(ctx, 0, fresh.map((reader) => ({ reader, currentState: SCARD_STATE.UNAWARE, eventState: 0, atr: new Uint8Array(0) })));
    } catch (e) {
      if (!(e instanceof PcscError) || (e.rv !== SCARD_E_TIMEOUT && e.rv !== SCARD_E_UNKNOWN_READER)) throw e;
    }
    // Stopped (or the service closed) during the query: the context is gone and the readers are not ours to add (R72).
    if (!this.running || this.workEpoch !== epoch) return;
    for (const name of fresh) {
      if (this.readers.has(name)) continue;
      const st = states.find((s) => s.reader === name);
      const eventState = st?.eventState ?? SCARD_STATE.UNAWARE;
      const present = (eventState & SCARD_STATE.PRESENT) !== 0;
      const reader: Reader = {
        name,
        state: eventState & ~SCARD_STATE.CHANGED,
        present,
        atr: present && st ? st.atr.slice() : new Uint8Array(0),
        handle: null,
        share: SCARD_SHARE_SHARED,
        protocol: 0,
        inTransaction: false,
        txHandle: null,
        directTransaction: false,
        watch: null,
        watchWanted: false,
        watchOwn: false,
        transactionGone: false,
        ctx: null,
        pending: null,
        stale: [],
        retired: false,
        ownReset: false,
        chain: Promise.resolve(),
        fastInARow: 0,
      };
      this.readers.set(name, reader);
      this.sink?.log('info', `pcsc: reader "${name}" added${reader.present ? ' with a card' : ''}`);
      this.sink?.slotAdded(this.describe(reader));
    }
  }

  private async watch(generation: number): Promise<void> {
    const api = this.api!;
    const alive = () => this.running && generation === this.generation;
    let unknownReaderInARow = 0;
    while (alive()) {
      try {
        const states: ReaderState[] = [...this.readers.values()].map((r) => ({ reader: r.name, currentState: r.state, eventState: 0, atr: new Uint8Array(0) }));
        if (this.pnpSupported) states.unshift({ reader: PNP_NOTIFICATION, currentState: this.pnpState, eventState: 0, atr: new Uint8Array(0) });
        const timeout = this.pnpSupported ? PNP_WATCHDOG_MS : NO_PNP_POLL_MS;
        const out = await api.getStatusChange(this.monitorCtx!, timeout, states);
        unknownReaderInARow = 0;
        if (!alive()) return;
        let relist = !this.pnpSupported;
        for (const s of out) {
          if (s.reader === PNP_NOTIFICATION) {
            if (s.eventState & SCARD_STATE.UNKNOWN) {
              this.pnpSupported = false; // no PnP pseudo-reader here: fall back to re-reading the list
              this.sink?.log('info', 'pcsc: the PC/SC service has no reader arrival notifications; re-reading the reader list every second');
            }
            if (s.eventState & SCARD_STATE.CHANGED) relist = true;
            this.pnpState = s.eventState & ~SCARD_STATE.CHANGED;
          } else if (s.eventState & (SCARD_STATE.UNKNOWN | SCARD_STATE.UNAVAILABLE)) {
            relist = true;
            this.readers.get(s.reader)!.state = s.eventState & ~SCARD_STATE.CHANGED;
          } else if (s.eventState & SCARD_STATE.CHANGED) {
            this.applyState(s);
          }
        }
        if (relist) await this.syncReaders();
      } catch (e) {
        if (!alive()) return;
        const rv = e instanceof PcscError ? e.rv : -1;
        if (rv === SCARD_E_CANCELLED) continue;
        if (rv === SCARD_E_TIMEOUT) {
          // Nothing changed in the wait: re-read the list (the fallback poll, and the PnP watchdog).
          await this.syncReaders().catch((e2) => this.sink?.log('warn', `pcsc: ${toScError(e2).message}`));
          continue;
        }
        if (rv === SCARD_E_UNKNOWN_READER && unknownReaderInARow++ < 3) {
          // a reader left between listing and waiting; if this repeats, the pause below applies
          await this.syncReaders().catch((e2) => this.sink?.log('warn', `pcsc: ${toScError(e2).message}`));
          continue;
        }
        // pcsc-lite reports a dying service on a waiting call as SCARD_F_COMM_ERROR.
        if (isServiceLost(rv) || rv === SCARD_F_COMM_ERROR) {
          await this.serviceLost(e);
          return;
        }
        this.sink?.log('error', `pcsc: watching readers failed: ${toScError(e).message} Retrying in 1 s.`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Turns a reader's new dwEventState into card events (the counter catches a quick swap). */
  private applyState(s: ReaderState): void {
    const r = this.readers.get(s.reader);
    if (!r) return;
    const present = (s.eventState & SCARD_STATE.PRESENT) !== 0;
    const counterMoved = s.eventState >>> 16 !== r.state >>> 16 && r.state !== SCARD_STATE.UNAWARE;
    const wasPresent = r.present;
    r.state = s.eventState & ~SCARD_STATE.CHANGED;
    r.present = present;
    r.atr = present ? s.atr.slice() : new Uint8Array(0);
    if (wasPresent && (!present || counterMoved)) {
      this.dropHandle(r, false);
      this.sink?.cardRemoved(r.name);
    }
    if (present && (!wasPresent || counterMoved)) this.sink?.cardInserted(r.name);
  }

  /** Our handle goes (SCardDisconnect, or pcscd dropped it): pcscd ends its transaction with it (RFUnlockAllSharing). */
  private transactionEndsWithHandle(r: Reader): void {
    if (r.inTransaction) r.transactionGone = true;
    r.inTransaction = false;
  }

  /**
   * Our handle is stale (the card left or was reset under it): forget it and disconnect it. From the reader's chain
   * (`inChain`) the disconnect goes at once and the chain's next call on the context waits for it; from outside (the
   * watcher) the handle goes on `r.stale`, disconnected by the chain before its next native call on the context (a
   * connect of the call in flight, the next queued call, or a flush at the chain's end): never beside a call of the
   * chain on the same context (R69), never after a connect of ours that pcscd would hold behind its lock (R70).
   */
  private dropHandle(r: Reader, inChain = true): void {
    // No handle, no transaction of ours in pcscd: the flag goes even when the handle went first (R68).
    this.transactionEndsWithHandle(r);
    if (r.handle === null) return;
    const handle = r.handle;
    r.handle = null;
    const api = this.api;
    if (!api) return;
    if (inChain) {
      const before = r.pending;
      r.pending = (before ?? Promise.resolve()).then(() => api.disconnect(handle, SCARD_LEAVE_CARD).catch(() => undefined));
    } else {
      // From the watcher: never beside a call of the chain on `ctx` (R69), but before the chain's next native call on
      // it (R70): the call in flight may connect again, and so may every call already queued.
      r.stale.push(handle);
      r.chain = r.chain.then(() => this.disconnectStale(r, api));
    }
  }

  /**
   * Disconnects the handles the watcher dropped; only from the reader's chain (no other call on its context then).
   * pcscd clears our hLockId and exclusive hold on the reader only now (RFUnlockAllSharing).
   */
  private async disconnectStale(r: Reader, api: Winscard | null): Promise<void> {
    for (const handle of r.stale.splice(0)) {
      if (api) await api.disconnect(handle, SCARD_LEAVE_CARD).catch(() => undefined);
    }
  }

  /**
   * Before a native call on the reader's context: a dropped handle's disconnect still on its way (`r.pending`)
   * finished, then the handles the watcher dropped disconnected (R69, R70). Only from the reader's chain.
   */
  private async settleDrops(r: Reader, api: Winscard | null): Promise<void> {
    while (r.pending) {
      const pending = r.pending;
      await pending;
      if (r.pending === pending) r.pending = null;
    }
    await this.disconnectStale(r, api);
  }

  // ---- card access -------------------------------------------------------------

  async powerOn(key: string, mode: PowerMode): Promise<Uint8Array> {
    return this.serialized(key, async (r, api, ctx) => {
      r.ownReset = true;
      const init = mode === 'cold' ? SCARD_UNPOWER_CARD : SCARD_RESET_CARD;
      if (r.handle !== null) {
        try {
          r.protocol = await api.reconnect(r.handle, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, init);
        } catch (e) {
          // A removed or foreign-reset card invalidates the handle: start a new connection.
          if (!(e instanceof PcscError) || ![SCARD_W_REMOVED_CARD, SCARD_W_RESET_CARD].includes(e.rv)) throw e;
          this.dropHandle(r);
        }
      }
      if (r.handle === null && r.txHandle !== null && r.inTransaction) {
        // Our DIRECT handle holds a client's transaction (R73): it becomes our card handle, reset as asked, in one
        // SCardReconnect on the lock holder (a new SCardConnect would wait on our own hLockId for ever).
        await this.promote(r, api, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, init);
      } else if (r.handle === null) {
        // Not connected (the card was left to others, or its handle went stale): connect, then
        // reset as asked — a fresh SCardConnect alone does not reset a card pcscd already powered.
        const c = await this.connect(r, api, ctx, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
        r.handle = c.handle;
        r.protocol = await api.reconnect(c.handle, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, init);
      }
      return (await cardStatus(api, r.handle!)).atr;
    });
  }

  async powerOff(key: string, opts?: { coldReset?: boolean }): Promise<void> {
    await this.serialized(key, async (r, api, ctx) => {
      r.ownReset = true;
      if (r.inTransaction && (r.directTransaction || opts?.coldReset)) {
        // A PC/SC client's direct handle holds our transaction (R73): only its cold reset reaches here (a power-off and
        // a power-up: the Readers view's Power Off waits for the transaction's end). Or any cold reset inside our
        // transaction, whoever began it (a card handle's handed over to a direct handle, a card handle's own: R84).
        // pcscd keeps hLockId across the holder's SCardReconnect(UNPOWER), but has no power-off that keeps it
        // (SCardDisconnect(UNPOWER) would end it for every program): SCardReconnect(UNPOWER) on the holder, which powers
        // the card down and up again and keeps it; the power-up that follows cycles it once more.
        if (r.handle !== null) r.protocol = await api.reconnect(r.handle, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_UNPOWER_CARD);
        else if (r.txHandle !== null) await api.reconnect(r.txHandle, SCARD_SHARE_DIRECT, this.directProtocols, SCARD_UNPOWER_CARD);
        return;
      }
      // Released (or never connected): connect just to unpower, so Power Off does what it says.
      if (r.handle === null && r.present) r.handle = (await this.connect(r, api, ctx, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)).handle;
      if (r.handle === null) return;
      const handle = r.handle;
      r.handle = null;
      this.transactionEndsWithHandle(r);
      await api.disconnect(handle, SCARD_UNPOWER_CARD);
    });
  }

  async eject(key: string): Promise<void> {
    await this.serialized(key, async (r, api, ctx) => {
      const handle = r.handle ?? r.txHandle ?? (await this.connect(r, api, ctx, SCARD_SHARE_DIRECT, this.directProtocols)).handle;
      r.handle = null;
      r.txHandle = null;
      this.transactionEndsWithHandle(r); // SCardDisconnect ends a transaction too (fifth review F2, R68)
      await api.disconnect(handle, SCARD_EJECT_CARD);
    });
  }

  async setProtocol(key: string, protocol: Protocol, _atr: Uint8Array): Promise<void> {
    await this.serialized(key, async (r, api, ctx) => {
      const wanted = protocol === 0 ? SCARD_PROTOCOL_T0 : SCARD_PROTOCOL_T1;
      const handle = await this.connectedOrConnect(r, api, ctx, wanted);
      if (r.protocol === wanted) return;
      r.protocol = await api.reconnect(handle, r.share, wanted, SCARD_LEAVE_CARD);
      if (r.protocol !== wanted) throw new ScError('PROTOCOL', `The reader "${r.name}" kept T=${r.protocol === SCARD_PROTOCOL_T0 ? 0 : 1}; the card or reader does not offer T=${protocol}.`);
    });
  }

  /** Uses the protocol the service negotiated (the PCI must match it), whatever `protocol` says. */
  async transmit(key: string, command: Uint8Array, _protocol: Protocol): Promise<Uint8Array> {
    return this.serialized(key, async (r, api, ctx) => {
      // Either protocol: another application may have had the card since we let go of it, and pcscd
      // keeps the protocol it negotiated then (asking for the other one alone is SCARD_E_PROTO_MISMATCH).
      const handle = await this.connectedOrConnect(r, api, ctx, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
      let out: Uint8Array;
      const sync = r.fastInARow >= SYNC_AFTER_FAST && this.active === 1 && api.transmitSync !== undefined && this.options.syncTransmit !== false;
      const clock = this.options.clock ?? performance.now.bind(performance);
      const t0 = clock();
      try {
        out = sync ? api.transmitSync!(handle, r.protocol, command) : await api.transmit(handle, r.protocol, command);
      } catch (e) {
        r.fastInARow = 0;
        throw (await this.explainLoss(r, api, ctx, handle)) ?? e;
      }
      r.fastInARow = clock() - t0 < FAST_EXCHANGE_MS ? r.fastInARow + 1 : 0;
      // pcscd's vpcd reports a card peer that vanished as an empty answer.
      if (out.length === 0) throw (await this.explainLoss(r, api, ctx, handle)) ?? new ScError('PROTOCOL', `"${r.name}" returned an empty response (no status word); the card was probably removed or stopped answering (pcscd notices a removal up to 0.5 s late).`);
      return out;
    });
  }

  /**
   * After a failed or empty exchange, say what really happened: the service
   * stopped, or the card left. PC/SC's own codes for these (a security
   * violation, an empty answer) send users looking in the wrong place.
   */
  private async explainLoss(r: Reader, api: Winscard, ctx: Handle, handle: Handle): Promise<ScError | null> {
    // SCardIsValidContext takes only libpcsclite's clientMutex (winscard_clnt.c 414–421), never a context's mutex;
    // SCardStatus goes to a worker thread like every handle call (R69).
    let valid = true;
    try { valid = api.isValidContext(ctx); } catch { valid = false; }
    if (!valid) {
      this.cancelMonitor();
      return new ScError('READER_UNAVAILABLE', `The PC/SC service (pcscd / Smart Card service) stopped during the exchange with "${r.name}"; its readers come back when it runs again.`);
    }
    try {
      const st = await cardStatus(api, handle);
      if (!cardInReader(st.state, this.platform)) {
        this.dropHandle(r);
        return new ScError('CARD_REMOVED', `The card was removed from "${r.name}" during the exchange.`);
      }
    } catch (e) {
      if (e instanceof PcscError && isServiceLost(e.rv)) {
        this.cancelMonitor();
        return new ScError('READER_UNAVAILABLE', `The PC/SC service stopped during the exchange with "${r.name}"; its readers come back when it runs again.`);
      }
      if (e instanceof PcscError && (e.rv === SCARD_W_REMOVED_CARD || e.rv === SCARD_E_NO_SMARTCARD)) {
        this.dropHandle(r);
        return new ScError('CARD_REMOVED', `The card was removed from "${r.name}" during the exchange.`);
      }
    }
    return null;
  }

  /**
   * `code` below 0x10000 is a function number (3400 = CM_IOCTL_GET_FEATURE_REQUEST)
   * turned into this platform's SCARD_CTL_CODE; larger values are passed as they are.
   * Without a card connection of ours the reader is opened for the call (`connectForReaderCall`).
   */
  async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    return this.serialized(key, async (r, api, ctx) => {
      const ioctl = code < 0x10000 ? api.ctlCode(code) : code;
      const held = r.handle ?? r.txHandle; // the handle holding our transaction, if any (R73): no connect under it
      if (held !== null) return api.control(held, ioctl, data);
      const direct = await this.connectForReaderCall(r, api, ctx);
      try {
        return await api.control(direct.handle, ioctl, data);
      } finally {
        await api.disconnect(direct.handle, SCARD_LEAVE_CARD).catch(() => undefined);
      }
    });
  }

  /**
   * The reader's facts with SCardGetAttrib: each attribute asked once, on our card connection when
   * there is one, else on a connection of the moment closed after (`connectForReaderCall`: direct, no card
   * needed; on Windows a card in the reader is connected shared). What the IFD handler does not answer is
   * listed with its return code, never made up.
   */
  async readerFacts(key: string): Promise<ReaderFacts> {
    return this.serialized(key, async (r, api, ctx) => {
      const facts: ReaderFacts = { source: 'SCardGetAttrib' };
      const unanswered: string[] = [];
      const raw: Record<string, string> = {}; // the bytes as answered, for the PC/SC service's SCardGetAttrib
      const held = r.handle ?? r.txHandle; // our DIRECT transaction holder answers as a direct connection (R73)
      const direct = held === null ? await this.connectForReaderCall(r, api, ctx) : null;
      const handle = direct ? direct.handle : held!;
      // A card handle (ours, or a shared one of the moment) hears the card's events.
      const onCard = handle === r.handle || direct?.share === SCARD_SHARE_SHARED;
      try {
        for (const a of READER_ATTRIBUTES) {
          try {
            const bytes = await api.getAttrib(handle, a.tag);
            if (bytes.length) raw[rawFactKey(a.tag)] = Buffer.from(bytes).toString('hex');
            const value = decodeAttribute(a.kind, bytes);
            if (value === undefined) unanswered.push(`${a.name}: empty`);
            else setFact(facts, a, value);
          } catch (e) {
            if (!(e instanceof PcscError)) throw e;
            if (isServiceLost(e.rv) || e.rv === SCARD_E_UNKNOWN_READER) throw e;
            // On our card handle pcscd reports the card's events here too (SCardGetAttrib runs
            // RFCheckReaderEventState, winscard.c 1397): a reset or a removal, not an attribute the
            // IFD handler lacks. serialized() acknowledges the reset or drops the handle; the manager
            // hears CARD_RESET / CARD_REMOVED and reads the facts again.
            if (onCard && (e.rv === SCARD_W_RESET_CARD || e.rv === SCARD_W_REMOVED_CARD)) throw e;
            unanswered.push(`${a.name}: ${pcscErrorName(e.rv, this.platform)}`);
          }
        }
      } finally {
        if (direct) await api.disconnect(direct.handle, SCARD_LEAVE_CARD).catch(() => undefined);
      }
      if (Object.keys(raw).length) facts.raw = raw;
      if (unanswered.length) facts.unanswered = unanswered;
      if (unanswered.length === READER_ATTRIBUTES.length) facts.note = `The reader's driver behind ${this.api?.library ?? 'the PC/SC service'} answers none of these attributes.`;
      return facts;
    });
  }

  /**
   * PC/SC transaction: other programs wait until it ends. `direct`: for a PC/SC client's SCARD_SHARE_DIRECT handle
   * (R73): begun on our card handle when we have one, else on a DIRECT handle of ours (no card needed, nothing powered).
   */
  async beginTransaction(key: string, opts?: { direct?: boolean }): Promise<void> {
    await this.serialized(key, async (r, api, ctx) => {
      if (r.inTransaction) {
        // pcscd's lock is ours already: a grant that came after its caller gave up (Gate.beginTransaction), whose end
        // is queued behind this call. Beginning again on the same handle would stack pcscd's LockCount (RFLockSharing,
        // readerfactory.c 1061–1107) and the one End of the gate would leave a level held by nobody (R83): this Begin
        // takes the transaction as it is. A card connection's Begin makes the DIRECT holder the card handle (R73).
        if (!opts?.direct) await this.connectedOrConnect(r, api, ctx, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
        r.transactionGone = false;
        // Whose it is now: a card connection's Begin took it over (its power-off is a plain SCardDisconnect(UNPOWER),
        // not a direct handle's power cycle on the holder, R86).
        r.directTransaction = opts?.direct === true;
        return;
      }
      if (opts?.direct && r.handle === null) {
        // Through the guard, before any lock of ours is held; the guard also lets go of a holder whose transaction a
        // removal ended (R85), so it is never overwritten (leaked) by the new one. pcscd's SCardConnect waits while ANOTHER program holds the
        // reader's transaction (winscard.c 287–295): that is the client's own Begin waiting, as with pcscd; the gate's
        // deadline answers the caller meanwhile, and a late grant is ended at once (Gate.beginTransaction).
        const d = await this.connect(r, api, ctx, SCARD_SHARE_DIRECT, this.directProtocols);
        try {
          // As below: another program's transaction begun since the connect is refused at once, not polled for ever.
          await cardStatus(api, d.handle).catch((e: unknown) => {
            if (e instanceof PcscError && e.rv === SCARD_E_SHARING_VIOLATION) throw e;
          });
          await api.beginTransaction(d.handle);
        } catch (e) {
          await api.disconnect(d.handle, SCARD_LEAVE_CARD).catch(() => undefined);
          throw e;
        }
        r.txHandle = d.handle;
        r.inTransaction = true;
        r.directTransaction = true;
        r.transactionGone = false;
        return;
      }
      const handle = await this.connectedOrConnect(r, api, ctx, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
      // libpcsclite's SCardBeginTransaction polls pcscd's SCARD_E_SHARING_VIOLATION whatever PCSCLITE_NO_BLOCKING
      // says (winscard_clnt.c 1186–1223). SCardStatus meets another program's transaction first (RFCheckSharing,
      // winscard.c 1271) and, with the variable, answers at once: the refusal goes to the caller as pcscd gives it.
      // A transaction the other program begins between the two calls still blocks here until it ends.
      await cardStatus(api, handle);
      await api.beginTransaction(handle);
      r.inTransaction = true;
      r.directTransaction = opts?.direct === true;
      r.transactionGone = false;
    });
  }

  async endTransaction(key: string, disposition: 'leave' | 'reset' | 'unpower' = 'leave'): Promise<void> {
    await this.serialized(key, async (r, api) => {
      if (disposition !== 'leave') r.ownReset = true;
      const tx = r.txHandle;
      if (tx !== null) {
        // Our DIRECT handle holding a client's transaction (R73): ended on it, then disconnected (even when a removal
        // ended the transaction in pcscd first: RFSetReaderEventState(SCARD_REMOVED) clears hLockId).
        const held = r.inTransaction;
        r.txHandle = null;
        r.inTransaction = false;
        r.transactionGone = false;
        try {
          if (held) await api.endTransaction(tx, { leave: SCARD_LEAVE_CARD, reset: SCARD_RESET_CARD, unpower: SCARD_UNPOWER_CARD }[disposition]);
        } finally {
          await api.disconnect(tx, SCARD_LEAVE_CARD).catch(() => undefined);
        }
        return;
      }
      if (!r.inTransaction && r.transactionGone) {
        r.transactionGone = false; // our disconnect ended it in pcscd already: nothing left to end
        return;
      }
      if (!r.inTransaction) throw new ScError('BAD_REQUEST', `No transaction is open on "${r.name}".`);
      const d = { leave: SCARD_LEAVE_CARD, reset: SCARD_RESET_CARD, unpower: SCARD_UNPOWER_CARD }[disposition];
      r.inTransaction = false;
      await api.endTransaction(this.connected(r), d);
    });
  }

  /**
   * R74: a PC/SC client of the workbench holds a direct handle on the reader (`on`), or the last one went: our own
   * direct handle in pcscd (`watch`) is opened or disconnected. Not under our own transaction (the connect guard), nor
   * while we hold the reader exclusively (pcscd refuses every connect then, and no other program can reset the card):
   * the next look (checkCardEvents) opens it then.
   *
   * R90: fails with SCARD_E_SHARING_VIOLATION when pcscd refused the watch's SCardConnect(DIRECT) with it: another
   * program of the machine holds the reader exclusively (winscard.c 279–283, the only refusal of a DIRECT connect; an
   * exclusive hold of ours is never tried), so the client's own direct connect or reconnect is refused as pcscd would.
   */
  async watchCardEvents(key: string, on: boolean): Promise<void> {
    const reader = this.readers.get(key);
    if (!reader) return;
    reader.watchWanted = on;
    await this.serialized(key, async (r, api, ctx) => {
      if (!r.watchWanted) await this.closeWatch(r, api);
      else {
        const refused = await this.openWatch(r, api, ctx);
        if (refused) throw refused;
      }
    });
  }

  /**
   * R74: pcscd's RFCheckReaderEventState for our handles: SCardStatus on the watch and on our card handle (off the
   * event loop, on the reader's context). A reset another program made since the last look fails with CARD_RESET once,
   * however many of our handles heard it: serialized() clears the other (acknowledgeReset); our own resets were cleared
   * after the call that made them. A removal is the watcher's to report; the watch is cleared of it here. Another
   * program's transaction (SCARD_E_SHARING_VIOLATION: pcscd looks at the sharing first) tells nothing yet.
   */
  async checkCardEvents(key: string): Promise<void> {
    await this.serialized(key, async (r, api, ctx) => {
      if (r.watchWanted) await this.openWatch(r, api, ctx);
      if (r.watchOwn) await this.clearWatch(r, api); // our own reset's mark, left from a transaction: not another program's
      if (r.watch !== null && !r.inTransaction && !r.watchOwn) {
        try {
          await cardStatus(api, r.watch);
        } catch (e) {
          if (!(e instanceof PcscError) || isServiceLost(e.rv)) throw e;
          if (e.rv === SCARD_W_RESET_CARD) throw e; // serialized(): acknowledged on every handle of ours, CARD_RESET once
          if (e.rv !== SCARD_E_SHARING_VIOLATION) await this.clearWatch(r, api);
        }
      }
      if (r.handle !== null) {
        await cardStatus(api, r.handle).catch((e: unknown) => {
          if (e instanceof PcscError && (e.rv === SCARD_W_RESET_CARD || e.rv === SCARD_W_REMOVED_CARD || isServiceLost(e.rv))) throw e;
        });
      }
    });
  }

  /**
   * Opens the watch if wanted and none is open, where a connect of ours may go (R74); a refusal leaves it for later.
   * Returns pcscd's SCARD_E_SHARING_VIOLATION when it refused the connect with it (another program's exclusive hold, R90).
   */
  private async openWatch(r: Reader, api: Winscard, ctx: Handle): Promise<PcscError | undefined> {
    if (!r.watchWanted || r.watch !== null || r.inTransaction || r.share === SCARD_SHARE_EXCLUSIVE || !this.running) return undefined;
    // Windows' winscard gives a SCARD_SHARE_DIRECT handle the reader alone (pcsc-lite shares it): a watch there would
    // shut every other program out (review 11, A4). No pcsc-lite client runs on Windows to need one.
    if (this.platform === 'win32') return undefined;
    try {
      const w = await this.connect(r, api, ctx, SCARD_SHARE_DIRECT, this.directProtocols);
      // Given up meanwhile (the last direct handle went while the connect waited in pcscd): not kept.
      if (!r.watchWanted || r.retired) await api.disconnect(w.handle, SCARD_LEAVE_CARD).catch(() => undefined);
      else { r.watch = w.handle; r.watchOwn = false; }
    } catch (e) {
      if (e instanceof PcscError && isServiceLost(e.rv)) throw e;
      this.sink?.log('debug', `pcsc: no watch on "${r.name}" yet: ${toScError(e, r.name).message}`);
      if (e instanceof PcscError && e.rv === SCARD_E_SHARING_VIOLATION) return e;
    }
    return undefined;
  }

  /**
   * The watch's event cleared (SCardReconnect LEAVE, RFClearReaderEventState): after a reset of ours or one already
   * counted. Under a transaction pcscd refuses it (RFCheckSharing): tried again after the transaction (`watchOwn`); no
   * other program can reset the card meanwhile. A watch that cannot be cleared otherwise is disconnected (reopened by
   * the next look, with no event).
   */
  private async clearWatch(r: Reader, api: Winscard): Promise<void> {
    if (r.watch === null) { r.watchOwn = false; return; }
    if (r.inTransaction) { r.watchOwn = true; return; }
    try {
      await api.reconnect(r.watch, SCARD_SHARE_DIRECT, this.directProtocols, SCARD_LEAVE_CARD);
      r.watchOwn = false;
    } catch (e) {
      if (e instanceof PcscError && e.rv === SCARD_E_SHARING_VIOLATION) { r.watchOwn = true; return; }
      await this.closeWatch(r, api);
    }
  }

  private async closeWatch(r: Reader, api: Winscard): Promise<void> {
    const w = r.watch;
    r.watch = null;
    r.watchOwn = false;
    if (w !== null) await api.disconnect(w, SCARD_LEAVE_CARD).catch(() => undefined);
  }

  /** The ATR pcscd powered the card with (from the reader state), without connecting; undefined for a mute card. */
  passiveAtr(key: string): Uint8Array | undefined {
    const r = this.readers.get(key);
    if (!r || !r.present || r.atr.length === 0 || r.state & SCARD_STATE.MUTE) return undefined;
    return r.atr.slice();
  }

  /**
   * A connection of the manager holds the reader in this share mode: our connection in the
   * system's service takes it too (SCardConnect, or SCardReconnect of the one we have, leaving
   * the card as it is). Exclusive: other programs of the machine get SCARD_E_SHARING_VIOLATION
   * until release(); refused with it while another program holds the card (exclusively, or in
   * a transaction), as pcscd refuses the client.
   */
  async hold(key: string, share: 'shared' | 'exclusive'): Promise<void> {
    await this.serialized(key, async (r, api, ctx) => {
      const wanted = share === 'exclusive' ? SCARD_SHARE_EXCLUSIVE : SCARD_SHARE_SHARED;
      // pcscd counts our watch in the reader's sharing (winscard.c ~480): an exclusive hold would be refused beside it.
      // While we hold the reader exclusively no other program connects, so none can reset it (R74).
      if (wanted === SCARD_SHARE_EXCLUSIVE) await this.closeWatch(r, api);
      if (r.handle === null && r.txHandle !== null && r.inTransaction) {
        await this.promote(r, api, wanted, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD); // R73
      } else if (r.handle === null) {
        const c = await this.connect(r, api, ctx, wanted, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
        r.handle = c.handle;
        r.protocol = c.protocol;
      } else if (r.share !== wanted) {
        const wasExclusive = r.share === SCARD_SHARE_EXCLUSIVE;
        r.protocol = await api.reconnect(r.handle, wanted, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD);
        // pcscd took the reader's lock for our EXCLUSIVE handle (RFLockSharing, winscard.c 463–468, 758–762) and its
        // reconnect to SHARED could not give the last level back (RFUnlockSharing refuses it while the reader is still
        // exclusive, readerfactory.c 1085–1090): hLockId stays on our now-shared handle and every other connect on the
        // reader, the watch's on this very context included, would wait for ever (winscard.c 287–295). One End gives it
        // back (LockCount 1 → 0). Inside a transaction of ours the level is that transaction's, ended by its End (R89).
        if (wasExclusive && !r.inTransaction) await api.endTransaction(r.handle, SCARD_LEAVE_CARD).catch(() => undefined);
      }
      r.share = wanted;
      this.sink?.log('debug', `pcsc: holding "${r.name}" ${share === 'exclusive' ? 'exclusively' : 'shared'} in the PC/SC service`);
    });
  }

  /** No client of ours needs the card: disconnect, leaving it powered (SCARD_LEAVE_CARD), so others can have it. */
  async release(key: string): Promise<void> {
    if (!this.readers.has(key)) return;
    await this.serialized(key, async (r, api, ctx) => {
      const wasExclusive = r.share === SCARD_SHARE_EXCLUSIVE;
      r.share = SCARD_SHARE_SHARED; // the next connection of ours is a shared one unless hold() says otherwise
      if (r.handle === null) return;
      const handle = r.handle;
      r.handle = null;
      this.transactionEndsWithHandle(r); // SCardDisconnect ends a transaction too
      r.fastInARow = 0;
      this.sink?.log('debug', `pcsc: left the card in "${r.name}" (no connection of ours needs it)`);
      await api.disconnect(handle, SCARD_LEAVE_CARD);
      // The watch an exclusive hold closed, back before another program can connect and reset (R74).
      if (wasExclusive) await this.openWatch(r, api, ctx);
    });
  }

  // ---- plumbing -------------------------------------------------------------------

  /**
   * A connection of the moment for a reader call without a card handle of ours (the facts, a control command), closed
   * by the caller with SCARD_LEAVE_CARD. SCARD_SHARE_DIRECT, which needs no card; but Windows gives a DIRECT handle the
   * reader alone (pcsc-lite and macOS share it), so there a reader with a powered card that answers is connected
   * SCARD_SHARE_SHARED instead: read at a card's arrival (a reader plugged in with its card, every helper start), a
   * DIRECT handle would refuse the programs that connect to the new card at that very moment (Windows' smart card plug
   * and play, certificate propagation, the user's middleware). A card that is unpowered (a shared connect would power
   * it), mute, or that the shared connect cannot take (a memory card before the reader's set-card-type escape, a card
   * just pulled) gets the DIRECT connection, as on the other platforms.
   */
  private async connectForReaderCall(r: Reader, api: Winscard, ctx: Handle): Promise<{ handle: Handle; share: number }> {
    if (this.platform === 'win32' && r.present && !(r.state & (SCARD_STATE.MUTE | SCARD_STATE.UNPOWERED))) {
      try {
        const c = await this.connect(r, api, ctx, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
        return { handle: c.handle, share: SCARD_SHARE_SHARED };
      } catch (e) {
        if (!(e instanceof PcscError) || !SHARED_CONNECT_CARD_REFUSALS.has(e.rv)) throw e;
      }
    }
    const c = await this.connect(r, api, ctx, SCARD_SHARE_DIRECT, this.directProtocols);
    return { handle: c.handle, share: SCARD_SHARE_DIRECT };
  }

  /**
   * Our connection, made now if the card was released (or never connected: the
   * ATR came from pcscd), shared, with the protocol the manager chose.
   */
  private async connectedOrConnect(r: Reader, api: Winscard, ctx: Handle, protocols: number): Promise<Handle> {
    if (r.handle !== null) return r.handle;
    if (r.txHandle !== null && r.inTransaction) return this.promote(r, api, r.share, protocols, SCARD_LEAVE_CARD); // R73
    const c = await this.connect(r, api, ctx, r.share, protocols);
    r.handle = c.handle;
    r.protocol = c.protocol;
    return c.handle;
  }

  /**
   * Our DIRECT handle that holds a client's transaction (R73) becomes our card handle: SCardReconnect on the lock holder
   * to `share` (pcscd keeps hLockId across it, winscard.c SCardReconnect), so the transaction stays ours and no
   * SCardConnect is made under it. On failure (no card, a card that does not answer) it stays the DIRECT holder.
   */
  private async promote(r: Reader, api: Winscard, share: number, protocols: number, init: number): Promise<Handle> {
    const h = r.txHandle!;
    r.protocol = await api.reconnect(h, share, protocols, init);
    r.txHandle = null;
    r.handle = h;
    r.share = share;
    return h;
  }

  /**
   * SCardConnect, never while a handle of ours holds the reader's transaction in the system service: pcscd's connect
   * waits while hLockId is set whatever the share mode (winscard.c 287–295), and on our one context the End that would
   * clear it can never be sent meanwhile (pcscd serves a context on one thread; libpcsclite holds the context's mutex
   * for the call). The reader would stay locked for every program of the machine (fourth review F1). Our transaction
   * is only ever held on `r.handle` or `r.txHandle` (R73), and every call site uses or promotes that handle then; this is
   * the guard should that change.
   */
  private connect(r: Reader, api: Winscard, ctx: Handle, share: number, protocols: number): Promise<{ handle: Handle; protocol: number }> {
    if (r.inTransaction) return Promise.reject(underOurLock(r));
    // A dropped handle's disconnect first: one call at a time on the reader's context (R69); a handle the watcher
    // dropped while this call ran holds pcscd's lock until it is disconnected (R70).
    return this.settleDrops(r, api).then(async () => {
      // A DIRECT holder whose transaction ended in our books but may still hold pcscd's hLockId: a removal clears it
      // (readerfactory.c 1338–1343), pcscd's UNKNOWN → PRESENT re-insertion after a reader error moves the event counter
      // without clearing it (eventhandler.c 330–345, 392–417), and the watcher cannot tell the two apart. Never connect
      // beside it (R85): it is disconnected first (RFUnlockAllSharing); the next direct Begin comes through here too.
      if (r.txHandle !== null && !r.inTransaction) {
        const old = r.txHandle;
        r.txHandle = null;
        await api.disconnect(old, SCARD_LEAVE_CARD).catch(() => undefined);
      }
      if (r.inTransaction || r.txHandle !== null) throw underOurLock(r);
      return api.connect(ctx, r.name, share, protocols);
    });
  }

  private connected(r: Reader): Handle {
    if (r.handle === null) throw new ScError('NO_CARD', `The card in "${r.name}" is not connected; power it on (reset) first.`);
    return r.handle;
  }

  private serialized<T>(key: string, op: (r: Reader, api: Winscard, ctx: Handle) => Promise<T>): Promise<T> {
    const r = this.readers.get(key);
    if (!r || !this.api || this.workCtx === null) {
      const why = this.workCtx === null ? ' The PC/SC service is not running.' : '';
      return Promise.reject(new ScError('NO_READER', `No PC/SC reader "${key}".${why}`));
    }
    const api = this.api;
    const run = r.chain.then(async () => {
      if (r.retired) {
        // Queued before the driver stopped or the reader went: only the call already in flight finishes (R71).
        throw new ScError('READER_UNAVAILABLE', `The PC/SC reader "${r.name}" was closed (the driver stopped, the PC/SC service went away or the reader was removed) before this call started; nothing was sent.`);
      }
      this.active++;
      try {
        await this.settleDrops(r, api);
        // The reader's own context (R69): established (a short call, clientMutex only) at its first card call.
        r.ctx ??= api.establishContext(SCARD_SCOPE_SYSTEM);
        try {
          return await op(r, api, r.ctx);
        } finally {
          // A reset of ours (or our transaction's end after one) marked the watch: not another program's (R74).
          if (r.ownReset || r.watchOwn) await this.clearWatch(r, api);
          r.ownReset = false;
        }
      } catch (e) {
        if (e instanceof PcscError && e.rv === SCARD_W_REMOVED_CARD) this.dropHandle(r);
        if (e instanceof PcscError && e.rv === SCARD_W_RESET_CARD) await this.acknowledgeReset(r, api);
        if (e instanceof PcscError && isServiceLost(e.rv)) this.cancelMonitor(); // let the watcher notice at once
        const err = toScError(e, r.name, this.platform);
        this.sink?.log('debug', `pcsc: ${pcscErrorName(e instanceof PcscError ? e.rv : 0, this.platform)} on "${r.name}"`);
        throw err;
      } finally {
        this.active--;
      }
    });
    r.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Another program reset the card: pcscd answers SCARD_W_RESET_CARD on every call of our
   * handle until its SCardReconnect. The warning goes to the manager (its connections hear
   * CARD_RESET once); our handle takes the card as it is now, in the same share mode.
   */
  private async acknowledgeReset(r: Reader, api: Winscard): Promise<void> {
    // The same reset marked the watch: counted once (R74).
    await this.clearWatch(r, api);
    if (r.handle === null) return;
    try {
      r.protocol = await api.reconnect(r.handle, r.share, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD);
    } catch {
      this.dropHandle(r); // the next call connects again
    }
  }

  private describe(r: Reader): SlotDescriptor {
    const parts = splitReaderName(r.name);
    return {
      key: r.name,
      name: parts.name,
      ...(parts.interfaceName ? { interfaceName: parts.interfaceName } : {}),
      ...(parts.serial ? { serial: parts.serial } : {}),
      deviceKey: `pcsc:${parts.device}`,
      slotIndex: parts.slot,
      cardPresent: r.present,
      details: { transport: 'PC/SC', 'system reader name': r.name, library: this.api?.library ?? '' },
    };
  }
}

/** The connect guard's refusal: an SCardConnect while our transaction holds the reader would wait for it for ever. */
function underOurLock(r: Reader): ScError {
  return new ScError('SHARING_VIOLATION', `Not connecting to "${r.name}" again while our transaction holds it in the PC/SC service (the connection would wait for that transaction for ever).`);
}
