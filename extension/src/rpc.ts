// Typed send/handle for the plain message descriptors of server/src/protocol.ts
// (the twin of server/src/lsp/rpc.ts). Call sites use the descriptors, never method strings.
import type { CancellationToken, Disposable } from 'vscode';
import type { BaseLanguageClient } from 'vscode-languageclient';
import type { Notification, Request } from '../../server/src/protocol';

/** With a token, cancelling it sends LSP's $/cancelRequest (a running script stops between APDUs). */
export function sendRequest<P, R>(client: BaseLanguageClient, r: Request<P, R>, params: P, token?: CancellationToken): Promise<R> {
  return (token ? client.sendRequest(r.method, params, token) : client.sendRequest(r.method, params)) as Promise<R>;
}

export function onNotification<P>(client: BaseLanguageClient, n: Notification<P>, fn: (p: P) => void): Disposable {
  return client.onNotification(n.method, (p: P) => fn(p));
}

export function onRequest<P, R>(client: BaseLanguageClient, r: Request<P, R>, fn: (p: P) => Promise<R>): Disposable {
  return client.onRequest(r.method, (p: P) => fn(p));
}
