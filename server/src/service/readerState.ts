// The reader state table pcscd publishes to its clients (READER_STATE[] in
// readerfactory.c / readers.h), computed purely from what the readers are. Clients
// compute SCardListReaders, SCardStatus's state and SCardGetStatusChange from it on
// their side, so every bit here must be what pcscd's eventhandler.c and winscard.c
// would have set:
//   card absent             SCARD_ABSENT, ATR length 0, protocol undefined
//   card powered            SCARD_PRESENT|SCARD_POWERED|SCARD_NEGOTIABLE, ATR
//   card mute on power-up   SCARD_PRESENT|SCARD_SWALLOWED, ATR length 0
//   card unpowered by a     SCARD_PRESENT (ATR left as it was), protocol undefined
//     client (UNPOWER_CARD)
//   reader failing          SCARD_UNKNOWN, ATR length 0, protocol undefined
// pcscd never sets SCARD_SPECIFIC (a TA2 card still shows NEGOTIABLE), and its
// on-demand power-off after the grace period changes only the protocol, not the bits.
// eventCounter counts insertions and removals modulo 0x10000; readerSharing is the
// number of handles, or -1 while one holds the reader exclusively.

import {
  encodeStruct, MAX_ATR_SIZE, MAX_READERNAME, PCSCLITE_MAX_READERS_CONTEXTS, PCSCLITE_SHARING_EXCLUSIVE_CONTEXT,
  ProtocolBits, READER_NOT_INITIALIZED, ReaderStateBits as B, STRUCTS,
} from './wire';

export type CardCondition =
  /** no card in the reader */
  | 'absent'
  /** a card, powered, its ATR read */
  | 'powered'
  /** a card that did not answer the power-up (pcscd: "swallowed", clients: SCARD_STATE_MUTE) */
  | 'mute'
  /** a card a client powered down with SCARD_UNPOWER_CARD */
  | 'unpowered'
  /** the reader does not answer its status (pcscd: "Error communicating to") */
  | 'reader-error';

/** One reader as the service's backend describes it. */
export interface ReaderFacts {
  /** The full pcsc-lite name, `<name> NN SS`. */
  readonly name: string;
  readonly card: CardCondition;
  /** Insertions + removals since the reader appeared (any non-negative integer; sent modulo 0x10000). */
  readonly eventCounter: number;
  readonly atr?: Uint8Array;
  /** SCARD_PROTOCOL_* of the current card session (0 until a client's connect negotiated one). */
  readonly protocol?: number;
  /** Handles connected to the reader (SCARD_SHARE_DIRECT ones included). */
  readonly handles: number;
  /** One handle holds the reader with SCARD_SHARE_EXCLUSIVE. */
  readonly exclusive: boolean;
}

/** One entry of the table, field for field READER_STATE. */
export interface ReaderStateEntry {
  readonly readerName: string;
  readonly eventCounter: number;
  readonly readerState: number;
  readonly readerSharing: number;
  readonly cardAtr: Uint8Array;
  readonly cardAtrLength: number;
  readonly cardProtocol: number;
}

/** A slot nobody uses, as readerfactory.c leaves it (RFInitializeReaderStates / RFCleanupReaders). */
export const EMPTY_ENTRY: ReaderStateEntry = Object.freeze({
  readerName: '',
  eventCounter: 0,
  readerState: 0,
  readerSharing: 0,
  cardAtr: new Uint8Array(MAX_ATR_SIZE),
  cardAtrLength: READER_NOT_INITIALIZED,
  cardProtocol: ProtocolBits.SCARD_PROTOCOL_UNDEFINED,
});

/** The padding 2.5.1 appends for old clients past its array: all zero (MSGSendReaderStates). */
export const ZERO_ENTRY: ReaderStateEntry = Object.freeze({
  ...EMPTY_ENTRY,
  cardAtrLength: 0,
});

/** READER_STATE for one reader, as pcscd's eventhandler and winscard.c set it. */
export function entryFor(r: ReaderFacts): ReaderStateEntry {
  let readerState: number;
  let atr = r.atr ?? new Uint8Array(0);
  let protocol = r.protocol ?? ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
  switch (r.card) {
    case 'absent':
      readerState = B.SCARD_ABSENT;
      atr = new Uint8Array(0);
      protocol = ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
      break;
    case 'powered':
      readerState = B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE;
      break;
    case 'mute':
      readerState = B.SCARD_PRESENT | B.SCARD_SWALLOWED;
      atr = new Uint8Array(0);
      protocol = ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
      break;
    case 'unpowered':
      readerState = B.SCARD_PRESENT;
      protocol = ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
      break;
    case 'reader-error':
      readerState = B.SCARD_UNKNOWN;
      atr = new Uint8Array(0);
      protocol = ProtocolBits.SCARD_PROTOCOL_UNDEFINED;
      break;
  }
  const cardAtr = new Uint8Array(MAX_ATR_SIZE);
  cardAtr.set(atr.subarray(0, MAX_ATR_SIZE));
  return {
    readerName: truncateName(r.name),
    eventCounter: ((r.eventCounter % 0x10000) + 0x10000) % 0x10000,
    readerState,
    readerSharing: r.exclusive ? PCSCLITE_SHARING_EXCLUSIVE_CONTEXT : Math.max(0, r.handles | 0),
    cardAtr,
    cardAtrLength: Math.min(atr.length, MAX_ATR_SIZE),
    cardProtocol: protocol >>> 0,
  };
}

/** Names longer than the field lose their tail, keeping the NUL (the struct holds MAX_READERNAME - 1 bytes). */
function truncateName(name: string): string {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length < MAX_READERNAME) return name;
  return new TextDecoder().decode(bytes.subarray(0, MAX_READERNAME - 1));
}

/** pcscd 2.5's array starts with 2 slots and grows by 2 (readerfactory.c INITIAL_MAX_READERS_CONTEXTS). */
export const INITIAL_MAX_READERS_CONTEXTS = 2;

/**
 * Which reader sits in which slot. Like readerfactory.c: a reader keeps its slot
 * while it exists, a new reader takes the first free slot, the array grows by 2
 * when full and never shrinks (4:6 clients keep their array size for the life of
 * the process and refuse a different one).
 */
export interface SlotLayout {
  readonly slots: readonly (string | null)[];
}

export const INITIAL_LAYOUT: SlotLayout = { slots: Array(INITIAL_MAX_READERS_CONTEXTS).fill(null) };

export function placeReaders(previous: SlotLayout, names: readonly string[]): SlotLayout {
  const wanted = new Set(names);
  const slots = previous.slots.map((s) => (s !== null && wanted.has(s) ? s : null));
  const placed = new Set(slots.filter((s): s is string => s !== null));
  for (const name of names) {
    if (placed.has(name)) continue;
    let free = slots.indexOf(null);
    if (free < 0) {
      free = slots.length;
      for (let i = 0; i < INITIAL_MAX_READERS_CONTEXTS; i++) slots.push(null);
    }
    slots[free] = name;
    placed.add(name);
  }
  return { slots };
}

/** The whole table in slot order (length = the layout's capacity). */
export function buildTable(layout: SlotLayout, readers: readonly ReaderFacts[]): ReaderStateEntry[] {
  const byName = new Map(readers.map((r) => [r.name, r]));
  return layout.slots.map((name) => {
    const r = name === null ? undefined : byName.get(name);
    return r ? entryFor(r) : EMPTY_ENTRY;
  });
}

export function encodeEntry(e: ReaderStateEntry): Uint8Array {
  return encodeStruct('READER_STATE', { ...e });
}

/**
 * The bytes a client reads. `fixed16`: protocols 4:4 and 4:5 (CMD_GET_READERS_STATE
 * and their CMD_WAIT_READER_STATE_CHANGE): the first 16 slots, zero-padded to 16,
 * exactly MSGSendReaderStates(old_api = true). Otherwise the whole array (4:6's
 * CMD_GET_READERS_STATE_ARRAY).
 */
export function encodeTable(table: readonly ReaderStateEntry[], fixed16: boolean): Uint8Array {
  const n = fixed16 ? PCSCLITE_MAX_READERS_CONTEXTS : table.length;
  const size = STRUCTS.READER_STATE.size;
  const out = new Uint8Array(n * size);
  for (let i = 0; i < n; i++) {
    const e = i < table.length ? table[i] : ZERO_ENTRY;
    out.set(encodeEntry(e), i * size);
  }
  return out;
}

/**
 * pcscd's ReaderEvents (readerfactory.c): an int16 starting at 1, incremented on
 * every reader added or removed, wrapping to 1. Sent by CMD_GET_READER_EVENTS (4:5+)
 * and used by clients for `\\?PnP?\Notification`.
 */
export function nextReaderEvents(n: number): number {
  const next = (n + 1) & 0xffff;
  return next >= 0x8000 || next === 0 ? 1 : next;
}
export const INITIAL_READER_EVENTS = 1;
