// One reader over the `smartcard.*` settings; knows which ones need a helper restart.
import * as vscode from 'vscode';
import type { HelperSettings } from '../../server/src/protocol';
import { policyOptionsFromSettings, type RestartPolicyOptions } from './restartPolicy';

export const SECTION = 'smartcard';

/** Settings the helper reads once at start. */
const NEEDS_HELPER_RESTART = ['simulator.enabled', 'simulator.card'];

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

  /** Passed to the helper as `initializationOptions`. */
  get helperOptions(): HelperSettings {
    return { simulator: { enabled: this.simulatorEnabled, card: this.simulatorCard } };
  }

  needsHelperRestart(e: vscode.ConfigurationChangeEvent): boolean {
    return NEEDS_HELPER_RESTART.some((k) => e.affectsConfiguration(`${SECTION}.${k}`));
  }
}
