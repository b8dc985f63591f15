// The APDU Log survives a window reload: the store's rows (PIN bytes already masked by
// the helper) are written as JSON Lines in the extension's storage, in batches off the
// hot path, and read back at activation. An empty log (Clear) is no file at all; with
// `smartcard.log.persist` off nothing is written (docs/security.md, "The APDU Log on disk").
// No vscode import, so unit tests drive it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LogRow } from '../../webview/src/protocol';
import type { LogStore } from './logStore';

/** The stored log holds card answers (keys, cryptograms, data read from cards): the user's alone. */
const PRIVATE = 0o600;

/** How long new rows wait before they are written (one write per burst of a running script). */
export const SAVE_DELAY_MS = 1000;

const KINDS = new Set(['exchange', 'control', 'readerAdded', 'readerRemoved', 'cardInserted', 'cardRemoved', 'cardPowered', 'cardUnpowered', 'cardReset', 'scriptStarted', 'scriptEnded', 'echo', 'manager']);

/** A persisted line back to a row; anything that is not one of ours is skipped. */
export function parseRowLine(line: string): LogRow | undefined {
  if (!line.trim()) return undefined;
  try {
    const v = JSON.parse(line) as Partial<LogRow> | null;
    if (!v || typeof v !== 'object' || typeof v.id !== 'string' || typeof v.time !== 'number' || typeof v.kind !== 'string' || !KINDS.has(v.kind)) return undefined;
    return v as LogRow;
  } catch {
    return undefined;
  }
}

function lines(rows: readonly LogRow[]): string {
  let text = '';
  for (const r of rows) text += `${JSON.stringify(r)}\n`;
  return text;
}

/** Deletes a file if it is there; true when it was. */
async function removeFile(file: string): Promise<boolean> {
  try {
    await fs.promises.unlink(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export class LogPersistence {
  /** Removes the stored log (and a temporary file of an interrupted write); true when there was one. */
  static async removeStoredLog(file: string): Promise<boolean> {
    const removed = await removeFile(file);
    await removeFile(`${file}.tmp`);
    return removed;
  }

  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private disposed = false;
  /** Turned off: never writes again. */
  private stopped = false;
  private readonly onChanged = () => this.schedule();

  constructor(
    readonly file: string,
    private readonly store: LogStore,
    private readonly onError: (message: string) => void,
  ) {
    store.onChanged = this.onChanged;
  }

  /** Reads the rows of the last session into the store (synchronously: before the helper's first rows). */
  load(): number {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(`could not read the saved APDU Log ${this.file}: ${(e as Error).message}`);
      return 0;
    }
    const rows: LogRow[] = [];
    for (const line of text.split('\n')) {
      const r = parseRowLine(line);
      if (r) rows.push(r);
    }
    const n = this.store.restore(rows);
    // Written again in full next time: drops what was cut or unreadable.
    this.store.takeUnsaved();
    if (rows.length > n || rows.length > this.store.capacity) this.markRewrite();
    return n;
  }

  /** New rows (or a clear) in the store: write them soon. */
  schedule(): void {
    if (this.disposed || this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush(); }, SAVE_DELAY_MS);
  }

  /** Writes what the store has not saved yet; writes never overlap. */
  flush(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }

  /** At shutdown (a reload): the last rows are written before the extension host goes. */
  dispose(): void {
    if (this.disposed) return;
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.disposed = true;
    if (this.store.onChanged === this.onChanged) this.store.onChanged = undefined;
    const { rewrite, rows } = this.take();
    if (!rewrite && !rows.length) return;
    try {
      if (rewrite && !rows.length) {
        for (const f of [this.file, `${this.file}.tmp`]) fs.rmSync(f, { force: true });
        return;
      }
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      if (rewrite) fs.writeFileSync(this.file, lines(rows), { encoding: 'utf8', mode: PRIVATE });
      else fs.appendFileSync(this.file, lines(rows), { encoding: 'utf8', mode: PRIVATE });
    } catch (e) {
      this.onError(`could not save the APDU Log to ${this.file}: ${(e as Error).message}`);
    }
  }

  /**
   * Persistence turned off (`smartcard.log.persist`): nothing more is written, and the stored log
   * is removed once a write under way has ended.
   */
  async stop(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.disposed = true;
    this.stopped = true;
    if (this.store.onChanged === this.onChanged) this.store.onChanged = undefined;
    this.store.takeUnsaved();
    await this.writing;
    try {
      await LogPersistence.removeStoredLog(this.file);
    } catch (e) {
      this.onError(`could not remove the saved APDU Log ${this.file}: ${(e as Error).message}`);
    }
  }

  /** Persistence turned on while the log holds rows: write them all. */
  saveAll(): void {
    this.markRewrite();
  }

  private take(): { rewrite: boolean; rows: LogRow[] } {
    if (this.forceRewrite) {
      this.forceRewrite = false;
      this.store.takeUnsaved();
      return { rewrite: true, rows: this.store.rows() };
    }
    return this.store.takeUnsaved();
  }

  private forceRewrite = false;
  private markRewrite(): void {
    this.forceRewrite = true;
    this.schedule();
  }

  private async write(): Promise<void> {
    if (this.stopped || (!this.store.hasUnsaved && !this.forceRewrite)) return;
    const { rewrite, rows } = this.take();
    const text = lines(rows);
    try {
      if (rewrite && !rows.length) {
        // Cleared: an empty log is no file (docs/security.md).
        await LogPersistence.removeStoredLog(this.file);
        return;
      }
      await fs.promises.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      if (rewrite) {
        // A whole new file, swapped in by rename: a reload mid-write never sees half of it.
        const tmp = `${this.file}.tmp`;
        await fs.promises.writeFile(tmp, text, { encoding: 'utf8', mode: PRIVATE });
        await fs.promises.rename(tmp, this.file);
      } else if (text) {
        await fs.promises.appendFile(this.file, text, { encoding: 'utf8', mode: PRIVATE });
      }
    } catch (e) {
      this.onError(`could not save the APDU Log to ${this.file}: ${(e as Error).message}`);
    }
  }
}
