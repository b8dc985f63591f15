// One gate per reader, between the manager and the Driver (design: "Where the
// helper grows next"). Every driver call for the reader passes through it —
// power, protocol, transmit, control, transactions — so the rules are the same
// for all of them:
// - the FIFO and the transaction owner (queue.ts);
// - the abort, checked before the call is made (a cancelled run sends nothing);
// - a deadline on every call, extended by the reader's time extensions; a call
//   abandoned by either has its late result consumed (no unhandled rejection;
//   a late transaction grant is handed back);
// - the insertion and reset counters that connections compare with to report
//   REMOVED_CARD / RESET_CARD once;
// - the driver-side transaction (SCardBeginTransaction), ended on every path
//   that releases the queue's transaction.

import type { Driver, LogLevel, ReaderFacts, TransmitSink } from '../drivers/driver';
import { ScError, asScError } from '../util/errors';
import { ReaderQueue } from './queue';

export interface GateCallOptions {
  /** The caller gives up when this aborts (a cancelled run). */
  signal?: AbortSignal;
  /** This call's time-out instead of the manager's exchange time-out. */
  timeoutMs?: number;
  /** A floor under whichever time-out applies (a pinpad waits for a person typing). */
  minTimeoutMs?: number;
}

/** What the gate needs from the manager. */
export interface GateHost {
  readonly name: string;
  exchangeTimeoutMs(): number;
  log(level: LogLevel, message: string): void;
  /** A call on the card was abandoned: its state is unknown (powered up again on next use). */
  cardStateLost(): void;
  /** The driver answered CARD_RESET: another program of the machine reset the card (R74: direct handles hear it too). */
  outsideReset(): void;
}

/** What a driver call is, for errors and whether abandoning it leaves the card in an unknown state. */
export type CallKind = 'transmit' | 'powerOn' | 'powerOff' | 'setProtocol' | 'control' | 'eject' | 'beginTransaction' | 'endTransaction' | 'release' | 'hold' | 'readerFacts' | 'watchCardEvents' | 'checkCardEvents';

const NO_OPTIONS: GateCallOptions = {};

/** `new Promise(capture)` hands out its resolving functions without a closure per promise. */
const captured: { resolve?: (value: never) => void; reject?: (e: unknown) => void } = {};
function capture(resolve: (value: never) => void, reject: (e: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

/** One driver call racing its deadline and the caller's abort (usually 0 or 1 per reader); also the driver's TransmitSink. */
class PendingCall implements TransmitSink {
  private settled = false;
  constructor(
    private readonly gate: ReaderGate,
    readonly kind: CallKind,
    public deadline: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    /** The caller's promise, settled by `resolve`/`reject` below. */
    readonly promise: Promise<unknown>,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (e: unknown) => void,
    private readonly onLateSuccess: ((value: unknown) => void) | undefined,
  ) {}

  /** The deadline or the abort came first: the caller hears `err`; the driver's late result is consumed. */
  fail(err: ScError): void {
    if (this.settled) return;
    this.settled = true;
    this.gate.abandoned(this, err);
    this.reject(err);
  }

  answered(value: unknown): void {
    const late = this.settled;
    this.settled = true;
    this.gate.driverAnswered(this, late);
    if (late) this.onLateSuccess?.(value);
    else this.resolve(value);
  }

  failedInDriver(e: unknown): void {
    const late = this.settled;
    this.settled = true;
    this.gate.driverFailed(this, e, late);
    if (!late) this.reject(e);
  }
}

export class ReaderGate {
  readonly queue = new ReaderQueue();
  /** Bumped on every insertion and removal: a connection to an earlier card can tell. */
  insertions = 1;
  /** Bumped on every power-up, reset, power-off and abandoned card call: other connections' card state is gone. */
  resets = 0;
  /** The driver granted a transaction (SCardBeginTransaction) that has not been ended yet. */
  private driverTransaction = false;
  /** Driver-side ends under way, so shutdown can wait for them. */
  private readonly ending = new Set<Promise<void>>();
  /** Calls racing their deadline; one timer for all (usually 0 or 1 call). */
  private readonly pending: PendingCall[] = [];
  private deadlineTimer?: NodeJS.Timeout;
  private timerAt = 0;
  /** The abort signal listened to (one listener per run, not per call). */
  private watchedSignal?: AbortSignal;
  private onAbort?: () => void;

  constructor(readonly driver: Driver, readonly key: string, private readonly host: GateHost) {}

  // ------------------------------------------------------------ driver calls

  transmit(command: Uint8Array, protocol: 0 | 1, opts: GateCallOptions = NO_OPTIONS): Promise<Uint8Array> {
    // Every APDU: no closure for the driver call (the abort is still checked before it is made).
    if (opts.signal?.aborted) return Promise.reject(this.cancelledError('transmit', false));
    const to = this.driver.transmitTo;
    if (to) {
      // The driver answers the call itself: no promise of the driver's and no reaction to it.
      const call = this.enlist<Uint8Array>('transmit', opts);
      try { to.call(this.driver, this.key, command, protocol, call); } catch (e) { call.failedInDriver(e); }
      return call.promise as Promise<Uint8Array>;
    }
    let p: Promise<Uint8Array>;
    try { p = this.driver.transmit(this.key, command, protocol); } catch (e) { p = Promise.reject(e); }
    return this.race('transmit', p, opts);
  }

  powerOn(mode: 'cold' | 'warm', opts?: GateCallOptions): Promise<Uint8Array> {
    return this.call('powerOn', () => { this.resets++; return this.driver.powerOn(this.key, mode); }, opts);
  }

  /** `coldReset`: a power-up follows in the same turn (Driver.powerOff). */
  powerOff(opts?: GateCallOptions, coldReset = false): Promise<void> {
    return this.call('powerOff', () => { this.resets++; return coldReset ? this.driver.powerOff(this.key, { coldReset }) : this.driver.powerOff(this.key); }, opts);
  }

  setProtocol(protocol: 0 | 1, atr: Uint8Array, opts?: GateCallOptions): Promise<void> {
    return this.call('setProtocol', () => this.driver.setProtocol(this.key, protocol, atr), opts);
  }

  control(code: number, data: Uint8Array, opts?: GateCallOptions): Promise<Uint8Array> {
    return this.call('control', () => this.driver.control(this.key, code, data), opts);
  }

  eject(opts?: GateCallOptions): Promise<void> {
    const eject = this.driver.eject;
    if (!eject) return Promise.reject(new ScError('NOT_SUPPORTED', `'${this.host.name}' cannot eject cards.`));
    return this.call('eject', () => { this.resets++; return eject.call(this.driver, this.key); }, opts);
  }

  /** The reader's facts (Driver.readerFacts); undefined when the driver has none to give. */
  readerFacts(opts?: GateCallOptions): Promise<ReaderFacts> | undefined {
    const read = this.driver.readerFacts;
    if (!read) return undefined;
    return this.call('readerFacts', () => read.call(this.driver, this.key), opts);
  }

  /** Driver.watchCardEvents, when the driver has it (R74). */
  watchCardEvents(on: boolean, opts?: GateCallOptions): Promise<void> {
    const watch = this.driver.watchCardEvents;
    if (!watch) return Promise.resolve();
    return this.call('watchCardEvents', () => watch.call(this.driver, this.key, on), opts);
  }

  /** Driver.checkCardEvents, when the driver has it (R74): CARD_RESET counts as every other driver call's does. */
  checkCardEvents(opts?: GateCallOptions): Promise<void> {
    const check = this.driver.checkCardEvents;
    if (!check) return Promise.resolve();
    return this.call('checkCardEvents', () => check.call(this.driver, this.key), opts);
  }

  /** Whether the driver looks for other programs' card events (Driver.checkCardEvents). */
  get checksCardEvents(): boolean {
    return !!this.driver.checkCardEvents;
  }

  /** The ATR of a card the platform already powered (pcscd), read from the driver's cache: no I/O. */
  passiveAtr(): Uint8Array | undefined {
    return this.driver.passiveAtr?.(this.key);
  }

  /** Does the driver hold a system-side connection it can let go of (Driver.release)? */
  get canRelease(): boolean {
    return !!this.driver.release;
  }

  /** The driver lets go of its system-side connection, leaving the card as it is (SCARD_LEAVE_CARD). */
  release(opts?: GateCallOptions): Promise<void> {
    const release = this.driver.release;
    if (!release) return Promise.resolve();
    return this.call('release', () => release.call(this.driver, this.key), opts);
  }

  /**
   * The driver takes the reader on the system side in this share mode too (Driver.hold), when it has one.
   * `onLateSuccess`: the hold came through after its caller gave up (the system service kept it waiting,
   * e.g. behind another program's transaction); the caller lets go of what nobody uses now.
   */
  hold(share: 'shared' | 'exclusive', opts?: GateCallOptions, onLateSuccess?: () => void): Promise<void> {
    const hold = this.driver.hold;
    if (!hold) return Promise.resolve();
    return this.call('hold', () => hold.call(this.driver, this.key, share), opts, onLateSuccess);
  }

  /** The system-side transaction, when the driver has one (PC/SC). `direct`: for a PC/SC client's direct handle (R73). */
  async beginTransaction(opts?: GateCallOptions, direct = false): Promise<void> {
    const begin = this.driver.beginTransaction;
    if (!begin || this.driverTransaction) return;
    await this.call('beginTransaction', () => (direct ? begin.call(this.driver, this.key, { direct }) : begin.call(this.driver, this.key)), opts, () => {
      // Granted after the caller gave up: hand it back at once, or every other application stays blocked.
      this.host.log('warn', `${this.host.name}: the system granted a transaction after its caller gave up; ending it`);
      this.driverTransaction = true;
      // In the queue, ahead of everyone waiting: never beside another call of this reader.
      this.track(this.queue.runFirst(0, () => this.endDriverTransaction()));
    });
    this.driverTransaction = true;
  }

  /** Ends the system-side transaction if one is held (the owner's `transaction end`). */
  endDriverTransaction(): Promise<void> {
    if (!this.driverTransaction) return Promise.resolve();
    this.driverTransaction = false;
    const end = this.driver.endTransaction;
    if (!end) return Promise.resolve();
    return this.call('endTransaction', () => end.call(this.driver, this.key, 'leave'));
  }

  /**
   * The queue's transaction ends without its owner's `end` (disconnect, idle
   * release, card or reader gone, shutdown): the driver's transaction ends first,
   * ahead of everyone waiting, then the others get in.
   */
  releaseTransaction(): void {
    this.queue.owner = null;
    this.queue.depth = 0;
    if (this.driverTransaction) this.track(this.queue.runFirst(0, () => this.endDriverTransaction()));
    this.queue.release();
  }

  /** Keeps a driver-side end for shutdown to wait on; its failure is logged (the card or reader may be gone). */
  private track(p: Promise<void>): void {
    const q = p.catch((e) => this.host.log('debug', `${this.host.name}: ending the system transaction: ${asScError(e).message}`));
    this.ending.add(q);
    void q.finally(() => this.ending.delete(q));
  }

  /** Resolves when no driver-side end is under way (shutdown waits for this). */
  async settled(): Promise<void> {
    while (this.ending.size) await Promise.allSettled([...this.ending]);
  }

  /** The reader asked for more time for the call in flight (CCID time extension, T=1 S(WTX)). */
  timeExtension(ms: number): void {
    if (!this.pending.length || !(ms > 0)) return;
    const until = performance.now() + ms;
    for (const call of this.pending) if (call.deadline < until) call.deadline = until;
    // The timer fires at the earliest old deadline and waits again for the extended ones.
  }

  // ------------------------------------------------------------ deadline and abort

  /**
   * Makes one driver call under the caller's abort signal and a deadline. The
   * abort is checked before the call: a cancelled run sends nothing. A call
   * abandoned (deadline, abort) keeps running in the driver; its late result is
   * consumed here (`onLateSuccess` for a result that must be undone).
   */
  call<T>(kind: CallKind, fn: () => Promise<T>, opts: GateCallOptions = NO_OPTIONS, onLateSuccess?: (value: T) => void): Promise<T> {
    if (opts.signal?.aborted) return Promise.reject(this.cancelledError(kind, false));
    let p: Promise<T>;
    try { p = fn(); } catch (e) { p = Promise.reject(e); }
    return this.race(kind, p, opts, onLateSuccess);
  }

  /**
   * The caller's promise races the deadline and the abort: settled by the driver's answer or by
   * the one deadline timer / abort listener of the reader, whichever comes first. Per call: the
   * call's record, the caller's promise and the reaction to the driver's (no closure for the
   * promise's executor, no timer, no listener).
   */
  private race<T>(kind: CallKind, p: Promise<T>, opts: GateCallOptions, onLateSuccess?: (value: T) => void): Promise<T> {
    const call = this.enlist(kind, opts, onLateSuccess);
    p.then((value) => call.answered(value), (e) => call.failedInDriver(e));
    return call.promise as Promise<T>;
  }

  /** A call's record and the caller's promise, under the reader's deadline timer and abort listener; the driver's answer settles it. */
  private enlist<T>(kind: CallKind, opts: GateCallOptions, onLateSuccess?: (value: T) => void): PendingCall {
    const { signal } = opts;
    const timeoutMs = Math.max(opts.timeoutMs !== undefined && opts.timeoutMs > 0 ? opts.timeoutMs : this.host.exchangeTimeoutMs(), opts.minTimeoutMs ?? 0);
    const promise = new Promise<T>(capture);
    const call = new PendingCall(this, kind, performance.now() + timeoutMs, timeoutMs, signal, promise, captured.resolve as (v: unknown) => void, captured.reject!, onLateSuccess as ((v: unknown) => void) | undefined);
    captured.resolve = captured.reject = undefined!;
    this.pending.push(call);
    this.armTimer(call.deadline);
    if (signal && this.watchedSignal !== signal) this.watchSignal(signal);
    return call;
  }

  /** A call was abandoned (deadline, abort): its card state is lost when it touched the card. */
  abandoned(call: PendingCall, err: ScError): void {
    this.unlist(call);
    if (spoilsCard(call.kind)) {
      // The card's state is unknown now: for every other connection it is as good as reset.
      this.resets++;
      this.host.cardStateLost();
    }
    // A look for other programs' card events (R74) given up behind a long call (a PIN entry) is routine: the reset, if
    // any, is heard at the next look; nothing is wrong with the card or the reader (review 11, A3).
    const routine = call.kind === 'checkCardEvents' || call.kind === 'watchCardEvents';
    this.host.log(routine ? 'debug' : 'warn', `${this.host.name}: ${err.message}`);
  }

  /** The driver answered a call (in time or not). */
  driverAnswered(call: PendingCall, late: boolean): void {
    if (late) this.host.log('debug', `${this.host.name}: late ${call.kind} answer dropped`);
    else this.unlist(call);
  }

  /** The driver failed a call (in time or not). */
  driverFailed(call: PendingCall, e: unknown, late: boolean): void {
    // Another program reset the card (PC/SC's SCARD_W_RESET_CARD): every other connection hears it once too.
    if (asScError(e).code === 'CARD_RESET') {
      this.resets++;
      this.host.outsideReset();
    }
    if (late) this.host.log('debug', `${this.host.name}: late ${call.kind} failure dropped: ${asScError(e).message}`);
    else this.unlist(call);
  }

  private unlist(call: PendingCall): void {
    const i = this.pending.indexOf(call);
    if (i >= 0) {
      this.pending[i] = this.pending[this.pending.length - 1];
      this.pending.pop();
    }
    if (this.pending.length === 0) this.deadlineTimer?.unref(); // nothing to wait for: keeps no process alive
  }

  /** The reader's one deadline timer fires no later than `deadline` (and is kept if it fires sooner). */
  private armTimer(deadline: number): void {
    if (this.deadlineTimer && this.timerAt <= deadline) { this.deadlineTimer.ref(); return; }
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.timerAt = deadline;
    // Node fires a longer timer at once: a far deadline is checked at the longest delay and re-armed.
    this.deadlineTimer = setTimeout(() => this.checkDeadlines(), Math.min(MAX_TIMER_MS, Math.max(0, deadline - performance.now())));
  }

  /** The deadline timer fired: fail the calls that are overdue, wait again for the others. */
  private checkDeadlines(): void {
    this.deadlineTimer = undefined;
    if (!this.pending.length) return;
    const now = performance.now();
    let next = Infinity;
    for (const call of [...this.pending]) {
      if (call.deadline <= now + 1) call.fail(this.timeoutError(call));
      else next = Math.min(next, call.deadline);
    }
    if (next !== Infinity) this.armTimer(next);
  }

  private timeoutError(call: PendingCall): ScError {
    const { kind } = call;
    const name = this.host.name;
    const ms = `${call.timeoutMs} ms`;
    switch (kind) {
      case 'control':
        return new ScError('TIMEOUT', `The reader '${name}' did not answer the control command within ${ms}; check the reader, then try again.`);
      case 'beginTransaction':
        return new ScError('TIMEOUT', `The system did not grant a transaction on '${name}' within ${ms}; another application holds the card.`);
      case 'endTransaction':
        return new ScError('TIMEOUT', `The system did not end the transaction on '${name}' within ${ms}.`);
      case 'hold':
        // The card is not at fault: the system service kept the connection waiting (pcscd's SCardConnect waits
        // while another program holds a transaction, winscard.c 289–295). Told as pcscd tells a busy reader.
        return new ScError('SHARING_VIOLATION', `The system did not give '${name}' to the workbench within ${ms}; another application holds the card (a transaction). Try again when it ends.`);
      case 'readerFacts':
        return new ScError('TIMEOUT', `The reader '${name}' did not tell its facts (vendor, version…) within ${ms}; they are read again at the next power-up.`);
      case 'checkCardEvents':
      case 'watchCardEvents':
        return new ScError('TIMEOUT', `The look for other programs' card events on '${name}' waited ${ms} behind the reader's call in progress; it is made again at the next call that needs it.`);
      case 'powerOn':
        return new ScError('TIMEOUT', `The card in '${name}' did not answer the power-up (ATR) within ${ms}; remove and reinsert it if it stays silent.`);
      default:
        return new ScError('TIMEOUT', `The card in '${name}' did not answer within ${ms}; it will be powered up again on next use (remove and reinsert it if it stays silent).`);
    }
  }

  /** Listens to a run's abort signal (instead of the last one) to abandon the calls made under it. */
  private watchSignal(signal: AbortSignal): void {
    if (this.watchedSignal && this.onAbort) this.watchedSignal.removeEventListener('abort', this.onAbort);
    this.onAbort ??= () => {
      for (const call of [...this.pending]) if (call.signal?.aborted) call.fail(this.cancelledError(call.kind, true));
    };
    this.watchedSignal = signal;
    signal.addEventListener('abort', this.onAbort);
  }

  /** Cancelled before anything of the call was sent (also while it waited in the queue). */
  notSentError(): ScError {
    return this.cancelledError('transmit', false);
  }

  private cancelledError(kind: CallKind, inFlight: boolean): ScError {
    const name = this.host.name;
    if (!inFlight) return new ScError('CANCELLED', `The run was cancelled; nothing more was sent to '${name}'.`);
    return new ScError('CANCELLED', kind === 'transmit' || kind === 'powerOn'
      ? `The run was cancelled while the card in '${name}' was answering; it will be powered up again on next use.`
      : `The run was cancelled while '${name}' was answering.`);
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function spoilsCard(kind: CallKind): boolean {
  return kind === 'transmit' || kind === 'powerOn' || kind === 'powerOff' || kind === 'setProtocol';
}
