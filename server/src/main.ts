// Helper process entry: started by the extension through vscode-languageclient (IPC).
import { ProposedFeatures, createConnection } from 'vscode-languageserver/node';
import { createHelper } from './lsp/server';

createHelper(createConnection(ProposedFeatures.all));
