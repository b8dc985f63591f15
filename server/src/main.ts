// The helper process (out/helper.js), run by boot.ts (out/server.js), which the extension starts through
// vscode-languageclient (IPC).
import { ProposedFeatures, createConnection } from 'vscode-languageserver/node';
import { CODE_CACHE_STATE } from './codeCache';
import { createHelper } from './lsp/server';
import { PIN_KEY_ENV } from './protocol';

// The PIN key comes in the environment, outside JSON-RPC; it is removed at once so no child
// process inherits it.
const encoded = process.env[PIN_KEY_ENV];
delete process.env[PIN_KEY_ENV];
const pinKey = encoded ? Buffer.from(encoded, 'base64') : undefined;

const connection = createConnection(ProposedFeatures.all);
// A promise that failed with nobody waiting is a bug to see in the log, never a silent crash of the helper.
process.on('unhandledRejection', (reason) => {
  const text = reason instanceof Error ? `${reason.message}\n${reason.stack ?? ''}` : String(reason);
  connection.console.error(`[error] unhandled rejection in the reader manager: ${text}`);
});
const codeCache = (globalThis as Record<symbol, unknown>)[CODE_CACHE_STATE];
createHelper(connection, {
  ...(pinKey?.length === 32 ? { pinKey } : {}),
  ...(typeof codeCache === 'string' ? { codeCache } : {}),
});
