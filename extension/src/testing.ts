// APDU scripts in VS Code's Testing view: every `.apdu` file of the workspace with at
// least one expectation is a test, its commands with expectations its children. Run and
// Run All use the selected reader (as "Run Script" does); results carry the duration, the
// failure message with expected/actual status words and the line; Cancel stops the run
// between two APDUs; "Show Output" shows the run's trace (PINs are masked by the helper).
import * as vscode from 'vscode';
import { RunScriptRequest, type LogEntry, type RunScriptResult } from '../../server/src/protocol';
import { formatEntry } from '../../server/src/script/trace';
import type { Ctx } from './ctx';
import { defaultReader } from './readersModel';
import { expectedLines } from './testItems';

export const CONTROLLER_ID = 'smartcard.apduScripts';

function spacedSw(sw: string | undefined): string {
  return sw ? `${sw.slice(0, 2)} ${sw.slice(2, 4)}` : '(none)';
}

export class ApduTests implements vscode.Disposable {
  readonly controller: vscode.TestController;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.controller = vscode.tests.createTestController(CONTROLLER_ID, 'APDU Scripts');
    this.disposables.push(this.controller);
    this.controller.resolveHandler = async (item) => { if (!item) await this.discoverAll(); };
    this.controller.refreshHandler = async () => { await this.discoverAll(); };
    this.controller.createRunProfile('Run', vscode.TestRunProfileKind.Run, (request, token) => this.run(request, token), true);
    const watcher = vscode.workspace.createFileSystemWatcher('**/*.apdu');
    this.disposables.push(
      watcher,
      watcher.onDidCreate((uri) => void this.updateFromDisk(uri)),
      watcher.onDidChange((uri) => void this.updateFromDisk(uri)),
      watcher.onDidDelete((uri) => this.remove(uri)),
      // An open editor's unsaved text counts, as for "Run Script".
      vscode.workspace.onDidChangeTextDocument((e) => { if (this.isScript(e.document.uri)) this.update(e.document.uri, e.document.getText()); }),
      vscode.workspace.onDidOpenTextDocument((d) => { if (this.isScript(d.uri)) this.update(d.uri, d.getText()); }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => void this.discoverAll()),
    );
    void this.discoverAll();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private isScript(uri: vscode.Uri): boolean {
    return uri.path.endsWith('.apdu') && !!vscode.workspace.getWorkspaceFolder(uri);
  }

  private discovering: Promise<void> | undefined;

  async discoverAll(): Promise<void> {
    if (this.discovering) return this.discovering;
    this.discovering = (async () => {
      const uris = await vscode.workspace.findFiles('**/*.apdu', '**/node_modules/**');
      const keep = new Set(uris.map((u) => u.toString()));
      for (const file of this.files()) if (!keep.has(file.id)) this.remove(file.uri!);
      await Promise.all(uris.map((u) => this.updateFromDisk(u)));
    })().finally(() => { this.discovering = undefined; });
    return this.discovering;
  }

  /** Every file item (below the folder items). */
  private files(): vscode.TestItem[] {
    const out: vscode.TestItem[] = [];
    this.controller.items.forEach((folder) => folder.children.forEach((f) => out.push(f)));
    return out;
  }

  /** The folder, relative to the workspace (`examples`, `.` for the top): the Testing view groups by it. */
  private folderLabel(uri: vscode.Uri): string {
    const rel = vscode.workspace.asRelativePath(uri, vscode.workspace.workspaceFolders !== undefined && vscode.workspace.workspaceFolders.length > 1);
    const i = rel.lastIndexOf('/');
    return i < 0 ? '.' : rel.slice(0, i);
  }

  private folderId(uri: vscode.Uri): string {
    return 'folder:' + vscode.Uri.joinPath(uri, '..').toString();
  }

  private async updateFromDisk(uri: vscode.Uri): Promise<void> {
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (open) { this.update(uri, open.getText()); return; }
    try {
      const bytes = await vscode.workspace.fs.readFile(uri);
      this.update(uri, new TextDecoder().decode(bytes));
    } catch {
      this.remove(uri);
    }
  }

  /** Adds, updates or removes the file's item from its text. */
  update(uri: vscode.Uri, text: string): void {
    if (uri.path.split('/').includes('node_modules')) return;
    const lines = expectedLines(text);
    if (!lines.length) { this.remove(uri); return; }
    const folderId = this.folderId(uri);
    let folder = this.controller.items.get(folderId);
    if (!folder) {
      folder = this.controller.createTestItem(folderId, this.folderLabel(uri), vscode.Uri.joinPath(uri, '..'));
      this.controller.items.add(folder);
    }
    let file = folder.children.get(uri.toString());
    if (!file) {
      file = this.controller.createTestItem(uri.toString(), uri.path.slice(uri.path.lastIndexOf('/') + 1), uri);
      folder.children.add(file);
    }
    file.range = new vscode.Range(0, 0, 0, 0);
    file.children.replace(lines.map((l) => {
      const item = this.controller.createTestItem(`${uri.toString()}#${l.line}`, `line ${l.line}: ${l.command} => ${l.expected}`, uri);
      item.range = new vscode.Range(l.line - 1, 0, l.line - 1, 0);
      return item;
    }));
  }

  private remove(uri: vscode.Uri): void {
    const folder = this.controller.items.get(this.folderId(uri));
    if (!folder) return;
    folder.children.delete(uri.toString());
    if (folder.children.size === 0) this.controller.items.delete(folder.id);
  }

  /** The files a request asks for: a folder's files, a file, or the file of a line (a script runs whole). */
  private filesOf(request: vscode.TestRunRequest): vscode.TestItem[] {
    const excluded = new Set((request.exclude ?? []).map((i) => i.id));
    const out = new Map<string, vscode.TestItem>();
    const add = (item: vscode.TestItem) => {
      if (excluded.has(item.id)) return;
      if (item.id.startsWith('folder:')) item.children.forEach(add);
      else if (item.parent && !item.parent.id.startsWith('folder:')) { if (!excluded.has(item.parent.id)) out.set(item.parent.id, item.parent); }
      else out.set(item.id, item);
    };
    if (request.include) request.include.forEach(add);
    else this.controller.items.forEach(add);
    return [...out.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  async run(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const run = this.controller.createTestRun(request);
    const files = this.filesOf(request);
    for (const f of files) { run.enqueued(f); f.children.forEach((c) => run.enqueued(c)); }
    try {
      if (!vscode.workspace.isTrusted) {
        const msg = new vscode.TestMessage('APDU scripts do not run in an untrusted workspace. Trust the workspace to run them.');
        for (const f of files) run.errored(f, msg);
        return;
      }
      await this.ctx.manager.ready();
      const reader = defaultReader(this.ctx.manager.readers, this.ctx.selectedReader);
      if (!reader) {
        const msg = new vscode.TestMessage('No reader selected: select one in the Readers view ("Smart Card: Select Reader") and run again.');
        for (const f of files) run.errored(f, msg);
        return;
      }
      run.appendOutput(`# reader: ${reader}\r\n`);
      for (const f of files) {
        if (token.isCancellationRequested) { this.skip(run, f); continue; }
        await this.runFile(run, f, reader, token);
      }
    } catch (e) {
      const msg = new vscode.TestMessage(e instanceof Error ? e.message : String(e));
      for (const f of files) run.errored(f, msg);
    } finally {
      run.end();
    }
  }

  private skip(run: vscode.TestRun, file: vscode.TestItem): void {
    run.skipped(file);
    file.children.forEach((c) => run.skipped(c));
  }

  private async runFile(run: vscode.TestRun, file: vscode.TestItem, reader: string, token: vscode.CancellationToken): Promise<void> {
    const uri = file.uri!;
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    const text = open ? open.getText() : new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    const expected = new Map(expectedLines(text).map((l) => [l.line, l]));
    run.started(file);
    file.children.forEach((c) => run.started(c));
    // The trace: the entries of this run (its runId) and the card events while it runs.
    const entries: LogEntry[] = [];
    let ended: (() => void) | undefined;
    let runId: number | undefined;
    const endSeen = new Promise<void>((resolve) => { ended = resolve; });
    const sub = this.ctx.manager.onEntries(({ entries: es }) => {
      for (const e of es) {
        entries.push(e);
        if (e.kind === 'scriptEnded' && (runId === undefined || e.runId === runId)) ended?.();
      }
    });
    let result: RunScriptResult | undefined;
    const t0 = Date.now();
    try {
      result = await this.ctx.manager.request(RunScriptRequest, { text, uri: uri.toString(), reader }, token);
      runId = result.runId;
      // The last entries come in their own notification: wait for the run's end (bounded).
      if (!entries.some((e) => e.kind === 'scriptEnded' && e.runId === runId)) {
        await Promise.race([endSeen, new Promise((r) => setTimeout(r, 2000))]);
      }
    } catch (e) {
      if (!token.isCancellationRequested) {
        sub.dispose();
        run.errored(file, new vscode.TestMessage(e instanceof Error ? e.message : String(e)), Date.now() - t0);
        file.children.forEach((c) => run.skipped(c));
        return;
      }
    } finally {
      sub.dispose();
    }
    const mine = entries.filter((e) => !('runId' in e) || e.runId === undefined || e.runId === result?.runId);
    const name = vscode.workspace.asRelativePath(uri);
    const trace = [`# ${name} on ${reader}`, ...mine.flatMap((e) => formatEntry(e))];
    const lineDuration = new Map<number, number>();
    for (const e of mine) {
      if (e.kind === 'exchange' && e.line !== undefined) lineDuration.set(e.line, (lineDuration.get(e.line) ?? 0) + e.durationMs);
    }
    run.appendOutput(trace.join('\r\n') + '\r\n', new vscode.Location(uri, new vscode.Position(0, 0)), file);
    if (!result || (token.isCancellationRequested && result.failure?.code === 'CANCELLED')) {
      // Cancelled: what ran keeps its result, the rest is skipped.
      const ran = new Map((result?.lines ?? []).map((l) => [l.line, l]));
      file.children.forEach((c) => {
        const l = ran.get(Number(c.id.slice(c.id.lastIndexOf('#') + 1)));
        if (l?.ok) run.passed(c, lineDuration.get(l.line)); else run.skipped(c);
      });
      run.skipped(file);
      return;
    }
    const byLine = new Map(result.lines.map((l) => [l.line, l]));
    file.children.forEach((c) => {
      const line = Number(c.id.slice(c.id.lastIndexOf('#') + 1));
      const l = byLine.get(line);
      if (!l) { run.skipped(c); return; }
      if (l.ok) { run.passed(c, lineDuration.get(line)); return; }
      run.failed(c, this.lineMessage(uri, line, l.message ?? result!.failure?.message ?? 'failed', expected.get(line)?.expected, l.sw), lineDuration.get(line));
    });
    if (result.ok) { run.passed(file, result.durationMs); return; }
    const f = result.failure!;
    const line = f.line;
    const l = line !== undefined ? byLine.get(line) : undefined;
    const exp = line !== undefined ? expected.get(line)?.expected : undefined;
    const message = line !== undefined && !f.message.startsWith(`line ${line}: `) ? `line ${line}: ${f.message}` : f.message;
    run.failed(file, line !== undefined ? this.lineMessage(uri, line, message, exp, f.code === 'EXPECTATION_FAILED' ? l?.sw : undefined) : new vscode.TestMessage(message), result.durationMs);
  }

  /** A failure at a line; with a status word, expected/actual for the diff view. */
  private lineMessage(uri: vscode.Uri, line: number, message: string, expected: string | undefined, sw: string | undefined): vscode.TestMessage {
    const m = expected !== undefined && sw !== undefined
      ? vscode.TestMessage.diff(message, `${expected}`, `${spacedSw(sw)}`)
      : new vscode.TestMessage(message);
    m.location = new vscode.Location(uri, new vscode.Range(line - 1, 0, line - 1, Number.MAX_SAFE_INTEGER));
    return m;
  }
}
