// The service's state machine: one PcscService (what pcscd keeps globally: the
// reader state table, ReaderEvents, the clients waiting for a state change, every
// context for SCardCancel) and one ClientSession per client connection (pcscd's
// ContextThread in winscard_svc.c). Card calls go to a CardBackend. Nothing here
// touches sockets: the server (server.ts) or a test feeds bytes in and takes bytes out.
//
// Per protocol version (the client's CMD_VERSION):
//   4:4, 4:5  CMD_WAIT_READER_STATE_CHANGE answers at once with the 16-entry table
//             (2.3.3 EHRegisterClientForEvent); CMD_GET_READERS_STATE likewise
//   4:5+      CMD_GET_READER_EVENTS (ReaderEvents, for \\?PnP?\Notification)
//   4:6       CMD_WAIT_READER_STATE_CHANGE only registers; the client then asks
//             CMD_GET_READERS_STATE_SIZE and CMD_GET_READERS_STATE_ARRAY
// A connection that never sent CMD_VERSION (SCardCancel's) is served as 4:6, as
// pcscd 2.5 does. Commands a version does not have close the connection, as that
// version's pcscd does for an unknown command.
//
// Logs name commands and return codes only, never data: a VERIFY's PIN passes
// through TRANSMIT and must not reach a log.

import { randomInt } from 'node:crypto';
import { BackendError, rvOf, type BackendHandle, type CardBackend, type TransmitSink } from './backend';
import {
  buildTable, encodeTable, INITIAL_LAYOUT, INITIAL_READER_EVENTS, nextReaderEvents, placeReaders,
  type ReaderStateEntry, type SlotLayout,
} from './readerState';
import {
  Command, commandName, commandSinceMinor, Disposition, encodeStruct, HOST_LITTLE_ENDIAN, MAX_BUFFER_SIZE, MAX_MESSAGE_SIZE,
  PROTOCOL_VERSION_MAJOR, PROTOCOL_VERSION_MINOR, ProtocolBits, replyStruct, RequestDecoder, Rv, ShareMode, STRUCTS,
  SUPPORTED_MINORS, writeTransmitReply, type ProtocolMinor, type Request, type StructValue, type WireError,
} from './wire';

export type ServiceLogLevel = 'debug' | 'info' | 'warn';
export type ServiceLog = (level: ServiceLogLevel, message: string) => void;

/** How a session talks to its transport. */
export interface ClientIo {
  /**
   * Writes a reply. Returns true when the transport is done with `bytes` (written out at
   * once, or copied): the session then reuses the buffer for its next TRANSMIT answer.
   * Anything else (a write still queued) makes it take a fresh buffer.
   */
  send(bytes: Uint8Array): boolean | void;
  /** Ends the connection; the session is finished (ClientSession.ended follows). */
  close(reason: string): void;
  /** Backpressure: stop / start reading while a request is in progress. */
  pause?(): void;
  resume?(): void;
}

/** Bytes a session may hold undecoded: one whole message plus one read chunk. */
export const MAX_BUFFERED_BYTES = MAX_MESSAGE_SIZE + 64 * 1024;
/** The TRANSMIT reply buffer a session starts with: the struct and a short APDU's longest answer (256 + SW). */
const REPLY_BUFFER_START = STRUCTS.transmit_struct.size + MAX_BUFFER_SIZE;
/** A reply buffer grown past this (an extended APDU's answer) is not kept: 200 clients must not hold 64 KiB each. */
const REPLY_BUFFER_KEEP = 4096;

/** pcscd.h PCSC_MAX_CONTEXT_CARD_HANDLES: handles per client; one more is SCARD_E_NO_MEMORY (MSGAddHandle). */
export const MAX_HANDLES_PER_CLIENT = 200;

/** handle()'s answer for a TRANSMIT in the backend: its own continuation goes on with the next request. */
const IN_BACKEND: Promise<void> = Promise.resolve();

export class PcscService {
  private layout: SlotLayout = INITIAL_LAYOUT;
  private table: ReaderStateEntry[] = [];
  private tableBytes: Uint8Array = new Uint8Array(0);
  private names = new Set<string>();
  private readerEventsValue = INITIAL_READER_EVENTS;
  private readonly waiting = new Set<ClientSession>();
  private readonly contexts = new Map<number, ClientSession>();
  private readonly handles = new Set<number>();
  private readonly unsubscribe: () => void;
  readonly sessions = new Set<ClientSession>();

  constructor(readonly backend: CardBackend, readonly log: ServiceLog = () => {}) {
    this.refresh();
    this.unsubscribe = backend.onChange(() => this.refresh());
  }

  dispose(): void {
    this.unsubscribe();
  }

  /** The table as pcscd holds it now (slot order, full capacity). */
  get readerStates(): readonly ReaderStateEntry[] {
    return this.table;
  }
  get readerEvents(): number {
    return this.readerEventsValue;
  }
  get waitingCount(): number {
    return this.waiting.size;
  }

  /** Recomputes the table from the backend; wakes every waiting client when anything a client can see changed. */
  refresh(): void {
    const readers = this.backend.readers();
    const names = readers.map((r) => r.name);
    let events = this.readerEventsValue;
    const now = new Set(names);
    for (const n of now) if (!this.names.has(n)) events = nextReaderEvents(events);
    for (const n of this.names) if (!now.has(n)) events = nextReaderEvents(events);
    this.names = now;
    this.layout = placeReaders(this.layout, names);
    this.table = buildTable(this.layout, readers);
    const bytes = encodeTable(this.table, false);
    const changed = events !== this.readerEventsValue || !sameBytes(bytes, this.tableBytes);
    this.tableBytes = bytes;
    this.readerEventsValue = events;
    if (changed) this.signalWaiting(Rv.SCARD_S_SUCCESS);
  }

  /** Whether a reader of this name is in the table. */
  hasReader(name: string): boolean {
    return this.names.has(name);
  }

  newSession(io: ClientIo, peer = 'client'): ClientSession {
    const s = new ClientSession(this, io, peer);
    this.sessions.add(s);
    return s;
  }

  // ---- used by sessions ----

  /** @internal */ register(s: ClientSession): void {
    this.waiting.add(s);
  }
  /** @internal EHUnregisterClientForEvent: true when the session was still waiting. */
  unregister(s: ClientSession): boolean {
    return this.waiting.delete(s);
  }
  /** @internal */ newContext(s: ClientSession): number {
    let h: number;
    do h = randomInt(1, 0x1_0000_0000); while (this.contexts.has(h));
    this.contexts.set(h, s);
    return h;
  }
  /** @internal */ dropContext(h: number): void {
    this.contexts.delete(h);
  }
  /** @internal */ contextOwner(h: number): ClientSession | undefined {
    return this.contexts.get(h >>> 0);
  }
  /** @internal hCard values are int32 on the wire and unique across the service, like pcscd's. */
  newHandle(): number {
    let h: number;
    do h = randomInt(1, 0x8000_0000); while (this.handles.has(h));
    this.handles.add(h);
    return h;
  }
  /** @internal */ dropHandle(h: number): void {
    this.handles.delete(h);
  }
  /** @internal */ sessionEnded(s: ClientSession): void {
    this.sessions.delete(s);
    this.waiting.delete(s);
  }

  private signalWaiting(rv: number): void {
    const list = [...this.waiting];
    this.waiting.clear();
    for (const s of list) {
      // A 4:6 client whose array is still to be sent will see this change in it: it
      // stays registered for the next one instead of being signalled (see absorbChange).
      if (s.absorbChange()) this.waiting.add(s);
      else s.signal(rv);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface OpenHandle {
  readonly backend: BackendHandle;
}

export class ClientSession {
  private readonly decoder = new RequestDecoder();
  /** The negotiated protocol minor, or null before (or without) a successful CMD_VERSION. */
  private minor: ProtocolMinor | null = null;
  /** pcscd's threadContext->hContext: one context per connection, 0 when none. */
  private context = 0;
  private readonly cards = new Map<number, OpenHandle>();
  private busy = false;
  /** The transport was told to stop reading (bytes came while a request was in progress). */
  private paused = false;
  private finished = false;
  /** 4:6: registered by CMD_WAIT_READER_STATE_CHANGE and not yet sent the array. */
  private awaitingArray = false;
  /** A signal held back until the client has read its array (see signal()). */
  private deferredSignal: number | null = null;
  /** The table changed while this 4:6 client was between WAIT and its array. */
  private changedBeforeArray = false;
  /** The array size this client was last told by CMD_GET_READERS_STATE_SIZE. */
  private reportedSize: number | null = null;
  /** The TRANSMIT in the backend (one request at a time) and its handle. */
  private txRequest: Request | null = null;
  private txCard: OpenHandle | null = null;
  /** TRANSMIT answers are written into this buffer, reused while the transport is done with it. */
  private replyBuffer: Buffer | null = null;
  /** The last view of replyBuffer that was sent (reused for a reply of the same length). */
  private replyView: Buffer | null = null;

  // Bound once, not per APDU: the continuations of a TRANSMIT and of the request loop.
  private readonly transmitted = (response: Uint8Array): void => this.settleTransmit(response, false);
  private readonly transmitFailed = (e: unknown): void => this.settleTransmit(e, true);
  /** Where the backend's transmitTo hands a TRANSMIT's outcome: answered, then the next request, in the same turn. */
  private readonly sink: TransmitSink = { answered: this.transmitted, failed: this.transmitFailed };
  private readonly drainNext = (): void => this.drain();
  private readonly drainFailed = (e: unknown): void => {
    this.fail(`internal error: ${e instanceof Error ? e.message : String(e)}`);
    this.idle();
  };

  constructor(private readonly service: PcscService, private readonly io: ClientIo, readonly peer: string) {}

  get protocolMinor(): ProtocolMinor | null {
    return this.minor;
  }
  get hContext(): number {
    return this.context;
  }
  get handleCount(): number {
    return this.cards.size;
  }
  get isFinished(): boolean {
    return this.finished;
  }

  /**
   * Bytes from the client. `transient`: `bytes` is a view of a read buffer the transport
   * reuses once this returns (server.ts's one read buffer), so whatever of it stays
   * buffered undecoded is copied before returning; decoded requests are copies anyway.
   */
  receive(bytes: Uint8Array, transient = false): void {
    if (this.finished) return;
    this.decoder.push(bytes);
    if (this.decoder.bufferedBytes > MAX_BUFFERED_BYTES) {
      this.fail(`sent ${this.decoder.bufferedBytes} bytes without reading the replies`);
    } else if (this.busy) {
      // More bytes while a request waits on the backend (a client that does not wait for
      // its replies): stop reading until the requests are done, as pcscd's thread does.
      // Only then, not around every request: a pause and a resume per APDU cost more than
      // the APDU's own work in this process.
      if (!this.paused) {
        this.paused = true;
        this.io.pause?.();
      }
    } else {
      this.pump();
    }
    if (transient && this.decoder.bufferedBytes > 0) this.decoder.retain(bytes.buffer);
  }

  /** The client closed its side or the connection broke. */
  ended(): void {
    if (this.finished) return;
    const half = this.decoder.end();
    if (half) this.service.log('debug', `${this.peer}: ${half.message}`);
    void this.cleanup();
  }

  /**
   * A 4:6 client registers (WAIT) and then reads the replies to GET_READERS_STATE_SIZE,
   * _ARRAY and often GET_READER_EVENTS before it waits for a signal. pcscd signals
   * whenever a change happens, so a change in that window puts the signal where the
   * client reads the array size or the reader events (a race in pcscd). Here a change
   * before the array is sent is in the array, and the client stays registered for the
   * next change instead of being signalled. Returns true when the change was absorbed.
   */
  absorbChange(): boolean {
    if (this.finished || !this.awaitingArray) return false;
    this.changedBeforeArray = true;
    return true;
  }

  /** EHSignalEventToClients / MSGSignalClient: a wait_reader_state_change with `rv`. */
  signal(rv: number): void {
    if (this.finished) return;
    if (this.awaitingArray) {
      // A cancel before the array: written after it (a signal before the array
      // replies would be read as the array size).
      this.deferredSignal = rv;
      return;
    }
    this.io.send(encodeStruct('wait_reader_state_change', { timeOut: 0, rv }));
  }

  private flushDeferred(): void {
    this.awaitingArray = false;
    this.changedBeforeArray = false;
    if (this.deferredSignal !== null) {
      const rv = this.deferredSignal;
      this.deferredSignal = null;
      this.signal(rv);
    }
  }

  /** Serves the decoded requests in order, one at a time; a request that waits on the backend continues the loop when done. */
  private pump(): void {
    if (this.busy) return;
    this.busy = true;
    this.drain();
  }

  private drain(): void {
    try {
      while (!this.finished) {
        const d = this.decoder.next();
        if (d === null) break;
        if ('error' in d) {
          this.fail(describeWireError(d.error));
          break;
        }
        const pending = this.handle(d.request);
        if (pending) {
          // No async frame and no closure per request: the bound continuations go on from here
          // (a TRANSMIT's go on themselves, in settleTransmit).
          if (pending !== IN_BACKEND) pending.then(this.drainNext, this.drainFailed);
          return;
        }
      }
    } catch (e) {
      this.fail(`internal error: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.idle();
  }

  private idle(): void {
    this.busy = false;
    if (this.paused) {
      this.paused = false;
      if (!this.finished) this.io.resume?.();
    }
  }

  private fail(reason: string): void {
    if (this.finished) return;
    this.service.log('info', `${this.peer}: connection closed: ${reason}`);
    this.io.close(reason);
    void this.cleanup();
  }

  /** MSGCleanupClient: leave the wait list, drop the context, release every handle. */
  private async cleanup(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.service.sessionEnded(this);
    if (this.context) this.service.dropContext(this.context);
    await this.abandonAll();
  }

  private async abandonAll(): Promise<void> {
    const cards = [...this.cards.entries()];
    this.cards.clear();
    for (const [h, c] of cards) {
      this.service.dropHandle(h);
      try {
        await this.service.backend.abandon(c.backend);
      } catch (e) {
        this.service.log('warn', `${this.peer}: releasing a handle failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  private send(bytes: Uint8Array): void {
    if (!this.finished) this.io.send(bytes);
  }

  private reply(name: Parameters<typeof replyStruct>[0], req: Request, changes: StructValue, trailer?: Uint8Array): void {
    this.send(replyStruct(name, req, changes, HOST_LITTLE_ENDIAN, trailer));
  }

  /** Handles one request; returns a promise only when it waits on the backend. */
  private handle(req: Request): Promise<void> | undefined {
    const effectiveMinor = this.minor ?? PROTOCOL_VERSION_MINOR;
    if (commandSinceMinor(req.command) > effectiveMinor) {
      this.fail(`${commandName(req.command)} does not exist in protocol 4:${effectiveMinor}`);
      return;
    }
    // Any reply other than the 4:6 size/array pair comes after a held-back signal.
    if (req.command !== Command.CMD_GET_READERS_STATE_SIZE && req.command !== Command.CMD_GET_READERS_STATE_ARRAY) {
      this.flushDeferred();
    }
    const b = req.body;
    switch (req.command) {
      case Command.CMD_VERSION: {
        const major = b.major as number;
        const minor = b.minor as number;
        if (major === PROTOCOL_VERSION_MAJOR && (SUPPORTED_MINORS as readonly number[]).includes(minor)) {
          this.minor = minor as ProtocolMinor;
          this.service.log('debug', `${this.peer}: protocol ${major}:${minor}`);
          this.reply('version_struct', req, { major, minor, rv: Rv.SCARD_S_SUCCESS });
        } else {
          // winscard_svc.c: any other version gets the server's own and SCARD_E_SERVICE_STOPPED.
          this.service.log('info', `${this.peer}: protocol ${major}:${minor} is not served (4:4, 4:5, 4:6 are)`);
          this.reply('version_struct', req, { major: PROTOCOL_VERSION_MAJOR, minor: PROTOCOL_VERSION_MINOR, rv: Rv.SCARD_E_SERVICE_STOPPED });
        }
        return;
      }
      case Command.SCARD_ESTABLISH_CONTEXT: {
        const scope = b.dwScope as number;
        if (scope > 3) {
          this.reply('establish_struct', req, { rv: Rv.SCARD_E_INVALID_VALUE });
          return;
        }
        if (this.context) this.service.dropContext(this.context);
        this.context = this.service.newContext(this);
        this.reply('establish_struct', req, { hContext: this.context, rv: Rv.SCARD_S_SUCCESS });
        return;
      }
      case Command.SCARD_RELEASE_CONTEXT: {
        const h = (b.hContext as number) >>> 0;
        if (!this.context) {
          this.reply('release_struct', req, { rv: Rv.SCARD_E_INVALID_HANDLE });
          return;
        }
        if (h !== this.context) {
          this.reply('release_struct', req, { rv: Rv.SCARD_E_INVALID_VALUE });
          return;
        }
        return this.abandonAll().then(() => {
          this.service.dropContext(this.context);
          this.context = 0;
          this.reply('release_struct', req, { rv: Rv.SCARD_S_SUCCESS });
        });
      }
      case Command.CMD_GET_READERS_STATE:
        this.send(encodeTable(this.service.readerStates, true));
        return;
      case Command.CMD_WAIT_READER_STATE_CHANGE:
        // 4:6: from the moment it is on the list until it has its array, a signal waits.
        if (effectiveMinor >= 6) this.awaitingArray = true;
        this.service.register(this);
        if (effectiveMinor < 6) this.send(encodeTable(this.service.readerStates, true));
        return;
      case Command.CMD_STOP_WAITING_READER_STATE_CHANGE:
        this.awaitingArray = false;
        this.changedBeforeArray = false;
        // Only a client still on the list gets an answer; otherwise the signal it was
        // sent (an event or a cancel) is that answer.
        if (this.service.unregister(this)) this.reply('wait_reader_state_change', req, { timeOut: 0, rv: Rv.SCARD_S_SUCCESS });
        return;
      case Command.CMD_GET_READER_EVENTS:
        this.send(encodeStruct('get_reader_events', { readerEvents: this.service.readerEvents, rv: Rv.SCARD_S_SUCCESS }));
        return;
      case Command.CMD_GET_READERS_STATE_SIZE: {
        const out = new Uint8Array(4);
        this.reportedSize = this.service.readerStates.length;
        new DataView(out.buffer).setInt32(0, this.reportedSize, HOST_LITTLE_ENDIAN);
        this.send(out);
        return;
      }
      case Command.CMD_GET_READERS_STATE_ARRAY: {
        // Exactly as many entries as the client was told: a reader added in between
        // (the array grew) must not make it read the tail as the next reply.
        const table = this.service.readerStates;
        const n = this.reportedSize ?? table.length;
        this.reportedSize = null;
        this.send(encodeTable(table.slice(0, n), false));
        if (this.changedBeforeArray && n < table.length && this.service.unregister(this)) {
          // The change is past the end of what it could be sent: signal it, so its next
          // round asks the size again.
          this.deferredSignal ??= Rv.SCARD_S_SUCCESS;
        }
        this.flushDeferred();
        return;
      }
      case Command.SCARD_CANCEL: {
        const target = this.service.contextOwner(b.hContext as number);
        let rv: number = Rv.SCARD_E_INVALID_HANDLE;
        if (target) {
          rv = Rv.SCARD_S_SUCCESS;
          if (this.service.unregister(target)) target.signal(Rv.SCARD_E_CANCELLED);
          this.service.backend.cancel(target.backendHandles());
        }
        this.reply('cancel_struct', req, { rv });
        return;
      }
      case Command.SCARD_CONNECT:
        return this.connect(req);
      case Command.SCARD_TRANSMIT:
        return this.transmit(req);
      default:
        return this.cardCall(req);
    }
  }

  /** @internal */ backendHandles(): BackendHandle[] {
    return [...this.cards.values()].map((c) => c.backend);
  }

  private async connect(req: Request): Promise<void> {
    const b = req.body;
    const reader = b.szReader as string;
    const share = b.dwShareMode as number;
    const preferred = b.dwPreferredProtocols as number;
    const h = (b.hContext as number) >>> 0;
    let rv: number;
    // Order of winscard.c SCardConnect, then MSGAddHandle's context check.
    if (lacksProtocol(share, preferred)) {
      rv = Rv.SCARD_E_PROTO_MISMATCH;
    } else if (!SHARE_MODES.includes(share)) {
      rv = Rv.SCARD_E_INVALID_VALUE;
    } else if (!this.service.hasReader(reader)) {
      rv = Rv.SCARD_E_UNKNOWN_READER;
    } else if (!this.context) {
      rv = Rv.SCARD_E_INVALID_HANDLE;
    } else if (h !== this.context) {
      rv = Rv.SCARD_E_INVALID_VALUE;
    } else if (this.cards.size >= MAX_HANDLES_PER_CLIENT) {
      this.service.log('info', `${this.peer}: ${MAX_HANDLES_PER_CLIENT} card handles already; pcscd refuses more the same way`);
      rv = Rv.SCARD_E_NO_MEMORY;
    } else {
      try {
        const c = await this.service.backend.connect(reader, share, preferred, this.peer);
        if (this.finished) {
          // The client died while connecting: nobody will ever disconnect this handle.
          await this.service.backend.abandon(c.handle);
          return;
        }
        const hCard = this.service.newHandle();
        this.cards.set(hCard, { backend: c.handle });
        this.reply('connect_struct', req, { hCard, dwActiveProtocol: c.activeProtocol, rv: Rv.SCARD_S_SUCCESS });
        return;
      } catch (e) {
        rv = rvOf(e);
        this.logFailure(req, e);
      }
    }
    this.reply('connect_struct', req, { rv });
  }

  private async cardCall(req: Request): Promise<void> {
    const b = req.body;
    const hCard = b.hCard as number;
    const card = this.cards.get(hCard);
    if (!card) {
      // MSGCheckHandleAssociation: a handle of another client (or none) ends this connection.
      this.fail(`${commandName(req.command)} on a handle this client does not own`);
      return;
    }
    const backend = this.service.backend;
    const refused = argumentRefusal(req);
    if (refused !== undefined) {
      this.replyFailure(req, refused);
      return;
    }
    try {
      switch (req.command) {
        case Command.SCARD_RECONNECT: {
          const r = await backend.reconnect(card.backend, b.dwShareMode as number, b.dwPreferredProtocols as number, b.dwInitialization as number);
          this.reply('reconnect_struct', req, { dwActiveProtocol: r.activeProtocol, rv: Rv.SCARD_S_SUCCESS });
          return;
        }
        case Command.SCARD_DISCONNECT:
          await backend.disconnect(card.backend, b.dwDisposition as number);
          this.cards.delete(hCard);
          this.service.dropHandle(hCard);
          this.reply('disconnect_struct', req, { rv: Rv.SCARD_S_SUCCESS });
          return;
        case Command.SCARD_BEGIN_TRANSACTION:
          await backend.beginTransaction(card.backend);
          this.reply('begin_struct', req, { rv: Rv.SCARD_S_SUCCESS });
          return;
        case Command.SCARD_END_TRANSACTION:
          await backend.endTransaction(card.backend, b.dwDisposition as number);
          this.reply('end_struct', req, { rv: Rv.SCARD_S_SUCCESS });
          return;
        case Command.SCARD_STATUS:
          await backend.status(card.backend);
          this.reply('status_struct', req, { rv: Rv.SCARD_S_SUCCESS });
          return;
        case Command.SCARD_CONTROL: {
          const limit = b.cbRecvLength as number;
          const out = await backend.control(card.backend, b.dwControlCode as number, req.data!, limit);
          const fits = out.length <= limit;
          this.reply('control_struct', req, { dwBytesReturned: out.length, rv: fits ? Rv.SCARD_S_SUCCESS : Rv.SCARD_E_INSUFFICIENT_BUFFER }, fits ? out : undefined);
          return;
        }
        case Command.SCARD_GET_ATTRIB: {
          const max = b.cbAttrLen as number;
          if (max > MAX_BUFFER_SIZE) {
            this.fail(`GET_ATTRIB asks for ${max} bytes, over ${MAX_BUFFER_SIZE}`);
            return;
          }
          const value = await backend.getAttrib(card.backend, b.dwAttrId as number, max);
          if (value.length > max) {
            this.reply('getset_struct', req, { cbAttrLen: value.length, rv: Rv.SCARD_E_INSUFFICIENT_BUFFER });
            return;
          }
          const attr = new Uint8Array(MAX_BUFFER_SIZE);
          attr.set(value);
          this.reply('getset_struct', req, { pbAttr: attr, cbAttrLen: value.length, rv: Rv.SCARD_S_SUCCESS });
          return;
        }
        case Command.SCARD_SET_ATTRIB: {
          const len = b.cbAttrLen as number;
          if (len > MAX_BUFFER_SIZE) {
            this.fail(`SET_ATTRIB sends ${len} bytes, over ${MAX_BUFFER_SIZE}`);
            return;
          }
          await backend.setAttrib(card.backend, b.dwAttrId as number, (b.pbAttr as Uint8Array).subarray(0, len));
          this.reply('getset_struct', req, { rv: Rv.SCARD_S_SUCCESS });
          return;
        }
        default:
          this.fail(`unexpected ${commandName(req.command)}`);
      }
    } catch (e) {
      const rv = rvOf(e);
      this.logFailure(req, e);
      this.replyFailure(req, rv);
    } finally {
      // The client died while this call was in the backend: cleanup already abandoned
      // the handle, but the call may have taken a transaction since. Release it again.
      if (this.finished && req.command !== Command.SCARD_DISCONNECT) await backend.abandon(card.backend).catch(() => {});
    }
  }

  /**
   * SCARD_TRANSMIT, the call of every APDU: the same rules as cardCall (the handle must be
   * this client's; a client that died meanwhile has its handle released again), without an
   * async frame or a closure per APDU, and the answer written into the session's reply buffer.
   */
  private transmit(req: Request): Promise<void> | undefined {
    const b = req.body;
    const card = this.cards.get(b.hCard as number);
    if (!card) {
      this.fail(`${commandName(req.command)} on a handle this client does not own`);
      return;
    }
    this.txRequest = req;
    this.txCard = card;
    const backend = this.service.backend;
    const pci = { protocol: b.ioSendPciProtocol as number, pciLength: b.ioSendPciLength as number };
    try {
      if (backend.transmitTo) {
        // The answer comes to the sink (settleTransmit): no promise of the session's per APDU.
        backend.transmitTo(card.backend, pci, req.data!, b.pcbRecvLength as number, this.sink);
      } else {
        backend.transmit(card.backend, pci, req.data!, b.pcbRecvLength as number).then(this.transmitted, this.transmitFailed);
      }
    } catch (e) {
      return this.failTransmit(e);
    }
    return IN_BACKEND;
  }

  /**
   * A TRANSMIT's outcome from the backend: the reply written, then the request loop goes on
   * at once (what drain's continuation did one microtask later). Never throws: it runs as the
   * backend's reaction.
   */
  private settleTransmit(outcome: unknown, failed: boolean): void {
    let late: Promise<void> | undefined;
    try {
      late = failed ? this.failTransmit(outcome) : this.answerTransmit(outcome as Uint8Array);
    } catch (e) {
      this.drainFailed(e);
      return;
    }
    if (late) late.then(this.drainNext, this.drainFailed);
    else this.drain();
  }

  private answerTransmit(response: Uint8Array): Promise<void> | undefined {
    const req = this.txRequest!;
    const card = this.txCard!;
    this.txRequest = null;
    this.txCard = null;
    if (this.finished) return this.releaseLate(card);
    const b = req.body;
    const limit = b.pcbRecvLength as number;
    const fits = response.length <= limit;
    const need = STRUCTS.transmit_struct.size + (fits ? response.length : 0);
    let out = this.replyBuffer;
    if (out === null || out.length < need) {
      out = Buffer.allocUnsafeSlow(Math.max(need, REPLY_BUFFER_START));
      this.replyBuffer = out;
      this.replyView = null;
    }
    // pcscd's receive PCI is the send PCI it was given (protocol and length) for T=0 and T=1.
    const n = writeTransmitReply(out, req.raw, b.ioSendPciProtocol as number, b.ioSendPciLength as number, fits ? Rv.SCARD_S_SUCCESS : Rv.SCARD_E_INSUFFICIENT_BUFFER, response, fits);
    let view = this.replyView;
    if (view === null || view.length !== n) {
      view = out.subarray(0, n);
      this.replyView = view;
    }
    // The struct and the answer in one write (pcscd sends two; the client reads them as two either way).
    if (this.io.send(view) !== true || out.length > REPLY_BUFFER_KEEP) {
      // The transport still holds the bytes (a queued write), or the buffer is an extended answer's:
      // the next answer gets a buffer of its own.
      this.replyBuffer = null;
      this.replyView = null;
    }
    return undefined;
  }

  private failTransmit(e: unknown): Promise<void> | undefined {
    const req = this.txRequest!;
    const card = this.txCard!;
    this.txRequest = null;
    this.txCard = null;
    this.logFailure(req, e);
    this.replyFailure(req, rvOf(e));
    if (this.finished) return this.releaseLate(card);
    return undefined;
  }

  /** The client died while this call was in the backend: cleanup already abandoned the handle, but the call may have taken a transaction since. */
  private releaseLate(card: OpenHandle): Promise<void> {
    return this.service.backend.abandon(card.backend).catch(() => {});
  }

  private replyFailure(req: Request, rv: number): void {
    switch (req.command) {
      // pcscd sends SCARD_PROTOCOL_UNDEFINED with a failure (winscard_svc.c 608, 618), which libpcsclite copies out.
      case Command.SCARD_RECONNECT: this.reply('reconnect_struct', req, { dwActiveProtocol: 0, rv }); return;
      case Command.SCARD_DISCONNECT: this.reply('disconnect_struct', req, { rv }); return;
      case Command.SCARD_BEGIN_TRANSACTION: this.reply('begin_struct', req, { rv }); return;
      case Command.SCARD_END_TRANSACTION: this.reply('end_struct', req, { rv }); return;
      case Command.SCARD_STATUS: this.reply('status_struct', req, { rv }); return;
      case Command.SCARD_TRANSMIT: this.reply('transmit_struct', req, { pcbRecvLength: 0, rv }); return;
      case Command.SCARD_CONTROL: this.reply('control_struct', req, { dwBytesReturned: 0, rv }); return;
      case Command.SCARD_GET_ATTRIB: this.reply('getset_struct', req, { cbAttrLen: 0, rv }); return;
      case Command.SCARD_SET_ATTRIB: this.reply('getset_struct', req, { rv }); return;
    }
  }

  private logFailure(req: Request, e: unknown): void {
    // The error's message comes from the backend; request data never goes into a log.
    const level = e instanceof BackendError ? 'debug' : 'warn';
    this.service.log(level, `${this.peer}: ${commandName(req.command)} → 0x${rvOf(e).toString(16)}${e instanceof Error ? ` (${e.message})` : ''}`);
  }
}

export function describeWireError(e: WireError): string {
  return `${e.kind}: ${e.message}`;
}

const SHARE_MODES: readonly number[] = [ShareMode.SCARD_SHARE_EXCLUSIVE, ShareMode.SCARD_SHARE_SHARED, ShareMode.SCARD_SHARE_DIRECT];
const INITIALIZATIONS: readonly number[] = [Disposition.SCARD_LEAVE_CARD, Disposition.SCARD_RESET_CARD, Disposition.SCARD_UNPOWER_CARD];
const DISPOSITIONS: readonly number[] = [...INITIALIZATIONS, Disposition.SCARD_EJECT_CARD];
const P = ProtocolBits;
const KNOWN_PROTOCOLS = P.SCARD_PROTOCOL_T0 | P.SCARD_PROTOCOL_T1 | P.SCARD_PROTOCOL_RAW | P.SCARD_PROTOCOL_ANY_OLD;

/** SCardConnect's and SCardReconnect's SCARD_E_PROTO_MISMATCH before anything: no protocol pcsc-lite knows, unless DIRECT. */
const lacksProtocol = (share: number, preferred: number): boolean => share !== ShareMode.SCARD_SHARE_DIRECT && !(preferred & KNOWN_PROTOCOLS);

/**
 * winscard.c's argument checks, made before the handle's reader is looked up (2.3.3 and 2.5.1 alike), so a
 * refused call changes nothing: SCardReconnect (538–553) takes LEAVE, RESET or UNPOWER only (not EJECT), then
 * a known share mode, then a protocol unless DIRECT; SCardDisconnect (836–840) and SCardEndTransaction
 * (1104–1108) take the four dispositions. SCARD_E_INVALID_VALUE or SCARD_E_PROTO_MISMATCH; undefined: go on.
 */
function argumentRefusal(req: Request): number | undefined {
  const b = req.body;
  switch (req.command) {
    case Command.SCARD_RECONNECT: {
      const share = b.dwShareMode as number;
      if (!INITIALIZATIONS.includes(b.dwInitialization as number) || !SHARE_MODES.includes(share)) return Rv.SCARD_E_INVALID_VALUE;
      return lacksProtocol(share, b.dwPreferredProtocols as number) ? Rv.SCARD_E_PROTO_MISMATCH : undefined;
    }
    case Command.SCARD_DISCONNECT:
    case Command.SCARD_END_TRANSACTION:
      return DISPOSITIONS.includes(b.dwDisposition as number) ? undefined : Rv.SCARD_E_INVALID_VALUE;
    default:
      return undefined;
  }
}
