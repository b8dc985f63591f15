// The initializationOptions the extension sends the helper, computed by the extension's own code
// (extension/src/config.ts, Config.helperOptions) for given user settings: bundled by bench/run.mjs
// with `vscode` replaced by bench/lib/vscode-settings.ts (user settings only, a trusted workspace),
// so the bench's helper rows cannot drift from what the extension sends.
import { Config } from '../../extension/src/config';
import { setUserSettings } from './vscode-settings';

/** `settings`: keys under `smartcard.` as a user writes them (e.g. `{ 'vpcd.enabled': true }`); `pinKey`: the helper's key. */
export function helperOptions(settings: Record<string, unknown>, pinKey: Buffer): unknown {
  setUserSettings(settings);
  return new Config().helperOptions(pinKey);
}
