// The part of the `vscode` API that extension/src/config.ts reads, for bench/lib/helper-options.ts:
// `smartcard.*` user settings (every other scope unset), a trusted workspace. Nothing else exists.
let user: Record<string, unknown> = {};

export function setUserSettings(settings: Record<string, unknown>): void {
  user = { ...settings };
}

export const workspace = {
  isTrusted: true,
  getConfiguration(section: string) {
    if (section !== 'smartcard') throw new Error(`bench: no settings section ${section}`);
    return {
      get<T>(key: string, fallback?: T): T | undefined { return key in user ? (user[key] as T) : fallback; },
      inspect<T>(key: string) { return { key: `${section}.${key}`, ...(key in user ? { globalValue: user[key] as T } : {}) }; },
    };
  },
};
