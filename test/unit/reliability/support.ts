// Shared pieces of the reliability tests: a manager over the simulator, and
// tagged commands whose origin the simulated card can tell from its history.
import { SimulatorDriver } from '../../../server/src/drivers/simulator/driver';
import type { Driver, DriverSink, PowerMode, Protocol } from '../../../server/src/drivers/driver';
import type { SimulatedCard } from '../../../server/src/drivers/simulator/card';
import { ReaderManager, type ManagerOptions } from '../../../server/src/manager/manager';
import { fromHex } from '../../../server/src/util/hex';

export async function simulatorManager(opts: ManagerOptions & { card?: 'T=0' | 'T=1' } = {}) {
  const sim = new SimulatorDriver({ card: opts.card ?? 'T=1', readers: 1 });
  const manager = new ReaderManager([sim], opts);
  await manager.start();
  const name = manager.list().readers[0].name;
  const card = (): SimulatedCard => {
    const c = sim.cardIn('sim:0');
    if (!c) throw new Error('no card in the simulator');
    return c;
  };
  return { sim, manager, name, card };
}

/** SELECT by path 5000/5002: the 512-byte EF whose byte i is i & 0xFF. */
export const SELECT_BIG_EF = fromHex('00 A4 08 0C 04 50 00 50 02');

/**
 * READ BINARY at `offset` with Le 1, carrying a 3-byte tag as (ignored) command
 * data: case 4, so the card's history shows who sent it, and the one byte read
 * back (offset & 0xFF) shows the response reached the right caller.
 */
export function taggedRead(client: number, index: number, offset: number): Uint8Array {
  return Uint8Array.of(0x00, 0xb0, (offset >> 8) & 0x7f, offset & 0xff, 0x03, client, index >> 8, index & 0xff, 0x01);
}

/** The tag of a tagged READ BINARY from the card's history, or null for other commands. */
export function tagOf(command: Uint8Array): { client: number; index: number } | null {
  if (command.length !== 9 || command[1] !== 0xb0 || command[4] !== 0x03) return null;
  return { client: command[5], index: (command[6] << 8) | command[7] };
}

/** Resolves when `check` holds, re-checking on every entry the manager emits (no sleeps). */
export function untilEntry(manager: ReaderManager, check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (check()) { resolve(); return; }
    const off = manager.onEntry(() => { if (check()) { off(); resolve(); } });
  });
}

/** Rejects if `p` has not settled after `ms`: how a test reports a hang instead of stalling. */
export async function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms (hang)`)), ms);
  });
  try { return await Promise.race([p, guard]); } finally { clearTimeout(timer); }
}

/**
 * The simulator behind a fault injector: the test decides what the next
 * transmit does (pass, hang, throw, answer garbage) and can pull the reader.
 * Drivers only carry bytes, so faults at this boundary are what a real reader,
 * socket or USB device can do to the manager.
 */
export class FaultyDriver implements Driver {
  readonly id = 'faulty';
  sink: DriverSink | null = null;
  /** Called before each transmit; return a promise to replace the card's answer. */
  onTransmit: ((command: Uint8Array, n: number) => Promise<Uint8Array> | undefined) | null = null;
  onPowerOn: ((n: number) => Promise<Uint8Array> | undefined) | null = null;
  transmits = 0;
  powerOns = 0;
  /** Transmits started and not yet settled (a hang shows here). */
  inFlight = 0;
  private entered: Array<() => void> = [];

  constructor(readonly inner: SimulatorDriver = new SimulatorDriver({ card: 'T=1', readers: 1 })) {}

  async start(sink: DriverSink): Promise<void> {
    this.sink = sink;
    await this.inner.start(sink);
  }
  stop(): Promise<void> { return this.inner.stop(); }
  powerOn(key: string, mode: PowerMode): Promise<Uint8Array> {
    const injected = this.onPowerOn?.(++this.powerOns);
    return injected ?? this.inner.powerOn(key, mode);
  }
  powerOff(key: string): Promise<void> { return this.inner.powerOff(key); }
  setProtocol(key: string, protocol: Protocol): Promise<void> { return this.inner.setProtocol(key, protocol); }
  control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> { return this.inner.control(key, code, data); }

  async transmit(key: string, command: Uint8Array, protocol: Protocol): Promise<Uint8Array> {
    const n = ++this.transmits;
    this.inFlight++;
    for (const w of this.entered.splice(0)) w();
    try {
      const injected = this.onTransmit?.(command, n);
      return await (injected ?? this.inner.transmit(key, command));
    } finally {
      this.inFlight--;
    }
  }

  /** Resolves when the next transmit has started (e.g. to fault it while it is in flight). */
  nextTransmit(): Promise<void> {
    return new Promise((resolve) => this.entered.push(resolve));
  }

  /** The reader goes away (USB unplugged, vpcd socket closed with the reader, pcscd gone). */
  removeReader(key = 'sim:0'): void { this.sink!.slotRemoved(key); }

  /** The reader comes back with its card. */
  addReader(key = 'sim:0'): void {
    this.sink!.slotAdded({ key, name: 'Faulty Simulator', deviceKey: key, slotIndex: 0, cardPresent: this.inner.cardIn(key) !== null });
  }
}

export async function faultyManager(opts: ManagerOptions = {}) {
  const driver = new FaultyDriver();
  const manager = new ReaderManager([driver], opts);
  await manager.start();
  const name = () => manager.list().readers[0]?.name ?? '';
  return { driver, manager, name };
}

/** A small deterministic PRNG (mulberry32) so random faults reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
