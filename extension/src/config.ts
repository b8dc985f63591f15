// One reader over the `smartcard.*` settings; knows which ones need a helper restart, and which
// ones a workspace may not set (trust.ts).
import * as vscode from 'vscode';
import { type HelperSettings, type PinSettings, type ReaderManagerSettings, sealPin, SIMULATOR_PIN_AAD } from '../../server/src/protocol';
import { policyOptionsFromSettings, type RestartPolicyOptions } from './restartPolicy';
import { effectiveValue, workspaceSetsRestricted } from './trust';

export const SECTION = 'smartcard';

/** Settings the helper reads once at start. */
const NEEDS_HELPER_RESTART = ['simulator', 'vpcd', 'pcsc', 'usbCcid'];

export class Config {
  private get cfg(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  /** A setting's value, with machine settings and (untrusted) restricted settings from the user's settings only. */
  private get<T>(key: string, fallback: T): T {
    const cfg = this.cfg;
    return effectiveValue(key, cfg.inspect<T>(key), vscode.workspace.isTrusted, cfg.get<T>(key, fallback), fallback);
  }

  get simulatorEnabled(): boolean {
    return this.get<boolean>('simulator.enabled', true);
  }

  get simulatorCard(): 'T=0' | 'T=1' {
    return this.get<string>('simulator.card', 'T=1') === 'T=0' ? 'T=0' : 'T=1';
  }

  get restartPolicy(): RestartPolicyOptions {
    return policyOptionsFromSettings(this.get<unknown>('readerManager.restartDelays', undefined), this.get<unknown>('readerManager.resetFailureCountAfter', undefined));
  }

  /**
   * `smartcard.pcscService.enabled` (machine scope: user or remote settings only): on by default
   * on Linux, where PC/SC programs use libpcsclite and read PCSCLITE_CSOCK_NAME; off elsewhere.
   */
  get pcscServiceEnabled(): boolean {
    const i = this.cfg.inspect<boolean>('pcscService.enabled');
    const v = i?.globalValue;
    return typeof v === 'boolean' ? v : process.platform === 'linux';
  }

  /** PIN policy: sent at start and again whenever it changes (no restart needed). */
  get pinSettings(): PinSettings {
    const cache = this.get<string>('pin.cache', 'run');
    return {
      cache: cache === 'none' || cache === 'session' ? cache : 'run',
      idleTimeoutSeconds: Math.max(10, this.get<number>('pin.idleTimeout', 300)),
      checkRetries: this.get<boolean>('pin.checkRetries', true),
    };
  }

  /** `smartcard.log.persist`: keep the APDU Log in the extension's storage across reloads. */
  get logPersist(): boolean {
    return this.get<boolean>('log.persist', true) !== false;
  }

  /** Passed to the helper as `initializationOptions`; the simulator card's PIN sealed with the helper's key. */
  helperOptions(pinKey: Buffer): HelperSettings {
    const pin = this.get<string>('simulator.pin', '1234');
    const ports = this.get<unknown[]>('vpcd.ports', [35963]).filter((p): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536);
    const library = this.get<string>('pcsc.library', '');
    return {
      simulator: {
        enabled: this.simulatorEnabled, card: this.simulatorCard,
        ...(typeof pin === 'string' && /^[0-9]{4,12}$/.test(pin) ? { sealedPin: sealPin(pinKey, pin, SIMULATOR_PIN_AAD) } : {}),
        pinpad: this.get<boolean>('simulator.pinpad', false),
      },
      vpcd: { enabled: this.get<boolean>('vpcd.enabled', false), ports },
      pcsc: { enabled: this.get<boolean>('pcsc.enabled', true), ...(typeof library === 'string' && library ? { library } : {}) },
      usbCcid: { enabled: this.get<boolean>('usbCcid.enabled', true), rawTrace: this.get<boolean>('usbCcid.rawTrace', false) },
      pin: this.pinSettings,
      readerManager: this.readerManagerSettings,
      pcscService: { enabled: this.pcscServiceEnabled },
    };
  }

  /** Reader manager settings: sent at start and again whenever they change (no restart needed). */
  get readerManagerSettings(): ReaderManagerSettings {
    const seconds = this.cfg.get<number>('readerManager.exchangeTimeout', 60);
    // Machine scope: a workspace cannot keep a card (and its verified PIN) powered for its next user.
    const idleSeconds = this.get<number>('readerManager.idlePowerOff', 5);
    return {
      exchangeTimeoutSeconds: typeof seconds === 'number' && Number.isFinite(seconds) ? Math.max(1, seconds) : 60,
      idlePowerOffSeconds: typeof idleSeconds === 'number' && Number.isFinite(idleSeconds) && idleSeconds >= 0 ? idleSeconds : 5,
    };
  }

  needsHelperRestart(e: vscode.ConfigurationChangeEvent): boolean {
    return NEEDS_HELPER_RESTART.some((k) => e.affectsConfiguration(`${SECTION}.${k}`));
  }

  /** Granting trust changes what the helper gets when the workspace sets a restricted setting. */
  get trustChangesSettings(): boolean {
    const cfg = this.cfg;
    return workspaceSetsRestricted((k) => cfg.inspect(k));
  }
}
