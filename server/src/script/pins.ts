// The helper's PIN cache (session policy). Lives only in memory; keyed by
// reader, card (ATR) and label; forgotten after an idle time-out, on card
// removal or reset, on helper restart and on "Smart Card: Clear PIN Cache".
// The values are never logged, serialized or sent anywhere but to the card.

export class SessionPinCache {
  private readonly pins = new Map<string, { pin: string; lastUsed: number }>();

  constructor(private idleMs = 300_000, private readonly now: () => number = Date.now) {}

  setIdleTimeout(ms: number): void { this.idleMs = ms; }

  private static key(reader: string, atrHex: string, label: string): string {
    return `${reader}\u0000${atrHex}\u0000${label}`;
  }

  get(reader: string, atrHex: string, label: string): string | undefined {
    const k = SessionPinCache.key(reader, atrHex, label);
    const hit = this.pins.get(k);
    if (!hit) return undefined;
    if (this.now() - hit.lastUsed > this.idleMs) { this.pins.delete(k); return undefined; }
    hit.lastUsed = this.now();
    return hit.pin;
  }

  set(reader: string, atrHex: string, label: string, pin: string): void {
    this.pins.set(SessionPinCache.key(reader, atrHex, label), { pin, lastUsed: this.now() });
  }

  /** Forget a PIN that the card refused. */
  forget(reader: string, atrHex: string, label: string): void {
    this.pins.delete(SessionPinCache.key(reader, atrHex, label));
  }

  /** Card removed or reset in this reader: forget its PINs. */
  clearReader(reader: string): number {
    let n = 0;
    for (const k of [...this.pins.keys()]) if (k.startsWith(`${reader}\u0000`)) { this.pins.delete(k); n++; }
    return n;
  }

  clear(): number {
    const n = this.pins.size;
    this.pins.clear();
    return n;
  }

  get size(): number { return this.pins.size; }

  /** Never let a PIN slip into a log through JSON or string conversion. */
  toJSON(): string { return `[${this.pins.size} cached PIN(s)]`; }
  toString(): string { return this.toJSON(); }
}
