// Which settings a workspace may not set: the ones that load code, open sockets or weaken PIN
// and log handling. Mirrors package.json (`scope`, `capabilities.untrustedWorkspaces.
// restrictedConfigurations`); test/unit/extension/trust.test.ts keeps the two in step.
// No vscode import, so unit tests drive it.

/** Never taken from a workspace, trusted or not (`"scope": "machine"`): a per-folder value makes no sense. */
export const MACHINE_SETTINGS: readonly string[] = ['pcsc.library', 'usbCcid.rawTrace', 'pcscService.enabled', 'readerManager.idlePowerOff'];

/** Not taken from an untrusted workspace (`restrictedConfigurations`). */
export const RESTRICTED_SETTINGS: readonly string[] = [
  'pcsc.library', 'vpcd.enabled', 'vpcd.ports', 'pin.cache', 'pin.idleTimeout', 'pin.checkRetries', 'usbCcid.rawTrace', 'log.persist',
  'pcscService.enabled', 'readerManager.idlePowerOff',
];

/** What `WorkspaceConfiguration.inspect` reports (the parts used here). */
export interface Inspected<T> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

/**
 * The value of a setting as the extension may use it: a machine setting and, in an untrusted
 * workspace, a restricted one come from the user's settings or the default only. VS Code applies
 * the same rules; this keeps them when it does not (an older host, a setting read by inspect).
 */
export function effectiveValue<T>(key: string, inspected: Inspected<T> | undefined, trusted: boolean, merged: T, fallback: T): T {
  const fromUserOnly = MACHINE_SETTINGS.includes(key) || (!trusted && RESTRICTED_SETTINGS.includes(key));
  if (!fromUserOnly) return merged;
  return inspected?.globalValue ?? inspected?.defaultValue ?? fallback;
}

/** Does a workspace set one of the restricted settings that trust unlocks (so granting trust changes what the helper gets)? */
export function workspaceSetsRestricted(inspect: (key: string) => Inspected<unknown> | undefined): boolean {
  return RESTRICTED_SETTINGS.some((k) => {
    if (MACHINE_SETTINGS.includes(k)) return false; // never from a workspace, trusted or not
    const i = inspect(k);
    return i?.workspaceValue !== undefined || i?.workspaceFolderValue !== undefined;
  });
}
