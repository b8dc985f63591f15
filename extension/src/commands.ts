// Command factories, registered once at activation and always present. With the
// helper down they say so (and offer a restart) instead of failing.
import * as vscode from 'vscode';
import {
  ReadersRequest, RunScriptRequest, ClearPinCacheRequest, DecodeAtrRequest, SimulatorInsertCardRequest, SimulatorRemoveCardRequest,
  type ReaderInfo, type RunScriptResult,
} from '../../server/src/protocol';
import { NotRunningError, errorText, plural } from './client';
import type { Ctx } from './ctx';
import { defaultReader, spacedHex } from './readersModel';
import type { ReaderNode } from './readersTree';

type Command = (...args: unknown[]) => unknown;
const RESTART = 'Restart Reader Manager';

/** Shows a failed command in words; nothing is swallowed. */
function guarded(ctx: Ctx, name: string, fn: Command): Command {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      if (err instanceof NotRunningError) {
        const pick = await vscode.window.showWarningMessage(err.message, RESTART);
        if (pick === RESTART) await vscode.commands.executeCommand('smartcard.restartReaderManager');
        return undefined;
      }
      ctx.log.error(`${name}: ${errorText(err)}`);
      void vscode.window.showErrorMessage(`Smart Card: ${errorText(err)}`);
      return undefined;
    }
  };
}

const readerOf = (arg: unknown): string | undefined => {
  if (typeof arg === 'string') return arg;
  const node = arg as ReaderNode | undefined;
  return node && typeof node === 'object' && 'reader' in node && node.reader && typeof node.reader.name === 'string' ? node.reader.name : undefined;
};

/** The ATR of the card row (or reader) a menu was opened on, or of the selected reader. */
function atrOf(ctx: Ctx, arg: unknown): string | undefined {
  const name = readerOf(arg) ?? ctx.selectedReader;
  return ctx.manager.readers.find((r) => r.name === name)?.card?.atr;
}

async function pickReader(ctx: Ctx, readers: readonly ReaderInfo[], placeHolder: string): Promise<string | undefined> {
  if (readers.length === 0) {
    void vscode.window.showWarningMessage('No smart card reader found. Enable the simulator (setting smartcard.simulator.enabled), start vicc, or plug in a reader.');
    return undefined;
  }
  if (readers.length === 1) return readers[0].name;
  const items = readers.map((r) => ({
    label: r.name,
    description: [r.driver, r.name === ctx.selectedReader ? 'selected' : undefined].filter(Boolean).join(' · '),
    detail: r.unavailable ?? (r.card ? `card ${r.card.protocol !== undefined ? `T=${r.card.protocol}` : ''}`.trim() : 'no card'),
  }));
  return (await vscode.window.showQuickPick(items, { placeHolder }))?.label;
}

async function simulatorReader(ctx: Ctx, arg: unknown, wantCard: boolean): Promise<string | undefined> {
  const given = readerOf(arg);
  if (given) return given;
  await ctx.manager.ready();
  const sims = ctx.manager.readers.filter((r) => r.driver === 'simulator' && !!r.card === wantCard);
  if (sims.length === 0) {
    const any = ctx.manager.readers.some((r) => r.driver === 'simulator');
    throw new Error(any ? `No simulator reader ${wantCard ? 'holds a card' : 'is empty'}.` : 'There is no simulator reader. Enable it with the setting smartcard.simulator.enabled.');
  }
  return pickReader(ctx, sims, wantCard ? 'Remove the card from which reader?' : 'Insert the card into which reader?');
}

function scriptDocument(arg: unknown): Thenable<vscode.TextDocument> | vscode.TextDocument | undefined {
  if (arg instanceof vscode.Uri) return vscode.workspace.openTextDocument(arg);
  if (typeof arg === 'string') return vscode.workspace.openTextDocument(vscode.Uri.parse(arg, true));
  const editor = vscode.window.activeTextEditor;
  return editor && editor.document.languageId === 'apdu' ? editor.document : undefined;
}

async function revealLine(doc: vscode.TextDocument, line: number): Promise<void> {
  const l = Math.max(0, Math.min(line - 1, doc.lineCount - 1));
  const range = doc.lineAt(l).range;
  await vscode.window.showTextDocument(doc, { selection: range, viewColumn: vscode.ViewColumn.One, preserveFocus: false });
}

function resultMessage(r: RunScriptResult): string {
  return `Script passed: ${plural(r.commands, 'command')}${r.reader ? ` on ${r.reader}` : ''} in ${Math.round(r.durationMs)} ms`;
}

const lineNumber = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : undefined);

/** Arguments come from the palette (none), the editor title (a Uri) or the helper's CodeLens: [uri], [uri, line] or [uri, fromLine, toLine]. */
async function runScript(ctx: Ctx, uriArg?: unknown, fromArg?: unknown, toArg?: unknown): Promise<RunScriptResult | undefined> {
  const doc = await scriptDocument(uriArg);
  if (!doc) {
    void vscode.window.showWarningMessage('Open an .apdu script to run it.');
    return undefined;
  }
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showWarningMessage('APDU scripts do not run in an untrusted workspace. Trust the workspace to run them.');
    return undefined;
  }
  await ctx.manager.ready();
  let reader = defaultReader(ctx.manager.readers, ctx.selectedReader);
  if (!reader) {
    const withCard = ctx.manager.readers.filter((r) => r.card && !r.unavailable);
    reader = await pickReader(ctx, withCard.length ? withCard : ctx.manager.readers, 'Run the script on which reader?');
    if (!reader) return undefined;
  }
  // The run is watched in the log: open it, or bring it into view, without taking focus.
  ctx.panel.show(true);
  const fromLine = lineNumber(fromArg);
  const toLine = lineNumber(toArg) ?? fromLine;
  const name = vscode.workspace.asRelativePath(doc.uri);
  const generation = ctx.manager.generation;
  const cancel = new vscode.CancellationTokenSource();
  const request = ctx.manager.request(RunScriptRequest, { text: doc.getText(), uri: doc.uri.toString(), reader, fromLine, toLine }, cancel.token);
  // A run still going after a second gets a notification with progress and a working Cancel
  // (it stops between two APDUs and closes the connection: the card stays in a known state).
  let finished = false;
  const slow = setTimeout(() => {
    if (finished) return;
    void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Running ${name}`, cancellable: true }, (progress, token) => {
      token.onCancellationRequested(() => cancel.cancel());
      let reported = 0;
      const sub = ctx.manager.onRunProgress((p) => {
        const pct = p.total ? (100 * p.done) / p.total : 0;
        progress.report({ message: `${p.done} of ${p.total} commands, line ${p.line}`, increment: Math.max(0, pct - reported) });
        reported = Math.max(reported, pct);
      });
      return request.then(() => undefined, () => undefined).finally(() => sub.dispose());
    });
  }, 1000);
  let result: RunScriptResult;
  try {
    result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `Running ${name}` }, () => request);
  } catch (err) {
    // The helper went away under the run: say so plainly (the restart policy brings it back).
    await new Promise((r) => setTimeout(r, 100));
    if (ctx.manager.generation !== generation || ctx.manager.state !== 'running') {
      throw new Error(`The reader manager stopped while ${name} was running, so the script did not finish; it restarts by itself (see the status bar). The APDU Log keeps every exchange up to the stop.`);
    }
    throw err;
  } finally {
    finished = true;
    clearTimeout(slow);
    cancel.dispose();
  }
  ctx.runResults.show(doc, result);
  if (result.ok) {
    ctx.log.info(`${name}: ${resultMessage(result)}`);
    void vscode.window.showInformationMessage(resultMessage(result));
  } else {
    const f = result.failure;
    const where = f?.line ? ` at line ${f.line}` : '';
    const text = `Script failed${where}: ${f?.message ?? 'no reason given'}`;
    ctx.log.error(`${name}: ${text}`);
    if (f?.line) await revealLine(doc, f.line);
    void vscode.window.showErrorMessage(text);
  }
  return result;
}

export function registerCommands(ctx: Ctx): void {
  const commands: Record<string, Command> = {
    'smartcard.showLog': () => {
      ctx.panel.show();
      if (ctx.manager.state === 'idle') ctx.manager.start().catch(() => undefined);
    },
    'smartcard.runScript': (uri, from, to) => runScript(ctx, uri, from, to),
    'smartcard.selectReader': async (arg) => {
      let name = readerOf(arg);
      if (!name) {
        await ctx.manager.ready();
        name = await pickReader(ctx, ctx.manager.readers, 'Select the reader scripts run on');
      }
      if (name) await ctx.selectReader(name);
    },
    'smartcard.insertCard': async (arg) => {
      const reader = await simulatorReader(ctx, arg, false);
      if (reader) await ctx.manager.request(SimulatorInsertCardRequest, { reader, card: ctx.config.simulatorCard });
    },
    'smartcard.removeCard': async (arg) => {
      const reader = await simulatorReader(ctx, arg, true);
      if (reader) await ctx.manager.request(SimulatorRemoveCardRequest, { reader });
    },
    'smartcard.refreshReaders': async () => {
      const list = await ctx.manager.request(ReadersRequest, {});
      ctx.tree.setReaders(list.readers, ctx.selectedReader);
    },
    'smartcard.restartReaderManager': async () => {
      await ctx.manager.restart();
    },
    'smartcard.copyAtr': async (arg) => {
      const atr = atrOf(ctx, arg);
      if (!atr) { void vscode.window.showWarningMessage('No ATR yet: the card has not been powered (run a script or reset it first).'); return; }
      await vscode.env.clipboard.writeText(spacedHex(atr));
      void vscode.window.setStatusBarMessage(`Copied ATR ${spacedHex(atr)}`, 3000);
    },
    'smartcard.decodeAtr': async (arg) => {
      let atr = atrOf(ctx, arg);
      atr ??= await vscode.window.showInputBox({ title: 'Decode ATR', prompt: 'ATR in hex', placeHolder: '3B 8B 81 31 FE 45 …' });
      if (!atr) return;
      const { lines, identified } = await ctx.manager.request(DecodeAtrRequest, { atr });
      const text = [...lines, '', identified.length ? 'Identified (smartcard_list.txt):' : 'Not in smartcard_list.txt.', ...identified.map((l) => `  ${l}`), ''].join('\n');
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ content: text, language: 'plaintext' }), { preview: true });
    },
    'smartcard.clearPinCache': async () => {
      const n = await ctx.manager.request(ClearPinCacheRequest, {});
      void vscode.window.showInformationMessage(n ? `Forgot ${n} cached PIN${n === 1 ? '' : 's'}.` : 'No PIN was cached.');
    },
  };
  for (const [id, fn] of Object.entries(commands)) {
    ctx.extension.subscriptions.push(vscode.commands.registerCommand(id, guarded(ctx, id, fn)));
  }
}
