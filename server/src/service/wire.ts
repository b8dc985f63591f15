// pcsc-lite's client/daemon protocol (src/winscard_msg.h, winscard_msg.c,
// winscard_svc.c of pcsc-lite 2.3.3 and 2.5.1; Debian 12's 1.9.9 speaks 4:4 with the
// same structs). A client writes `struct rxHeader {uint32 size; uint32 command}` and
// then the command's struct; TRANSMIT and CONTROL are followed by cbSendLength data
// bytes that the header's size does not count. Replies carry no header: the same
// struct written back, then (TRANSMIT, CONTROL on success) the response bytes.
// Everything is in host byte order. This file is the one codec; it never throws on
// what a client sends.

import { endianness } from 'node:os';

// ---- constants (names as in pcsc-lite) --------------------------------------

export const PROTOCOL_VERSION_MAJOR = 4;
/** Minors this service answers with the client's own: 4 (1.9.9), 5 (2.3–2.4), 6 (2.5). */
export const SUPPORTED_MINORS = [4, 5, 6] as const;
export type ProtocolMinor = (typeof SUPPORTED_MINORS)[number];
/** What we answer a client whose version we do not speak (pcscd 2.5.1's own version). */
export const PROTOCOL_VERSION_MINOR = 6;

export const MAX_READERNAME = 128;
export const MAX_ATR_SIZE = 33;
export const MAX_BUFFER_SIZE = 264;
/** 4 + 3 + 65536 + 3 + 2: extended APDU plus Lc, Le and SW. */
export const MAX_BUFFER_SIZE_EXTENDED = 4 + 3 + (1 << 16) + 3 + 2;
/** Fixed size of the reader state table in protocols 4:4 and 4:5. */
export const PCSCLITE_MAX_READERS_CONTEXTS = 16;

/** enum pcsc_msg_commands */
export const Command = {
  SCARD_ESTABLISH_CONTEXT: 0x01,
  SCARD_RELEASE_CONTEXT: 0x02,
  SCARD_LIST_READERS: 0x03,
  SCARD_CONNECT: 0x04,
  SCARD_RECONNECT: 0x05,
  SCARD_DISCONNECT: 0x06,
  SCARD_BEGIN_TRANSACTION: 0x07,
  SCARD_END_TRANSACTION: 0x08,
  SCARD_TRANSMIT: 0x09,
  SCARD_CONTROL: 0x0a,
  SCARD_STATUS: 0x0b,
  SCARD_GET_STATUS_CHANGE: 0x0c,
  SCARD_CANCEL: 0x0d,
  SCARD_CANCEL_TRANSACTION: 0x0e,
  SCARD_GET_ATTRIB: 0x0f,
  SCARD_SET_ATTRIB: 0x10,
  CMD_VERSION: 0x11,
  CMD_GET_READERS_STATE: 0x12,
  CMD_WAIT_READER_STATE_CHANGE: 0x13,
  CMD_STOP_WAITING_READER_STATE_CHANGE: 0x14,
  /** From protocol 4:5 (pcsc-lite 2.3.0). */
  CMD_GET_READER_EVENTS: 0x15,
  /** From protocol 4:6 (pcsc-lite 2.5.0). */
  CMD_GET_READERS_STATE_SIZE: 0x16,
  /** From protocol 4:6 (pcsc-lite 2.5.0). */
  CMD_GET_READERS_STATE_ARRAY: 0x17,
} as const;
export type CommandName = keyof typeof Command;
export type CommandCode = (typeof Command)[CommandName];

const commandNames = new Map<number, CommandName>(
  (Object.entries(Command) as [CommandName, number][]).map(([k, v]) => [v, k]),
);
export function commandName(code: number): string {
  return commandNames.get(code) ?? `0x${(code >>> 0).toString(16)}`;
}

/** The lowest protocol minor that has a command (winscard_svc.c of each version). */
export function commandSinceMinor(code: number): number {
  if (code === Command.CMD_GET_READER_EVENTS) return 5;
  if (code === Command.CMD_GET_READERS_STATE_SIZE || code === Command.CMD_GET_READERS_STATE_ARRAY) return 6;
  return 4;
}

/** PC/SC return codes (pcsclite.h), as the uint32 on the wire. */
export const Rv = {
  SCARD_S_SUCCESS: 0x00000000,
  SCARD_F_INTERNAL_ERROR: 0x80100001,
  SCARD_E_CANCELLED: 0x80100002,
  SCARD_E_INVALID_HANDLE: 0x80100003,
  SCARD_E_INVALID_PARAMETER: 0x80100004,
  SCARD_E_NO_MEMORY: 0x80100006,
  SCARD_E_INSUFFICIENT_BUFFER: 0x80100008,
  SCARD_E_UNKNOWN_READER: 0x80100009,
  SCARD_E_TIMEOUT: 0x8010000a,
  SCARD_E_SHARING_VIOLATION: 0x8010000b,
  SCARD_E_NO_SMARTCARD: 0x8010000c,
  SCARD_E_PROTO_MISMATCH: 0x8010000f,
  SCARD_E_NOT_READY: 0x80100010,
  SCARD_E_INVALID_VALUE: 0x80100011,
  SCARD_F_COMM_ERROR: 0x80100013,
  SCARD_E_NOT_TRANSACTED: 0x80100016,
  SCARD_E_READER_UNAVAILABLE: 0x80100017,
  SCARD_E_NO_SERVICE: 0x8010001d,
  SCARD_E_SERVICE_STOPPED: 0x8010001e,
  SCARD_E_UNSUPPORTED_FEATURE: 0x8010001f,
  SCARD_W_UNRESPONSIVE_CARD: 0x80100066,
  SCARD_W_UNPOWERED_CARD: 0x80100067,
  SCARD_W_RESET_CARD: 0x80100068,
  SCARD_W_REMOVED_CARD: 0x80100069,
} as const;

/** READER_STATE.readerState bits (pcsclite.h SCARD_UNKNOWN …), as pcscd sets them. */
export const ReaderStateBits = {
  SCARD_UNKNOWN: 0x0001,
  SCARD_ABSENT: 0x0002,
  SCARD_PRESENT: 0x0004,
  SCARD_SWALLOWED: 0x0008,
  SCARD_POWERED: 0x0010,
  SCARD_NEGOTIABLE: 0x0020,
  SCARD_SPECIFIC: 0x0040,
} as const;

export const ShareMode = { SCARD_SHARE_EXCLUSIVE: 1, SCARD_SHARE_SHARED: 2, SCARD_SHARE_DIRECT: 3 } as const;
export const Disposition = { SCARD_LEAVE_CARD: 0, SCARD_RESET_CARD: 1, SCARD_UNPOWER_CARD: 2, SCARD_EJECT_CARD: 3 } as const;
export const ProtocolBits = {
  SCARD_PROTOCOL_UNDEFINED: 0,
  SCARD_PROTOCOL_T0: 1,
  SCARD_PROTOCOL_T1: 2,
  SCARD_PROTOCOL_RAW: 4,
  SCARD_PROTOCOL_T15: 8,
  /** pcsc-lite's old SCARD_PROTOCOL_ANY_OLD, still accepted by SCardConnect. */
  SCARD_PROTOCOL_ANY_OLD: 0x1000,
} as const;
/** readerSharing values (eventhandler.h). */
export const PCSCLITE_SHARING_NO_CONTEXT = 0;
export const PCSCLITE_SHARING_LAST_CONTEXT = 1;
export const PCSCLITE_SHARING_EXCLUSIVE_CONTEXT = -1;
/** cardAtrLength of a reader slot nobody uses (eventhandler.h). */
export const READER_NOT_INITIALIZED = MAX_ATR_SIZE + 1;

// ---- struct layouts ---------------------------------------------------------

type FieldType = 'u32' | 'i32' | 'bytes' | 'cstring';
export interface FieldLayout { readonly offset: number; readonly size: number; readonly type: FieldType }
export interface StructLayout { readonly size: number; readonly fields: Readonly<Record<string, FieldLayout>> }

function layout(fields: [string, FieldType, number?][]): StructLayout {
  const out: Record<string, FieldLayout> = {};
  let offset = 0;
  for (const [name, type, n] of fields) {
    const size = type === 'u32' || type === 'i32' ? 4 : n!;
    if (type === 'u32' || type === 'i32') offset = (offset + 3) & ~3; // C alignment of 4-byte members
    out[name] = { offset, size, type };
    offset += size;
  }
  return { size: (offset + 3) & ~3, fields: out };
}

/**
 * Every struct of winscard_msg.h and READER_STATE (eventhandler.h in 2.3.3,
 * readers.h in 2.5.1). A unit test compiles a C probe against both trees and
 * compares these sizes and offsets with what gcc says.
 */
export const STRUCTS = {
  rxHeader: layout([['size', 'u32'], ['command', 'u32']]),
  version_struct: layout([['major', 'i32'], ['minor', 'i32'], ['rv', 'u32']]),
  client_struct: layout([['hContext', 'u32']]),
  wait_reader_state_change: layout([['timeOut', 'u32'], ['rv', 'u32']]),
  establish_struct: layout([['dwScope', 'u32'], ['hContext', 'u32'], ['rv', 'u32']]),
  release_struct: layout([['hContext', 'u32'], ['rv', 'u32']]),
  connect_struct: layout([
    ['hContext', 'u32'], ['szReader', 'cstring', MAX_READERNAME], ['dwShareMode', 'u32'],
    ['dwPreferredProtocols', 'u32'], ['hCard', 'i32'], ['dwActiveProtocol', 'u32'], ['rv', 'u32'],
  ]),
  reconnect_struct: layout([
    ['hCard', 'i32'], ['dwShareMode', 'u32'], ['dwPreferredProtocols', 'u32'],
    ['dwInitialization', 'u32'], ['dwActiveProtocol', 'u32'], ['rv', 'u32'],
  ]),
  disconnect_struct: layout([['hCard', 'i32'], ['dwDisposition', 'u32'], ['rv', 'u32']]),
  begin_struct: layout([['hCard', 'i32'], ['rv', 'u32']]),
  end_struct: layout([['hCard', 'i32'], ['dwDisposition', 'u32'], ['rv', 'u32']]),
  cancel_struct: layout([['hContext', 'i32'], ['rv', 'u32']]),
  status_struct: layout([['hCard', 'i32'], ['rv', 'u32']]),
  transmit_struct: layout([
    ['hCard', 'i32'], ['ioSendPciProtocol', 'u32'], ['ioSendPciLength', 'u32'], ['cbSendLength', 'u32'],
    ['ioRecvPciProtocol', 'u32'], ['ioRecvPciLength', 'u32'], ['pcbRecvLength', 'u32'], ['rv', 'u32'],
  ]),
  control_struct: layout([
    ['hCard', 'i32'], ['dwControlCode', 'u32'], ['cbSendLength', 'u32'], ['cbRecvLength', 'u32'],
    ['dwBytesReturned', 'u32'], ['rv', 'u32'],
  ]),
  getset_struct: layout([['hCard', 'i32'], ['dwAttrId', 'u32'], ['pbAttr', 'bytes', MAX_BUFFER_SIZE], ['cbAttrLen', 'u32'], ['rv', 'u32']]),
  get_reader_events: layout([['readerEvents', 'u32'], ['rv', 'u32']]),
  READER_STATE: layout([
    ['readerName', 'cstring', MAX_READERNAME], ['eventCounter', 'u32'], ['readerState', 'u32'], ['readerSharing', 'i32'],
    ['cardAtr', 'bytes', MAX_ATR_SIZE], ['cardAtrLength', 'u32'], ['cardProtocol', 'u32'],
  ]),
} as const;
export type StructName = keyof typeof STRUCTS;

/** Field values of a decoded struct: numbers, byte arrays, and NUL-terminated strings. */
export type StructValue = Record<string, number | Uint8Array | string>;

export const HOST_LITTLE_ENDIAN = endianness() === 'LE';

// 32-bit fields read and written by hand: a DataView per request (header, struct, reply)
// was the largest share of the service's own work per APDU.
function getU32(b: Uint8Array, at: number, le: boolean): number {
  return (le
    ? (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24))
    : ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3])) >>> 0;
}
function setU32(b: Uint8Array, at: number, v: number, le: boolean): void {
  if (le) { b[at] = v; b[at + 1] = v >>> 8; b[at + 2] = v >>> 16; b[at + 3] = v >>> 24; } else { b[at] = v >>> 24; b[at + 1] = v >>> 16; b[at + 2] = v >>> 8; b[at + 3] = v; }
}

/** Encodes a struct; missing fields are zero, strings are cut to leave room for the NUL. */
export function encodeStruct(name: StructName, value: StructValue, littleEndian = HOST_LITTLE_ENDIAN): Uint8Array {
  return patchStruct(name, new Uint8Array(STRUCTS[name].size), value, littleEndian);
}

/**
 * A copy of `base` (a struct's bytes) with the given fields written over it. Replies
 * are built this way from the request's own bytes: pcscd writes back the struct it
 * read with some fields changed (WRITE_BODY), untouched bytes included.
 */
export function patchStruct(name: StructName, base: Uint8Array, value: StructValue, littleEndian = HOST_LITTLE_ENDIAN, trailer?: Uint8Array): Uint8Array {
  const l = STRUCTS[name];
  // A trailer (TRANSMIT's or CONTROL's answer) goes in the same buffer: one write, one wake-up of the client.
  const out = new Uint8Array(l.size + (trailer?.length ?? 0));
  out.set(base.subarray(0, l.size));
  if (trailer) out.set(trailer, l.size);
  for (const field in value) {
    const v = value[field];
    const f = (l.fields as Record<string, FieldLayout>)[field];
    if (v === undefined || f === undefined) continue;
    if (f.type === 'u32' || f.type === 'i32') setU32(out, f.offset, Number(v) >>> 0, littleEndian);
    else {
      const bytes = typeof v === 'string' ? new TextEncoder().encode(v) : (v as Uint8Array);
      const room = f.type === 'cstring' ? f.size - 1 : f.size;
      out.fill(0, f.offset, f.offset + f.size);
      out.set(bytes.subarray(0, room), f.offset);
    }
  }
  return out;
}

/** Each struct's fields as a list, made once (decodeStruct runs for every request). */
const FIELD_LISTS: Record<string, ReadonlyArray<FieldLayout & { field: string }>> = Object.fromEntries(
  Object.entries(STRUCTS).map(([name, l]) => [name, Object.entries(l.fields as Record<string, FieldLayout>).map(([field, f]) => ({ field, ...f }))]),
);
const UTF8 = new TextDecoder('utf-8', { fatal: false });

/** Decodes a struct from exactly its size of bytes (the framer guarantees the length). */
export function decodeStruct(name: StructName, bytes: Uint8Array, littleEndian = HOST_LITTLE_ENDIAN): StructValue {
  const size = STRUCTS[name].size;
  const out: StructValue = {};
  if (bytes.length < size) return out;
  for (const f of FIELD_LISTS[name]) {
    if (f.type === 'u32') out[f.field] = getU32(bytes, f.offset, littleEndian);
    else if (f.type === 'i32') out[f.field] = getU32(bytes, f.offset, littleEndian) | 0;
    else if (f.type === 'cstring') {
      // pcscd forces the last byte to NUL before use (winscard_svc.c SCARD_CONNECT).
      const raw = bytes.subarray(f.offset, f.offset + f.size);
      const end = raw.indexOf(0);
      out[f.field] = UTF8.decode(raw.subarray(0, end < 0 ? f.size - 1 : end));
    } else out[f.field] = bytes.slice(f.offset, f.offset + f.size);
  }
  return out;
}

const T = STRUCTS.transmit_struct.fields;

/** transmit_struct's fields, as decodeStruct gives them (hCard signed, the rest unsigned). */
export function transmitFields(raw: Uint8Array, littleEndian = HOST_LITTLE_ENDIAN): StructValue {
  return {
    hCard: getU32(raw, T.hCard.offset, littleEndian) | 0,
    ioSendPciProtocol: getU32(raw, T.ioSendPciProtocol.offset, littleEndian),
    ioSendPciLength: getU32(raw, T.ioSendPciLength.offset, littleEndian),
    cbSendLength: getU32(raw, T.cbSendLength.offset, littleEndian),
    ioRecvPciProtocol: getU32(raw, T.ioRecvPciProtocol.offset, littleEndian),
    ioRecvPciLength: getU32(raw, T.ioRecvPciLength.offset, littleEndian),
    pcbRecvLength: getU32(raw, T.pcbRecvLength.offset, littleEndian),
    rv: getU32(raw, T.rv.offset, littleEndian),
  };
}

/**
 * A TRANSMIT reply written into `out` (a buffer the caller reuses): the request's struct with
 * the receive PCI, the answer's length and rv set, then the answer when it is sent. Returns
 * the reply's length.
 */
export function writeTransmitReply(
  out: Uint8Array, raw: Uint8Array, recvProtocol: number, recvPciLength: number, rv: number, response: Uint8Array, withResponse: boolean,
  littleEndian = HOST_LITTLE_ENDIAN,
): number {
  const size = STRUCTS.transmit_struct.size;
  out.set(raw.length === size ? raw : raw.subarray(0, size));
  setU32(out, T.ioRecvPciProtocol.offset, recvProtocol >>> 0, littleEndian);
  setU32(out, T.ioRecvPciLength.offset, recvPciLength >>> 0, littleEndian);
  setU32(out, T.pcbRecvLength.offset, response.length, littleEndian);
  setU32(out, T.rv.offset, rv >>> 0, littleEndian);
  if (!withResponse) return size;
  out.set(response, size);
  return size + response.length;
}

// ---- client → service messages -----------------------------------------------

/** The struct each command's header announces; `null`: "nothing to read" (size must be 0). */
const REQUEST_STRUCT: Partial<Record<number, StructName | null>> = {
  [Command.CMD_VERSION]: 'version_struct',
  [Command.SCARD_ESTABLISH_CONTEXT]: 'establish_struct',
  [Command.SCARD_RELEASE_CONTEXT]: 'release_struct',
  [Command.SCARD_CONNECT]: 'connect_struct',
  [Command.SCARD_RECONNECT]: 'reconnect_struct',
  [Command.SCARD_DISCONNECT]: 'disconnect_struct',
  [Command.SCARD_BEGIN_TRANSACTION]: 'begin_struct',
  [Command.SCARD_END_TRANSACTION]: 'end_struct',
  [Command.SCARD_CANCEL]: 'cancel_struct',
  [Command.SCARD_STATUS]: 'status_struct',
  [Command.SCARD_TRANSMIT]: 'transmit_struct',
  [Command.SCARD_CONTROL]: 'control_struct',
  [Command.SCARD_GET_ATTRIB]: 'getset_struct',
  [Command.SCARD_SET_ATTRIB]: 'getset_struct',
  [Command.CMD_GET_READERS_STATE]: null,
  [Command.CMD_WAIT_READER_STATE_CHANGE]: null,
  [Command.CMD_STOP_WAITING_READER_STATE_CHANGE]: null,
  [Command.CMD_GET_READER_EVENTS]: null,
  [Command.CMD_GET_READERS_STATE_SIZE]: null,
  [Command.CMD_GET_READERS_STATE_ARRAY]: null,
};

export function requestStruct(command: number): StructName | null | undefined {
  return REQUEST_STRUCT[command];
}

/** The largest complete client message: a TRANSMIT header + struct + extended buffer. */
export const MAX_MESSAGE_SIZE = STRUCTS.rxHeader.size + STRUCTS.transmit_struct.size + MAX_BUFFER_SIZE_EXTENDED;

export interface Request {
  readonly command: CommandCode;
  /** The command's struct, decoded (empty for commands with nothing to read). */
  readonly body: StructValue;
  /** The raw struct bytes, so a reply can start from them as pcscd's do. */
  readonly raw: Uint8Array;
  /** TRANSMIT / CONTROL: the cbSendLength bytes after the struct. */
  readonly data?: Uint8Array;
}

export type WireErrorKind =
  | 'unknown-command' // not in enum pcsc_msg_commands, or a command pcscd has no case for
  | 'wrong-size'      // header.size differs from the command's struct (winscard_svc.c: wrong_length)
  | 'buffer-overflow' // cbSendLength over MAX_BUFFER_SIZE_EXTENDED (winscard_svc.c: buffer_overflow)
  | 'truncated';      // the connection ended inside a message

/** Why a client's connection is closed; never thrown, returned. */
export interface WireError {
  readonly kind: WireErrorKind;
  readonly command: number;
  readonly message: string;
}

export type Decoded = { readonly request: Request } | { readonly error: WireError };

/**
 * Incremental decoder for one connection. `push` adds bytes; `next` returns the next
 * whole request, `null` when more bytes are needed, or a WireError after which the
 * connection must be closed (every later call returns the same error). `end` reports
 * a half message left when the client went away. Buffered bytes never exceed one
 * message plus one pushed chunk: the caller reads until `next` returns null before
 * pushing more.
 */
/** A copy of bytes start..end, also when `bytes` is a Buffer (whose slice() is a view, not a copy). */
const sliceCopy = Uint8Array.prototype.slice;
function copyOf(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return sliceCopy.call(bytes, start, end);
}

/** Pieces a RequestDecoder holds before it joins them into one (a client writing a byte at a time). */
const MAX_PIECES = 64;

export class RequestDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failed: WireError | null = null;

  constructor(private readonly littleEndian = HOST_LITTLE_ENDIAN) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(bytes: Uint8Array): void {
    if (this.failed || bytes.length === 0) return;
    this.chunks.push(bytes);
    this.buffered += bytes.length;
    // A client dripping a message in small reads: the pieces become one now and then, so what a
    // read costs stays bounded (a piece each made every later read and the final take cost more).
    if (this.chunks.length > MAX_PIECES) this.chunks = [this.peek(this.buffered)];
  }

  /**
   * The bytes still buffered that are views of `buffer` (a read buffer the transport reuses)
   * become copies of their own: called when the read's bytes are good no longer. Usually
   * nothing is left (a read holds whole messages, and every decoded request is a copy).
   */
  retain(buffer: ArrayBufferLike): void {
    // Only the newest pieces can be views of it: every earlier read's were made copies at its end.
    const chunks = this.chunks;
    for (let i = chunks.length - 1; i >= 0 && chunks[i].buffer === buffer; i--) chunks[i] = copyOf(chunks[i], 0, chunks[i].length);
  }

  next(): Decoded | null {
    if (this.failed) return { error: this.failed };
    const headerSize = STRUCTS.rxHeader.size;
    if (this.buffered < headerSize) return null;
    const size = this.u32At(0);
    const command = this.u32At(4);
    const structName = REQUEST_STRUCT[command];
    if (structName === undefined) {
      return this.fail('unknown-command', command, `unknown command ${commandName(command)} (size ${size})`);
    }
    const expected = structName === null ? 0 : STRUCTS[structName].size;
    if (size !== expected) {
      return this.fail('wrong-size', command, `${commandName(command)} announces ${size} bytes, its struct has ${expected}`);
    }
    if (this.buffered < headerSize + expected) return null;
    let extra = 0;
    if (command === Command.SCARD_TRANSMIT || command === Command.SCARD_CONTROL) {
      const at = command === Command.SCARD_TRANSMIT
        ? STRUCTS.transmit_struct.fields.cbSendLength.offset
        : STRUCTS.control_struct.fields.cbSendLength.offset;
      extra = this.u32At(headerSize + at);
      if (extra > MAX_BUFFER_SIZE_EXTENDED) {
        return this.fail('buffer-overflow', command, `${commandName(command)} sends ${extra} bytes, over ${MAX_BUFFER_SIZE_EXTENDED}`);
      }
    }
    const total = headerSize + expected + extra;
    if (this.buffered < total) return null;
    if (command === Command.SCARD_TRANSMIT || command === Command.SCARD_CONTROL) {
      // The struct and the data each copied once from the chunk that holds them (the usual
      // case: the whole message came in one read); the data gets its own buffer, since drivers
      // hand it to native code.
      let raw: Uint8Array;
      let data: Uint8Array;
      const first = this.chunks[0];
      if (first.length >= total) {
        raw = copyOf(first, headerSize, headerSize + expected);
        data = copyOf(first, headerSize + expected, total);
        this.skip(total);
      } else {
        const all = this.take(total);
        raw = all.subarray(headerSize, headerSize + expected);
        data = all.slice(headerSize + expected);
      }
      // TRANSMIT, the command of every APDU: its fields read at their fixed offsets into an
      // object of one shape, not through the generic field list.
      const body = command === Command.SCARD_TRANSMIT ? transmitFields(raw, this.littleEndian) : decodeStruct(structName!, raw, this.littleEndian);
      return { request: { command: command as CommandCode, body, raw, data } };
    }
    // The struct is a view on take's copy (nobody else holds it).
    const all = this.take(total);
    const raw = all.subarray(headerSize, headerSize + expected);
    const body = structName === null ? {} : decodeStruct(structName, raw, this.littleEndian);
    return { request: { command: command as CommandCode, body, raw } };
  }

  /** The client closed its side: an error when it left half a message. */
  end(): WireError | null {
    if (this.failed) return this.failed;
    if (this.buffered === 0) return null;
    let command = -1;
    if (this.buffered >= 8) {
      const h = this.peek(8);
      command = new DataView(h.buffer, h.byteOffset, 8).getUint32(4, this.littleEndian);
    }
    this.failed = {
      kind: 'truncated',
      command,
      message: `the client left after ${this.buffered} bytes of ${command < 0 ? 'a header' : commandName(command)}`,
    };
    return this.failed;
  }

  private fail(kind: WireErrorKind, command: number, message: string): Decoded {
    this.failed = { kind, command, message };
    this.chunks = [];
    this.buffered = 0;
    return { error: this.failed };
  }

  /** The 32-bit field at `at` of what is buffered (the caller checked it is there). */
  private u32At(at: number): number {
    const c = this.chunks[0];
    return getU32(c.length >= at + 4 ? c : this.peek(at + 4), at, this.littleEndian);
  }

  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const part = c.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
      if (at === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    const out = first.length >= n ? copyOf(first, 0, n) : this.peek(n); // a copy either way
    this.skip(n);
    return out;
  }

  /** Drops the first n buffered bytes (the caller checked they are there). */
  private skip(n: number): void {
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
  }
}

// ---- service → client replies -------------------------------------------------

/** A reply: the request's struct bytes with some fields changed, as pcscd writes back its struct. */
export function replyStruct(name: StructName, request: Request, changes: StructValue, littleEndian = HOST_LITTLE_ENDIAN, trailer?: Uint8Array): Uint8Array {
  return patchStruct(name, request.raw, changes, littleEndian, trailer);
}

/** A client-side request, for tests and tools that speak to a pcscd: header + struct (+ data). */
export function encodeRequest(command: number, body?: Uint8Array, data?: Uint8Array, littleEndian = HOST_LITTLE_ENDIAN): Uint8Array {
  const b = body ?? new Uint8Array(0);
  const d = data ?? new Uint8Array(0);
  const out = new Uint8Array(8 + b.length + d.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, b.length, littleEndian);
  view.setUint32(4, command >>> 0, littleEndian);
  out.set(b, 8);
  out.set(d, 8 + b.length);
  return out;
}
