// The public API for other extensions (the contract: api/smartcard-workbench.d.ts, docs/api.md).
// VS Code does not say who calls an exported function, so the API is obtained per caller:
// `getApi(context)` with the caller's own ExtensionContext. Its id names the caller's log rows
// and PIN prompts, and its `subscriptions` close the caller's connections when it deactivates.
// Every call is a request to the helper, through the same reader manager as the editor's scripts.
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import type * as Api from '../../api/smartcard-workbench';
import {
  ApiConnectRequest, ApiControlRequest, ApiDecodeRequest, ApiDisconnectRequest, ApiReleaseRequest, ApiResetRequest,
  ApiTransactionRequest, ApiTransmitRequest, RunScriptRequest, type ApiDecodeKind, type ReaderInfo, type Request,
} from '../../server/src/protocol';
import { publicCardEvent } from './apiEvents';
import type { Ctx } from './ctx';

export const API_VERSION = 1 as const;

/** An Error with a code, as every API call rejects. */
export class SmartCardError extends Error implements Api.SmartCardError {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'SmartCardError';
  }
}

/** The helper's ResponseError carries `{ code, message }` in `data`; the client's own NotRunningError its code. */
export function toApiError(err: unknown): SmartCardError {
  if (err instanceof SmartCardError) return err;
  const e = err as { message?: unknown; data?: { code?: unknown; message?: unknown }; code?: unknown } | undefined;
  if (e?.data && typeof e.data.code === 'string') return new SmartCardError(e.data.code, String(e.data.message ?? e.message ?? ''));
  if (e?.code === 'E_NOT_RUNNING') return new SmartCardError('NOT_RUNNING', String(e.message));
  return new SmartCardError('INTERNAL', String(e?.message ?? err));
}

function hexOf(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex').toUpperCase();
  throw new SmartCardError('BAD_REQUEST', `The ${what} must be hex text or a Uint8Array.`);
}

function publicReader(r: ReaderInfo): Api.Reader {
  return {
    name: r.name, driver: r.driver, eventCount: r.eventCount,
    card: r.card ? {
      powered: r.card.powered,
      ...(r.card.atr !== undefined ? { atr: r.card.atr } : {}),
      ...(r.card.protocol !== undefined ? { protocol: r.card.protocol } : {}),
      ...(r.card.identified ? { identified: [...r.card.identified] } : {}),
    } : null,
    connections: r.connections, exclusive: r.exclusive, inTransaction: r.inTransaction,
    ...(r.unavailable ? { unavailable: r.unavailable } : {}),
  };
}

export class WorkbenchApi implements Api.SmartCardWorkbenchExports {
  readonly apiVersion = API_VERSION;
  /**
   * One API object per caller's context object, never handed to another context: an extension
   * that claims another's id gets its own object, not the other's connections or subscriptions.
   * (The id itself is a label the caller gives; extensions share one extension host and cannot be
   * told apart more strongly than that: see docs/api.md.)
   */
  private readonly clients = new WeakMap<object, ClientApi>();
  private readonly live = new Set<ClientApi>();

  constructor(private readonly ctx: Ctx) {}

  getApi(context: vscode.ExtensionContext): Api.SmartCardApi {
    const id = context?.extension?.id;
    if (typeof id !== 'string' || !vscode.extensions.getExtension(id)) {
      throw new SmartCardError('BAD_REQUEST', 'getApi needs your extension\'s own ExtensionContext (the one activate() received).');
    }
    const known = this.clients.get(context);
    if (known && !known.disposed) return known;
    const api = new ClientApi(this.ctx, id, () => { this.clients.delete(context); this.live.delete(api); });
    this.clients.set(context, api);
    this.live.add(api);
    context.subscriptions.push(api);
    return api;
  }

  dispose(): void {
    for (const c of [...this.live]) c.dispose();
    this.live.clear();
  }
}

class ClientApi implements Api.SmartCardApi {
  readonly apiVersion = API_VERSION;
  /** This object's own id in the helper: its handles are reachable from it only. */
  readonly session = randomUUID();
  disposed = false;
  private readonly connections = new Set<ApiConnection>();
  private readonly readersEmitter = new vscode.EventEmitter<readonly Api.Reader[]>();
  private readonly cardEmitter = new vscode.EventEmitter<Api.CardEvent>();
  private readonly subs: vscode.Disposable[] = [];
  readonly onDidChangeReaders = this.readersEmitter.event;
  readonly onDidChangeCard = this.cardEmitter.event;

  constructor(private readonly ctx: Ctx, readonly extensionId: string, private readonly onDispose: () => void) {
    this.subs.push(
      this.readersEmitter, this.cardEmitter,
      ctx.manager.onDidChangeReaders((readers) => this.readersEmitter.fire(readers.map(publicReader))),
      ctx.manager.onEntries(({ entries, history }) => {
        if (history) return; // replayed history: these were news before this helper's start
        for (const e of entries) {
          const ev = publicCardEvent(e);
          if (ev) this.cardEmitter.fire(ev);
        }
      }),
    );
  }

  get readers(): readonly Api.Reader[] {
    return this.ctx.manager.readers.map(publicReader);
  }

  /** A request to the helper in this caller's name; failures become SmartCardErrors. */
  async call<P, R>(type: Request<P, R>, params: P, token?: vscode.CancellationToken): Promise<R> {
    if (this.disposed) throw new SmartCardError('DISPOSED', `The Smart Card Workbench API of ${this.extensionId} was disposed (the extension deactivated).`);
    try {
      return await this.ctx.manager.request(type, params, token);
    } catch (err) {
      throw toApiError(err);
    }
  }

  async connect(reader: string, options: Api.ConnectOptions = {}): Promise<Api.CardConnection> {
    const generation = this.ctx.manager.generation;
    const r = await this.call(ApiConnectRequest, {
      client: this.extensionId, session: this.session, reader,
      ...(options.share !== undefined ? { share: options.share } : {}),
      ...(options.protocol !== undefined ? { protocol: options.protocol } : {}),
    });
    const c = new ApiConnection(this, this.ctx, r.handle, r.reader, r.atr, r.protocol, generation);
    if (this.disposed) { void c.disconnect().catch(() => undefined); throw new SmartCardError('DISPOSED', `The Smart Card Workbench API of ${this.extensionId} was disposed.`); }
    this.connections.add(c);
    return c;
  }

  forget(c: ApiConnection): void {
    this.connections.delete(c);
  }

  async runScript(script: vscode.Uri | string, options: Api.RunScriptOptions = {}): Promise<Api.ScriptResult> {
    if (!vscode.workspace.isTrusted) {
      throw new SmartCardError('UNTRUSTED_WORKSPACE', 'APDU scripts do not run in an untrusted workspace. Trust the workspace to run them.');
    }
    let text: string;
    let uri: string | undefined;
    if (typeof script === 'string') {
      text = script;
    } else if (script instanceof vscode.Uri) {
      uri = script.toString();
      // The editor's buffer when the file is open (saved or not), as "Run APDU Script" runs it.
      const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
      try {
        text = open ? open.getText() : new TextDecoder().decode(await vscode.workspace.fs.readFile(script));
      } catch (err) {
        throw new SmartCardError('BAD_REQUEST', `Cannot read the script ${uri}: ${err instanceof Error ? err.message : String(err)}`);
      }
    } else {
      throw new SmartCardError('BAD_REQUEST', 'runScript takes a Uri of an .apdu file or the script text.');
    }
    const reader = options.reader ?? this.ctx.selectedReader;
    const { runId: _runId, ...result } = await this.call(RunScriptRequest, {
      text, client: this.extensionId, ...(uri ? { uri } : {}), ...(reader ? { reader } : {}),
    }, options.token);
    return result;
  }

  decodeAtr(atr: Api.Hex): Promise<Api.DecodedAtr> { return this.decode('atr', atr, 'ATR') as Promise<Api.DecodedAtr>; }
  decodeCommand(apdu: Api.Hex): Promise<Api.DecodedCommand> { return this.decode('command', apdu, 'command APDU') as Promise<Api.DecodedCommand>; }
  decodeStatusWord(sw: Api.Hex): Promise<Api.DecodedStatusWord> { return this.decode('sw', sw, 'status word') as Promise<Api.DecodedStatusWord>; }
  decodeTlv(data: Api.Hex): Promise<Api.DecodedTlv> { return this.decode('tlv', data, 'BER-TLV data') as Promise<Api.DecodedTlv>; }

  private async decode(kind: ApiDecodeKind, v: Api.Hex, what: string): Promise<unknown> {
    return this.call(ApiDecodeRequest, { kind, hex: hexOf(v, what) });
  }

  /** The caller deactivated (or disposed the API): its connections close, leaving the cards as they are. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.onDispose();
    for (const c of this.connections) c.markClosed();
    this.connections.clear();
    if (this.ctx.manager.state === 'running') {
      this.ctx.manager.request(ApiReleaseRequest, { client: this.extensionId, session: this.session }).then(
        (n) => { if (n) this.ctx.log.info(`${this.extensionId}: ${n} API connection(s) closed as it deactivated`); },
        () => undefined,
      );
    }
    this.subs.forEach((d) => d.dispose());
  }
}

class ApiConnection implements Api.CardConnection {
  private closed = false;

  constructor(
    private readonly owner: ClientApi,
    private readonly ctx: Ctx,
    private readonly handle: number,
    readonly reader: string,
    public atr: string,
    public protocol: 0 | 1 | undefined,
    /** The helper process this handle belongs to: a restarted helper knows none of them. */
    private readonly generation: number,
  ) {}

  markClosed(): void { this.closed = true; }

  private check(): void {
    if (this.closed) throw new SmartCardError('DISPOSED', `This connection to '${this.reader}' was disconnected. Connect again.`);
    if (this.ctx.manager.generation !== this.generation) {
      throw new SmartCardError('MANAGER_RESTARTED', `The reader manager restarted since this connection to '${this.reader}' was opened, so it is gone. Connect again.`);
    }
  }

  private async call<P, R>(type: Request<P, R>, params: Omit<P, 'client' | 'handle'>): Promise<R> {
    this.check();
    try {
      return await this.owner.call(type, { ...params, client: this.owner.extensionId, session: this.owner.session, handle: this.handle } as P);
    } catch (err) {
      // The helper died under the call: say that, not the transport's words.
      if (this.ctx.manager.generation !== this.generation) this.check();
      throw err;
    }
  }

  async transmit(apdu: Api.Hex): Promise<Api.ApduResponse> {
    const r = await this.call(ApiTransmitRequest, { apdu: hexOf(apdu, 'command APDU') });
    return { response: r.response, data: r.response.slice(0, -4), sw: r.sw };
  }

  async control(code: number, data?: Api.Hex): Promise<string> {
    return (await this.call(ApiControlRequest, { code, ...(data !== undefined ? { data: hexOf(data, 'control data') } : {}) })).response;
  }

  beginTransaction(): Promise<void> {
    return this.call(ApiTransactionRequest, { action: 'begin' });
  }

  endTransaction(disposition: Api.Disposition = 'leave'): Promise<void> {
    return this.call(ApiTransactionRequest, { action: 'end', disposition });
  }

  async reset(mode: 'warm' | 'cold' = 'warm'): Promise<{ atr: string; protocol?: 0 | 1 }> {
    const r = await this.call(ApiResetRequest, { mode });
    this.atr = r.atr;
    this.protocol = r.protocol;
    return r;
  }

  async disconnect(disposition: Api.Disposition = 'leave'): Promise<void> {
    if (!['leave', 'reset', 'unpower', 'eject'].includes(disposition)) throw new SmartCardError('BAD_REQUEST', "disposition is 'leave', 'reset', 'unpower' or 'eject'.");
    if (this.closed || this.ctx.manager.generation !== this.generation) { this.closed = true; this.owner.forget(this); return; }
    this.closed = true;
    this.owner.forget(this);
    await this.owner.call(ApiDisconnectRequest, { client: this.owner.extensionId, session: this.owner.session, handle: this.handle, disposition });
  }

  dispose(): void {
    void this.disconnect().catch(() => undefined);
  }
}
