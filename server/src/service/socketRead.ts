// How the PC/SC service reads its clients' sockets (issue 15, "Measured"). Node reads a
// stream socket into a fresh 64 KiB allocation for every read (then shrinks it to what was
// read) and hands it through the Readable stream's push and 'data' event. A socket made with
// `onread: { buffer, callback }` (net.connect, new net.Socket) instead reads into one buffer
// its owner gives and calls the callback with the byte count, no stream machinery in between.
// A server's accepted sockets do not take that option (lib/net.js onconnection builds them with
// a fixed option list), so here an accepted socket, paused on connect (nothing read yet), is
// given the same state the option sets: net.Socket's own kBuffer / kBufferCb / kBufferGen
// fields (found by their symbols' names) and its handle's useUserBuffer, which is exactly what
// the constructor does for `onread` (Node 20 and 24 alike). Anything not as expected (another
// runtime, a changed Node) leaves the socket as it was and reads it the normal way: the
// caller gets the mode it got, and the bytes either way.
//
// One buffer serves every connection: a read's callback runs before the next read of any
// socket, and the bytes are good only during it (onBytes's `transient`): the caller copies
// whatever it keeps (ClientSession.receive does).

import type net from 'node:net';

/** 'own-buffer': reads land in the one buffer of this module; 'stream': Node's 'data' events. */
export type ReadMode = 'own-buffer' | 'stream';
/** `transient`: `bytes` is a view of the reused buffer, good only until this returns. */
export type OnBytes = (bytes: Uint8Array, transient: boolean) => void;

/** As large as Node's own read size: a 65,548-byte TRANSMIT takes two reads either way. */
export const READ_BUFFER_SIZE = 64 * 1024;

let shared: Buffer | null = null;

interface Fields {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

type Handle = { useUserBuffer?: unknown; reading?: unknown };

/** net.Socket's onread fields on this runtime, or null when they are not as Node 20–24 has them. */
function fieldsOf(socket: net.Socket): Fields | null {
  const byName = new Map<string, symbol>();
  for (const s of Object.getOwnPropertySymbols(socket)) if (s.description) byName.set(s.description, s);
  const kBuffer = byName.get('kBuffer');
  const kBufferCb = byName.get('kBufferCb');
  const kBufferGen = byName.get('kBufferGen');
  if (!kBuffer || !kBufferCb || !kBufferGen) return null;
  const own = socket as unknown as Record<symbol, unknown>;
  // A socket made without onread has all three null (the constructor sets them).
  if (own[kBuffer] !== null || own[kBufferCb] !== null || own[kBufferGen] !== null) return null;
  return { kBuffer, kBufferCb, kBufferGen };
}

/** The handle reads into the shared buffer from now on; false when it refused or answered anything but Node's 0. */
function takesBuffer(handle: Handle): boolean {
  shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  try {
    // Node's StreamBase::UseUserBuffer answers 0; anything else (another runtime's error code, nothing
    // at all) is taken as a refusal, so the reads stay Node's own.
    return (handle.useUserBuffer as (b: Uint8Array) => unknown).call(handle, shared) === 0;
  } catch {
    return false;
  }
}

/**
 * Starts reading `socket`, accepted by a server made with `pauseOnConnect: true` and not read
 * yet. `stream` forces Node's normal reads (tests; a runtime where the other way fails).
 * pause() and resume() work in either mode (net.Socket stops and starts the handle's reads
 * for a socket with a buffer of its own); 'end', 'close' and 'error' come as usual.
 */
export function startReading(socket: net.Socket, onBytes: OnBytes, options: { stream?: boolean } = {}): ReadMode {
  const handle = (socket as unknown as { _handle?: Handle | null })._handle;
  const fields = options.stream || !handle || typeof handle.useUserBuffer !== 'function' ? null : fieldsOf(socket);
  if (fields && takesBuffer(handle!)) {
    const bytes = shared!.buffer;
    // One view per read length (a client's messages repeat their sizes); nothing keeps a view past the callback.
    let view = new Uint8Array(bytes, 0, 0);
    const own = socket as unknown as Record<symbol, unknown>;
    own[fields.kBuffer] = shared;
    own[fields.kBufferCb] = (n: number): void => {
      if (view.length !== n) view = new Uint8Array(bytes, 0, n);
      try {
        onBytes(view, true);
      } finally {
        // The read's bytes (a VERIFY's PIN among them) do not stay in the buffer until a longer read
        // happens to cover them: the session has copied what it keeps.
        view.fill(0);
      }
    };
    socket.resume();
    return 'own-buffer';
  }
  socket.on('data', (chunk: Buffer) => onBytes(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length), false));
  socket.resume();
  return 'stream';
}
