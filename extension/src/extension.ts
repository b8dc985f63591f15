// Entry point: thin on purpose. State lives in Ctx, commands in commands.ts.
import type * as vscode from 'vscode';
import { registerCommands } from './commands';
import { Ctx } from './ctx';

let ctx: Ctx | undefined;

export function activate(extension: vscode.ExtensionContext): void {
  ctx = new Ctx(extension);
  registerCommands(ctx);
  // Activation only happens on first use (the view, an .apdu file, a command): start the helper now.
  ctx.manager.start().catch(() => undefined);
}

export async function deactivate(): Promise<void> {
  await ctx?.manager.stop();
  ctx = undefined;
}
