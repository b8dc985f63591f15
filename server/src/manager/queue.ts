// One FIFO per reader (design: "serializes access"). Operations run one at a
// time in arrival order; while a connection holds a transaction, only that
// connection's operations run and everyone else waits, still in order.

interface Waiter {
  conn: number;
  start: () => void;
}

/** A wait the caller can give up: the waiter leaves the queue and the call rejects with `error()`. */
export interface QueueAbort {
  signal?: AbortSignal;
  error: () => Error;
}

export class ReaderQueue {
  private busy = false;
  private readonly waiters: Waiter[] = [];
  /** Connection holding the transaction, or null. */
  owner: number | null = null;
  /** Nesting depth of the owner's transaction. */
  depth = 0;
  /** Connection whose operation is running now, or null. */
  running: number | null = null;
  /** Called when an operation of `conn` has settled (the transaction's idle time counts from there). */
  onSettled?: (conn: number) => void;

  get pending(): number { return this.waiters.length; }
  /** A call of `conn` would start at once (nobody running or waiting, no other owner). */
  startsAtOnce(conn: number): boolean { return !this.busy && this.waiters.length === 0 && (this.owner === null || this.owner === conn); }

  /** Ends the running operation and starts the next (made once, not per operation). */
  private readonly done = (): void => {
    const conn = this.running;
    this.busy = false;
    this.running = null;
    if (conn !== null) this.onSettled?.(conn);
    this.pump();
  };

  run<T>(conn: number, fn: () => Promise<T>, front = false, abort?: QueueAbort): Promise<T> {
    if (!this.busy && this.waiters.length === 0 && (this.owner === null || this.owner === conn)) {
      // Nobody waiting (every APDU of a script): start at once, no waiter, no extra promise.
      this.busy = true;
      this.running = conn;
      let p: Promise<T>;
      try { p = fn(); } catch (e) { p = Promise.reject(e); }
      p.then(this.done, this.done);
      return p;
    }
    const signal = abort?.signal;
    if (signal?.aborted) return Promise.reject(abort!.error());
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        // Still waiting: leave the queue, nothing of this call ever runs.
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        reject(abort!.error());
      };
      const waiter: Waiter = {
        conn,
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.running = conn;
          let p: Promise<T>;
          try { p = fn(); } catch (e) { p = Promise.reject(e); }
          p.then(resolve, reject).finally(this.done);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters[front ? 'unshift' : 'push'](waiter);
      this.pump();
    });
  }

  /** Runs `fn` before everyone waiting (the driver-side end of a released transaction). */
  runFirst<T>(conn: number, fn: () => Promise<T>): Promise<T> {
    return this.run(conn, fn, true);
  }

  /** Ends the transaction (owner gone, time-out, end) and lets the others in. */
  release(): void {
    this.owner = null;
    this.depth = 0;
    this.pump();
  }

  private pump(): void {
    if (this.busy) return;
    const i = this.owner === null ? 0 : this.waiters.findIndex((w) => w.conn === this.owner);
    if (i < 0 || i >= this.waiters.length) return;
    const [w] = this.waiters.splice(i, 1);
    this.busy = true;
    w.start();
  }
}
