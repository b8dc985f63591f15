// Loads scripts/refstack.mjs at run time (it stays an ES module, also used as a CLI)
// and shares small helpers between the reference stack tests.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DriverSink, LogLevel, SlotDescriptor } from '../../server/src/drivers/driver';
export { freePort } from '../support/net';

export interface StackProcess {
  pid: number;
  exited: Promise<{ code: number | null; signal: string | null }>;
  output(): string;
  stop(): Promise<void>;
}

export interface RefStack {
  VICC_ATR: string;
  VPCD_PORTS: number[];
  startPcscd(opts?: { anyAddress?: boolean; apduLog?: boolean; timeoutMs?: number }): Promise<StackProcess>;
  startVicc(opts?: { port?: number; host?: string; type?: string }): StackProcess;
  stopRecorded(): Promise<unknown[]>;
  prepare(): { preload: string; pylib: string; conf: string };
}

export async function loadRefStack(): Promise<RefStack> {
  const url = pathToFileURL(path.resolve('scripts/refstack.mjs')).href;
  return (await import(url)) as RefStack;
}


type EventName = 'slotAdded' | 'slotRemoved' | 'cardInserted' | 'cardRemoved';

/** Records driver events; `next(kind, key)` resolves on the next matching event. */
export class RecordingSink implements DriverSink {
  readonly slots = new Map<string, SlotDescriptor>();
  readonly events: { kind: EventName; key: string }[] = [];
  readonly logs: { level: LogLevel; message: string }[] = [];
  private waiters: { kind: EventName; key?: string; resolve: () => void }[] = [];

  slotAdded(slot: SlotDescriptor): void {
    this.slots.set(slot.key, slot);
    this.fire('slotAdded', slot.key);
  }
  slotRemoved(key: string): void {
    this.slots.delete(key);
    this.fire('slotRemoved', key);
  }
  cardInserted(key: string): void {
    this.fire('cardInserted', key);
  }
  cardRemoved(key: string): void {
    this.fire('cardRemoved', key);
  }
  log(level: LogLevel, message: string): void {
    this.logs.push({ level, message });
  }
  next(kind: EventName, key?: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ kind, key, resolve }));
  }
  private fire(kind: EventName, key: string): void {
    this.events.push({ kind, key });
    const ready = this.waiters.filter((w) => w.kind === kind && (w.key === undefined || w.key === key));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}

/**
 * Rejects with `what` if `p` has not settled when the process `proc` exits.
 * The process output is not shown: pcscd's APDU log would contain the test PIN.
 */
export function unlessExited<T>(p: Promise<T>, proc: StackProcess, what: string): Promise<T> {
  return Promise.race([p, proc.exited.then((x) => Promise.reject(new Error(`${what}: process ${proc.pid} exited first (${JSON.stringify(x)})`)))]);
}
