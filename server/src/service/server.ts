// The PC/SC service's UNIX socket (design: "PC/SC service socket"):
// $XDG_RUNTIME_DIR/smartcard-workbench/pcscd.comm, else
// /tmp/smartcard-workbench-UID/pcscd.comm. The folder is ours and 0700 (refused
// when it belongs to someone else or is not a plain folder), the socket 0600, and
// there is never a TCP port: a lab machine's service is reached over SSH's
// UNIX-socket forwarding. Each connection is one ClientSession; whatever one client
// sends, or however it dies, only its own connection ends.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { PcscService } from './session';
import { peerCredentials, peerLabel } from './peer';
import { startReading, type ReadMode } from './socketRead';

export const SOCKET_FOLDER = 'smartcard-workbench';
export const SOCKET_NAME = 'pcscd.comm';
/** pcscd.h PCSC_MAX_CONTEXT_THREADS: client connections at once; one more is closed at once ("Too many context running"). */
export const MAX_CLIENTS = 200;
/** Replies a client has not read yet; more means it stopped reading, and it is disconnected. */
export const MAX_UNREAD_REPLY_BYTES = 1024 * 1024;

function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : -1;
}

/** The socket path of the design; `env` and `userId` for tests. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env, userId = uid()): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && path.isAbsolute(runtime)) return path.join(runtime, SOCKET_FOLDER, SOCKET_NAME);
  return path.join('/tmp', `${SOCKET_FOLDER}-${userId}`, SOCKET_NAME);
}

export class SocketFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketFolderError';
  }
}

/**
 * Makes sure the socket's folder exists, is a real folder (not a symlink), belongs
 * to this user and is 0700. A folder of another user is refused, never used: its
 * owner could replace our socket and see every APDU.
 */
export function prepareSocketFolder(folder: string, userId = uid()): void {
  try {
    fs.mkdirSync(folder, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new SocketFolderError(`Cannot create ${folder}: ${(e as Error).message}`);
  }
  const st = fs.lstatSync(folder);
  if (!st.isDirectory()) throw new SocketFolderError(`${folder} is not a folder (a symlink or a file); remove it and start the service again.`);
  if (userId >= 0 && st.uid !== userId) {
    throw new SocketFolderError(`${folder} belongs to user ${st.uid}, not to you (${userId}); the PC/SC service will not use it. Remove it or set XDG_RUNTIME_DIR.`);
  }
  if ((st.mode & 0o777) !== 0o700) fs.chmodSync(folder, 0o700);
}

function isListening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export interface PcscServer {
  readonly socketPath: string;
  /** Open client connections. */
  readonly connections: number;
  /** How the newest client's socket is read (socketRead.ts); null before the first. */
  readonly readMode: ReadMode | null;
  /** Called with the new count whenever a client connects or leaves; returns the unsubscribe function. */
  onConnections(listener: (count: number) => void): () => void;
  /** Stops accepting, ends every client connection, removes the socket. */
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Default: defaultSocketPath(). */
  socketPath?: string;
  /** Read clients through Node's streams, not into the one reused buffer (tests of both ways). */
  streamReads?: boolean;
}

export async function startPcscServer(service: PcscService, options: ServeOptions = {}): Promise<PcscServer> {
  const socketPath = path.resolve(options.socketPath ?? defaultSocketPath());
  prepareSocketFolder(path.dirname(socketPath));
  if (fs.existsSync(socketPath)) {
    const st = fs.lstatSync(socketPath);
    if (!st.isSocket()) throw new SocketFolderError(`${socketPath} exists and is not a socket; remove it first.`);
    if (await isListening(socketPath)) throw new SocketFolderError(`Another PC/SC service already listens on ${socketPath}.`);
    fs.unlinkSync(socketPath); // left by a service that crashed
  }

  const sockets = new Set<net.Socket>();
  const listeners = new Set<(count: number) => void>();
  const counted = () => { for (const l of [...listeners]) l(sockets.size); };
  let peerCount = 0;
  let readMode: ReadMode | null = null;
  // Paused on connect: nothing is read before startReading chose how.
  const server = net.createServer({ allowHalfOpen: false, pauseOnConnect: true }, (socket) => {
    if (sockets.size >= MAX_CLIENTS) {
      service.log('warn', `${MAX_CLIENTS} clients already connected; closing a new one, as pcscd does`);
      socket.destroy();
      return;
    }
    // Who it is (SO_PEERCRED on Linux): named in the Readers view and on its APDU Log rows.
    const creds = peerCredentials(socket);
    const me = uid();
    // The socket is 0600 in a 0700 folder, so only this user (and root) can reach it; a peer of
    // another user got here through loosened modes or a forwarding: refused, as pcscd built with
    // polkit refuses an unauthorized client (winscard_svc.c ContextThread: the connection closed).
    if (creds && me >= 0 && creds.uid !== me && creds.uid !== 0) {
      service.log('warn', `refused a client of user ${creds.uid} (pid ${creds.pid}): this service serves user ${me} only`);
      socket.destroy();
      return;
    }
    sockets.add(socket);
    counted();
    const peer = peerLabel(creds, `client#${++peerCount}`);
    const session = service.newSession({
      send(bytes) {
        if (socket.destroyed) return true;
        socket.write(bytes);
        const unread = socket.writableLength;
        if (unread > MAX_UNREAD_REPLY_BYTES) {
          service.log('info', `${peer}: connection closed: ${unread} bytes of replies unread`);
          socket.destroy();
        }
        // Nothing queued: the kernel took the bytes during write(), and the session may reuse its buffer.
        return unread === 0;
      },
      close() {
        socket.destroy();
      },
      pause() {
        socket.pause();
      },
      resume() {
        if (!socket.destroyed) socket.resume();
      },
    }, peer);
    socket.on('error', () => { /* the 'close' that follows ends the session */ });
    socket.on('close', () => {
      sockets.delete(socket);
      session.ended();
      counted();
    });
    readMode = startReading(socket, (bytes, transient) => session.receive(bytes, transient), { stream: options.streamReads });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: socketPath, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socketPath, 0o600);

  return {
    socketPath,
    get readMode() {
      return readMode;
    },
    get connections() {
      return sockets.size;
    },
    onConnections(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      try {
        fs.unlinkSync(socketPath);
      } catch { /* already gone */ }
    },
  };
}
