// "Smart Card: starting / running (N readers) / restarting in N s / stopped"; click = select reader.
import * as vscode from 'vscode';
import { plural, type ReaderManagerClient } from './client';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('smartcard.status', vscode.StatusBarAlignment.Left, 10);
  private countdown: NodeJS.Timeout | undefined;

  constructor(private readonly manager: ReaderManagerClient, private readonly selectedReader: () => string | undefined) {
    this.item.name = 'Smart Card';
    this.item.command = 'smartcard.selectReader';
    this.update();
    this.item.show();
  }

  update(): void {
    const m = this.manager;
    let text: string;
    let background: vscode.ThemeColor | undefined;
    switch (m.state) {
      case 'idle': text = '$(circle-outline) Smart Card: not started'; break;
      case 'starting': text = '$(loading~spin) Smart Card: starting'; break;
      case 'running': text = `$(credit-card) Smart Card: running (${plural(m.readers.length, 'reader')})`; break;
      case 'restarting': {
        const s = Math.max(0, Math.ceil(((m.restartAt ?? Date.now()) - Date.now()) / 1000));
        text = `$(sync~spin) Smart Card: restarting in ${s} s`;
        background = new vscode.ThemeColor('statusBarItem.warningBackground');
        break;
      }
      case 'stopped': text = '$(error) Smart Card: stopped'; background = new vscode.ThemeColor('statusBarItem.errorBackground'); break;
    }
    this.item.text = text;
    this.item.backgroundColor = background;
    const selected = this.selectedReader();
    this.item.tooltip = [
      m.lastError ? `Reader manager: ${m.state} (${m.lastError})` : `Reader manager: ${m.state}`,
      selected ? `Selected reader: ${selected}` : 'No reader selected',
      'Click to select a reader',
    ].join('\n');
    // Only the countdown needs a tick; nothing else polls.
    if (m.state === 'restarting' && !this.countdown) this.countdown = setInterval(() => this.update(), 1000);
    if (m.state !== 'restarting' && this.countdown) { clearInterval(this.countdown); this.countdown = undefined; }
  }

  dispose(): void {
    if (this.countdown) clearInterval(this.countdown);
    this.item.dispose();
  }
}
