// Entry point: thin on purpose. State lives in Ctx, commands in commands.ts.
import type * as vscode from 'vscode';
import { registerCommands } from './commands';
import { Ctx } from './ctx';
import { ApduTests } from './testing';

let ctx: Ctx | undefined;

export function activate(extension: vscode.ExtensionContext): void {
  ctx = new Ctx(extension);
  registerCommands(ctx);
  // APDU scripts with expectations in the Testing view (testing.ts).
  extension.subscriptions.push(new ApduTests(ctx));
  // Activation only happens on first use (the view, an .apdu file, a command): start the helper now.
  ctx.manager.start().catch(() => undefined);
}

export async function deactivate(): Promise<void> {
  await ctx?.manager.stop();
  ctx = undefined;
}
