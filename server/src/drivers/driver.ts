// The one small interface every source of readers implements (design: Drivers).
// Drivers do transport only; the reader manager owns naming, the cache, queues,
// locks and events. Only server/src/manager calls this interface.

import type { ReaderFacts } from '../protocol';

export type { ReaderFacts };
export type Protocol = 0 | 1;
export type PowerMode = 'cold' | 'warm';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** What a driver reports about one slot (= one reader for clients). */
export interface SlotDescriptor {
  /** Stable within the driver, e.g. `sim:0`, `vpcd:35963`, `usb:072f:90cc:serial:1`. */
  readonly key: string;
  /** Friendly reader name without the `NN SS` suffix, e.g. `Workbench Simulator`. */
  readonly name: string;
  /** Optional `[interface]` part of pcsc-lite's name. */
  readonly interfaceName?: string;
  /** Optional `(serial)` part of pcsc-lite's name. */
  readonly serial?: string;
  /**
   * Slots of one physical device share a device key; the manager gives every
   * device of a driver its own index NN and every slot its SS.
   */
  readonly deviceKey: string;
  readonly slotIndex: number;
  /** Card present right now (drivers report later changes as events). */
  readonly cardPresent: boolean;
  /** Free-form facts shown on the reader (VID:PID, exchange level, features…). */
  readonly details?: Record<string, string>;
  /** Set when the reader exists but cannot be used, with the reason and the way out. */
  readonly unavailable?: string;
}

/** Events a driver reports; the manager turns them into client events. */
export interface DriverSink {
  slotAdded(slot: SlotDescriptor): void;
  slotRemoved(key: string): void;
  cardInserted(key: string): void;
  cardRemoved(key: string): void;
  log(level: LogLevel, message: string): void;
  /**
   * The driver's state changed: waiting (retrying quietly for a service outside the workbench),
   * unavailable (idle: it cannot work here) or running again. `message` says why, `hint` the way
   * out. The manager logs each change once and shows it on the driver's group.
   */
  status?(state: 'running' | 'waiting' | 'unavailable', message?: string, hint?: string): void;
  /**
   * The reader asked for more time for the call in flight on this slot (CCID
   * time extension, T=1 S(WTX)): the manager's deadline for it moves to at
   * least `ms` from now.
   */
  timeExtension?(key: string, ms: number): void;
}

/** Where a driver's `transmitTo` hands its answer (the gate's call for it). */
export interface TransmitSink {
  answered(response: Uint8Array): void;
  failedInDriver(e: unknown): void;
}

export interface Driver {
  /** `simulator`, `vpcd`, `pcsc`, `usb-ccid`. */
  readonly id: string;
  /**
   * Starts transport and plug-and-play listening. Resolves once every slot that
   * exists right now has been reported through `sink.slotAdded`.
   */
  start(sink: DriverSink): Promise<void>;
  stop(): Promise<void>;

  /** Powers the card and returns its ATR. */
  powerOn(key: string, mode: PowerMode): Promise<Uint8Array>;
  /**
   * `opts.coldReset`: the power-off of a cold reset (a power-up follows in the same turn). A driver whose system service
   * keeps a transaction across the holder's cold reset but not across a power-off (PC/SC) keeps it then (R84).
   */
  powerOff(key: string, opts?: { coldReset?: boolean }): Promise<void>;
  /** Sets the protocol (and its parameters from the ATR) on the reader after power-up. */
  setProtocol(key: string, protocol: Protocol, atr: Uint8Array): Promise<void>;
  /**
   * Sends one command to the card and returns the raw response (data + SW1 SW2).
   * For T=0 the manager has already made the command a TPDU (case 4 without Le);
   * the driver just carries bytes.
   */
  transmit(key: string, command: Uint8Array, protocol: Protocol): Promise<Uint8Array>;
  /**
   * Optional, the hot path of a script: `transmit` with the answer handed to `to` instead of a
   * promise (no promise and no reaction per APDU). The driver calls exactly one of `to.answered`
   * and `to.failedInDriver`, once, later or before it returns. The gate uses it when present.
   */
  transmitTo?(key: string, command: Uint8Array, protocol: Protocol, to: TransmitSink): void;
  /** Reader-specific control / escape command (SCardControl, PC_to_RDR_Escape). */
  control(key: string, code: number, data: Uint8Array): Promise<Uint8Array>;
  /** Optional: mechanical eject. */
  eject?(key: string): Promise<void>;
  /**
   * Optional: a transaction on the system side too (SCardBeginTransaction), so
   * other applications sharing the card wait as well. The manager's own queue
   * serializes the workbench's clients either way. `direct`: for a PC/SC client's
   * SCARD_SHARE_DIRECT handle, which needs no card (the PC/SC driver begins it on a
   * direct connection of its own when it has no card connection, R73).
   */
  beginTransaction?(key: string, opts?: { direct?: boolean }): Promise<void>;
  /**
   * Optional: the ATR of a card the platform has already powered (pcscd does at
   * insertion and reports it with SCardGetStatusChange), so reader initialization
   * shows it without connecting. undefined: power the card up as usual.
   */
  passiveAtr?(key: string): Uint8Array | undefined;
  /**
   * Optional: no client of the manager needs the card now (its last connection
   * ended). Let go of the system-side connection, leaving the card as it is
   * (SCARD_LEAVE_CARD), so other applications can have it, exclusively too;
   * the next call that needs the card connects again.
   */
  release?(key: string): Promise<void>;
  /**
   * Optional: a connection of the manager holds the reader in this share mode (the first
   * connection, and every exclusive one). A driver in front of another resource manager (PC/SC)
   * takes its own connection there in the same mode, so an exclusive connection here is exclusive
   * for the machine's other programs too; refused (SHARING_VIOLATION) while one of them holds the
   * card. `release()` goes back to shared and lets go.
   */
  hold?(key: string, share: 'shared' | 'exclusive'): Promise<void>;
  endTransaction?(key: string, disposition: 'leave' | 'reset' | 'unpower'): Promise<void>;
  /**
   * Optional: what the reader says about itself (vendor, model, version, serial, max IFSD…), read
   * once after it appears (and again at the next power-up if that failed), under a short deadline.
   */
  readerFacts?(key: string): Promise<ReaderFacts>;
  /**
   * Optional (R74): a PC/SC client of the workbench holds a SCARD_SHARE_DIRECT handle on the reader (`on`), or the
   * last one went. A driver in front of another resource manager (PC/SC) keeps a direct handle of its own there
   * meanwhile, so a reset another program of the machine makes reaches it even when it has no card connection.
   */
  watchCardEvents?(key: string, on: boolean): Promise<void>;
  /**
   * Optional (R74): pcscd's RFCheckReaderEventState for the driver's own handles in the system service: fails with
   * CARD_RESET once for a reset another program made since the last look (one reset once, however many of its
   * handles heard it; its own resets never), else resolves.
   */
  checkCardEvents?(key: string): Promise<void>;
}
