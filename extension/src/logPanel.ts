// The "APDU Log" webview panel. Rows come from the LogStore; new ones are posted
// in batches. Every message from the webview is validated before it is acted on.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import {
  parseWebviewMessage, type HostMessage, type LogRow, type ManagerState, type WebviewMessage, type WebviewRequests,
} from '../../webview/src/protocol';
import type { LogStore } from './logStore';

/** Coalesce rows arriving close together into one postMessage. */
const BATCH_MS = 40;
const MAX_BATCH = 500;
/** The panel keeps this many rows on the page; older history stays in the extension. */
const HISTORY_ROWS = 5000;

type Handlers = { [M in keyof WebviewRequests]: (params: WebviewRequests[M]['params']) => Promise<WebviewRequests[M]['result']> | WebviewRequests[M]['result'] };

export class LogPanel implements vscode.Disposable {
  static readonly viewType = 'smartcard.apduLog';
  private panel: vscode.WebviewPanel | undefined;
  private ready = false;
  private pending: LogRow[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly handlers: Handlers;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly store: LogStore,
    private readonly log: vscode.LogOutputChannel,
    private readonly managerState: () => { state: ManagerState; readers: number; detail?: string },
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
    };
  }

  get isOpen(): boolean {
    return this.panel !== undefined;
  }

  show(preserveFocus = false): void {
    if (this.panel) {
      // Hidden behind the editor it serves (same group)? Move it beside, so the log is seen.
      const sharesEditorGroup = !this.panel.visible && this.panel.viewColumn !== undefined
        && this.panel.viewColumn === vscode.window.activeTextEditor?.viewColumn;
      this.panel.reveal(sharesEditorGroup ? vscode.ViewColumn.Beside : undefined, preserveFocus);
      return;
    }
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    const out = vscode.Uri.joinPath(this.extensionUri, 'out');
    const panel = vscode.window.createWebviewPanel(LogPanel.viewType, 'APDU Log', { viewColumn: vscode.ViewColumn.Beside, preserveFocus }, {
      enableScripts: true,
      localResourceRoots: [out, media],
    });
    panel.iconPath = vscode.Uri.joinPath(media, 'smartcard.svg');
    this.panel = panel;
    this.ready = false;
    panel.webview.html = this.html(panel.webview, out, media);
    panel.webview.onDidReceiveMessage((raw: unknown) => this.onMessage(raw));
    // A hidden webview loses its document; it says `ready` again when shown and gets the history.
    panel.onDidChangeViewState(() => { if (!panel.visible) this.ready = false; });
    panel.onDidDispose(() => {
      this.panel = undefined;
      this.ready = false;
      this.pending = [];
    });
  }

  /** New rows for the panel (sent in batches). */
  append(rows: readonly LogRow[]): void {
    if (!this.panel || !this.ready || rows.length === 0) return;
    this.pending.push(...rows);
    if (this.pending.length >= MAX_BATCH) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), BATCH_MS);
  }

  /** Everything again (after rows arrived out of order). */
  resend(): void {
    if (!this.panel || !this.ready) return;
    this.pending = [];
    this.post({ type: 'rows', rows: this.store.rows().slice(-HISTORY_ROWS), reset: true });
  }

  postState(): void {
    if (this.panel && this.ready) this.post({ type: 'state', ...this.managerState() });
  }

  dispose(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.panel?.dispose();
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.pending.length) return;
    const rows = this.pending;
    this.pending = [];
    this.post({ type: 'rows', rows });
  }

  private post(msg: HostMessage): void {
    void this.panel?.webview.postMessage(msg);
  }

  private onMessage(raw: unknown): void {
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) {
      this.log.warn(`APDU Log: ignored a message from the webview: ${parsed.reason}`);
      return;
    }
    const msg: WebviewMessage = parsed.message;
    if (msg.type === 'ready') {
      this.ready = true;
      this.pending = [];
      this.post({ type: 'rows', rows: this.store.rows().slice(-HISTORY_ROWS), reset: true });
      this.postState();
      return;
    }
    const handler = this.handlers[msg.method] as (p: unknown) => unknown;
    Promise.resolve()
      .then(() => handler(msg.params))
      .then(
        (result) => this.post({ type: 'response', id: msg.id, result: result ?? null }),
        (err: unknown) => this.post({ type: 'error', id: msg.id, error: { code: 'E_PANEL_REQUEST', message: err instanceof Error ? err.message : String(err) } }),
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
  <vscode-text-field id="filter" aria-label="Filter" placeholder="Filter (hex, reader, SW, text)" size="30"></vscode-text-field>
  <vscode-checkbox id="follow" checked>Follow</vscode-checkbox>
  <vscode-checkbox id="showEvents" checked>Events</vscode-checkbox>
  <vscode-button id="copy" appearance="secondary">Copy</vscode-button>
  <vscode-button id="clear" appearance="secondary">Clear</vscode-button>
  <span id="state" data-state="idle"></span>
  <vscode-badge id="count">0</vscode-badge>
</header>
<main id="log" role="log" aria-live="polite"></main>
<p id="empty">No APDUs yet. Run an <code>.apdu</code> script or insert a card.</p>
<script nonce="${nonce}" src="${src(out, 'webview.js')}"></script>
</body>
</html>`;
  }
}
