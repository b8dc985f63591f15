// A byte-level pcsc-lite client for tests: speaks the wire protocol the way
// winscard_clnt.c does, either in memory against a PcscService (MemoryTransport)
// or over a UNIX socket (SocketTransport). Every read has a bounded wait and says
// what it was waiting for.
import net from 'node:net';
import type { ClientSession, PcscService } from '../../server/src/service/session';
import {
  Command, decodeStruct, encodeRequest, encodeStruct, HOST_LITTLE_ENDIAN, STRUCTS, type StructName, type StructValue,
} from '../../server/src/service/wire';

export interface Transport {
  write(bytes: Uint8Array): void;
  end(): void;
  onData(cb: (b: Uint8Array) => void): void;
  onClose(cb: (reason: string) => void): void;
}

/** The one read buffer of MemoryTransport's `oneBuffer` mode (as large as the server's). */
const SHARED_READ = new Uint8Array(64 * 1024);

export class MemoryTransport implements Transport {
  readonly session: ClientSession;
  private dataCb: (b: Uint8Array) => void = () => {};
  private closeCb: (r: string) => void = () => {};
  closedReason: string | null = null;
  /** Bytes the session sent after it closed the connection (must stay 0). */
  sentAfterClose = 0;
  /**
   * `oneBuffer`: bytes reach the session as the server's reads do (socketRead.ts), each a view of one
   * shared buffer that is written over with 0xEE once the session returns.
   */
  constructor(service: PcscService, peer = 'mem', private readonly oneBuffer = false) {
    this.session = service.newSession({
      send: (b) => {
        if (this.closedReason !== null) this.sentAfterClose += b.length;
        this.dataCb(b.slice());
      },
      close: (r) => {
        this.closedReason = r;
        this.closeCb(r);
      },
    }, peer);
  }
  write(bytes: Uint8Array): void {
    if (!this.oneBuffer) {
      this.session.receive(bytes);
      return;
    }
    for (let at = 0; at < bytes.length; at += SHARED_READ.length) {
      const n = Math.min(SHARED_READ.length, bytes.length - at);
      SHARED_READ.set(bytes.subarray(at, at + n), 0);
      this.session.receive(new Uint8Array(SHARED_READ.buffer, 0, n), true);
      SHARED_READ.fill(0xee);
    }
  }
  end(): void {
    this.session.ended();
    this.closedReason ??= 'client ended';
    this.closeCb('client ended');
  }
  onData(cb: (b: Uint8Array) => void): void {
    this.dataCb = cb;
  }
  onClose(cb: (r: string) => void): void {
    this.closeCb = cb;
  }
}

export class SocketTransport implements Transport {
  private constructor(readonly socket: net.Socket) {}
  static connect(path: string): Promise<SocketTransport> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once('connect', () => resolve(new SocketTransport(s)));
      s.once('error', reject);
    });
  }
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }
  end(): void {
    this.socket.destroy();
  }
  onData(cb: (b: Uint8Array) => void): void {
    this.socket.on('data', (b: Buffer) => cb(new Uint8Array(b)));
  }
  onClose(cb: (r: string) => void): void {
    this.socket.on('close', () => cb('socket closed'));
    this.socket.on('error', () => {});
  }
}

export const WAIT_MS = 3000;

export class WireClient {
  private buf = new Uint8Array(0);
  private closed: string | null = null;
  private wake: (() => void) | null = null;

  constructor(readonly transport: Transport) {
    transport.onData((b) => {
      const n = new Uint8Array(this.buf.length + b.length);
      n.set(this.buf);
      n.set(b, this.buf.length);
      this.buf = n;
      this.wake?.();
    });
    transport.onClose((r) => {
      this.closed = r;
      this.wake?.();
    });
  }

  get unread(): number {
    return this.buf.length;
  }
  get isClosed(): boolean {
    return this.closed !== null;
  }

  send(command: number, body?: Uint8Array, data?: Uint8Array): void {
    this.transport.write(encodeRequest(command, body, data));
  }
  sendStruct(command: number, name: StructName, value: StructValue, data?: Uint8Array): void {
    this.send(command, encodeStruct(name, value), data);
  }

  /** Exactly n bytes, or a rejection naming `what` after a bounded wait / on close. */
  async read(n: number, what: string, ms = WAIT_MS): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`${what}: connection closed (${this.closed}) after ${this.buf.length}/${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: no ${n} bytes within ${ms} ms (have ${this.buf.length})`);
      await this.nextEvent(left);
    }
    const out = this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
    return out;
  }

  /** Until more bytes arrive or the connection closes (`wake`), or `ms` passed. */
  private async nextEvent(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = null;
  }

  async readStruct(name: StructName, what: string = name): Promise<StructValue> {
    return decodeStruct(name, await this.read(STRUCTS[name].size, what));
  }

  /** Resolves with the close reason; rejects if still open after a bounded wait. */
  async whenClosed(ms = WAIT_MS): Promise<string> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${ms} ms`);
      await this.nextEvent(left);
    }
    return this.closed;
  }

  // ---- what winscard_clnt.c does ----

  async version(minor: number, major = 4): Promise<StructValue> {
    this.sendStruct(Command.CMD_VERSION, 'version_struct', { major, minor, rv: 0 });
    return this.readStruct('version_struct', 'CMD_VERSION reply');
  }
  async establish(scope = 2): Promise<StructValue> {
    this.sendStruct(Command.SCARD_ESTABLISH_CONTEXT, 'establish_struct', { dwScope: scope });
    return this.readStruct('establish_struct', 'ESTABLISH_CONTEXT reply');
  }
  /** CMD_VERSION + ESTABLISH_CONTEXT; returns hContext. */
  async open(minor: number): Promise<number> {
    const v = await this.version(minor);
    if (v.rv !== 0) throw new Error(`version ${minor} refused: 0x${(v.rv as number).toString(16)}`);
    const e = await this.establish();
    if (e.rv !== 0) throw new Error(`establish refused: 0x${(e.rv as number).toString(16)}`);
    return e.hContext as number;
  }
  async readerEvents(): Promise<StructValue> {
    this.send(Command.CMD_GET_READER_EVENTS);
    return this.readStruct('get_reader_events', 'GET_READER_EVENTS reply');
  }
  /** 16 entries (4:4/4:5 CMD_GET_READERS_STATE). */
  async readersState16(): Promise<StructValue[]> {
    this.send(Command.CMD_GET_READERS_STATE);
    return this.readTable(16, 'GET_READERS_STATE reply');
  }
  async readTable(n: number, what: string): Promise<StructValue[]> {
    const size = STRUCTS.READER_STATE.size;
    const bytes = await this.read(n * size, what);
    return Array.from({ length: n }, (_, i) => decodeStruct('READER_STATE', bytes.subarray(i * size, (i + 1) * size)));
  }
  async stateSize(): Promise<number> {
    this.send(Command.CMD_GET_READERS_STATE_SIZE);
    const b = await this.read(4, 'GET_READERS_STATE_SIZE reply');
    return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, HOST_LITTLE_ENDIAN);
  }
  /** 4:6 getReaderStates: size, then the array. */
  async readersState6(): Promise<StructValue[]> {
    const n = await this.stateSize();
    this.send(Command.CMD_GET_READERS_STATE_ARRAY);
    return this.readTable(n, 'GET_READERS_STATE_ARRAY reply');
  }
  async connect(hContext: number, reader: string, share = 2, protocols = 3): Promise<StructValue> {
    this.sendStruct(Command.SCARD_CONNECT, 'connect_struct', { hContext, szReader: reader, dwShareMode: share, dwPreferredProtocols: protocols });
    return this.readStruct('connect_struct', 'CONNECT reply');
  }
  async transmit(hCard: number, apdu: Uint8Array, protocol = 2, recv = 258): Promise<{ s: StructValue; response: Uint8Array | null }> {
    this.sendStruct(Command.SCARD_TRANSMIT, 'transmit_struct', {
      hCard, ioSendPciProtocol: protocol, ioSendPciLength: 8, cbSendLength: apdu.length, ioRecvPciProtocol: protocol, ioRecvPciLength: 8, pcbRecvLength: recv,
    }, apdu);
    const s = await this.readStruct('transmit_struct', 'TRANSMIT reply');
    const response = s.rv === 0 ? await this.read(s.pcbRecvLength as number, 'TRANSMIT response bytes') : null;
    return { s, response };
  }
  async simple(command: number, name: StructName, value: StructValue): Promise<StructValue> {
    this.sendStruct(command, name, value);
    return this.readStruct(name, `${name} reply`);
  }
}
