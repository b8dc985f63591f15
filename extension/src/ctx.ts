// All extension state in one place: the helper client, the reader cache view,
// the log buffer and panel, the status bar, the selected reader.
import * as vscode from 'vscode';
import { DecodeExchangeRequest, DecodeAtrRequest, type ReaderInfo } from '../../server/src/protocol';
import { ReaderManagerClient } from './client';
import { Config } from './config';
import { LogPanel } from './logPanel';
import { LogPersistence } from './logPersist';
import { LogStore } from './logStore';
import { ReadersTreeProvider } from './readersTree';
import { RunResults } from './runResults';
import { StatusBar } from './statusBar';
import { registerPcscServiceEnvironment } from './pcscServiceEnv';

const SELECTED_READER_KEY = 'smartcard.selectedReader';

export class Ctx {
  readonly log: vscode.LogOutputChannel;
  readonly config = new Config();
  readonly manager: ReaderManagerClient;
  readonly logStore = new LogStore();
  readonly panel: LogPanel;
  readonly tree = new ReadersTreeProvider((atr) => this.manager.request(DecodeAtrRequest, { atr }));
  readonly treeView: vscode.TreeView<unknown>;
  readonly status: StatusBar;
  readonly runResults = new RunResults();

  constructor(readonly extension: vscode.ExtensionContext) {
    const subs = extension.subscriptions;
    this.log = vscode.window.createOutputChannel('Smart Card', { log: true });
    subs.push(this.log);
    const globalStorage = extension.globalStorageUri;
    this.manager = new ReaderManagerClient(extension.extensionPath, this.log, this.config,
      globalStorage.scheme === 'file' ? vscode.Uri.joinPath(globalStorage, 'code-cache').fsPath : undefined);
    subs.push(this.manager);
    this.panel = new LogPanel(extension.extensionUri, this.logStore, this.log, () => ({
      state: this.manager.state === 'idle' ? 'stopped' : this.manager.state,
      readers: this.manager.readers.length,
      detail: this.manager.lastError,
    }), { decode: (command, response) => this.manager.request(DecodeExchangeRequest, { command, response }) });
    subs.push(this.panel);
    // The log of the last session (a window reload restarts the extension host and the helper),
    // unless `smartcard.log.persist` is off: then nothing is written and a file left from before goes.
    const storage = extension.storageUri ?? extension.globalStorageUri;
    if (storage.scheme === 'file') {
      this.logFile = vscode.Uri.joinPath(storage, 'apdu-log.jsonl').fsPath;
      if (this.config.logPersist) {
        this.persist = this.newPersistence(this.logFile);
        const n = this.persist.load();
        if (n) this.log.info(`APDU Log: ${n} row(s) restored from ${this.logFile}`);
      } else {
        this.removeStoredLog(this.logFile);
      }
      subs.push({ dispose: () => this.persist?.dispose() });
    }
    this.treeView = vscode.window.createTreeView('smartcard.readers', { treeDataProvider: this.tree, showCollapseAll: false });
    subs.push(this.tree, this.treeView);
    this.status = new StatusBar(this.manager, () => this.selectedReader);
    subs.push(this.status, this.runResults);
    registerPcscServiceEnvironment(extension, this.manager, this.log);

    subs.push(
      this.manager.onDidChangeState(({ state, message }) => {
        if (state === 'starting') { this.logStore.newGeneration(); this.tree.clearDecodings(); }
        if (message) this.panel.append([this.logStore.addManager(state, message)]);
        this.treeView.message = state === 'running' ? undefined
          : state === 'starting' ? 'Starting the reader manager…'
          : state === 'restarting' ? 'The reader manager stopped; restarting…'
          : state === 'stopped' ? 'The reader manager is not running. Run "Smart Card: Restart Reader Manager".'
          : undefined;
        this.status.update();
        this.panel.postState();
      }),
      this.manager.onDidChangeReaders((readers) => this.onReaders(readers)),
      // The client drops entries of helpers that are gone, so these belong to the current generation.
      this.manager.onEntries(({ entries }) => {
        const r = this.logStore.addEntries(entries);
        if (r.reordered) this.panel.resend();
        else this.panel.append(r.appended);
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('smartcard.log.persist')) this.applyLogPersist();
        if (e.affectsConfiguration('smartcard.readerManager')) this.manager.updatePolicy();
        if (e.affectsConfiguration('smartcard.readerManager.exchangeTimeout') || e.affectsConfiguration('smartcard.readerManager.idlePowerOff')) this.manager.notifySettings({ readerManager: this.config.readerManagerSettings });
        if (e.affectsConfiguration('smartcard.pin')) this.manager.notifySettings({ pin: this.config.pinSettings });
        // The PC/SC service starts and stops with its setting, without a helper restart.
        if (e.affectsConfiguration('smartcard.pcscService')) this.manager.notifySettings({ pcscService: { enabled: this.config.pcscServiceEnabled } });
        if (this.config.needsHelperRestart(e) && this.manager.state !== 'idle') {
          this.log.info('A setting the reader manager reads at start changed; restarting it');
          this.manager.restart().catch(() => undefined);
        }
      }),
      // Trusting the workspace makes its values of the restricted settings count (trust.ts).
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        if (!this.config.trustChangesSettings) return;
        this.manager.notifySettings({ pin: this.config.pinSettings });
        this.applyLogPersist();
        if (this.manager.state !== 'idle') {
          this.log.info('The workspace is trusted now and sets reader manager settings; restarting it');
          this.manager.restart().catch(() => undefined);
        }
      }),
    );
  }

  private logFile: string | undefined;
  private persist: LogPersistence | undefined;

  private newPersistence(file: string): LogPersistence {
    return new LogPersistence(file, this.logStore, (m) => this.log.warn(m));
  }

  private removeStoredLog(file: string): void {
    LogPersistence.removeStoredLog(file).then(
      (removed) => { if (removed) this.log.info(`APDU Log: smartcard.log.persist is off; removed the saved log ${file}`); },
      (err: unknown) => this.log.warn(`APDU Log: could not remove the saved log ${file}: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  /** `smartcard.log.persist` changed: start saving (everything the log holds) or stop and remove the file. */
  private applyLogPersist(): void {
    if (!this.logFile) return;
    const on = this.config.logPersist;
    if (on && !this.persist) {
      this.persist = this.newPersistence(this.logFile);
      this.persist.saveAll();
    } else if (!on && this.persist) {
      const p = this.persist;
      this.persist = undefined;
      void p.stop().then(() => this.log.info(`APDU Log: smartcard.log.persist is off; removed the saved log ${this.logFile}`));
    }
  }

  get selectedReader(): string | undefined {
    return this.extension.workspaceState.get<string>(SELECTED_READER_KEY);
  }

  async selectReader(name: string | undefined): Promise<void> {
    await this.extension.workspaceState.update(SELECTED_READER_KEY, name);
    this.tree.setReaders(this.manager.readers, name);
    this.status.update();
  }

  private onReaders(readers: ReaderInfo[]): void {
    this.tree.setReaders(readers, this.selectedReader, this.manager.drivers);
    this.status.update();
    this.panel.postState();
  }
}
