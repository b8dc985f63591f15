// The winscard API through koffi: the only file of the project that imports
// koffi (house rule 2). Type sizes differ per platform (PCSC_TYPES below), and
// test/refstack/pcsc-layout.test.ts compiles each platform's real headers to check them:
//   Linux (pcsc-lite)  DWORD = unsigned long, LONG = long (8 bytes on 64-bit), handles = long
//   macOS PCSC.framework  DWORD/LONG = 32-bit, handles = int32, SCARD_READERSTATE packed
//   Windows winscard.dll  DWORD/LONG = 32-bit, handles = ULONG_PTR, ANSI `…A` entry points, rgbAtr[36]
// Calls that can block (status change, connect, transmit, control, transactions)
// run on koffi's worker threads (`.async`) so the event loop never waits on a card.

import type { LibraryHandle, TypeObject } from 'koffi';

type Koffi = typeof import('koffi');
import { PcscError, SCARD_E_INSUFFICIENT_BUFFER, SCARD_E_NO_READERS_AVAILABLE, SCARD_S_SUCCESS } from './errors';

export type Handle = number | bigint;

export interface ReaderState {
  reader: string;
  /** dwCurrentState going in. */
  currentState: number;
  /** dwEventState coming out (the counter in the upper 16 bits). */
  eventState: number;
  atr: Uint8Array;
}

export interface CardStatus {
  reader: string;
  state: number;
  protocol: number;
  atr: Uint8Array;
}

export interface Winscard {
  readonly library: string;
  /** SCARD_CTL_CODE(fn) for this platform (pcsc-lite 0x42000000 + fn; Windows 0x310000 | fn << 2). */
  ctlCode(fn: number): number;
  establishContext(scope: number): Handle;
  releaseContext(ctx: Handle): void;
  isValidContext(ctx: Handle): boolean;
  listReaders(ctx: Handle): string[];
  getStatusChange(ctx: Handle, timeoutMs: number, states: ReaderState[]): Promise<ReaderState[]>;
  cancel(ctx: Handle): void;
  connect(ctx: Handle, reader: string, share: number, protocols: number): Promise<{ handle: Handle; protocol: number }>;
  reconnect(card: Handle, share: number, protocols: number, initialization: number): Promise<number>;
  disconnect(card: Handle, disposition: number): Promise<void>;
  beginTransaction(card: Handle): Promise<void>;
  endTransaction(card: Handle, disposition: number): Promise<void>;
  transmit(card: Handle, protocol: number, command: Uint8Array): Promise<Uint8Array>;
  /**
   * The same on the calling thread: no worker-thread hop (which costs more than
   * a fast card's whole exchange), but it blocks the event loop until the card
   * answers, so the driver uses it only while the card answers fast.
   */
  transmitSync?(card: Handle, protocol: number, command: Uint8Array): Uint8Array;
  control(card: Handle, code: number, data: Uint8Array): Promise<Uint8Array>;
  /** SCardGetAttrib on a worker thread (pcscd holds the reader's lock while the IFD handler answers). */
  getAttrib(card: Handle, attr: number): Promise<Uint8Array>;
  status(card: Handle): CardStatus;
  /**
   * SCardStatus on a worker thread. libpcsclite takes the context's mutex for every handle call and an SCardTransmit or
   * SCardControl keeps it for its whole round trip (winscard_clnt.c 3567–3583), so the synchronous call would stop the
   * event loop behind a long call on the same context. A worker waiting there still holds libpcsclite's process-wide
   * clientMutex and stalls every other call of the process: the driver never makes two calls on one context at once
   * (a context per reader, R69).
   */
  statusAsync?(card: Handle): Promise<CardStatus>;
}

export type Platform = 'linux' | 'darwin' | 'win32';

/**
 * The C types of each platform's PC/SC headers, as koffi names them. Only Linux uses
 * `long` (its width follows the machine, as pcsc-lite's does); the others use
 * fixed-width names, so their layout is the same whichever machine computes it.
 */
export const PCSC_TYPES = {
  linux: { DWORD: 'unsigned long', LONG: 'long', HANDLE: 'long', atrSize: 33, packed: false },
  darwin: { DWORD: 'uint32_t', LONG: 'int32_t', HANDLE: 'int32_t', atrSize: 33, packed: true },
  win32: { DWORD: 'uint32_t', LONG: 'int32_t', HANDLE: 'uintptr_t', atrSize: 36, packed: false },
} as const;

function structTypes(koffi: Koffi, platform: Platform) {
  const t = PCSC_TYPES[platform];
  const stateFields = {
    szReader: 'const char *',
    pvUserData: 'void *',
    dwCurrentState: t.DWORD,
    dwEventState: t.DWORD,
    cbAtr: t.DWORD,
    rgbAtr: koffi.array('uint8_t', t.atrSize, 'Array'),
  };
  return {
    READERSTATE: t.packed ? koffi.pack(stateFields) : koffi.struct(stateFields),
    IO_REQUEST: koffi.struct({ dwProtocol: t.DWORD, cbPciLength: t.DWORD }),
  };
}

/** Sizes and offsets, in bytes, of what the driver hands the PC/SC library. */
export interface PcscLayout {
  DWORD: number;
  LONG: number;
  SCARDHANDLE: number;
  SCARDCONTEXT: number;
  SCARD_READERSTATE: { size: number; szReader: number; pvUserData: number; dwCurrentState: number; dwEventState: number; cbAtr: number; rgbAtr: number; rgbAtrLength: number };
  SCARD_IO_REQUEST: { size: number; dwProtocol: number; cbPciLength: number };
}

/** The layout koffi gives the driver's declarations for a platform (Linux's: at this machine's word size). */
export function pcscLayout(platform: Platform): PcscLayout {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi') as Koffi;
  const t = PCSC_TYPES[platform];
  const { READERSTATE, IO_REQUEST } = structTypes(koffi, platform);
  const at = (type: TypeObject, field: string) => koffi.offsetof(type, field);
  return {
    DWORD: koffi.sizeof(t.DWORD),
    LONG: koffi.sizeof(t.LONG),
    SCARDHANDLE: koffi.sizeof(t.HANDLE),
    SCARDCONTEXT: koffi.sizeof(t.HANDLE),
    SCARD_READERSTATE: {
      size: koffi.sizeof(READERSTATE),
      szReader: at(READERSTATE, 'szReader'),
      pvUserData: at(READERSTATE, 'pvUserData'),
      dwCurrentState: at(READERSTATE, 'dwCurrentState'),
      dwEventState: at(READERSTATE, 'dwEventState'),
      cbAtr: at(READERSTATE, 'cbAtr'),
      rgbAtr: at(READERSTATE, 'rgbAtr'),
      rgbAtrLength: t.atrSize,
    },
    SCARD_IO_REQUEST: { size: koffi.sizeof(IO_REQUEST), dwProtocol: at(IO_REQUEST, 'dwProtocol'), cbPciLength: at(IO_REQUEST, 'cbPciLength') },
  };
}

const DEFAULT_LIBRARY: Record<Platform, string> = {
  linux: 'libpcsclite.so.1',
  darwin: '/System/Library/Frameworks/PCSC.framework/PCSC',
  win32: 'winscard.dll',
};

/** Big enough for an extended-length response (65536 data bytes + SW). */
const RECV_BUFFER = 65536 + 2;
const MAX_ATR = 36;
/** SCardGetAttrib answers fit pcsc-lite's MAX_BUFFER_SIZE (264 bytes). */
const ATTR_BUFFER = 264;
/** SCardStatus's reader name buffer in one call: pcsc-lite's names are at most MAX_READERNAME (128) bytes. */
const READER_NAME_BUFFER = 1024;

function unsigned(rv: number | bigint): number {
  return Number(BigInt.asUintN(32, BigInt(rv)));
}

function check(fn: string, rv: number | bigint): void {
  const code = unsigned(rv);
  if (code !== SCARD_S_SUCCESS) throw new PcscError(code, fn);
}

type KoffiFunction = ReturnType<LibraryHandle['func']>;

function asyncCall(fn: KoffiFunction, name: string, args: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, rv: number | bigint) => {
      // Named here, so the buffers in `args` (a reader name's bytes, a command) live until the worker's call returned.
      void args;
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      try {
        check(name, rv);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * windows-1252's bytes 0x80–0x9F (WHATWG's table; the five it leaves undefined stand for the same code point).
 * A table, not TextDecoder('windows-1252'): Node 20's decodes these 32 bytes as latin1 (Node 24's does not).
 */
const CP1252_80_9F =
  '\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F' +
  '\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178';

/**
 * A reader name's bytes (no NUL) as shown. pcsc-lite and macOS names are UTF-8 (a USB product string), shown so when
 * the bytes are valid UTF-8, else as latin1. Windows' `…A` calls give the ANSI code page's bytes; which code page that
 * is cannot be known from here, so they are shown as windows-1252 (another code page's letters show as the wrong ones).
 * Only the display can be wrong: the transport sends the library back the bytes a name came from (R93).
 */
export function decodeReaderName(bytes: Uint8Array, platform: Platform): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (platform === 'win32') {
    let s = '';
    for (const b of buf) s += b >= 0x80 && b < 0xa0 ? CP1252_80_9F[b - 0x80] : String.fromCharCode(b);
    return s;
  }
  const utf8 = buf.toString('utf8');
  return Buffer.byteLength(utf8, 'utf8') === buf.length && Buffer.from(utf8, 'utf8').equals(buf) ? utf8 : buf.toString('latin1');
}

/**
 * The NUL-terminated bytes of a name the library never gave (the PnP pseudo-reader, a name typed by a user): UTF-8,
 * or on Windows windows-1252, the inverse of decodeReaderName's display (a character it lacks becomes `?`, as
 * WideCharToMultiByte's default character does).
 */
export function encodeReaderName(name: string, platform: Platform): Buffer {
  if (platform !== 'win32') return Buffer.from(`${name}\0`, 'utf8');
  const out = Buffer.alloc(name.length + 1);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const high = CP1252_80_9F.indexOf(name[i]);
    out[i] = c < 0x80 || (c >= 0xa0 && c <= 0xff) ? c : high >= 0 ? 0x80 + high : 0x3f;
  }
  return out;
}

/** The names of a multi-string (names separated by NUL, ended by an empty one), as byte ranges of `buf`. */
function splitNames(buf: Buffer, length: number): Buffer[] {
  const end = Math.min(length, buf.length);
  const out: Buffer[] = [];
  for (let start = 0; start < end; ) {
    let nul = buf.indexOf(0, start);
    if (nul < 0 || nul > end) nul = end;
    if (nul > start) out.push(buf.subarray(start, nul));
    start = nul + 1;
  }
  return out;
}

/** Names the library gave, kept by their display form, are remembered this many at most (then forgotten at once). */
const MAX_NAMES = 256;

/**
 * Loads koffi and the PC/SC library. koffi is required here, not at module load,
 * so a platform without its prebuilt binary loses only this driver, not the helper.
 */
export function loadWinscard(library?: string): Winscard {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi') as Koffi;
  const platform = (['linux', 'darwin', 'win32'].includes(process.platform) ? process.platform : 'linux') as Platform;
  const path = library ?? DEFAULT_LIBRARY[platform];
  const lib = koffi.load(path);
  const win = platform === 'win32';
  const { DWORD, LONG, HANDLE, atrSize } = PCSC_TYPES[platform];
  const { READERSTATE, IO_REQUEST } = structTypes(koffi, platform);
  const pciLength = koffi.sizeof(IO_REQUEST);
  // The send PCI of each protocol, encoded once (koffi takes a buffer wherever a pointer goes).
  const pci = new Map<number, Buffer>();
  const pciFor = (protocol: number): Buffer => {
    let b = pci.get(protocol);
    if (!b) {
      b = Buffer.alloc(pciLength);
      koffi.encode(b, IO_REQUEST, { dwProtocol: protocol, cbPciLength: pciLength });
      pci.set(protocol, b);
    }
    return b;
  };
  // Receive buffers are reused: a fresh 64 KiB buffer per exchange was external memory that made the collector run often.
  const spare: Buffer[] = [];
  const takeRecv = (): Buffer => spare.pop() ?? Buffer.allocUnsafe(RECV_BUFFER);
  const giveRecv = (b: Buffer): void => { if (spare.length < 4) spare.push(b); };
  const outHandle = koffi.out(koffi.pointer(HANDLE));
  const outDword = koffi.out(koffi.pointer(DWORD));
  const inoutDword = koffi.inout(koffi.pointer(DWORD));
  const A = win ? 'A' : '';
  // The exact bytes each shown name came from, sent back to SCardConnect and as szReader: koffi would encode the
  // JS string as UTF-8, which is not what the library gave for a latin1-shown or Windows name (R93).
  const nameBytes = new Map<string, Buffer>();
  const named = (bytes: Buffer): string => {
    const name = decodeReaderName(bytes, platform);
    if (nameBytes.size >= MAX_NAMES && !nameBytes.has(name)) nameBytes.clear();
    nameBytes.set(name, Buffer.concat([bytes, Buffer.alloc(1)]));
    return name;
  };
  const firstName = (buf: Buffer, length: number): string => {
    const first = splitNames(buf, length)[0];
    return first ? named(first) : '';
  };
  const bytesOf = (name: string): Buffer => nameBytes.get(name) ?? encodeReaderName(name, platform);
  const f = (name: string, args: (string | TypeObject | ReturnType<Koffi['out']>)[]) => lib.func(name, LONG, args as never);

  const SCardEstablishContext = f('SCardEstablishContext', [DWORD, 'void *', 'void *', outHandle]);
  const SCardReleaseContext = f('SCardReleaseContext', [HANDLE]);
  const SCardIsValidContext = f('SCardIsValidContext', [HANDLE]);
  const SCardListReaders = f(`SCardListReaders${A}`, [HANDLE, 'const char *', 'uint8_t *', inoutDword]);
  const SCardGetStatusChange = f(`SCardGetStatusChange${A}`, [HANDLE, DWORD, koffi.inout(koffi.pointer(READERSTATE)), DWORD]);
  const SCardCancel = f('SCardCancel', [HANDLE]);
  const SCardConnect = f(`SCardConnect${A}`, [HANDLE, 'const char *', DWORD, DWORD, outHandle, outDword]);
  const SCardReconnect = f('SCardReconnect', [HANDLE, DWORD, DWORD, DWORD, outDword]);
  const SCardDisconnect = f('SCardDisconnect', [HANDLE, DWORD]);
  const SCardBeginTransaction = f('SCardBeginTransaction', [HANDLE]);
  const SCardEndTransaction = f('SCardEndTransaction', [HANDLE, DWORD]);
  const SCardTransmit = f('SCardTransmit', [HANDLE, 'void *', 'uint8_t *', DWORD, 'void *', 'uint8_t *', inoutDword]);
  const SCardControl = f('SCardControl', [HANDLE, DWORD, 'uint8_t *', DWORD, 'uint8_t *', DWORD, outDword]);
  const SCardGetAttrib = f('SCardGetAttrib', [HANDLE, DWORD, 'uint8_t *', inoutDword]);
  const SCardStatus = f(`SCardStatus${A}`, [HANDLE, 'uint8_t *', inoutDword, outDword, outDword, 'uint8_t *', inoutDword]);

  return {
    library: path,
    ctlCode: (fn) => (win ? (0x31 << 16) | (fn << 2) : 0x42000000 + fn),

    establishContext(scope) {
      const out: Handle[] = [0];
      check('SCardEstablishContext', SCardEstablishContext(scope, null, null, out));
      return out[0];
    },
    releaseContext(ctx) {
      check('SCardReleaseContext', SCardReleaseContext(ctx));
    },
    isValidContext(ctx) {
      return unsigned(SCardIsValidContext(ctx)) === SCARD_S_SUCCESS;
    },
    listReaders(ctx) {
      for (;;) {
        const size = [0];
        let rv = unsigned(SCardListReaders(ctx, null, null, size));
        if (rv === SCARD_E_NO_READERS_AVAILABLE) return [];
        check('SCardListReaders', rv);
        const buf = Buffer.alloc(Number(size[0]));
        rv = unsigned(SCardListReaders(ctx, null, buf, size));
        if (rv === SCARD_E_INSUFFICIENT_BUFFER) continue; // a reader arrived between the two calls
        if (rv === SCARD_E_NO_READERS_AVAILABLE) return [];
        check('SCardListReaders', rv);
        const names = splitNames(buf, Number(size[0]));
        // Forgotten before the listing, not in its middle: every name it gives keeps its bytes.
        if (nameBytes.size + names.length > MAX_NAMES) nameBytes.clear();
        return names.map(named);
      }
    },
    async getStatusChange(ctx, timeoutMs, states) {
      // The name buffers stay referenced by `native` (in asyncCall's args) until the call returns.
      const native = states.map((s) => ({
        szReader: bytesOf(s.reader),
        pvUserData: null,
        dwCurrentState: s.currentState >>> 0,
        dwEventState: 0,
        cbAtr: 0,
        rgbAtr: new Array<number>(atrSize).fill(0),
      }));
      await asyncCall(SCardGetStatusChange, 'SCardGetStatusChange', [ctx, timeoutMs >>> 0, native, native.length]);
      return native.map((n, i) => ({
        reader: states[i].reader,
        currentState: states[i].currentState,
        eventState: Number(n.dwEventState) >>> 0,
        atr: Uint8Array.from(n.rgbAtr.slice(0, Math.min(Number(n.cbAtr), atrSize))),
      }));
    },
    cancel(ctx) {
      check('SCardCancel', SCardCancel(ctx));
    },
    async connect(ctx, reader, share, protocols) {
      const handle: Handle[] = [0];
      const protocol = [0];
      await asyncCall(SCardConnect, 'SCardConnect', [ctx, bytesOf(reader), share, protocols, handle, protocol]);
      return { handle: handle[0], protocol: Number(protocol[0]) };
    },
    async reconnect(card, share, protocols, initialization) {
      const protocol = [0];
      await asyncCall(SCardReconnect, 'SCardReconnect', [card, share, protocols, initialization, protocol]);
      return Number(protocol[0]);
    },
    disconnect: (card, disposition) => asyncCall(SCardDisconnect, 'SCardDisconnect', [card, disposition]),
    beginTransaction: (card) => asyncCall(SCardBeginTransaction, 'SCardBeginTransaction', [card]),
    endTransaction: (card, disposition) => asyncCall(SCardEndTransaction, 'SCardEndTransaction', [card, disposition]),
    async transmit(card, protocol, command) {
      // Not zero-filled (the library writes what it returns), and only the answer is copied out.
      const recv = takeRecv();
      const length = [RECV_BUFFER];
      try {
        await asyncCall(SCardTransmit, 'SCardTransmit', [card, pciFor(protocol), command, command.length, null, recv, length]);
        return new Uint8Array(recv.subarray(0, Number(length[0])));
      } finally {
        giveRecv(recv);
      }
    },
    transmitSync(card, protocol, command) {
      const recv = takeRecv();
      const length = [RECV_BUFFER];
      try {
        check('SCardTransmit', SCardTransmit(card, pciFor(protocol), command, command.length, null, recv, length));
        return new Uint8Array(recv.subarray(0, Number(length[0])));
      } finally {
        giveRecv(recv);
      }
    },
    async control(card, code, data) {
      const recv = Buffer.alloc(RECV_BUFFER);
      const returned = [0];
      const send = Buffer.from(data);
      await asyncCall(SCardControl, 'SCardControl', [card, code >>> 0, send.length ? send : null, send.length, recv, recv.length, returned]);
      return new Uint8Array(recv.subarray(0, Number(returned[0])));
    },
    async getAttrib(card, attr) {
      // One call with a buffer as large as pcsc-lite's MAX_BUFFER_SIZE: no size query, no second round trip.
      const buf = Buffer.alloc(ATTR_BUFFER);
      const size = [buf.length];
      await asyncCall(SCardGetAttrib, 'SCardGetAttrib', [card, attr >>> 0, buf, size]);
      return new Uint8Array(buf.subarray(0, Math.min(Number(size[0]), buf.length)));
    },
    async statusAsync(card) {
      const state = [0];
      const protocol = [0];
      const atrLength = [MAX_ATR];
      const atr = Buffer.alloc(MAX_ATR);
      let name = Buffer.alloc(READER_NAME_BUFFER);
      const nameLength = [READER_NAME_BUFFER];
      try {
        await asyncCall(SCardStatus, 'SCardStatus', [card, name, nameLength, state, protocol, atr, atrLength]);
      } catch (e) {
        if (!(e instanceof PcscError) || e.rv !== SCARD_E_INSUFFICIENT_BUFFER) throw e;
        // A longer name (not from pcsc-lite): ask its length, then read it, both off the event loop.
        nameLength[0] = 0;
        atrLength[0] = MAX_ATR;
        await asyncCall(SCardStatus, 'SCardStatus', [card, null, nameLength, state, protocol, atr, atrLength]);
        name = Buffer.alloc(Number(nameLength[0]));
        atrLength[0] = MAX_ATR;
        await asyncCall(SCardStatus, 'SCardStatus', [card, name, nameLength, state, protocol, atr, atrLength]);
      }
      return {
        reader: firstName(name, Number(nameLength[0])),
        state: Number(state[0]),
        protocol: Number(protocol[0]),
        atr: new Uint8Array(atr.subarray(0, Number(atrLength[0]))),
      };
    },
    status(card) {
      const nameLength = [0];
      const state = [0];
      const protocol = [0];
      const atrLength = [MAX_ATR];
      const atr = Buffer.alloc(MAX_ATR);
      check('SCardStatus', SCardStatus(card, null, nameLength, state, protocol, atr, atrLength));
      const name = Buffer.alloc(Number(nameLength[0]));
      atrLength[0] = MAX_ATR;
      check('SCardStatus', SCardStatus(card, name, nameLength, state, protocol, atr, atrLength));
      return {
        reader: firstName(name, Number(nameLength[0])),
        state: Number(state[0]),
        protocol: Number(protocol[0]),
        atr: new Uint8Array(atr.subarray(0, Number(atrLength[0]))),
      };
    },
  };
}
