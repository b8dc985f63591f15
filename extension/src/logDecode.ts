// The APDU Log panel's `decode` request, answered from the extension's log. Pure (no vscode
// import) so unit tests can drive it; extension/src/logPanel.ts calls it.
import type { DecodedExchange, WebviewRequests } from '../../webview/src/protocol';
import type { LogStore } from './logStore';

export async function decodeLogRow(
  store: Pick<LogStore, 'get'>,
  id: string,
  decode: (command: string, response: string) => Promise<DecodedExchange>,
): Promise<WebviewRequests['decode']['result']> {
  const row = store.get(id);
  if (!row) return { trimmed: true };
  if (row.kind !== 'exchange') throw new Error('Only exchanges are decoded.');
  return decode(row.command, row.response);
}
