// The vpcd driver: a virtual reader that card emulators (vsmartcard's vicc,
// jCardSim's remote mode) connect to over TCP, speaking the vpcd protocol
// (framing.ts). One slot per listening port; a peer connecting is a card
// inserted, the socket closing a card removed, reported at once (no polling).
// All ports form one device, so the manager names them like pcscd's vpcd does:
// `Virtual PCD 00 00`, `Virtual PCD 00 01`, …
//
// A peer is a foreign program, so nothing it sends may hurt the reader: bytes
// arriving when no reply is awaited, a reply that stalls, or a second peer on a
// busy port are logged and the offending peer is dropped; the port keeps listening.

import net from 'node:net';
import { ScError } from '../../util/errors';
import { toSpacedHex } from '../../util/hex';
import type { Driver, DriverSink, PowerMode, Protocol, ReaderFacts, SlotDescriptor, TransmitSink } from '../driver';
import { encodeFrame, FrameDecoder, MAX_FRAME_BODY, VPCD_CTRL } from './framing';

export interface VpcdOptions {
  /** One reader slot per port; vicc's default is 35963 (pcscd's vpcd uses 35963 and 35964). */
  ports: number[];
  /** Listening address; default 127.0.0.1. Anything else exposes the reader to the network. */
  host?: string;
  /** How long a card emulator may take to answer one command (default 15 s). */
  responseTimeoutMs?: number;
  /** Base reader name (default `Virtual PCD`, like pcscd's vpcd). */
  readerName?: string;
}

export const VPCD_READER_NAME = 'Virtual PCD';
export const VPCD_DEFAULT_TIMEOUT_MS = 15_000;
/** PC/SC part 10 CM_IOCTL_GET_FEATURE_REQUEST as a plain number (3400); this reader has no features. */
const FEATURE_REQUEST_FUNCTION = 3400;
/** The plain function number and SCARD_CTL_CODE(3400) as pcsc-lite and Windows spell it. */
const FEATURE_REQUEST_CODES = [FEATURE_REQUEST_FUNCTION, 0x42000000 + FEATURE_REQUEST_FUNCTION, (0x31 << 16) | (FEATURE_REQUEST_FUNCTION << 2)];

interface Waiter {
  /** Hears the answer: the gate's call itself (transmitTo), or a request's promise. */
  to: TransmitSink;
  /** When the request left (performance.now()); the peer's one deadline timer checks it. */
  sentAt: number;
  /** The command (its header names it in messages, built only when one is needed), or a name. */
  what: Uint8Array | string;
  /** A card command: its answer needs a status word. */
  apdu: boolean;
  /** Sent outside `serialized` (transmit on an idle slot): frees the slot itself when settled. */
  releasesSlot: boolean;
}

interface Peer {
  socket: net.Socket;
  id: string;
  decoder: FrameDecoder;
  waiter: Waiter | null;
  /**
   * One timer per peer, not one per request: armed when a request leaves and
   * none is armed, it re-arms itself for the time left while answers keep coming.
   */
  deadline: NodeJS.Timeout | null;
  powered: boolean;
  gone: boolean;
}

interface PortSlot {
  key: string;
  port: number;
  index: number;
  server: net.Server | null;
  peer: Peer | null;
  /** Commands to one card run one after the other, whatever the caller does: one runs, the rest wait here. */
  busy: boolean;
  backlog: Array<() => void>;
  /** Starts the next waiting command (made once per slot, not per command). */
  next: () => void;
  unavailable?: string;
}

/** `new Promise(capture)` hands out its resolving functions without a closure per promise. */
const captured: { resolve?: (frame: Uint8Array) => void; reject?: (e: unknown) => void } = {};
function capture(resolve: (frame: Uint8Array) => void, reject: (e: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

/** A promise and the TransmitSink that settles it (the requests outside the hot path). */
function promiseSink(): { promise: Promise<Uint8Array>; to: TransmitSink } {
  const promise = new Promise<Uint8Array>(capture);
  const to: TransmitSink = { answered: captured.resolve!, failedInDriver: captured.reject! };
  captured.resolve = captured.reject = undefined;
  return { promise, to };
}

function describeWhat(what: Uint8Array | string): string {
  return typeof what === 'string' ? what : `APDU ${toSpacedHex(what.subarray(0, 4))}`;
}

export function createVpcdDriver(options: VpcdOptions): Driver {
  return new VpcdDriver(options);
}

export class VpcdDriver implements Driver {
  readonly id = 'vpcd';
  private sink: DriverSink | null = null;
  private readonly slots = new Map<string, PortSlot>();
  private readonly host: string;
  private readonly timeoutMs: number;
  private readonly readerName: string;

  constructor(private readonly options: VpcdOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.timeoutMs = options.responseTimeoutMs ?? VPCD_DEFAULT_TIMEOUT_MS;
    this.readerName = options.readerName ?? VPCD_READER_NAME;
  }

  async start(sink: DriverSink): Promise<void> {
    this.sink = sink;
    if (!['127.0.0.1', '::1', 'localhost'].includes(this.host)) {
      sink.log('warn', `vpcd: listening on ${this.host}, not loopback: any machine that reaches it can act as a card`);
    }
    const ports = [...new Set(this.options.ports)];
    await Promise.all(
      ports.map(async (port, index) => {
        const slot: PortSlot = { key: `vpcd:${port}`, port, index, server: null, peer: null, busy: false, backlog: [], next: () => undefined };
        slot.next = () => {
          slot.busy = false;
          const next = slot.backlog.shift();
          if (next) next();
        };
        this.slots.set(slot.key, slot);
        try {
          slot.server = await this.listen(slot);
          sink.log('info', `vpcd: waiting for a card emulator on ${this.host}:${port} (e.g. vicc -t iso7816 -H ${this.host} -P ${port})`);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          slot.unavailable =
            err.code === 'EADDRINUSE'
              ? `Port ${port} is in use by another program (pcscd's vpcd uses 35963 and 35964); choose another port in smartcard.vpcd.ports or stop that program.`
              : `Cannot listen on ${this.host}:${port}: ${err.message}`;
          sink.log('error', `vpcd: ${slot.unavailable}`);
        }
        sink.slotAdded(this.describe(slot));
      }),
    );
  }

  async stop(): Promise<void> {
    const sink = this.sink;
    this.sink = null; // no events after stop
    await Promise.all(
      [...this.slots.values()].map(async (slot) => {
        if (slot.peer) this.dropPeer(slot, slot.peer, new ScError('CANCELLED', 'The vpcd reader was stopped.'));
        const server = slot.server;
        slot.server = null;
        if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
      }),
    );
    this.slots.clear();
    sink?.log('debug', 'vpcd: stopped');
  }

  async powerOn(key: string, mode: PowerMode): Promise<Uint8Array> {
    return this.serialized(key, async (slot, peer) => {
      if (mode === 'warm' && peer.powered) {
        this.send(peer, Uint8Array.of(VPCD_CTRL.RESET));
      } else {
        if (peer.powered) this.send(peer, Uint8Array.of(VPCD_CTRL.POWER_OFF));
        this.send(peer, Uint8Array.of(VPCD_CTRL.POWER_ON));
      }
      const atr = await this.request(slot, peer, Uint8Array.of(VPCD_CTRL.GET_ATR), 'GET ATR', false);
      if (atr.length < 2) {
        this.dropPeer(slot, peer, undefined, `sent an ATR of ${atr.length} bytes`);
        throw new ScError('PROTOCOL', `The card emulator on port ${slot.port} sent an invalid ATR (${atr.length} bytes); it was disconnected.`);
      }
      peer.powered = true;
      return atr;
    });
  }

  async powerOff(key: string): Promise<void> {
    await this.serialized(key, async (_slot, peer) => {
      this.send(peer, Uint8Array.of(VPCD_CTRL.POWER_OFF));
      peer.powered = false;
    });
  }

  /** vpcd has no protocol parameters to set: the emulator exchanges whole APDUs. */
  async setProtocol(key: string, _protocol: Protocol, _atr: Uint8Array): Promise<void> {
    this.slot(key);
  }

  transmit(key: string, command: Uint8Array, protocol: Protocol): Promise<Uint8Array> {
    const { promise, to } = promiseSink();
    this.transmitTo(key, command, protocol, to);
    return promise;
  }

  // The hot path of a vpcd exchange (the gate's transmit): no async function, no promise (the
  // answer goes straight to the gate's call), one write, no timer (the peer's deadline timer is reused).
  transmitTo(key: string, command: Uint8Array, _protocol: Protocol, to: TransmitSink): void {
    // A 1-byte frame would be read as a control code (power off, reset…), not an APDU.
    if (command.length < 4) return to.failedInDriver(new ScError('BAD_REQUEST', `A command APDU has at least 4 bytes (CLA INS P1 P2); got ${command.length}.`));
    if (command.length > MAX_FRAME_BODY) return to.failedInDriver(new ScError('BAD_REQUEST', `A vpcd command can carry at most ${MAX_FRAME_BODY} bytes; got ${command.length}.`));
    // An idle slot with a powered card (every command of a script): no queue closure and no
    // promise for the slot's release; the answer (or the peer's loss) frees the slot.
    const slot = this.slots.get(key);
    const peer = slot?.peer;
    if (slot && !slot.busy && !slot.unavailable && peer && peer.powered && !peer.gone) {
      slot.busy = true;
      this.ask(slot, peer, command, command, true, true, to);
      return;
    }
    this.serialized(key, (slot, peer) => {
      if (!peer.powered) return Promise.reject(new ScError('PROTOCOL', 'The card is not powered; power it on (reset) first.'));
      return this.request(slot, peer, command, command, true);
    }).then((frame) => to.answered(frame), (e: unknown) => to.failedInDriver(e));
  }

  /** vpcd's protocol carries power, reset, ATR and APDUs only: there is nothing to ask, and nothing is made up. */
  async readerFacts(key: string): Promise<ReaderFacts> {
    this.slot(key);
    return { source: 'vpcd', note: 'vpcd gives no reader attributes: its protocol carries only power, reset, the ATR and APDUs.' };
  }

  async control(key: string, code: number, _data: Uint8Array): Promise<Uint8Array> {
    this.slot(key);
    if (FEATURE_REQUEST_CODES.includes(code)) return new Uint8Array(0);
    throw new ScError('NOT_SUPPORTED', `The vpcd reader has no control commands (code 0x${code.toString(16)}); only the PC/SC part 10 feature request (3400) is answered, with an empty list.`);
  }

  // ---- plumbing ---------------------------------------------------------------

  private listen(slot: PortSlot): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => this.accept(slot, socket));
      server.maxConnections = 64; // rapid reconnects may overlap briefly; extra ones are refused below
      server.once('error', reject);
      server.listen({ port: slot.port, host: this.host, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.sink?.log('error', `vpcd: port ${slot.port}: ${e.message}`));
        resolve(server);
      });
    });
  }

  private accept(slot: PortSlot, socket: net.Socket): void {
    const id = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('error', () => undefined); // reported through 'close'
    if (!this.sink || slot.server === null) {
      socket.destroy();
      return;
    }
    if (slot.peer) {
      this.sink.log('warn', `vpcd: refused card emulator ${id} on port ${slot.port}: ${slot.peer.id} is already connected (one card per reader)`);
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const peer: Peer = { socket, id, decoder: new FrameDecoder(), waiter: null, deadline: null, powered: false, gone: false };
    slot.peer = peer;
    socket.on('data', (data: Buffer) => this.received(slot, peer, data));
    socket.on('close', (hadError) => {
      if (peer.gone) return;
      this.dropPeer(slot, peer, undefined, hadError ? 'connection reset' : undefined);
    });
    this.sink.log('info', `vpcd: card emulator ${id} connected on port ${slot.port} (card inserted)`);
    this.sink.cardInserted(slot.key);
  }

  private received(slot: PortSlot, peer: Peer, data: Buffer): void {
    if (peer.gone) return;
    const waiter = peer.waiter;
    if (!waiter) {
      this.dropPeer(slot, peer, undefined, `sent ${data.length} bytes nobody asked for (${toSpacedHex(data.subarray(0, 8))}${data.length > 8 ? ' …' : ''})`);
      return;
    }
    let frame: Uint8Array;
    if (peer.decoder.pending === 0 && data.length >= 2 && data.length === 2 + ((data[0] << 8) | data[1])) {
      // The usual case: exactly one whole frame in one read (no decoder, no arrays, no copy:
      // a plain view on the read's own memory, which Node never reuses once JavaScript holds it).
      frame = new Uint8Array(data.buffer, data.byteOffset + 2, data.length - 2);
    } else {
      const frames = peer.decoder.push(data);
      if (frames.length === 0) return;
      if (frames.length > 1 || peer.decoder.pending > 0) {
        this.dropPeer(slot, peer, undefined, `sent more than one reply to ${describeWhat(waiter.what)}`);
        return;
      }
      frame = frames[0];
    }
    peer.waiter = null;
    if (waiter.apdu && frame.length < 2) {
      this.dropPeer(slot, peer, undefined, `answered with ${frame.length} bytes (no status word)`);
      waiter.to.failedInDriver(new ScError('PROTOCOL', `The card emulator on port ${slot.port} answered without a status word; it was disconnected.`));
      if (waiter.releasesSlot) slot.next();
      return;
    }
    waiter.to.answered(frame);
    if (waiter.releasesSlot) slot.next();
  }

  /** Sends one frame in one write; control codes POWER_ON/OFF/RESET get no reply. */
  private send(peer: Peer, payload: Uint8Array): void {
    if (peer.gone) throw this.removedError();
    peer.socket.write(encodeFrame(payload));
  }

  private request(slot: PortSlot, peer: Peer, payload: Uint8Array, what: Uint8Array | string, apdu: boolean): Promise<Uint8Array> {
    const { promise, to } = promiseSink();
    this.ask(slot, peer, payload, what, apdu, false, to);
    return promise;
  }

  /** Sends a request whose answer `to` hears (exactly once); `releasesSlot`: the answer or the failure frees the slot. */
  private ask(slot: PortSlot, peer: Peer, payload: Uint8Array, what: Uint8Array | string, apdu: boolean, releasesSlot: boolean, to: TransmitSink): void {
    if (peer.gone) {
      if (releasesSlot) slot.next();
      to.failedInDriver(this.removedError());
      return;
    }
    const waiter: Waiter = { to, sentAt: performance.now(), what, apdu, releasesSlot };
    peer.waiter = waiter;
    if (peer.deadline === null) peer.deadline = setTimeout(() => this.checkDeadline(slot, peer), this.timeoutMs);
    try {
      this.send(peer, payload);
    } catch (e) {
      // send throws only for a peer already gone (dropPeer has run and answered any waiter it found).
      if (peer.waiter === waiter) {
        peer.waiter = null;
        to.failedInDriver(e);
        if (releasesSlot) slot.next();
      }
    }
  }

  /** The peer's deadline timer fired: drop the peer if its request is overdue, else wait for the time left. */
  private checkDeadline(slot: PortSlot, peer: Peer): void {
    peer.deadline = null;
    const waiter = peer.waiter;
    if (!waiter || peer.gone) return;
    const left = waiter.sentAt + this.timeoutMs - performance.now();
    if (left > 1) {
      peer.deadline = setTimeout(() => this.checkDeadline(slot, peer), left);
      return;
    }
    const what = describeWhat(waiter.what);
    const partial = peer.decoder.pending;
    const declared = peer.decoder.expectedLength();
    const detail = partial ? `a partial reply (${partial} of ${declared === undefined ? '?' : declared + 2} bytes)` : 'no reply';
    this.dropPeer(slot, peer, new ScError('TIMEOUT', `The card emulator on port ${slot.port} did not answer ${what} within ${this.timeoutMs} ms (${detail}); it was disconnected. Restart the emulator.`), `${detail} to ${what} after ${this.timeoutMs} ms`);
  }

  /**
   * Forgets a peer: rejects its pending request, closes the socket and reports
   * the card removed. `why` (if any) is logged as a misbehaviour.
   */
  private dropPeer(slot: PortSlot, peer: Peer, error?: ScError, why?: string): void {
    if (peer.gone) return;
    peer.gone = true;
    if (peer.deadline) clearTimeout(peer.deadline);
    peer.deadline = null;
    const waiter = peer.waiter;
    peer.waiter = null;
    waiter?.to.failedInDriver(error ?? this.removedError());
    peer.decoder.reset();
    peer.socket.destroy();
    if (slot.peer === peer) slot.peer = null;
    // After the peer is forgotten: a command waiting for the slot finds no card.
    if (waiter?.releasesSlot) slot.next();
    if (!this.sink) return;
    if (why) this.sink.log('warn', `vpcd: card emulator ${peer.id} on port ${slot.port} ${why}; disconnected it (card removed)`);
    else this.sink.log('info', `vpcd: card emulator ${peer.id} disconnected from port ${slot.port} (card removed)`);
    this.sink.cardRemoved(slot.key);
  }

  private removedError(): ScError {
    return new ScError('CARD_REMOVED', 'The card emulator disconnected (card removed); reconnect it and power the card on again.');
  }

  private serialized<T>(key: string, op: (slot: PortSlot, peer: Peer) => Promise<T>): Promise<T> {
    let slot: PortSlot;
    try { slot = this.slot(key); } catch (e) { return Promise.reject(e); }
    if (slot.busy) {
      return new Promise<T>((resolve, reject) => { slot.backlog.push(() => this.runSerialized(slot, op).then(resolve, reject)); });
    }
    return this.runSerialized(slot, op);
  }

  private runSerialized<T>(slot: PortSlot, op: (slot: PortSlot, peer: Peer) => Promise<T>): Promise<T> {
    slot.busy = true;
    let p: Promise<T>;
    try {
      const peer = slot.peer;
      if (!peer) throw new ScError('NO_CARD', `No card emulator is connected to port ${slot.port}; start one (vicc -t iso7816 -H ${this.host} -P ${slot.port}).`);
      p = op(slot, peer);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(slot.next, slot.next);
    return p;
  }

  private slot(key: string): PortSlot {
    const slot = this.slots.get(key);
    if (!slot) throw new ScError('NO_READER', `No vpcd reader ${key}; the configured ports are ${[...this.slots.values()].map((s) => s.port).join(', ') || 'none'}.`);
    if (slot.unavailable) throw new ScError('READER_UNAVAILABLE', slot.unavailable);
    return slot;
  }

  private describe(slot: PortSlot): SlotDescriptor {
    return {
      key: slot.key,
      name: this.readerName,
      deviceKey: `vpcd:${this.host}`,
      slotIndex: slot.index,
      cardPresent: slot.peer !== null,
      details: { transport: 'vpcd (TCP)', address: `${this.host}:${slot.port}`, emulator: `vicc -t iso7816 -H ${this.host} -P ${slot.port}` },
      ...(slot.unavailable ? { unavailable: slot.unavailable } : {}),
    };
  }
}
