// Typed send/handle for the plain message descriptors of ../protocol.ts.
import type { CancellationToken, Connection } from 'vscode-languageserver';
import type { Notification, Request } from '../protocol';

export function handle<P, R>(c: Connection, r: Request<P, R>, fn: (p: P, token: CancellationToken) => Promise<R>): void {
  c.onRequest(r.method, (p: P, token: CancellationToken) => fn(p, token));
}

export function notify<P>(c: Connection, n: Notification<P>, params: P): void {
  void c.sendNotification(n.method, params);
}

export function ask<P, R>(c: Connection, r: Request<P, R>, params: P): Promise<R> {
  return c.sendRequest(r.method, params) as Promise<R>;
}
