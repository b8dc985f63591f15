// Command factories, registered once at activation and always present. With the
// helper down they say so (and offer a restart) instead of failing.
import * as vscode from 'vscode';
import {
  ReadersRequest, RunScriptRequest, ClearPinCacheRequest, DecodeAtrRequest, SimulatorInsertCardRequest, SimulatorRemoveCardRequest,
  ReaderConnectRequest, ReaderDisconnectRequest, ReaderResetRequest, ReaderPowerOffRequest, ReaderControlRequest,
  SendApduRequest, DecodeExchangeRequest, pcscServiceExportLine,
  type Disposition, type ReaderInfo, type RunScriptResult,
} from '../../server/src/protocol';
import { NotRunningError, errorText, plural } from './client';
import type { Ctx } from './ctx';
import { connectModes, defaultAtrReader, defaultReader, parseAtrInput, parseControlCode, parseHexInput, spacedHex } from './readersModel';
import type { ReaderNode } from './readersTree';
import { failureActions, failureText } from './runFailure';
import { carriesSecret, pushHistory, sendApduMessage } from './sendApduModel';
import { checkOneApdu } from '../../server/src/lsp/sendApdu';

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

/**
 * The reader a Readers-view command acts on: the row it was opened on, or one
 * picked from those that fit (the palette). Starts the helper if needed; with
 * it down, NotRunningError says so.
 */
async function targetReader(ctx: Ctx, arg: unknown, placeHolder: string, fits: (r: ReaderInfo) => boolean, none: string): Promise<string | undefined> {
  const given = readerOf(arg);
  if (given) return given;
  await ctx.manager.ready();
  const readers = ctx.manager.readers.filter((r) => !r.unavailable && fits(r));
  if (!readers.length) throw new Error(none);
  return pickReader(ctx, readers, placeHolder);
}

const DISPOSITIONS: Array<{ label: string; disposition: Disposition; detail: string }> = [
  { label: 'Leave the card', disposition: 'leave', detail: 'SCARD_LEAVE_CARD: the card stays powered as it is' },
  { label: 'Reset the card', disposition: 'reset', detail: 'SCARD_RESET_CARD: warm reset' },
  { label: 'Unpower the card', disposition: 'unpower', detail: 'SCARD_UNPOWER_CARD: power off' },
  { label: 'Eject the card', disposition: 'eject', detail: 'SCARD_EJECT_CARD: the reader ejects it' },
];

const readerNamed = (ctx: Ctx, name: string): ReaderInfo | undefined => ctx.manager.readers.find((r) => r.name === name);

/** The Readers view's reader operations (each also in the palette, asking which reader). */
function readerCommands(ctx: Ctx): Record<string, Command> {
  return {
    'smartcard.connect': async (arg) => {
      const reader = await targetReader(ctx, arg, 'Connect to which reader?', (r) => !!r.card && !r.editor, 'No reader holds a card the editor is not already connected to.');
      if (!reader) return;
      const mode = await vscode.window.showQuickPick(connectModes(readerNamed(ctx, reader)?.card), { placeHolder: `Connect to ${reader}: share mode and protocol` });
      if (!mode) return;
      const info = await ctx.manager.request(ReaderConnectRequest, { reader, share: mode.share, ...(mode.protocol !== undefined ? { protocol: mode.protocol } : {}) });
      const proto = info.card?.protocol !== undefined ? `, T=${info.card.protocol}` : '';
      void vscode.window.setStatusBarMessage(`Connected to ${reader} (${mode.share}${proto})`, 5000);
    },
    'smartcard.disconnect': async (arg) => {
      const reader = await targetReader(ctx, arg, 'Disconnect the editor from which reader?', (r) => !!r.editor, 'The editor holds no connection to a reader.');
      if (!reader) return;
      const canEject = readerNamed(ctx, reader)?.canEject === true;
      const pick = await vscode.window.showQuickPick(DISPOSITIONS.filter((d) => d.disposition !== 'eject' || canEject), { placeHolder: `Disconnect from ${reader}: what happens to the card` });
      if (!pick) return;
      await ctx.manager.request(ReaderDisconnectRequest, { reader, disposition: pick.disposition });
      void vscode.window.setStatusBarMessage(`Disconnected from ${reader} (${pick.disposition})`, 5000);
    },
    'smartcard.resetCard': async (arg) => {
      const reader = await targetReader(ctx, arg, 'Reset the card in which reader?', (r) => !!r.card, 'No reader holds a card to reset.');
      if (!reader) return;
      const pick = await vscode.window.showQuickPick([
        { label: 'Warm reset', mode: 'warm' as const, detail: 'RST low while powered: the card restarts, power stays on' },
        { label: 'Cold reset', mode: 'cold' as const, detail: 'power off, then on' },
      ], { placeHolder: `Reset the card in ${reader}` });
      if (!pick) return;
      const { atr, protocol } = await ctx.manager.request(ReaderResetRequest, { reader, mode: pick.mode });
      void vscode.window.setStatusBarMessage(`${pick.label}: ATR ${spacedHex(atr)}${protocol !== undefined ? `, T=${protocol}` : ''}`, 5000);
    },
    'smartcard.powerOff': async (arg) => {
      const reader = await targetReader(ctx, arg, 'Power off the card in which reader?', (r) => !!r.card?.powered, 'No reader holds a powered card.');
      if (!reader) return;
      await ctx.manager.request(ReaderPowerOffRequest, { reader });
      void vscode.window.setStatusBarMessage(`Card in ${reader} powered off`, 5000);
    },
    'smartcard.sendControl': async (arg) => {
      const reader = await targetReader(ctx, arg, 'Send a control command to which reader?', () => true, 'No usable reader.');
      if (!reader) return;
      const features = readerNamed(ctx, reader)?.features ?? [];
      const codeText = await vscode.window.showInputBox({
        title: `Send Control Command to ${reader}`,
        prompt: `Control code: decimal (3400 = CM_IOCTL_GET_FEATURE_REQUEST), hex (0x42000D48)${features.length ? ` or a PC/SC feature: ${features.map((f) => f.split(' ')[0]).join(', ')}` : ''}`,
        placeHolder: '3400',
        validateInput: (v) => { const c = parseControlCode(v, features); return 'error' in c ? c.error : undefined; },
      });
      if (codeText === undefined) return;
      const code = parseControlCode(codeText, features);
      if ('error' in code) throw new Error(code.error);
      const dataText = await vscode.window.showInputBox({
        title: `Send Control Command ${codeText.trim()} to ${reader}`,
        prompt: 'Data in hex (empty for none)',
        placeHolder: '',
        validateInput: (v) => { const d = parseHexInput(v); return 'error' in d ? d.error : undefined; },
      });
      if (dataText === undefined) return;
      const data = parseHexInput(dataText);
      if ('error' in data) throw new Error(data.error);
      const { response } = await ctx.manager.request(ReaderControlRequest, { reader, code: code.code, data: data.hex });
      const shown = response ? spacedHex(response) : 'nothing (0 bytes)';
      ctx.log.info(`control ${codeText.trim()} on ${reader}: ${shown}`);
      void vscode.window.showInformationMessage(`Control ${codeText.trim()} on ${reader} answered ${shown}`);
    },
  };
}

/** The examples the walkthrough opens; they ship in the extension's examples/ folder. */
const EXAMPLES = ['hello.apdu', 'fails-on-purpose.apdu'];

/**
 * Opens an example: the workspace's own copy when it has one (this repository's
 * examples folder), else the bundled file's text in an untitled APDU editor, so
 * the walkthrough works in any workspace and never edits the installed file.
 */
async function openExample(ctx: Ctx, arg: unknown): Promise<void> {
  const name = typeof arg === 'string' ? arg : (await vscode.window.showQuickPick(EXAMPLES, { placeHolder: 'Open which example script?' }));
  if (!name) return;
  if (!EXAMPLES.includes(name)) throw new Error(`There is no example named '${name}' (examples: ${EXAMPLES.join(', ')}).`);
  const found = await vscode.workspace.findFiles(`**/${name}`, '**/node_modules/**', 1);
  const doc = found.length
    ? await vscode.workspace.openTextDocument(found[0])
    : await vscode.workspace.openTextDocument({
      language: 'apdu',
      content: new TextDecoder().decode(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(ctx.extension.extensionUri, 'examples', name))),
    });
  await vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.One });
}

/**
 * The .apdu editor last active, so "Run APDU Script" works when the active editor is
 * something else: the Welcome page (the walkthrough's button), the APDU Log, a settings page.
 */
let lastApduDocument: vscode.TextDocument | undefined;

function trackApduEditors(ctx: Ctx): void {
  const note = (ed: vscode.TextEditor | undefined) => { if (ed?.document.languageId === 'apdu') lastApduDocument = ed.document; };
  note(vscode.window.activeTextEditor);
  ctx.extension.subscriptions.push(
    vscode.window.onDidChangeActiveTextEditor(note),
    vscode.workspace.onDidCloseTextDocument((d) => { if (d === lastApduDocument) lastApduDocument = undefined; }),
  );
}

/** The script to run: the argument, else the active .apdu editor, else the one last active, else the only .apdu editor open. */
function scriptDocument(arg: unknown): Thenable<vscode.TextDocument> | vscode.TextDocument | undefined {
  if (arg instanceof vscode.Uri) return vscode.workspace.openTextDocument(arg);
  if (typeof arg === 'string') return vscode.workspace.openTextDocument(vscode.Uri.parse(arg, true));
  const editor = vscode.window.activeTextEditor;
  if (editor?.document.languageId === 'apdu') return editor.document;
  if (lastApduDocument && !lastApduDocument.isClosed) return lastApduDocument;
  const visible = vscode.window.visibleTextEditors.filter((e) => e.document.languageId === 'apdu');
  if (visible.length === 1) return visible[0].document;
  const open = vscode.workspace.textDocuments.filter((d) => d.languageId === 'apdu' && !d.isClosed);
  return open.length === 1 ? open[0] : undefined;
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
    const several = vscode.workspace.textDocuments.some((d) => d.languageId === 'apdu' && !d.isClosed);
    void vscode.window.showWarningMessage(several ? 'Several .apdu scripts are open: click into the one to run, then run it again.' : 'Open an .apdu script to run it.');
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
  ctx.runResults.show(doc, result, fromLine !== undefined ? { from: fromLine, to: toLine ?? fromLine } : undefined);
  // The walkthrough's steps "run a first script" and "see a failed expectation" complete on these.
  void vscode.commands.executeCommand('setContext', result.ok ? 'smartcard.walkthrough.passed' : 'smartcard.walkthrough.failed', true);
  if (result.ok) {
    ctx.log.info(`${name}: ${resultMessage(result)}`);
    void vscode.window.showInformationMessage(resultMessage(result));
  } else {
    const f = result.failure;
    const text = failureText(result);
    ctx.log.error(`${name}: ${text}`);
    if (f?.line) await revealLine(doc, f.line);
    const ranOn = result.reader ?? reader;
    const actions = failureActions(f?.code, readerNamed(ctx, ranOn)?.driver);
    void vscode.window.showErrorMessage(text, ...actions).then(async (pick) => {
      if (pick === 'Insert Card') await vscode.commands.executeCommand('smartcard.insertCard', ranOn);
      else if (pick === 'Select Reader') await vscode.commands.executeCommand('smartcard.selectReader');
    });
  }
  return result;
}

const SEND_HISTORY_KEY = 'smartcard.sendApdu.history';

/**
 * Send APDU…: a quick input with the history below, checked while typing by the script parser
 * (the editor's rules), sent through the helper like a one-line script (same reader choice,
 * connection and gate); the exchange is in the APDU Log, the answer in a notification.
 */
async function sendApdu(ctx: Ctx, arg: unknown): Promise<void> {
  await ctx.manager.ready();
  let reader = readerOf(arg) ?? defaultReader(ctx.manager.readers, ctx.selectedReader);
  if (!reader) {
    const withCard = ctx.manager.readers.filter((r) => r.card && !r.unavailable);
    reader = await pickReader(ctx, withCard.length ? withCard : ctx.manager.readers, 'Send the APDU to which reader?');
    if (!reader) return;
  }
  const stored = ctx.extension.globalState.get<string[]>(SEND_HISTORY_KEY, []);
  // A PIN typed here before commands that carry one were left out of the history: gone from disk now.
  const history = stored.filter((h) => !carriesSecret(h));
  if (history.length !== stored.length) await ctx.extension.globalState.update(SEND_HISTORY_KEY, history);
  const apdu = await new Promise<string | undefined>((resolve) => {
    const qp = vscode.window.createQuickPick();
    qp.title = `Send APDU to ${reader}`;
    qp.placeholder = 'Command APDU in hex, e.g. 00 A4 04 00 07 F0 57 42 44 45 4D 4F 00 (optionally => 90 00); earlier ones below';
    qp.matchOnDescription = false;
    const fromHistory = history.map((h) => ({ label: h, description: 'sent before' }));
    const refresh = () => {
      const typed = qp.value.trim();
      if (!typed) { qp.items = fromHistory; return; }
      const c = checkOneApdu(typed);
      const first = { label: typed, description: 'error' in c ? '' : carriesSecret(typed) ? 'Enter to send · not kept in the history (its data is a PIN)' : 'Enter to send', detail: 'error' in c ? `$(error) ${c.error}` : undefined, alwaysShow: true };
      qp.items = [first, ...fromHistory.filter((h) => h.label !== typed)];
    };
    qp.onDidChangeValue(refresh);
    qp.onDidAccept(() => {
      const picked = qp.selectedItems[0]?.label ?? qp.value.trim();
      const c = checkOneApdu(picked);
      if ('error' in c) {
        // A history row picked with Enter: show it to fix. The value typed is never set again from
        // here: the set would arrive after the user's next keystrokes and undo them.
        if (picked !== qp.value.trim()) qp.value = picked;
        refresh();
        return;
      }
      resolve(c.script);
      qp.hide();
    });
    qp.onDidHide(() => { resolve(undefined); qp.dispose(); });
    refresh();
    qp.show();
  });
  if (!apdu) return;
  await ctx.extension.globalState.update(SEND_HISTORY_KEY, pushHistory(history, apdu));
  ctx.panel.show(true);
  const result = await ctx.manager.request(SendApduRequest, { apdu, reader });
  const last = result.exchanges.at(-1);
  const decoded = last ? await ctx.manager.request(DecodeExchangeRequest, { command: result.exchanges[0].command, response: last.response }).catch(() => undefined) : undefined;
  const { text, ok } = sendApduMessage(result, decoded);
  ctx.log.info(`Send APDU ${apdu} on ${result.reader ?? reader}: ${text}`);
  const actions = last ? [] : failureActions(result.failure?.code, readerNamed(ctx, reader)?.driver);
  const show = ok ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
  void show(text, ...actions).then(async (pick) => {
    if (pick === 'Insert Card') await vscode.commands.executeCommand('smartcard.insertCard', reader);
    else if (pick === 'Select Reader') await vscode.commands.executeCommand('smartcard.selectReader');
  });
}

/** Decoded ATRs as read-only documents (scheme smartcard-atr): no untitled buffer to save. */
class AtrDocuments implements vscode.TextDocumentContentProvider {
  static readonly scheme = 'smartcard-atr';
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  add(atr: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: AtrDocuments.scheme, path: `/ATR ${spacedHex(atr)}.txt` });
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
    return uri;
  }
  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? 'This decoded ATR is no longer available: run "Smart Card: Decode ATR" again.';
  }
}

export function registerCommands(ctx: Ctx): void {
  const atrDocuments = new AtrDocuments();
  ctx.extension.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(AtrDocuments.scheme, atrDocuments));
  trackApduEditors(ctx);
  const commands: Record<string, Command> = {
    ...readerCommands(ctx),
    'smartcard.openExample': (name) => openExample(ctx, name),
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
      // From a card row: its ATR. From the palette: typed (checked while typing), or Enter on
      // an empty box for the selected (or only) card's ATR.
      let atr = readerOf(arg) ? atrOf(ctx, arg) : undefined;
      if (!atr) {
        const card = defaultAtrReader(ctx.manager.readers, ctx.selectedReader);
        const typed = await vscode.window.showInputBox({
          title: 'Decode ATR',
          prompt: card ? `ATR in hex, or Enter for the ATR of the card in ${card.name}` : 'ATR in hex',
          placeHolder: card ? `Enter: ${spacedHex(card.card!.atr!)}` : '3B 8B 81 31 FE 45 …',
          validateInput: (v) => {
            const a = parseAtrInput(v);
            if ('error' in a) return a.error;
            return !a.hex && !card ? 'Type an ATR: no card has one yet (power a card up to decode its ATR).' : undefined;
          },
        });
        if (typed === undefined) return;
        const a = parseAtrInput(typed);
        if ('error' in a) throw new Error(a.error);
        atr = a.hex || card?.card?.atr;
        if (!atr) return;
      }
      const { lines, identified } = await ctx.manager.request(DecodeAtrRequest, { atr });
      const text = [...lines, '', identified.length ? 'Identified (smartcard_list.txt):' : 'Not in smartcard_list.txt.', ...identified.map((l) => `  ${l}`), ''].join('\n');
      // A read-only virtual document: nothing to save, no "Do you want to save…" on close.
      const uri = atrDocuments.add(atr, text);
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
    },
    'smartcard.sendApdu': (arg) => sendApdu(ctx, arg),
    'smartcard.copyPcscServiceEnvironment': async () => {
      if (!ctx.config.pcscServiceEnabled) {
        const open = 'Open Setting';
        const choice = await vscode.window.showWarningMessage('The PC/SC service is off. Turn on "smartcard.pcscService.enabled" in your user settings to let PC/SC programs use the workbench\'s readers.', open);
        if (choice === open) await vscode.commands.executeCommand('workbench.action.openSettings', 'smartcard.pcscService.enabled');
        return;
      }
      const st = await ctx.manager.pcscServiceSettled();
      if (st.state !== 'running' || !st.socketPath) {
        throw new Error(`The PC/SC service is not running${st.message ? `: ${st.message}` : ''}. See the Smart Card output for why.`);
      }
      const line = pcscServiceExportLine(st.socketPath);
      await vscode.env.clipboard.writeText(line);
      void vscode.window.showInformationMessage(`Copied "${line}": paste it into a shell, then PC/SC programs started there use the workbench's readers.`);
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
