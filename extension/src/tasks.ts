// APDU scripts as VS Code tasks: type `apdu` (`{"type": "apdu", "script": "…", "reader": "…"}`),
// one task offered for each .apdu file of the workspace, and tasks.json tasks resolved.
// A task runs in a pseudoterminal (CustomExecution) through the editor's own reader manager,
// not the `scard` CLI: the CLI would start a second manager of its own, which cannot reach
// the editor's simulator or vpcd readers (one vpcd port, one listener) and would meet the
// editor's exclusive connections on a PC/SC reader as a stranger. Here the task runs on the
// reader the editor uses (or the task's `reader`), through the same gate and queue, asks
// `${pin}` in the same masked box, and its exchanges are in the APDU Log.
// The terminal shows the trace and, for a failed line, `FILE:LINE: message` — the form of
// `scard run` — which the `$apdu` problem matcher (package.json) puts in the Problems view.
import * as vscode from 'vscode';
import { RunScriptRequest, type LogEntry, type RunScriptResult } from '../../server/src/protocol';
import { formatEntry } from '../../server/src/script/trace';
import type { Ctx } from './ctx';
import { defaultReader } from './readersModel';
import { checkDefinition, displayPath, exitCode, isAbsoluteScript, resultLines, type ApduTaskDefinition } from './taskModel';

export const TASK_TYPE = 'apdu';
export const PROBLEM_MATCHER = '$apdu';

export function registerTasks(ctx: Ctx): void {
  ctx.extension.subscriptions.push(vscode.tasks.registerTaskProvider(TASK_TYPE, new ApduTaskProvider(ctx)));
}

/** VS Code's launch window (terminalProcessManager: Launching → Running after 500 ms), and a margin. */
const LAUNCH_WINDOW_MS = 600;

/** Runs already shown by a task's terminal, so two terminals never take the same run's entries. */
const claimedRuns = new Set<number>();

export class ApduTaskProvider implements vscode.TaskProvider {
  constructor(private readonly ctx: Ctx) {}

  async provideTasks(): Promise<vscode.Task[]> {
    const uris = await vscode.workspace.findFiles('**/*.apdu', '**/node_modules/**');
    const tasks: vscode.Task[] = [];
    for (const uri of uris.sort((a, b) => a.path.localeCompare(b.path))) {
      const folder = vscode.workspace.getWorkspaceFolder(uri);
      if (!folder) continue;
      const script = displayPath(uri.path, folder.uri.path);
      tasks.push(this.task({ type: TASK_TYPE, script }, folder, script, [PROBLEM_MATCHER]));
    }
    return tasks;
  }

  /** A tasks.json task of type `apdu`: given its execution; its problem matchers stay as configured. */
  resolveTask(task: vscode.Task): vscode.Task | undefined {
    if (task.definition.type !== TASK_TYPE) return undefined;
    const folder = task.scope !== undefined && typeof task.scope === 'object' ? task.scope : undefined;
    // resolveTask must hand back the definition it was given.
    return this.task(task.definition, folder, task.name, task.problemMatchers.length ? task.problemMatchers : [PROBLEM_MATCHER]);
  }

  private task(definition: vscode.TaskDefinition, folder: vscode.WorkspaceFolder | undefined, name: string, matchers: string[]): vscode.Task {
    const execution = new vscode.CustomExecution(async (resolved) => new ApduTaskTerminal(this.ctx, resolved, folder));
    const task = new vscode.Task(definition, folder ?? vscode.TaskScope.Workspace, name, TASK_TYPE, execution, matchers);
    task.group = vscode.TaskGroup.Test;
    const reader = typeof definition.reader === 'string' ? definition.reader : undefined;
    task.detail = `Run the APDU script on ${reader ? `the reader ${reader}` : 'the selected reader'}; failed expectations go to Problems`;
    return task;
  }
}

/** The task's terminal: runs the script once, prints the trace and the result, closes with the exit code. */
class ApduTaskTerminal implements vscode.Pseudoterminal {
  private readonly writer = new vscode.EventEmitter<string>();
  private readonly closer = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.writer.event;
  readonly onDidClose = this.closer.event;
  private readonly cancel = new vscode.CancellationTokenSource();
  private closed = false;
  private openedAt = 0;

  constructor(private readonly ctx: Ctx, private readonly definition: vscode.TaskDefinition, private readonly folder: vscode.WorkspaceFolder | undefined) {}

  open(): void {
    this.openedAt = Date.now();
    void this.run().then((code) => this.finish(code), (err: unknown) => {
      this.line(`error: ${err instanceof Error ? err.message : String(err)}`);
      this.finish(1);
    });
  }

  /** The task was terminated (Terminate Task, the terminal closed): stop the run between two APDUs. */
  close(): void {
    if (!this.closed) this.cancel.cancel();
  }

  /** Ctrl-C in the terminal stops the run, as it stops `scard run`. */
  handleInput(data: string): void {
    if (data.includes('\x03')) { this.line('^C'); this.cancel.cancel(); }
  }

  private line(text: string): void {
    if (this.closed) return;
    // A terminal needs CR LF; a message's own line breaks become separate lines.
    this.writer.fire(text.replace(/\r?\n/g, '\r\n') + '\r\n');
  }

  private finish(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.cancel.dispose();
    // VS Code takes a terminal that exits non-zero within its first 500 ms for one that "failed
    // to launch" and says so under the script's result: a quick failed run closes after that.
    const early = LAUNCH_WINDOW_MS - (Date.now() - this.openedAt);
    if (code !== 0 && early > 0) setTimeout(() => this.closer.fire(code), early);
    else this.closer.fire(code);
  }

  private scriptUri(def: ApduTaskDefinition): vscode.Uri {
    if (isAbsoluteScript(def.script)) return vscode.Uri.file(def.script);
    const base = this.folder ?? vscode.workspace.workspaceFolders?.[0];
    if (!base) throw new Error(`"${def.script}" is relative, and no folder is open: give the script's full path.`);
    return vscode.Uri.joinPath(base.uri, def.script.replace(/\\/g, '/'));
  }

  private async run(): Promise<number> {
    if (!vscode.workspace.isTrusted) {
      this.line('APDU scripts do not run in an untrusted workspace. Trust the workspace to run them.');
      return 1;
    }
    const checked = checkDefinition(this.definition);
    if ('error' in checked) { this.line(checked.error); return 2; }
    const def = checked.ok;
    const uri = this.scriptUri(def);
    const base = this.folder ?? (vscode.workspace.workspaceFolders?.length === 1 ? vscode.workspace.workspaceFolders[0] : undefined);
    const file = displayPath(uri.path, base?.uri.path);
    let text: string;
    // An open editor's text counts, as for "Run APDU Script" (tasks save first by default).
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    try {
      text = open ? open.getText() : new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    } catch (e) {
      this.line(`${file}: cannot read the script: ${e instanceof Error ? e.message : String(e)}`);
      return 2;
    }
    await this.ctx.manager.ready();
    const reader = def.reader ?? defaultReader(this.ctx.manager.readers, this.ctx.selectedReader);
    if (!reader) {
      this.line(`${file}: no reader selected and several (or no) readers have a card: select one ("Smart Card: Select Reader") or set "reader" in the task.`);
      return 1;
    }
    this.line(`# ${file} on ${reader}`);
    if (this.cancel.token.isCancellationRequested) return 130;

    // The trace as it happens: the entries of this run (the first run of this file that
    // started after the request and no other task claimed), and card events on its reader.
    let runId: number | undefined;
    let runReader = def.reader ? undefined : reader;
    let ended: () => void = () => undefined;
    let endShown = false;
    const endSeen = new Promise<void>((resolve) => { ended = resolve; });
    const show = (e: LogEntry) => {
      if (e.kind === 'scriptStarted') return;
      for (const l of formatEntry(e)) this.line(l);
      if (e.kind === 'scriptEnded') { endShown = true; ended(); }
    };
    const sub = this.ctx.manager.onEntries(({ entries }) => {
      for (const e of entries) {
        if (runId === undefined) {
          if (e.kind === 'scriptStarted' && e.file === uri.toString() && !claimedRuns.has(e.runId)) { runId = e.runId; claimedRuns.add(runId); }
          continue;
        }
        if (e.kind === 'exchange' || e.kind === 'control' || e.kind === 'scriptStarted' || e.kind === 'scriptEnded' || e.kind === 'echo') {
          if (e.runId !== runId) continue;
          if (e.kind === 'exchange' || e.kind === 'control') runReader ??= e.reader;
        } else if (!runReader || e.reader !== runReader) continue;
        show(e);
      }
    });
    let result: RunScriptResult | undefined;
    try {
      result = await this.ctx.manager.request(RunScriptRequest, { text, uri: uri.toString(), reader }, this.cancel.token);
      // The entries come in their own notifications, often after the result (a short run's all
      // of them): wait for the run's end (bounded).
      if (!endShown) await Promise.race([endSeen, new Promise((r) => setTimeout(r, 2000))]);
    } catch (e) {
      if (!this.cancel.token.isCancellationRequested) throw e;
    } finally {
      sub.dispose();
      if (runId !== undefined) claimedRuns.delete(runId);
    }
    if (!result) { this.line(`${file}: cancelled`); return 130; }
    for (const l of resultLines(file, result)) this.line(l);
    return exitCode(result, this.cancel.token.isCancellationRequested);
  }
}
