// While the helper's PC/SC service runs, integrated terminals get PCSCLITE_CSOCK_NAME
// (the extension's environment variable collection, described in the terminal's
// tooltip), so pcsc_scan, opensc-tool, gpg, pyscard … started there use the
// workbench's readers. Not persisted: a terminal restored with a new window must
// not name a socket before the service is back.
import * as vscode from 'vscode';
import type { PcscServiceStatus } from '../../server/src/protocol';
import type { ReaderManagerClient } from './client';

export const PCSC_SOCKET_VARIABLE = 'PCSCLITE_CSOCK_NAME';

export function registerPcscServiceEnvironment(context: vscode.ExtensionContext, manager: ReaderManagerClient, log: vscode.LogOutputChannel): void {
  const env = context.environmentVariableCollection;
  env.persistent = false;
  env.description = new vscode.MarkdownString(
    'PC/SC programs started here (`pcsc_scan`, `opensc-tool`, `gpg --card-status`, pyscard, Java smartcardio) use the Smart Card Workbench\'s readers: `PCSCLITE_CSOCK_NAME` names its PC/SC service (setting `smartcard.pcscService.enabled`).',
  );
  let applied: string | undefined;
  const apply = (st: PcscServiceStatus): void => {
    const socket = st.state === 'running' ? st.socketPath : undefined;
    if (socket === applied) return;
    applied = socket;
    if (socket) {
      env.replace(PCSC_SOCKET_VARIABLE, socket);
      log.info(`PC/SC service on ${socket}: new terminals get ${PCSC_SOCKET_VARIABLE}`);
    } else {
      env.delete(PCSC_SOCKET_VARIABLE);
    }
  };
  env.delete(PCSC_SOCKET_VARIABLE);
  apply(manager.pcscService);
  context.subscriptions.push(manager.onDidChangePcscService(apply));
}
