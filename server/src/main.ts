// Helper process entry: started by the extension through vscode-languageclient (IPC).
import { ProposedFeatures, createConnection } from 'vscode-languageserver/node';
import { createHelper } from './lsp/server';

const connection = createConnection(ProposedFeatures.all);
// A promise that failed with nobody waiting is a bug to see in the log, never a silent crash of the helper.
process.on('unhandledRejection', (reason) => {
  const text = reason instanceof Error ? `${reason.message}\n${reason.stack ?? ''}` : String(reason);
  connection.console.error(`[error] unhandled rejection in the reader manager: ${text}`);
});
createHelper(connection);
