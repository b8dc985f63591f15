// The "APDU Log" webview: a view in the bottom panel (beside Output and Terminal,
// the default) or a panel beside the editor, as the setting smartcard.log.location
// says. Rows come from the LogStore; new ones are posted in batches to every host
// that is showing. Every message from the webview is validated before it is acted on.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { filterRows } from '../../webview/src/filter';
import { jsonLines, traceText } from '../../webview/src/format';
import { packRows } from '../../webview/src/packed';
import {
  parseWebviewMessage, type DecodedExchange, type ExportFormat, type HostMessage, type LogFilter, type LogRow, type ManagerState,
  type WebviewMessage, type WebviewRequests,
} from '../../webview/src/protocol';
import { decodeLogRow } from './logDecode';
import type { LogStore } from './logStore';

/** Coalesce rows arriving close together into one postMessage. */
const BATCH_MS = 40;
const MAX_BATCH = 2000;
/**
 * Rows go to the panel in messages of at most this many, in column form (webview/src/packed.ts):
 * the history a panel gets on `ready` and the live rows alike. The workbench's renderer parses
 * each message and clones it into the webview, in the heap it shares with the webview in
 * code-server, so no object is made per row, and the number-like columns are bytes, which VS Code
 * carries beside the message and transfers, never a string in that heap. 1,000 rows keep a
 * message's strings (the table, the long hex) small and short-lived (docs/benchmarks.md).
 */
const CHUNK = 1000;

export interface LogPanelServices {
  /** Decodes an exchange in the helper. */
  decode(command: string, response: string): Promise<DecodedExchange>;
}

type Handlers = { [M in keyof WebviewRequests]: (params: WebviewRequests[M]['params']) => Promise<WebviewRequests[M]['result']> | WebviewRequests[M]['result'] };

/** Where the log lives: `panel` = the bottom panel (a webview view), `editor` = beside the editor. */
export type LogLocation = 'panel' | 'editor';

export function logLocation(): LogLocation {
  return vscode.workspace.getConfiguration('smartcard').get<string>('log.location') === 'editor' ? 'editor' : 'panel';
}

/** A webview showing the log: the editor panel or the bottom-panel view. */
interface Host {
  readonly webview: vscode.Webview;
  /** Said `ready` since it was last (re)loaded: it has the history and gets new rows. */
  ready: boolean;
}

export class LogPanel implements vscode.Disposable {
  static readonly viewType = 'smartcard.apduLog';
  /** The view in the bottom panel (package.json: views.smartcardLog). */
  static readonly viewId = 'smartcard.apduLogView';
  private panel: vscode.WebviewPanel | undefined;
  private panelHost: Host | undefined;
  private view: vscode.WebviewView | undefined;
  private viewHost: Host | undefined;
  private pending: LogRow[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly handlers: Handlers;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly store: LogStore,
    private readonly log: vscode.LogOutputChannel,
    private readonly managerState: () => { state: ManagerState; readers: number; detail?: string },
    private readonly services: LogPanelServices,
  ) {
    this.handlers = {
      clear: () => {
        const cleared = this.store.clear();
        this.pending = [];
        this.post({ type: 'rows', rows: [], reset: true });
        return { cleared };
      },
      revealLine: async ({ uri, line }) => {
        const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(uri, true));
        const pos = new vscode.Position(Math.min(line - 1, doc.lineCount - 1), 0);
        await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, pos), viewColumn: vscode.ViewColumn.One });
      },
      copy: async ({ text }) => { await vscode.env.clipboard.writeText(text); },
      decode: ({ id }) => decodeLogRow(this.store, id, (command, response) => this.services.decode(command, response)),
      export: ({ filter }) => this.exportLog(filter),
    };
    // From the palette: the whole log, unfiltered.
    this.disposables.push(vscode.commands.registerCommand('smartcard.exportLog', async () => {
      try {
        return await this.exportLog();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.log.error(`smartcard.exportLog: ${message}`);
        void vscode.window.showErrorMessage(`Smart Card: the APDU Log could not be exported: ${message}`);
        return null;
      }
    }));
    // After a window reload VS Code gives the panel back; it gets its content again from the store.
    this.disposables.push(vscode.window.registerWebviewPanelSerializer(LogPanel.viewType, {
      deserializeWebviewPanel: async (panel) => { this.adopt(panel); },
    }));
    this.disposables.push(vscode.window.registerWebviewViewProvider(LogPanel.viewId, {
      resolveWebviewView: (view) => { this.adoptView(view); },
    }));
    // The user's choice of place is the setting (user level, so it holds in every workspace).
    const moveTo = (where: LogLocation) => async () => {
      await vscode.workspace.getConfiguration('smartcard').update('log.location', where, vscode.ConfigurationTarget.Global);
      this.show();
    };
    this.disposables.push(
      vscode.commands.registerCommand('smartcard.moveLogToPanel', moveTo('panel')),
      vscode.commands.registerCommand('smartcard.moveLogToEditor', moveTo('editor')),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('smartcard.log.location') && this.isOpen) this.show(true);
      }),
    );
  }

  private readonly disposables: vscode.Disposable[] = [];

  /**
   * Writes the whole log the extension holds (not only what the panel shows) as a text trace
   * or JSON Lines, with the panel's filter when started from the panel. Asks the format and the file.
   */
  async exportLog(filter?: LogFilter): Promise<{ path: string; rows: number } | null> {
    const formats: (vscode.QuickPickItem & { format: ExportFormat; ext: string })[] = [
      { label: 'Text trace', description: '> and < lines with timing and the status word\'s meaning', format: 'text', ext: 'txt' },
      { label: 'JSON Lines', description: 'one row object per line, for tools', format: 'jsonl', ext: 'jsonl' },
    ];
    const pick = await vscode.window.showQuickPick(formats, { title: 'Export APDU Log', placeHolder: 'Export the APDU Log as' });
    if (!pick) return null;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const name = `apdu-log.${pick.ext}`;
    const uri = await vscode.window.showSaveDialog({
      title: 'Export APDU Log',
      saveLabel: 'Export',
      ...(folder ? { defaultUri: vscode.Uri.joinPath(folder, name) } : {}),
      filters: pick.format === 'text' ? { 'Text trace': ['txt', 'log'] } : { 'JSON Lines': ['jsonl'] },
    });
    if (!uri) return null;
    const rows = filter ? filterRows(this.store.rows(), filter) : this.store.rows();
    const text = pick.format === 'text' ? traceText(rows) : jsonLines(rows);
    await vscode.workspace.fs.writeFile(uri, Buffer.from(text, 'utf8'));
    const where = uri.scheme === 'file' ? uri.fsPath : uri.toString();
    this.log.info(`APDU Log: exported ${rows.length} row(s) as ${pick.label} to ${where}`);
    void vscode.window.showInformationMessage(`APDU Log exported: ${rows.length} row${rows.length === 1 ? '' : 's'} to ${where}`, 'Open').then((a) => {
      if (a === 'Open') void vscode.window.showTextDocument(uri);
    });
    return { path: where, rows: rows.length };
  }

  get isOpen(): boolean {
    return this.panel !== undefined || this.view !== undefined;
  }

  /** Shows the log where smartcard.log.location says (the bottom panel by default). */
  show(preserveFocus = false): void {
    if (logLocation() === 'panel') {
      // The log moved to the bottom panel: the editor column it held goes back to the editor.
      this.panel?.dispose();
      if (this.view) this.view.show(preserveFocus);
      else void this.openView(preserveFocus);
      return;
    }
    this.showInEditor(preserveFocus);
  }

  /**
   * The bottom-panel view before VS Code resolved it: opened the way outputChannel.show(true) opens
   * Output, without taking the focus, so a palette or PIN box opened meanwhile stays open.
   */
  private async openView(preserveFocus: boolean): Promise<void> {
    try {
      // VS Code 1.100+: every view has `<id>.open` taking { preserveFocus }.
      await vscode.commands.executeCommand(`${LogPanel.viewId}.open`, { preserveFocus });
    } catch {
      // Older: focus it, then hand the focus back to the editor.
      await vscode.commands.executeCommand(`${LogPanel.viewId}.focus`);
      if (preserveFocus) await vscode.commands.executeCommand('workbench.action.focusActiveEditorGroup');
    }
  }

  private showInEditor(preserveFocus: boolean): void {
    if (this.panel) {
      // Hidden behind the editor it serves (same group)? Move it beside, so the log is seen.
      const sharesEditorGroup = !this.panel.visible && this.panel.viewColumn !== undefined
        && this.panel.viewColumn === vscode.window.activeTextEditor?.viewColumn;
      this.panel.reveal(sharesEditorGroup ? vscode.ViewColumn.Beside : undefined, preserveFocus);
      return;
    }
    const panel = vscode.window.createWebviewPanel(LogPanel.viewType, 'APDU Log', { viewColumn: vscode.ViewColumn.Beside, preserveFocus }, {
      enableScripts: true,
      localResourceRoots: this.roots(),
    });
    this.adopt(panel);
  }

  private roots(): vscode.Uri[] {
    return [vscode.Uri.joinPath(this.extensionUri, 'out'), vscode.Uri.joinPath(this.extensionUri, 'media')];
  }

  /** One of the log's webviews (the editor panel or the bottom-panel view): its options, document and messages. */
  private attach(webview: vscode.Webview): Host {
    const [out, media] = this.roots();
    webview.options = { enableScripts: true, localResourceRoots: [out, media] };
    const host: Host = { webview, ready: false };
    webview.html = this.html(webview, out, media);
    webview.onDidReceiveMessage((raw: unknown) => this.onMessage(raw, host));
    return host;
  }

  /** A panel we created, or one VS Code restored after a reload. */
  private adopt(panel: vscode.WebviewPanel): void {
    if (this.panel && this.panel !== panel) this.panel.dispose();
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'smartcard.svg');
    const host = this.attach(panel.webview);
    this.panel = panel;
    this.panelHost = host;
    // A hidden webview loses its document; it says `ready` again when shown and gets the history.
    panel.onDidChangeViewState(() => { if (!panel.visible) host.ready = false; });
    panel.onDidDispose(() => {
      host.ready = false;
      if (this.panel === panel) { this.panel = undefined; this.panelHost = undefined; }
      if (!this.anyReady()) this.pending = [];
    });
  }

  /** The bottom-panel view, when VS Code first shows it (or again after it was disposed). */
  private adoptView(view: vscode.WebviewView): void {
    const host = this.attach(view.webview);
    this.view = view;
    this.viewHost = host;
    view.onDidChangeVisibility(() => { if (!view.visible) host.ready = false; });
    view.onDidDispose(() => {
      host.ready = false;
      if (this.view === view) { this.view = undefined; this.viewHost = undefined; }
      if (!this.anyReady()) this.pending = [];
    });
  }

  private hosts(): Host[] {
    return [this.panelHost, this.viewHost].filter((h): h is Host => h !== undefined);
  }

  private anyReady(): boolean {
    return this.hosts().some((h) => h.ready);
  }

  /** New rows for the panel (sent in batches). */
  append(rows: readonly LogRow[]): void {
    if (!this.anyReady() || rows.length === 0) return;
    for (const r of rows) this.pending.push(r);
    if (this.pending.length >= MAX_BATCH) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), BATCH_MS);
  }

  /** Everything again (after rows arrived out of order). */
  resend(): void {
    for (const h of this.hosts()) if (h.ready) this.sendHistory(h);
  }

  postState(): void {
    if (this.anyReady()) this.post({ type: 'state', ...this.managerState() });
  }

  dispose(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const d of this.disposables) d.dispose();
    this.panel?.dispose();
  }

  /** Everything the store holds, replacing what one host shows, in chunks. */
  private sendHistory(to: Host): void {
    // Rows waiting for the other hosts go out first: the history holds them already.
    this.flush();
    // The store's own array, not a copy: nothing changes it before this loop ends. The first
    // message says the history's length, so that the panel sizes its columns once.
    const rows = this.store.view();
    this.post({ type: 'packedRows', rows: packRows(rows, 0, CHUNK), reset: true, total: rows.length }, to);
    for (let i = CHUNK; i < rows.length; i += CHUNK) this.post({ type: 'packedRows', rows: packRows(rows, i, i + CHUNK) }, to);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.pending.length) return;
    const rows = this.pending;
    this.pending = [];
    for (let i = 0; i < rows.length; i += CHUNK) this.post({ type: 'packedRows', rows: packRows(rows, i, i + CHUNK) });
  }

  /** To one host, or to every host that is ready. */
  private post(msg: HostMessage, to?: Host): void {
    for (const h of to ? [to] : this.hosts().filter((x) => x.ready)) void h.webview.postMessage(msg);
  }

  private onMessage(raw: unknown, host: Host): void {
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) {
      this.log.warn(`APDU Log: ignored a message from the webview: ${parsed.reason}`);
      // A request that cannot be read still gets an answer, so the panel never waits forever.
      const id = (raw as { id?: unknown } | null)?.id;
      if (typeof id === 'number' && Number.isInteger(id) && id >= 0) this.post({ type: 'error', id, error: { code: 'E_BAD_MESSAGE', message: `The APDU Log sent a request the extension cannot read: ${parsed.reason}.` } }, host);
      return;
    }
    const msg: WebviewMessage = parsed.message;
    if (msg.type === 'ready') {
      this.sendHistory(host);
      host.ready = true;
      this.post({ type: 'state', ...this.managerState() }, host);
      // The walkthrough's "Read the APDU Log" step completes when the log is seen, however it was opened.
      void vscode.commands.executeCommand('setContext', 'smartcard.walkthrough.logShown', true);
      return;
    }
    const handler = this.handlers[msg.method] as (p: unknown) => unknown;
    Promise.resolve()
      .then(() => handler(msg.params))
      .then(
        (result) => this.post({ type: 'response', id: msg.id, result: result ?? null }, host),
        (err: unknown) => this.post({ type: 'error', id: msg.id, error: { code: 'E_PANEL_REQUEST', message: err instanceof Error ? err.message : String(err) } }, host),
      );
  }

  private html(webview: vscode.Webview, out: vscode.Uri, media: vscode.Uri): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const src = (base: vscode.Uri, file: string) => webview.asWebviewUri(vscode.Uri.joinPath(base, file)).toString();
    // The toolkit styles itself with adopted style sheets (no inline styles needed by it);
    // 'unsafe-inline' styles only cover our own element.style updates.
    const csp = [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src ${webview.cspSource} 'unsafe-inline'`,
      `font-src ${webview.cspSource}`,
      `img-src ${webview.cspSource}`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${src(media, 'log.css')}">
<script type="module" nonce="${nonce}" src="${src(out, 'toolkit.min.js')}"></script>
<title>APDU Log</title>
</head>
<body>
<header id="toolbar">
  <vscode-text-field id="filter" aria-label="Filter" placeholder="Filter (hex, reader, SW, text)" size="18"></vscode-text-field>
  <select id="reader" aria-label="Reader" title="Show one reader's rows"><option value="">All readers</option></select>
  <select id="client" aria-label="Client" title="Show the rows of one program using the readers (an extension, a PC/SC client) or the workbench's own" hidden><option value="">All clients</option></select>
  <span class="group" role="group" aria-label="Status words shown">
    <button class="toggle icon" id="swSuccess" aria-pressed="true" aria-label="Success" title="Exchanges that succeeded (90 00, 61 xx)">✓</button>
    <button class="toggle icon" id="swWarning" aria-pressed="true" aria-label="Warning" title="Exchanges with a warning (62 xx, 63 xx)">⚠</button>
    <button class="toggle icon" id="swError" aria-pressed="true" aria-label="Error" title="Exchanges that failed (64 xx to 6F xx, and others)">✗</button>
    <button class="toggle icon" id="showEvents" aria-pressed="true" aria-label="Events" title="Plug-and-play and power events">⚡</button>
  </span>
  <button class="toggle" id="follow" aria-pressed="true" title="Stay at the newest row while rows arrive">Follow</button>
  <span class="group" role="group" aria-label="Actions">
    <vscode-button id="pause" appearance="icon" aria-pressed="false" aria-label="Pause" title="Pause: hold the view still; rows keep arriving"><span class="glyph" aria-hidden="true"></span></vscode-button>
    <vscode-button id="copy" appearance="icon" aria-label="Copy" title="Copy the rows shown as a text trace"><span class="glyph" aria-hidden="true"></span></vscode-button>
    <vscode-button id="export" appearance="icon" aria-label="Export…" title="Export… the whole log, with these filters, as a text trace or JSON Lines"><span class="glyph" aria-hidden="true"></span></vscode-button>
    <vscode-button id="clear" appearance="icon" aria-label="Clear" title="Clear the log"><span class="glyph" aria-hidden="true"></span></vscode-button>
  </span>
  <span id="arrived" hidden></span>
  <span id="state" data-state="idle"></span>
  <vscode-badge id="count">0</vscode-badge>
</header>
<p id="empty">No APDUs yet. Run an <code>.apdu</code> script or insert a card.</p>
<main id="scroller" tabindex="0" aria-label="APDU Log rows: arrow keys move, Enter expands">
  <div id="spacer"><div id="log" role="log" aria-live="off"></div></div>
</main>
<script nonce="${nonce}" src="${src(out, 'webview.js')}"></script>
</body>
</html>`;
  }
}
