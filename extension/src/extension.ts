// Entry point: thin on purpose. State lives in Ctx, commands in commands.ts.
import type * as vscode from 'vscode';
import type { SmartCardWorkbenchExports } from '../../api/smartcard-workbench';
import { WorkbenchApi } from './api';
import { registerCommands } from './commands';
import { Ctx } from './ctx';
import { registerTasks } from './tasks';
import { ApduTests } from './testing';

let ctx: Ctx | undefined;

/** The value other extensions get from `activate()`: the public API (api/smartcard-workbench.d.ts). */
export function activate(extension: vscode.ExtensionContext): SmartCardWorkbenchExports {
  ctx = new Ctx(extension);
  registerCommands(ctx);
  // APDU scripts with expectations in the Testing view (testing.ts).
  extension.subscriptions.push(new ApduTests(ctx));
  // APDU scripts as tasks: type `apdu`, problem matcher `$apdu` (tasks.ts).
  registerTasks(ctx);
  // Activation comes with first use (the view, an .apdu file, a command, the log panel restored) or with a
  // workspace holding .apdu files or running an apdu task (package.json's activationEvents): start the helper now.
  ctx.manager.start().catch(() => undefined);
  const api = new WorkbenchApi(ctx);
  extension.subscriptions.push(api);
  return api;
}

export async function deactivate(): Promise<void> {
  await ctx?.manager.stop();
  ctx = undefined;
}
