// The "Readers" view: reader → its card (ATR, protocol) or "no card".
import * as vscode from 'vscode';
import type { DriverStatus, ReaderInfo } from '../../server/src/protocol';
import { cardText, readerContextValue, readerText } from './readersModel';

export type ReaderNode =
  | { type: 'reader'; reader: ReaderInfo }
  | { type: 'card'; reader: ReaderInfo }
  | { type: 'driver'; driver: DriverStatus };

export class ReadersTreeProvider implements vscode.TreeDataProvider<ReaderNode>, vscode.Disposable {
  private readers: readonly ReaderInfo[] = [];
  private selected: string | undefined;
  private readonly changed = new vscode.EventEmitter<ReaderNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  private failedDrivers: readonly DriverStatus[] = [];

  setReaders(readers: readonly ReaderInfo[], selected: string | undefined, drivers?: readonly DriverStatus[]): void {
    this.readers = readers;
    this.selected = selected;
    if (drivers) this.failedDrivers = drivers.filter((d) => d.state === 'failed');
    this.changed.fire(undefined);
  }

  getChildren(node?: ReaderNode): ReaderNode[] {
    if (!node) {
      // A driver that could not start says why, at the top, so its missing readers are explained.
      return [...this.failedDrivers.map((driver): ReaderNode => ({ type: 'driver', driver })), ...this.readers.map((reader): ReaderNode => ({ type: 'reader', reader }))];
    }
    if (node.type === 'reader') return [{ type: 'card', reader: node.reader }];
    return [];
  }

  getTreeItem(node: ReaderNode): vscode.TreeItem {
    if (node.type === 'driver') {
      const d = node.driver;
      const item = new vscode.TreeItem(`${d.id} driver failed`, vscode.TreeItemCollapsibleState.None);
      item.id = `driver:${d.id}`;
      item.description = d.message;
      item.tooltip = `The ${d.id} driver could not start: ${d.message ?? 'no reason given'}\nThe other drivers carry on. Check the smartcard.${d.id === 'usb-ccid' ? 'usbCcid' : d.id}.* settings, then "Smart Card: Restart Reader Manager".`;
      item.contextValue = 'driver-failed';
      item.iconPath = new vscode.ThemeIcon('error');
      return item;
    }
    const r = node.reader;
    if (node.type === 'reader') {
      const t = readerText(r, r.name === this.selected);
      // The name as id keeps expansion state across refreshes.
      const item = new vscode.TreeItem(t.label, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `reader:${r.name}`;
      item.description = t.description;
      item.tooltip = t.tooltip;
      item.contextValue = readerContextValue(r);
      item.iconPath = new vscode.ThemeIcon(r.unavailable ? 'warning' : r.driver === 'simulator' ? 'vm' : 'plug');
      return item;
    }
    const t = cardText(r);
    const item = new vscode.TreeItem(t.label, vscode.TreeItemCollapsibleState.None);
    item.id = `card:${r.name}`;
    item.description = t.description;
    item.tooltip = t.tooltip;
    item.contextValue = r.unavailable ? 'card-unavailable' : r.card ? 'card' : 'card-none';
    item.iconPath = new vscode.ThemeIcon(r.unavailable ? 'error' : r.card ? 'credit-card' : 'circle-slash');
    return item;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
