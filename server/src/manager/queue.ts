// One FIFO per reader (design: "serializes access"). Operations run one at a
// time in arrival order; while a connection holds a transaction, only that
// connection's operations run and everyone else waits, still in order.

interface Waiter {
  conn: number;
  start: () => void;
}

export class ReaderQueue {
  private busy = false;
  private readonly waiters: Waiter[] = [];
  /** Connection holding the transaction, or null. */
  owner: number | null = null;
  /** Nesting depth of the owner's transaction. */
  depth = 0;

  get pending(): number { return this.waiters.length; }

  /** Ends the running operation and starts the next (made once, not per operation). */
  private readonly done = (): void => {
    this.busy = false;
    this.pump();
  };

  run<T>(conn: number, fn: () => Promise<T>, front = false): Promise<T> {
    if (!this.busy && this.waiters.length === 0 && (this.owner === null || this.owner === conn)) {
      // Nobody waiting (every APDU of a script): start at once, no waiter, no extra promise.
      this.busy = true;
      let p: Promise<T>;
      try { p = fn(); } catch (e) { p = Promise.reject(e); }
      p.then(this.done, this.done);
      return p;
    }
    return new Promise<T>((resolve, reject) => {
      this.waiters[front ? 'unshift' : 'push']({
        conn,
        start: () => {
          let p: Promise<T>;
          try { p = fn(); } catch (e) { p = Promise.reject(e); }
          p.then(resolve, reject).finally(() => {
            this.busy = false;
            this.pump();
          });
        },
      });
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
