// The helper's PIN cache (session policy). Lives only in memory; keyed by
// reader, card (ATR) and label; forgotten after an idle time-out, on card
// removal or reset, on helper restart and on "Smart Card: Clear PIN Cache".
// The values are never logged, serialized or sent anywhere but to the card.
//
// The idle time-out is a timer per PIN, restarted on each use: a PIN leaves
// memory when its time is up, not when someone next looks for it.

/** A Node.js timer waits at most 2^31−1 ms; a longer idle time-out is cut to that. */
const MAX_TIMER_MS = 2_147_483_647;

interface Entry { pin: string; lastUsed: number; timer?: NodeJS.Timeout }

export type PinDropReason = 'idle';

export class SessionPinCache {
  private readonly pins = new Map<string, Entry>();
  private readonly dropListeners = new Set<(reason: PinDropReason, count: number) => void>();

  constructor(private idleMs = 300_000, private readonly now: () => number = Date.now) {}

  /** Changes the idle time-out; running timers are re-armed from each PIN's last use. */
  setIdleTimeout(ms: number): void {
    this.idleMs = ms;
    for (const [k, e] of this.pins) this.arm(k, e, Math.max(0, e.lastUsed + ms - this.now()));
  }

  /** Called (without any PIN) when idle PINs were dropped by their timer. */
  onDropped(listener: (reason: PinDropReason, count: number) => void): { dispose(): void } {
    this.dropListeners.add(listener);
    return { dispose: () => { this.dropListeners.delete(listener); } };
  }

  private static key(reader: string, atrHex: string, label: string): string {
    return `${reader}\u0000${atrHex}\u0000${label}`;
  }

  private arm(k: string, e: Entry, ms = this.idleMs): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      if (this.pins.get(k) !== e) return;
      this.pins.delete(k);
      for (const l of [...this.dropListeners]) l('idle', 1);
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    e.timer.unref?.(); // a cached PIN never keeps the helper or the CLI alive
  }

  private drop(k: string): boolean {
    const e = this.pins.get(k);
    if (!e) return false;
    if (e.timer) clearTimeout(e.timer);
    return this.pins.delete(k);
  }

  get(reader: string, atrHex: string, label: string): string | undefined {
    const k = SessionPinCache.key(reader, atrHex, label);
    const hit = this.pins.get(k);
    if (!hit) return undefined;
    // Also checked here: the clock may be injected (tests) or the timer late under load.
    if (this.now() - hit.lastUsed > this.idleMs) { this.drop(k); return undefined; }
    hit.lastUsed = this.now();
    this.arm(k, hit);
    return hit.pin;
  }

  set(reader: string, atrHex: string, label: string, pin: string): void {
    const k = SessionPinCache.key(reader, atrHex, label);
    this.drop(k);
    const e: Entry = { pin, lastUsed: this.now() };
    this.pins.set(k, e);
    this.arm(k, e);
  }

  /** Forget a PIN that the card refused. */
  forget(reader: string, atrHex: string, label: string): void {
    this.drop(SessionPinCache.key(reader, atrHex, label));
  }

  /** Card removed or reset in this reader: forget its PINs. */
  clearReader(reader: string): number {
    let n = 0;
    for (const k of [...this.pins.keys()]) if (k.startsWith(`${reader}\u0000`)) { this.drop(k); n++; }
    return n;
  }

  clear(): number {
    const n = this.pins.size;
    for (const k of [...this.pins.keys()]) this.drop(k);
    return n;
  }

  /** Forgets every PIN and stops every timer (helper shutdown). */
  dispose(): void {
    this.clear();
    this.dropListeners.clear();
  }

  get size(): number { return this.pins.size; }

  /** Never let a PIN slip into a log through JSON or string conversion. */
  toJSON(): string { return `[${this.pins.size} cached PIN(s)]`; }
  toString(): string { return this.toJSON(); }
}
