// Who is on the other end of a PC/SC service connection (issue 15, "who is using a
// reader"): on Linux, SO_PEERCRED gives the client's pid, uid and gid as the kernel saw
// them at connect(), and /proc names the process. Node has no getsockopt, so libc's is
// called through koffi — the one other file besides the pcsc driver's transport that
// loads koffi (house rule 2 keeps it to transport files: this is the service's), and
// only when the service accepts its first client. Anything missing (another platform,
// no koffi binary, no fd, a pid from another pid namespace) gives null: the caller then
// names the client "client#N" and never fails the connection for it.

import fs from 'node:fs';
import path from 'node:path';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

type GetPeerCred = (fd: number) => PeerCredentials | null;

/** undefined: not tried yet; null: unavailable here (tried once). */
let getPeerCred: GetPeerCred | null | undefined;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

function load(): GetPeerCred | null {
  if (process.platform !== 'linux') return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (sys/socket.h, _GNU_SOURCE): three 32-bit fields on every Linux ABI.
    const ucred = koffi.struct('smartcard_workbench_ucred', { pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });
    const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ smartcard_workbench_ucred *value, _Inout_ uint32_t *length)');
    return (fd) => {
      const value: Partial<PeerCredentials> = {};
      const length = [koffi.sizeof(ucred)];
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0) return null;
      // pid 0: the peer is in a pid namespace we cannot see into.
      if (!value.pid || value.pid <= 0) return null;
      return { pid: value.pid, uid: value.uid ?? -1, gid: value.gid ?? -1 };
    };
  } catch {
    return null;
  }
}

/** The accepted socket's file descriptor (libuv's pipe handle), or null. */
export function socketFd(socket: unknown): number | null {
  const fd = (socket as { _handle?: { fd?: unknown } })?._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/** SO_PEERCRED of a connected UNIX socket; null where the system or the runtime does not tell. */
export function peerCredentials(socket: unknown): PeerCredentials | null {
  const fd = socketFd(socket);
  if (fd === null) return null;
  if (getPeerCred === undefined) getPeerCred = load();
  if (!getPeerCred) return null;
  try {
    return getPeerCred(fd);
  } catch {
    return null;
  }
}

/** The kernel's comm is cut at 15 characters (TASK_COMM_LEN 16). */
const COMM_MAX = 15;
/** A name shown in the Readers view and the log stays short, whatever a process calls itself. */
const NAME_MAX = 64;

/** How much of /proc/PID/cmdline is read for argv[0] (the whole argv can be megabytes). */
const CMDLINE_MAX = 4096;

/**
 * What a process name may not bring into the Readers view or a log line: C0 and C1 controls
 * (NEL U+0085 included), DEL, the line and paragraph separators U+2028/2029, and the bidi
 * embeddings, overrides and isolates U+202A–202E, U+2066–2069 (a name shown reversed).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** The first bytes of a file, without reading the rest (one read of at most `max` bytes). */
function head(file: string, max: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(max);
    return b.subarray(0, fs.readSync(fd, b, 0, max, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A process's name as `ps -o comm` shows it (/proc/PID/comm), or argv[0]'s base name
 * from the first 4 KB of /proc/PID/cmdline when comm was cut at 15 characters and argv[0]
 * starts with it. Control, separator and bidi characters are dropped (a process chooses its
 * own name); the name is cut at 64 UTF-16 units, never inside a surrogate pair. null when the
 * process is gone or /proc is not there. The pid is SO_PEERCRED's at connect(): a client (of
 * this user: others are refused before) that exits at once can leave its pid to a new process
 * before this read, whose name is then shown. The name is a label, never a credential.
 */
export function processName(pid: number, proc = '/proc'): string | null {
  let comm: string;
  try {
    comm = fs.readFileSync(path.join(proc, String(pid), 'comm'), 'utf8').replace(/\n$/, '');
  } catch {
    return null;
  }
  let name = comm;
  if (comm.length >= COMM_MAX) {
    try {
      const argv0 = head(path.join(proc, String(pid), 'cmdline'), CMDLINE_MAX).toString('utf8').split('\0')[0];
      const base = path.basename(argv0);
      if (base.startsWith(comm)) name = base;
    } catch { /* comm it is */ }
  }
  name = name.replace(UNSAFE, '').slice(0, NAME_MAX);
  if (/[\ud800-\udbff]$/.test(name)) name = name.slice(0, -1); // the cut went through a surrogate pair
  return name || null;
}

/** How the Readers view and the APDU Log name a client: "pcsc_scan (pid 4711)", else the fallback. */
export function peerLabel(creds: PeerCredentials | null, fallback: string, proc = '/proc'): string {
  if (!creds) return fallback;
  const name = processName(creds.pid, proc);
  return `${name ?? 'process'} (pid ${creds.pid})`;
}
