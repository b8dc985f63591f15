// The helper process: a language server for `.apdu` files that is also the reader
// manager. Started on first use; restarted after a crash by RestartPolicy, not by
// vscode-languageclient (its handler always answers DoNotRestart).
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  CloseAction, ErrorAction, LanguageClient, RevealOutputChannelOn, TransportKind,
  type CloseHandlerResult, type ErrorHandlerResult, type LanguageClientOptions, type ServerOptions,
} from 'vscode-languageclient/node';
import {
  AskPinRequest, ConfirmRequest, EventsNotification, LogHistoryRequest, ReadersChangedNotification, RunProgressNotification, SettingsNotification, StartedNotification,
  type DriverStatus, type HelperSettings, type LogEntry, type ParamsOf, type ReaderInfo, type Request, newPinKey, PIN_KEY_ENV, CODE_CACHE_ENV,
  PcscServiceStatusNotification, type PcscServiceStatus,
} from '../../server/src/protocol';
import { pinPromptText, sealedAnswer } from './pinPrompt';
import { driverStateWords } from './readersModel';
import { onNotification, onRequest, sendRequest } from './rpc';
import type { Config } from './config';
import { RestartPolicy } from './restartPolicy';

export type ManagerState = 'idle' | ActiveState;
export type ActiveState = 'starting' | 'running' | 'restarting' | 'stopped';

/** Thrown by requests while the helper is down; the message says what to do. */
export class NotRunningError extends Error {
  readonly code = 'E_NOT_RUNNING';
  constructor(detail: string) {
    super(`The reader manager is not running${detail ? ` (${detail})` : ''}. Run "Smart Card: Restart Reader Manager" to start it.`);
  }
}

/** A helper that does not announce itself in this time is reported, not killed. */
const STARTED_WARNING_MS = 30_000;
/**
 * Node/V8 options for the helper: a 2 MB young generation (default 16 MB), V8's
 * "optimize for size" (the old generation grows by the smallest factor between
 * collections) and one V8 worker thread instead of four (each thread keeps its
 * own malloc arena) keep its memory near 75 MB under a long run instead of
 * 95-105 MB (160-200 MB with none), for about 1-2 µs more CPU per APDU
 * (docs/benchmarks.md). bench/run.mjs starts the helper with the same options.
 */
export const HELPER_EXEC_ARGV = ['--max-semi-space-size=2', '--optimize-for-size', '--v8-pool-size=1'];

type RunProgress = ParamsOf<typeof RunProgressNotification>;

export class ReaderManagerClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private gen = 0;
  private crashHandledFor = 0;
  private startedPromise: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly policy: RestartPolicy;
  private _state: ManagerState = 'idle';
  private _readers: ReaderInfo[] = [];
  private _restartAt: number | undefined;
  private _lastError: string | undefined;
  private _drivers: DriverStatus[] = [];
  private _version: string | undefined;
  private _pcscService: PcscServiceStatus = { state: 'stopped' };
  private readonly pcscServiceEmitter = new vscode.EventEmitter<PcscServiceStatus>();
  /** The helper's PC/SC service started, stopped or failed (also stopped with the helper). */
  readonly onDidChangePcscService = this.pcscServiceEmitter.event;
  /** Cancels the prompts (PIN boxes) a helper opened, when that helper stops or crashes. */
  private prompts = new vscode.CancellationTokenSource();

  private readonly stateEmitter = new vscode.EventEmitter<{ state: ActiveState; message: string }>();
  private readonly readersEmitter = new vscode.EventEmitter<ReaderInfo[]>();
  private readonly entriesEmitter = new vscode.EventEmitter<{ entries: LogEntry[]; generation: number; history?: boolean }>();
  /** State changes, with a sentence for the log. */
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidChangeReaders = this.readersEmitter.event;
  /** Log entries from the helper; `generation` counts helper processes. */
  readonly onEntries = this.entriesEmitter.event;

  constructor(
    private readonly extensionPath: string,
    private readonly log: vscode.LogOutputChannel,
    private readonly config: Config,
    /** Where the helper keeps V8's code cache of its bundle (the extension's global storage); none: no cache. */
    private readonly codeCacheDir?: string,
  ) {
    this.policy = new RestartPolicy(config.restartPolicy);
  }

  get state(): ManagerState { return this._state; }
  get readers(): readonly ReaderInfo[] { return this._readers; }
  /** When an automatic restart is due (ms since the epoch), while `restarting`. */
  get restartAt(): number | undefined { return this._restartAt; }
  get lastError(): string | undefined { return this._lastError; }
  get drivers(): readonly DriverStatus[] { return this._drivers; }
  get pcscService(): PcscServiceStatus { return this._pcscService; }

  private setPcscService(status: PcscServiceStatus): void {
    if (status.state === this._pcscService.state && status.socketPath === this._pcscService.socketPath && status.message === this._pcscService.message) return;
    this._pcscService = status;
    this.pcscServiceEmitter.fire(status);
  }

  /**
   * The PC/SC service's state once the helper runs and has said whether its service
   * started (bounded: `stopped` when it says nothing within `ms`).
   */
  async pcscServiceSettled(ms = 10_000): Promise<PcscServiceStatus> {
    await this.ready();
    if (this._pcscService.state !== 'stopped') return this._pcscService;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { sub.dispose(); resolve(this._pcscService); }, ms);
      const sub = this.onDidChangePcscService((st) => {
        if (st.state === 'stopped') return;
        clearTimeout(timer);
        sub.dispose();
        resolve(st);
      });
    });
  }
  get version(): string | undefined { return this._version; }
  get generation(): number { return this.gen; }

  /** The path of the helper; SMARTCARD_SERVER_MODULE lets tests run a purpose-built one. */
  get serverModule(): string {
    return process.env.SMARTCARD_SERVER_MODULE || path.join(this.extensionPath, 'out', 'server.js');
  }

  updatePolicy(): void {
    this.policy.setOptions(this.config.restartPolicy);
  }

  /** Starts the helper if it never ran; resolves once it has sent `smartcard/started`. */
  start(): Promise<void> {
    if (this._state === 'running') return Promise.resolve();
    if (this._state === 'starting' && this.startedPromise) return this.startedPromise;
    this.clearRestartTimer();
    const gen = ++this.gen;
    const client = this.createClient(gen);
    this.client = client;
    this._readers = [];
    this.setState('starting', `Starting the reader manager (${this.serverModule})`);
    this.startedPromise = new Promise<void>((resolve, reject) => {
      const warn = setTimeout(() => this.log.warn(`The reader manager has not reported "started" after ${STARTED_WARNING_MS / 1000} s; still waiting`), STARTED_WARNING_MS);
      const subs: vscode.Disposable[] = [];
      const done = (err?: Error) => {
        clearTimeout(warn);
        subs.forEach((d) => d.dispose());
        if (err) reject(err); else resolve();
      };
      subs.push(this.onDidChangeState(({ state }) => {
        if (gen !== this.gen) return done(new NotRunningError('it was restarted'));
        if (state === 'running') done();
        else if (state === 'restarting' || state === 'stopped') done(new NotRunningError(this._lastError ?? ''));
      }));
    });
    // Nobody may be waiting (start at activation): keep the rejection from being "unhandled".
    this.startedPromise.catch(() => undefined);
    client.start().catch((err: unknown) => this.onCrash(gen, `it failed to start: ${errorText(err)}`));
    return this.startedPromise;
  }

  /** The running client, starting the helper on first use; throws NotRunningError while it is down. */
  async ready(): Promise<LanguageClient> {
    if (this._state === 'idle') await this.start();
    else if (this._state === 'starting') await this.startedPromise;
    else if (this._state === 'restarting') {
      const s = Math.max(0, Math.ceil(((this._restartAt ?? Date.now()) - Date.now()) / 1000));
      throw new NotRunningError(`it stopped unexpectedly; restarting in ${s} s`);
    } else if (this._state === 'stopped') throw new NotRunningError(this._lastError ?? 'stopped');
    if (!this.client || this._state !== 'running') throw new NotRunningError(this._lastError ?? '');
    return this.client;
  }

  async request<P, R>(type: Request<P, R>, params: P, token?: vscode.CancellationToken): Promise<R> {
    return sendRequest(await this.ready(), type, params, token);
  }

  private readonly progressEmitter = new vscode.EventEmitter<RunProgress>();
  /** Progress of running scripts (done/total commands, current line). */
  readonly onRunProgress = this.progressEmitter.event;

  /** Sends settings that need no restart (the PIN policy) to a running helper. */
  notifySettings(settings: HelperSettings): void {
    if (this.client && this._state === 'running') void this.client.sendNotification(SettingsNotification.method, settings);
  }

  /** "Smart Card: Restart Reader Manager": forget the failures and start again now. */
  async restart(): Promise<void> {
    this.policy.reset();
    this.clearRestartTimer();
    await this.stopClient();
    this._state = 'idle';
    await this.start();
  }

  async stop(): Promise<void> {
    this.clearRestartTimer();
    await this.stopClient();
    this._readers = [];
    this.readersEmitter.fire([]);
    this.setState('stopped', 'The reader manager was stopped');
  }

  dispose(): void {
    this.clearRestartTimer();
    void this.stopClient();
    this.stateEmitter.dispose();
    this.readersEmitter.dispose();
    this.entriesEmitter.dispose();
    this.progressEmitter.dispose();
    this.pcscServiceEmitter.dispose();
    this.prompts.dispose();
  }

  private createClient(gen: number): LanguageClient {
    const module = this.serverModule;
    // One key per helper process, handed over in its environment (never in a JSON-RPC message, which
    // the language client's trace may write to the output channel and to VS Code's log files): PINs
    // travel to the helper only sealed with it. Never logged.
    const pinKey = newPinKey();
    // V8's code cache of the helper's bundle (server/src/codeCache.ts) in the user's own storage.
    const env = { [PIN_KEY_ENV]: pinKey.toString('base64'), ...(this.codeCacheDir ? { [CODE_CACHE_ENV]: this.codeCacheDir } : {}) };
    const serverOptions: ServerOptions = {
      run: { module, transport: TransportKind.ipc, options: { execArgv: HELPER_EXEC_ARGV, env } },
      debug: { module, transport: TransportKind.ipc, options: { execArgv: [...HELPER_EXEC_ARGV, '--nolazy', '--inspect=6019'], env } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ language: 'apdu' }],
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: this.config.helperOptions(pinKey),
      errorHandler: {
        error: (error, message, count): ErrorHandlerResult => {
          this.log.error(`Reader manager connection error (${count ?? 0}): ${error.message}${message ? ` ${JSON.stringify(message)}` : ''}`);
          return { action: ErrorAction.Continue, handled: true };
        },
        closed: (): CloseHandlerResult => {
          this.onCrash(gen, 'the helper process exited');
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    const client = new LanguageClient('smartcard', 'Smart Card Reader Manager', serverOptions, clientOptions);
    onNotification(client, StartedNotification, (p) => {
      if (gen !== this.gen) return;
      this._readers = p.readers;
      this._drivers = p.drivers;
      this._version = p.version;
      this.readersEmitter.fire(p.readers);
      const failed = p.drivers.filter((d) => d.state === 'failed');
      for (const d of failed) this.log.warn(`Driver ${d.id} failed: ${d.message ?? 'no reason given'}`);
      this.setState('running', `The reader manager ${p.version} is running: ${plural(p.readers.length, 'reader')}, drivers ${p.drivers.map((d) => `${d.id} ${driverStateWords(d)}`).join(', ')}`);
      // Entries written before our notification handler saw them (a panel opened late still shows them).
      sendRequest(client, LogHistoryRequest, {}).then(
        (h) => { if (gen === this.gen && h.entries.length) this.entriesEmitter.fire({ entries: h.entries, generation: gen, history: true }); },
        (err: unknown) => this.log.warn(`Could not read the log history: ${errorText(err)}`),
      );
    });
    onNotification(client, ReadersChangedNotification, (p) => {
      if (gen !== this.gen) return;
      this._readers = p.readers;
      if (p.drivers) this._drivers = p.drivers;
      this.readersEmitter.fire(p.readers);
    });
    onNotification(client, PcscServiceStatusNotification, (p) => {
      if (gen !== this.gen) return;
      if (p.state === 'failed') this.log.warn(`PC/SC service not started: ${p.message ?? 'no reason given'}`);
      this.setPcscService(p);
    });
    onNotification(client, RunProgressNotification, (p) => {
      if (gen === this.gen) this.progressEmitter.fire(p);
    });
    onNotification(client, EventsNotification, (p) => {
      if (gen === this.gen) this.entriesEmitter.fire({ entries: p.entries, generation: gen });
    });
    onRequest(client, ConfirmRequest, async (p) => {
      const choice = await vscode.window.showWarningMessage(p.message, { modal: true }, p.confirm);
      return { confirmed: choice === p.confirm };
    });
    onRequest(client, AskPinRequest, async (p) => {
      // The PIN goes back to the helper sealed; it is never logged (only that one was asked for).
      const { title, prompt } = pinPromptText(p);
      this.log.info(`The script asks for "${title}"`);
      // A helper that dies meanwhile takes its prompt with it: no PIN typed into a box nobody reads.
      const pin = await vscode.window.showInputBox({ title, prompt, password: true, ignoreFocusOut: true }, this.prompts.token);
      return pin === undefined ? { cancelled: true as const } : sealedAnswer(pinKey, p, pin);
    });
    return client;
  }

  /** A crash of helper `gen` (handled once, even if both closed() and start() report it). */
  private onCrash(gen: number, reason: string): void {
    if (gen !== this.gen || this.crashHandledFor === gen) return;
    this.crashHandledFor = gen;
    this.cancelPrompts();
    this._lastError = reason;
    this._readers = [];
    this.readersEmitter.fire([]);
    const old = this.client;
    this.client = undefined;
    if (old) old.dispose().catch(() => undefined);
    const decision = this.policy.onCrash();
    if (decision.action === 'restart') {
      this._restartAt = Date.now() + decision.delayMs;
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        this._state = 'idle';
        this.start().catch(() => undefined);
      }, decision.delayMs);
      this.setState('restarting', `The reader manager stopped: ${reason}. Restart ${decision.attempt} in ${decision.delayMs / 1000} s`);
    } else {
      this._restartAt = undefined;
      this.setState('stopped', `The reader manager stopped: ${reason}. It failed ${decision.failures} times; it stays down until you run "Smart Card: Restart Reader Manager"`);
    }
  }

  private async stopClient(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.gen++; // late notifications and close events of the old helper are ignored
    this.cancelPrompts();
    if (!c) return;
    try {
      if (c.needsStop()) await c.stop(5000);
    } catch (err) {
      this.log.warn(`Stopping the reader manager: ${errorText(err)}`);
    }
    await c.dispose().catch(() => undefined);
  }

  private cancelPrompts(): void {
    this.prompts.cancel();
    this.prompts.dispose();
    this.prompts = new vscode.CancellationTokenSource();
  }

  private clearRestartTimer(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this._restartAt = undefined;
  }

  private setState(state: ActiveState, message: string): void {
    this._state = state;
    // The service lives in the helper: a helper that is not running serves nobody.
    if (state !== 'running') this.setPcscService({ state: 'stopped' });
    if (state === 'running') this._lastError = undefined;
    if (state === 'stopped' || state === 'restarting') this.log.error(message);
    else this.log.info(message);
    this.stateEmitter.fire({ state, message });
  }
}

export function errorText(err: unknown): string {
  if (err && typeof err === 'object' && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}

export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
