// Helper process entry: started by the extension through vscode-languageclient (IPC).
import { ProposedFeatures, createConnection } from 'vscode-languageserver/node';
import { createHelper } from './lsp/server';
import { PIN_KEY_ENV } from './protocol';

// The PIN key comes in the environment, outside JSON-RPC; it is removed at once so no child
// process or environment dump carries it.
const encoded = process.env[PIN_KEY_ENV];
delete process.env[PIN_KEY_ENV];
const pinKey = encoded ? Buffer.from(encoded, 'base64') : undefined;

createHelper(createConnection(ProposedFeatures.all), pinKey?.length === 32 ? { pinKey } : {});
