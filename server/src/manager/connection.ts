// A client's handle on a reader (SCARDHANDLE): share mode, protocol, and what
// happened to the card since the client last used it. Like pcsc-lite, a reset
// by someone else (SCARD_W_RESET_CARD) or a removal (SCARD_W_REMOVED_CARD) is
// reported once to this handle, before anything is sent; a reconnect (`reset`)
// takes the card as it is now. Every operation runs in the reader's gate.

import { isEnvelopeIns } from '../codecs/apdu';
import type { PowerMode, Protocol } from '../drivers/driver';
import type { ShareMode } from '../protocol';
import type { ExchangeEntry } from '../protocol';
import { ScError, asScError } from '../util/errors';
import { concatBytes } from '../util/hex';
import type { GateCallOptions } from './gate';
import type { ReaderEntry, ReaderManager, TransmitOptions, TransmitResult } from './manager';
import { nextT0Step, toT0Tpdu } from './t0';

export type Disposition = 'leave' | 'reset' | 'unpower' | 'eject';

/** Options of one control command (SCardControl) on a connection. */
export interface ControlOptions {
  /** Abandons the command (the run was cancelled); checked before anything is sent. */
  signal?: AbortSignal;
  /** This command's time-out (ms) instead of the manager's (script `set timeout`). */
  timeoutMs?: number;
  /** A floor under the time-out: a pinpad's VERIFY waits for the person at the keypad. */
  minTimeoutMs?: number;
}

export class Connection {
  private closed: ScError | null = null;
  /** The gate's insertion and reset counters as this connection last saw them. */
  private insertions = 0;
  private resets = 0;
  /** Its transaction went with the card: the script's own `end` is then quiet. */
  private lostTransaction = false;

  constructor(
    private readonly manager: ReaderManager,
    private readonly r: ReaderEntry,
    readonly id: number,
    readonly share: ShareMode,
    readonly requestedProtocol?: Protocol,
    /** The client's abort signal (a script run): every call of this connection hears it. */
    private readonly signal?: AbortSignal,
    /**
     * Its transaction is never released for being idle: a PC/SC client's, which pcscd never
     * takes away (the client's death does, when its socket closes).
     */
    readonly keepsIdleTransaction = false,
    /**
     * Who holds it, where its exchanges are logged under that name: an extension's id (API connections
     * and API-run scripts), a PC/SC program ("pcsc_scan (pid 4711)").
     */
    readonly client?: string,
    /** How the Readers view names it when `client` does not: "script x.apdu", "Connect (editor)". */
    readonly label?: string,
    /**
     * A PC/SC client's exclusive connection holds the reader's queue as a transaction of depth 1
     * (managerBackend.ts): only a deeper one is the client's own SCardBeginTransaction.
     */
    readonly exclusiveHold = false,
  ) {}

  /** Who holds it, for the Readers view. */
  get who(): string { return this.client ?? this.label ?? `connection ${this.id}`; }

  /** It holds the reader's transaction by its own begin (a PC/SC exclusive hold alone is not one). */
  get inTransaction(): boolean {
    const q = this.r.gate.queue;
    return q.owner === this.id && q.depth > (this.exclusiveHold ? 1 : 0);
  }

  get readerName(): string { return this.r.name; }
  get protocol(): Protocol | undefined { return this.r.card.protocol; }
  get atr(): Uint8Array | undefined { return this.r.card.atr; }

  /** Marks the connection unusable (reader gone). */
  invalidate(code: 'CARD_REMOVED' | 'READER_UNAVAILABLE', message: string): void {
    if (!this.closed) this.closed = new ScError(code, message);
  }

  /** The card went while this connection held the transaction. */
  transactionLost(): void { this.lostTransaction = true; }

  /** Resolves once the driver has let go of the card if nobody else uses it (callers may ignore it). */
  close(): Promise<void> {
    if (!this.closed) this.closed = new ScError('BAD_REQUEST', 'The connection is closed.');
    return this.manager.connectionClosed(this.r, this);
  }

  /** Takes the card as it is now: nothing to report (connect, reconnect, this connection's own power changes). */
  seen(): void {
    this.insertions = this.r.gate.insertions;
    this.resets = this.r.gate.resets;
  }

  /** SCardStatus: throws what the next command would (closed, removed, someone else's reset, once), sends nothing. */
  checkState(): void {
    this.check();
  }

  /** Before a command: the connection is open, and a removal or someone else's reset is reported once. */
  private check(): void {
    if (this.closed) throw this.closed;
    const { gate, card, name } = this.r;
    if (!card.present) throw new ScError('CARD_REMOVED', `The card was removed from '${name}'.`);
    if (gate.insertions !== this.insertions) {
      this.seen();
      throw new ScError('CARD_REMOVED', `The card in '${name}' was removed and a card inserted since this connection last used it; the command was not sent. Reconnect (script \`reset\` or \`connect\`) to go on.`);
    }
    if (gate.resets !== this.resets) {
      this.seen();
      throw new ScError('CARD_RESET', `The card in '${name}' was reset by another client (the Readers view or another script) since this connection last used it: what was set up on it (a verified PIN, a selected application) is gone. The command was not sent; reset or connect again to go on.`);
    }
  }

  private call(opts: GateCallOptions): GateCallOptions {
    return opts.signal || !this.signal ? opts : { ...opts, signal: this.signal };
  }

  /** Into the reader's queue; a Cancel while still waiting there leaves it at once, nothing sent. */
  private enqueue<T>(fn: () => Promise<T>, signal: AbortSignal | undefined = this.signal): Promise<T> {
    // Started at once (every APDU of a script): no abort record or deadline to build for a wait that
    // never happens (the gate checks the Cancel before anything is sent).
    if (this.queueFree()) return this.r.gate.queue.run(this.id, fn, false);
    // No Cancel (the editor's, the API's connection): the wait has a deadline (a PC/SC client's waits as in pcscd).
    if (!signal && !this.keepsIdleTransaction) return this.r.gate.queue.run(this.id, fn, false, this.manager.queueDeadline(this.r));
    return this.r.gate.queue.run(this.id, fn, false, signal ? { signal, error: () => this.r.gate.notSentError() } : undefined);
  }

  /** The queue would start this connection's call at once (no deadline timer needed). */
  private queueFree(): boolean {
    return this.r.gate.queue.startsAtOnce(this.id);
  }

  private armIfOwner(): void {
    if (this.r.gate.queue.owner === this.id) this.manager.armTransactionTimer(this.r);
  }

  /** SCardTransmit with the T=0 rules applied (case 4, 61xx, 6Cxx), each step logged. */
  transmit(apdu: Uint8Array, opts: TransmitOptions = {}): Promise<TransmitResult> {
    // No async wrapper: this runs for every APDU.
    const o = this.client !== undefined && opts.client === undefined ? { ...opts, client: this.client } : opts;
    return this.enqueue(() => {
      this.check();
      this.armIfOwner();
      return this.exchangeLocked(apdu, this.call(o));
    }, opts.signal ?? this.signal);
  }

  /**
   * In the reader's queue, after the checks. A powered T=1 card (every APDU of most scripts): one
   * exchange through the gate, logged and answered in its one callback, no async frame; anything
   * else (a power-up first, the T=0 steps, an ENVELOPE) in exchangeSteps. The same gate call either way.
   */
  private exchangeLocked(apdu: Uint8Array, opts: TransmitOptions): Promise<TransmitResult> {
    const r = this.r;
    // An ENVELOPE takes the general path too: ReaderManager.exchange follows its chain's secrets (R91).
    if (apdu.length < 4 || !r.card.powered || r.card.protocol === 0 || isEnvelopeIns(apdu[1])) return this.exchangeSteps(apdu, opts);
    const t0 = performance.now();
    return r.gate.transmit(apdu, 1, opts).then((raw) => {
      this.seen();
      const entry = this.manager.logExchange(r, apdu, raw, performance.now() - t0, opts, opts.auto);
      return { response: raw, sw: swOf(raw), exchanges: [entry] };
    }, (e) => {
      this.seen();
      throw e;
    });
  }

  /** A power-up first, or the T=0 steps (case 4, 61xx, 6Cxx): one async frame. */
  private async exchangeSteps(apdu: Uint8Array, opts: TransmitOptions): Promise<TransmitResult> {
    try {
      if (apdu.length < 4) throw new ScError('BAD_REQUEST', `A command APDU has at least 4 bytes (CLA INS P1 P2); this one has ${apdu.length}.`);
      const r = this.r;
      if (!r.card.powered) await this.manager.powerUp(r, 'cold', this.requestedProtocol, opts);
      const t0 = r.card.protocol === 0;
      let command = t0 ? toT0Tpdu(apdu) : apdu;
      const { entry: first, raw: firstRaw } = await this.manager.exchange(r, command, opts, opts.auto);
      const exchanges: ExchangeEntry[] = [first];
      let last = firstRaw;
      if (!t0 || !(opts.getResponse ?? true)) return { response: last, sw: swOf(last), exchanges };

      const parts: Uint8Array[] = [];
      for (let guard = 0; guard < 256; guard++) {
        const step = nextT0Step(apdu[0], command, last);
        if (!step) break;
        if (step.auto === 'getResponse') parts.push(last.subarray(0, last.length - 2));
        command = step.command;
        const e = await this.manager.exchange(r, command, opts, step.auto, first.seq);
        exchanges.push(e.entry);
        last = e.raw;
      }
      parts.push(last);
      const response = parts.length === 1 ? last : concatBytes(...parts);
      return { response, sw: swOf(response), exchanges };
    } finally {
      // What this connection's own calls do to the card (a power-up, an abandoned exchange) is not news to it.
      this.seen();
    }
  }

  /**
   * Cold or warm reset (SCardReconnect with SCARD_UNPOWER_CARD / SCARD_RESET_CARD):
   * also how a connection takes a new card or someone else's reset and goes on.
   */
  reset(mode: PowerMode = 'warm'): Promise<Uint8Array> {
    return this.enqueue(async () => {
      if (this.closed) throw this.closed;
      if (!this.r.card.present) throw new ScError('NO_CARD', `No card in '${this.r.name}'. Insert a card and try again.`);
      this.armIfOwner();
      const call = this.call({});
      try {
        if (mode === 'cold') await this.manager.powerDown(this.r, call, false, true);
        await this.manager.powerUp(this.r, mode, this.requestedProtocol, call);
      } finally {
        this.seen();
      }
      return this.r.card.atr!;
    });
  }

  /** Removes power from the card (SCardDisconnect's SCARD_UNPOWER_CARD, keeping the connection). */
  powerOff(): Promise<void> {
    return this.enqueue(async () => {
      if (this.closed) throw this.closed;
      this.armIfOwner();
      try { await this.manager.powerDown(this.r, this.call({})); } finally { this.seen(); }
    });
  }

  /** SCardControl on this connection, under the same deadline and Cancel as transmit. */
  control(code: number, data: Uint8Array, opts: ControlOptions = {}): Promise<Uint8Array> {
    return this.enqueue(() => {
      this.check();
      this.armIfOwner();
      return this.r.gate.control(code, data, this.call(opts)).catch((e) => this.heardReset(e));
    }, opts.signal ?? this.signal);
  }

  /**
   * The driver answered CARD_RESET (another program reset the card, PC/SC's SCARD_W_RESET_CARD): the
   * gate counted it for every connection, and this one has just been told, so its next call is not
   * told again (as transmit's seen()). The driver's own handle took the card as it is already.
   */
  private heardReset(e: unknown): never {
    if (asScError(e).code === 'CARD_RESET') this.resets = this.r.gate.resets;
    throw e;
  }

  /** SCardBeginTransaction: in the reader's queue, and in the driver when it has one (PC/SC). */
  beginTransaction(opts: ControlOptions = {}): Promise<void> {
    // Waits (as SCardBeginTransaction blocks) while another connection holds the reader; Cancel ends the wait.
    return this.enqueue(async () => {
      this.check();
      const q = this.r.gate.queue;
      if (q.owner === this.id) { q.depth++; this.armIfOwner(); this.manager.transactionChanged(); return; }
      await this.r.gate.beginTransaction(this.call(opts)).catch((e) => this.heardReset(e));
      if (this.closed) {
        // Disconnected (its client died) while the Begin waited: the queue is not taken by a connection that is gone,
        // and the system transaction granted to nobody ends now, in this task (R82).
        await this.r.gate.endDriverTransaction();
        throw this.closed;
      }
      q.owner = this.id;
      q.depth = 1;
      this.lostTransaction = false;
      this.manager.armTransactionTimer(this.r);
      this.manager.transactionChanged();
    }, opts.signal ?? this.signal);
  }

  endTransaction(disposition: Disposition = 'leave'): Promise<void> {
    return this.r.gate.queue.run(this.id, async () => {
      const q = this.r.gate.queue;
      if (q.owner !== this.id) {
        // The card or reader went away and took the transaction with it.
        if (this.closed || this.lostTransaction) { this.lostTransaction = false; return; }
        throw new ScError('BAD_REQUEST', 'This connection holds no transaction to end.');
      }
      // pcscd's SCardEndTransaction(SCARD_UNPOWER_CARD) powers the card down and up again and keeps the lock while a
      // level is left (winscard.c ~1134–1160): a cold reset in the owner's turn, whose power-off half keeps the system
      // transaction (R84), not its SCardDisconnect's power-off, which would end it for every program (R87).
      if (disposition === 'unpower') await this.coldResetInTurn();
      else await this.applyDisposition(disposition);
      if (--q.depth > 0) { this.manager.transactionChanged(); return; }
      try {
        await this.r.gate.endDriverTransaction();
      } finally {
        this.manager.transactionEnded(this.r);
      }
    });
  }

  /** SCardDisconnect with what to do with the card. */
  async disconnect(disposition: Disposition = 'leave'): Promise<void> {
    if (this.closed) { await this.manager.connectionClosed(this.r, this); return; }
    // Leaving the card as it is does nothing to it: no waiting behind another connection's
    // transaction (pcscd's SCardDisconnect(SCARD_LEAVE_CARD) does not wait for the lock either;
    // a client with two handles would otherwise deadlock itself).
    const q = this.r.gate.queue;
    if (disposition === 'leave' && q.owner !== null && q.owner !== this.id) {
      await this.close();
      return;
    }
    try {
      await this.r.gate.queue.run(this.id, () => this.applyDisposition(disposition));
    } finally {
      // The card is free for other programs (the system-side connection let go) when this resolves.
      await this.close();
    }
  }

  /** A cold reset inside this connection's own queue turn (no abort signal, as applyDisposition). */
  private async coldResetInTurn(): Promise<void> {
    if (!this.r.card.present || this.r.removed) return;
    try {
      await this.manager.powerDown(this.r, undefined, false, true);
      await this.manager.powerUp(this.r, 'cold', this.requestedProtocol);
    } finally {
      this.seen();
    }
  }

  /** What to do with the card at the end (no abort signal: a cancelled run still leaves the card as asked). */
  private async applyDisposition(disposition: Disposition): Promise<void> {
    if (!this.r.card.present || this.r.removed) return;
    try {
      switch (disposition) {
        case 'leave': return;
        case 'reset': await this.manager.powerUp(this.r, 'warm', this.requestedProtocol); return;
        case 'unpower': await this.manager.powerDown(this.r); return;
        case 'eject': await this.r.gate.eject(); return;
      }
    } finally {
      this.seen();
    }
  }
}

function swOf(response: Uint8Array): number {
  return (response[response.length - 2] << 8) | response[response.length - 1];
}
