// The extension's copy of the APDU log, so a panel opened late shows history.
// Pure (no vscode import): maps the helper's log entries onto the panel's rows.
import type { LogEntry } from '../../server/src/protocol';
import { LOG_CAPACITY, logHighWater, type LogRow, type ManagerState } from '../../webview/src/protocol';

/** Sequence numbers restart with each helper process; a generation tells them apart. */
const GEN = 1e12;

export function entryToRow(e: LogEntry, gen: number, fileOfRun: (runId: number | undefined) => string | undefined): LogRow {
  const id = `${gen}:${e.seq}`;
  switch (e.kind) {
    case 'exchange':
      return {
        kind: 'exchange', id, time: e.time, reader: e.reader, command: e.command, response: e.response,
        sw: e.sw, swMeaning: e.swMeaning, swCategory: e.swCategory, durationMs: e.durationMs,
        auto: e.auto, parent: e.parent === undefined ? undefined : `${gen}:${e.parent}`, line: e.line, uri: fileOfRun(e.runId),
        ...(e.client ? { client: e.client } : {}),
      };
    case 'control':
      return {
        kind: 'control', id, time: e.time, reader: e.reader, code: e.code, command: e.command, response: e.response,
        error: e.error, durationMs: e.durationMs, line: e.line, uri: fileOfRun(e.runId),
        ...(e.client ? { client: e.client } : {}),
      };
    case 'scriptStarted':
    case 'scriptEnded':
    case 'echo':
      return {
        kind: e.kind, id, time: e.time, reader: e.reader, file: e.file, ok: e.ok, message: e.message, line: e.line, uri: e.file ?? fileOfRun(e.runId),
        ...(e.client ? { client: e.client } : {}),
      };
    default:
      return {
        kind: e.kind, id, time: e.time, reader: e.reader, atr: e.atr, protocol: e.protocol,
        ...(e.identified?.length ? { card: e.identified[0] } : {}),
        ...(e.idle ? { idle: true, ...(typeof e.idleMs === 'number' ? { idleMs: e.idleMs } : {}) } : {}),
      };
  }
}

export interface AddResult {
  /** Rows to append to what the panel shows. */
  appended: LogRow[];
  /** Something landed before rows already shown: the panel must be sent everything again. */
  reordered: boolean;
}

/** Rows kept: the panel's model and the persisted log hold this many too (rows are small objects). */
export { LOG_CAPACITY };

export class LogStore {
  private rowsInOrder: LogRow[] = [];
  private keys: number[] = [];
  private readonly ids = new Map<string, LogRow>();
  private readonly runFiles = new Map<number, string>();
  private gen = 0;
  private maxSeq = -1;
  /** Rows added since the last `takeUnsaved`, or `rewrite` when the kept rows changed otherwise. */
  private unsaved: LogRow[] = [];
  private rewrite = false;

  /** Called after rows were added, cleared or trimmed (the persisted log listens). */
  onChanged: (() => void) | undefined;

  constructor(readonly capacity = LOG_CAPACITY) {}

  /** A row by id, while it is kept. */
  get(id: string): LogRow | undefined {
    return this.ids.get(id);
  }

  /**
   * Rows from an earlier session (persisted), placed before everything; called before the
   * first helper starts. Generations continue after the restored ones, so ids never collide.
   */
  restore(rows: readonly LogRow[]): number {
    let n = 0;
    const fresh: LogRow[] = [];
    for (const r of rows.slice(-this.capacity)) {
      if (this.ids.has(r.id)) continue;
      this.ids.set(r.id, r);
      fresh.push(r);
      const gen = Number.parseInt(r.id, 10);
      if (Number.isFinite(gen)) this.gen = Math.max(this.gen, gen);
      n++;
    }
    this.rowsInOrder = [...fresh, ...this.rowsInOrder];
    this.keys = [...fresh.map((_, i) => i - fresh.length), ...this.keys];
    return n;
  }

  /** What to write to the persisted log: everything (`rewrite`) or the rows added since last time. */
  takeUnsaved(): { rewrite: boolean; rows: LogRow[] } {
    const out = this.rewrite ? { rewrite: true, rows: this.rows() } : { rewrite: false, rows: this.unsaved };
    this.unsaved = [];
    this.rewrite = false;
    return out;
  }

  get hasUnsaved(): boolean {
    return this.rewrite || this.unsaved.length > 0;
  }

  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.rowsInOrder.length;
  }

  /** A new helper process: its sequence numbers start again. */
  newGeneration(): number {
    this.gen++;
    this.maxSeq = -1;
    this.runFiles.clear();
    return this.gen;
  }

  addEntries(entries: readonly LogEntry[]): AddResult {
    const appended: LogRow[] = [];
    let reordered = false;
    for (const e of [...entries].sort((a, b) => a.seq - b.seq)) {
      if (e.kind === 'scriptStarted' && e.file) this.runFiles.set(e.runId, e.file);
      // "Run line": the exchange is the row group; no start row, and an end row only to say why it failed.
      if (e.kind === 'scriptStarted' && e.lineRun) continue;
      if (e.kind === 'scriptEnded' && e.lineRun && e.ok) continue;
      const row = entryToRow(e, this.gen, (runId) => (runId === undefined ? undefined : this.runFiles.get(runId)));
      if (this.ids.has(row.id)) continue;
      const key = this.gen * GEN + e.seq;
      if (this.insert(row, key)) appended.push(row);
      else reordered = true;
      this.maxSeq = Math.max(this.maxSeq, e.seq);
    }
    if (reordered) this.rewrite = true;
    else for (const r of appended) this.unsaved.push(r);
    this.trim();
    if (appended.length || reordered) this.onChanged?.();
    return { appended: reordered ? [] : appended, reordered };
  }

  /** A row about the reader manager itself; placed after everything of the current generation. */
  addManager(state: ManagerState, message: string, time = Date.now()): LogRow {
    const row: LogRow = { kind: 'manager', id: `${this.gen}:m${time}:${this.ids.size}`, time, state, message };
    const key = this.gen * GEN + this.maxSeq + 0.5;
    if (this.insert(row, key)) this.unsaved.push(row);
    else this.rewrite = true;
    this.trim();
    this.onChanged?.();
    return row;
  }

  rows(): LogRow[] {
    return [...this.rowsInOrder];
  }

  /** The rows held, oldest first, without a copy: valid until the store next changes. */
  view(): readonly LogRow[] {
    return this.rowsInOrder;
  }

  clear(): number {
    const n = this.rowsInOrder.length;
    this.rowsInOrder = [];
    this.keys = [];
    this.ids.clear();
    this.unsaved = [];
    this.rewrite = true;
    this.onChanged?.();
    return n;
  }

  /** Returns true when the row went to the end. */
  private insert(row: LogRow, key: number): boolean {
    this.ids.set(row.id, row);
    const last = this.keys.length ? this.keys[this.keys.length - 1] : -Infinity;
    if (key >= last) {
      this.rowsInOrder.push(row);
      this.keys.push(key);
      return true;
    }
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.keys[mid] <= key) lo = mid + 1;
      else hi = mid;
    }
    this.rowsInOrder.splice(lo, 0, row);
    this.keys.splice(lo, 0, key);
    return false;
  }

  /** Trims in steps of a quarter of the capacity, so a busy log does not copy the buffer on every batch. */
  private trim(): void {
    if (this.rowsInOrder.length <= logHighWater(this.capacity)) return;
    const extra = this.rowsInOrder.length - this.capacity;
    for (const r of this.rowsInOrder.slice(0, extra)) this.ids.delete(r.id);
    this.rowsInOrder = this.rowsInOrder.slice(extra);
    this.keys = this.keys.slice(extra);
    this.rewrite = true;
  }
}
