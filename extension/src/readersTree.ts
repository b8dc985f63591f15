// The "Readers" view: driver → reader → its card (ATR, protocol, name) and its
// Details. Texts, states and icons come from readersModel.ts (pure).
import * as vscode from 'vscode';
import type { DriverStatus, ReaderInfo } from '../../server/src/protocol';
import {
  type DriverGroup, STATE_LOOK, cardText, detailRows, driverGroups, groupText, itemContextValue, readerState, readerText, spacedHex,
} from './readersModel';
import { type ClientRow, clientRows } from './readerClients';

export type ReaderNode =
  | { type: 'group'; group: DriverGroup }
  | { type: 'reader'; reader: ReaderInfo }
  | { type: 'card'; reader: ReaderInfo }
  | { type: 'client'; reader: ReaderInfo; row: ClientRow; index: number }
  | { type: 'details'; reader: ReaderInfo }
  | { type: 'detail'; reader: ReaderInfo; label: string; value: string; tooltip: string; index: number };

/** Decodes an ATR into readable lines (the helper's smartcard/decodeAtr). */
export type AtrDecoder = (atr: string) => Promise<{ lines: string[]; identified: string[] }>;

export class ReadersTreeProvider implements vscode.TreeDataProvider<ReaderNode>, vscode.Disposable {
  private readers: readonly ReaderInfo[] = [];
  private drivers: readonly DriverStatus[] = [];
  private selected: string | undefined;
  private readonly changed = new vscode.EventEmitter<ReaderNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  /** Decoded ATRs by hex: an ATR is decoded once per helper. */
  private readonly decoded = new Map<string, Promise<string>>();

  constructor(private readonly decode?: AtrDecoder) {}

  setReaders(readers: readonly ReaderInfo[], selected: string | undefined, drivers?: readonly DriverStatus[]): void {
    this.readers = readers;
    this.selected = selected;
    if (drivers) this.drivers = drivers;
    this.changed.fire(undefined);
  }

  /** A new helper: its decodings may differ (smartcard_list.txt updated). */
  clearDecodings(): void {
    this.decoded.clear();
  }

  getChildren(node?: ReaderNode): ReaderNode[] {
    if (!node) return driverGroups(this.drivers, this.readers).map((group): ReaderNode => ({ type: 'group', group }));
    switch (node.type) {
      case 'group': return node.group.readers.map((reader): ReaderNode => ({ type: 'reader', reader }));
      case 'reader': return [
        { type: 'card', reader: node.reader },
        // Who uses the reader: a PC/SC program, an extension, a script, the editor's Connect.
        ...clientRows(node.reader).map((row, index): ReaderNode => ({ type: 'client', reader: node.reader, row, index })),
        { type: 'details', reader: node.reader },
      ];
      case 'details': return detailRows(node.reader).map((d, index): ReaderNode => ({ type: 'detail', reader: node.reader, ...d, index }));
      default: return [];
    }
  }

  getTreeItem(node: ReaderNode): vscode.TreeItem {
    switch (node.type) {
      case 'group': {
        const t = groupText(node.group);
        const item = new vscode.TreeItem(t.label, t.failed || !node.group.readers.length ? vscode.TreeItemCollapsibleState.None : vscode.TreeItemCollapsibleState.Expanded);
        // An empty group (a leaf, e.g. while the helper restarts) has its own id, so the group
        // that comes back with readers is a new item and opens expanded, whatever state VS Code
        // kept for the leaf.
        item.id = `driver:${node.group.id}${node.group.readers.length ? '' : ':empty'}`;
        item.description = t.description;
        item.tooltip = t.tooltip;
        item.contextValue = t.failed ? 'driver failed' : t.warning ? 'driver warning' : 'driver';
        item.iconPath = t.failed ? new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsErrorIcon.foreground'))
          : t.warning ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'))
          : new vscode.ThemeIcon(node.group.id === 'simulator' ? 'vm' : node.group.id === 'vpcd' ? 'remote' : node.group.id === 'usb-ccid' ? 'circuit-board' : 'server-environment');
        return item;
      }
      case 'reader': {
        const r = node.reader;
        const t = readerText(r, r.name === this.selected);
        // The name as id keeps expansion state across refreshes.
        const item = new vscode.TreeItem(t.label, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `reader:${r.name}`;
        item.description = t.description;
        item.tooltip = t.tooltip;
        item.contextValue = itemContextValue('reader', r);
        const look = STATE_LOOK[readerState(r)];
        item.iconPath = new vscode.ThemeIcon(look.icon, look.color ? new vscode.ThemeColor(look.color) : undefined);
        return item;
      }
      case 'card': {
        const r = node.reader;
        const t = cardText(r);
        const item = new vscode.TreeItem(t.label, vscode.TreeItemCollapsibleState.None);
        item.id = `card:${r.name}`;
        item.description = t.description;
        // VS Code resolves only what is undefined: with an ATR to decode, the tooltip comes from resolveTreeItem.
        if (!(r.card?.atr && this.decode)) item.tooltip = t.tooltip;
        item.contextValue = itemContextValue('card', r);
        item.iconPath = new vscode.ThemeIcon(r.unavailable ? 'error' : !r.card ? 'circle-slash' : r.card.mute ? 'mute' : 'credit-card');
        return item;
      }
      case 'client': {
        const { row } = node;
        const item = new vscode.TreeItem(row.label, vscode.TreeItemCollapsibleState.None);
        item.id = `client:${node.reader.name}:${node.index}`;
        item.description = row.description;
        item.tooltip = row.tooltip;
        item.accessibilityInformation = { label: row.accessible };
        item.contextValue = 'client';
        item.iconPath = new vscode.ThemeIcon(row.icon);
        return item;
      }
      case 'details': {
        const item = new vscode.TreeItem('Details', vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `details:${node.reader.name}`;
        item.tooltip = 'Driver, slot, connections, reader facts and PC/SC features';
        item.contextValue = 'details';
        item.iconPath = new vscode.ThemeIcon('info');
        return item;
      }
      case 'detail': {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.id = `detail:${node.reader.name}:${node.index}`;
        item.description = node.value;
        item.tooltip = node.tooltip;
        item.contextValue = 'detail';
        return item;
      }
    }
  }

  /** The card row's tooltip gains the decoded ATR when hovered (decoded once per ATR). */
  async resolveTreeItem(item: vscode.TreeItem, node: ReaderNode, token: vscode.CancellationToken): Promise<vscode.TreeItem> {
    if (node.type !== 'card' || !node.reader.card?.atr || !this.decode) return item;
    const atr = node.reader.card.atr;
    let text = this.decoded.get(atr);
    if (!text) {
      const decode = this.decode;
      text = decode(atr).then(
        ({ lines, identified }) => [...lines, ...(identified.length ? ['', 'Identified (smartcard_list.txt):', ...identified.map((l) => `  ${l}`)] : [])].join('\n'),
        (err: unknown) => { this.decoded.delete(atr); return `(decoding failed: ${err instanceof Error ? err.message : String(err)})`; },
      );
      this.decoded.set(atr, text);
    }
    const decoded = await text;
    if (token.isCancellationRequested) return item;
    const md = new vscode.MarkdownString();
    md.appendCodeblock(cardText(node.reader).tooltip, 'text');
    md.appendMarkdown(`**Decoded ATR** (\`${spacedHex(atr)}\`)\n\n`);
    md.appendCodeblock(decoded, 'text');
    item.tooltip = md;
    return item;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
