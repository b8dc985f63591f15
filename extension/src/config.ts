// One reader over the `smartcard.*` settings; knows which ones need a helper restart.
import * as vscode from 'vscode';
import type { HelperSettings, PinSettings, ReaderManagerSettings } from '../../server/src/protocol';
import { policyOptionsFromSettings, type RestartPolicyOptions } from './restartPolicy';

export const SECTION = 'smartcard';

/** Settings the helper reads once at start. */
const NEEDS_HELPER_RESTART = ['simulator', 'vpcd', 'pcsc', 'usbCcid'];

export class Config {
  private get cfg(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  get simulatorEnabled(): boolean {
    return this.cfg.get<boolean>('simulator.enabled', true);
  }

  get simulatorCard(): 'T=0' | 'T=1' {
    return this.cfg.get<string>('simulator.card', 'T=1') === 'T=0' ? 'T=0' : 'T=1';
  }

  get restartPolicy(): RestartPolicyOptions {
    return policyOptionsFromSettings(this.cfg.get('readerManager.restartDelays'), this.cfg.get('readerManager.resetFailureCountAfter'));
  }

  /** PIN policy: sent at start and again whenever it changes (no restart needed). */
  get pinSettings(): PinSettings {
    const cache = this.cfg.get<string>('pin.cache', 'run');
    return {
      cache: cache === 'none' || cache === 'session' ? cache : 'run',
      idleTimeoutSeconds: Math.max(10, this.cfg.get<number>('pin.idleTimeout', 300)),
      checkRetries: this.cfg.get<boolean>('pin.checkRetries', true),
    };
  }

  /** Passed to the helper as `initializationOptions`. */
  get helperOptions(): HelperSettings {
    const pin = this.cfg.get<string>('simulator.pin', '1234');
    const ports = this.cfg.get<unknown[]>('vpcd.ports', [35963]).filter((p): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536);
    const library = this.cfg.get<string>('pcsc.library', '');
    return {
      simulator: {
        enabled: this.simulatorEnabled, card: this.simulatorCard,
        ...(/^[0-9]{4,12}$/.test(pin) ? { pin } : {}),
        pinpad: this.cfg.get<boolean>('simulator.pinpad', false),
      },
      vpcd: { enabled: this.cfg.get<boolean>('vpcd.enabled', false), ports },
      pcsc: { enabled: this.cfg.get<boolean>('pcsc.enabled', true), ...(library ? { library } : {}) },
      usbCcid: { enabled: this.cfg.get<boolean>('usbCcid.enabled', true), rawTrace: this.cfg.get<boolean>('usbCcid.rawTrace', false) },
      pin: this.pinSettings,
      readerManager: this.readerManagerSettings,
    };
  }

  /** Reader manager settings: sent at start and again whenever they change (no restart needed). */
  get readerManagerSettings(): ReaderManagerSettings {
    const seconds = this.cfg.get<number>('readerManager.exchangeTimeout', 60);
    return { exchangeTimeoutSeconds: typeof seconds === 'number' && Number.isFinite(seconds) ? Math.max(1, seconds) : 60 };
  }

  needsHelperRestart(e: vscode.ConfigurationChangeEvent): boolean {
    return NEEDS_HELPER_RESTART.some((k) => e.affectsConfiguration(`${SECTION}.${k}`));
  }
}
