// After a run: each command line shows its status word and a pass/fail mark at
// the end of the line, and a failed expectation (a script error) is a diagnostic on its line.
// Both go away when the document changes (they describe the text that ran).
// A run of some lines ("Run line") replaces the results of those lines only:
// the results of lines run before stay, as a developer stepping through a card
// session line by line expects.
import * as vscode from 'vscode';
import type { LineResult, RunScriptResult } from '../../server/src/protocol';
import { failureIsDiagnostic, failureMessage } from './runFailure';

/** The inline result's hover: the response the card gave (data as hex and text, status word), then the failure. */
export function lineHover(l: LineResult): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  const hex = (l.response ?? '').replace(/\s+/g, '').toUpperCase();
  const dataHex = hex.length >= 4 ? hex.slice(0, -4) : '';
  const spaced = (h: string) => (h.match(/.{2}/g) ?? []).join(' ');
  const total = Math.max(0, (l.responseBytes ?? hex.length / 2) - 2);
  md.appendMarkdown(`**Response**${l.count > 1 ? ` (last of ${l.count} runs)` : ''}\n\n`);
  if (dataHex) {
    md.appendMarkdown(`Data, ${total} byte${total === 1 ? '' : 's'}${total > dataHex.length / 2 ? ` (first ${dataHex.length / 2} shown)` : ''}:\n`);
    md.appendCodeblock(spaced(dataHex), 'text');
    const text = (dataHex.match(/.{2}/g) ?? []).map((b) => { const c = parseInt(b, 16); return c >= 0x20 && c < 0x7F ? String.fromCharCode(c) : '.'; }).join('');
    md.appendMarkdown('As text:\n');
    md.appendCodeblock(text, 'text');
  } else if (hex) {
    md.appendMarkdown('No data.\n\n');
  }
  if (l.sw) md.appendMarkdown(`SW \`${spaced(l.sw)}\`${l.swMeaning ? `: ${l.swMeaning}` : ''}\n\n`);
  if (l.message) md.appendMarkdown(`✗ ${l.message.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&')}\n`);
  return md;
}

export class RunResults implements vscode.Disposable {
  private readonly passed = vscode.window.createTextEditorDecorationType({
    after: { margin: '0 0 0 2em', color: new vscode.ThemeColor('testing.iconPassed') },
  });
  private readonly failed = vscode.window.createTextEditorDecorationType({
    after: { margin: '0 0 0 2em', color: new vscode.ThemeColor('testing.iconFailed') },
  });
  private readonly diagnostics = vscode.languages.createDiagnosticCollection('apdu-run');
  /** Documents with results shown, and what to show in their editors. */
  private readonly shown = new Map<string, Map<number, { ok: boolean; option: vscode.DecorationOptions; diagnostic?: vscode.Diagnostic }>>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor() {
    this.subscriptions.push(
      vscode.workspace.onDidChangeTextDocument((e) => { if (e.contentChanges.length) this.clear(e.document.uri); }),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d.uri)),
      vscode.window.onDidChangeVisibleTextEditors((editors) => { for (const ed of editors) this.paint(ed); }),
    );
  }

  /** `lines`: the lines that ran (a "Run line" range); results of other lines stay. Without it, everything is replaced. */
  show(doc: vscode.TextDocument, result: RunScriptResult, lines?: { from: number; to: number }): void {
    const key = doc.uri.toString();
    const byLine = new Map([...(lines ? this.shown.get(key) ?? [] : [])].filter(([n]) => n < lines!.from || n > lines!.to));
    const lineDiag = new Map<number, vscode.Diagnostic>();
    for (const l of result.lines) {
      if (l.line < 1 || l.line > doc.lineCount) continue;
      const end = doc.lineAt(l.line - 1).range.end;
      const sw = l.sw ? `${l.sw.slice(0, 2)} ${l.sw.slice(2)}` : '';
      const times = l.count > 1 ? ` ×${l.count}` : '';
      const option: vscode.DecorationOptions = {
        range: new vscode.Range(end, end),
        renderOptions: { after: { contentText: `${l.ok ? '✓' : '✗'} ${sw}${times}` } },
        hoverMessage: lineHover(l),
      };
      byLine.set(l.line, { ok: l.ok, option });
      if (!l.ok && l.message) {
        const d = new vscode.Diagnostic(doc.lineAt(l.line - 1).range, `Expectation failed: ${l.message}`, vscode.DiagnosticSeverity.Error);
        d.source = 'apdu run';
        lineDiag.set(l.line, d);
      }
    }
    const f = result.failure;
    // Only the script's own errors are diagnostics: a syntax error is the parser's already, and
    // a card or reader state ("No card in …") is no fault of the line (the notification offers the way out).
    if (f?.line && !lineDiag.size && f.line <= doc.lineCount && failureIsDiagnostic(f.code)) {
      const d = new vscode.Diagnostic(doc.lineAt(f.line - 1).range, failureMessage(f), vscode.DiagnosticSeverity.Error);
      d.source = 'apdu run';
      lineDiag.set(f.line, d);
    }
    for (const [n, d] of lineDiag) {
      const r = byLine.get(n);
      if (r) r.diagnostic = d;
    }
    // A failure with no result line of its own (the line never got an answer) keeps its diagnostic too.
    for (const [n, d] of lineDiag) if (!byLine.has(n)) byLine.set(n, { ok: false, option: { range: d.range.with(d.range.end, d.range.end) }, diagnostic: d });
    this.shown.set(key, byLine);
    this.diagnostics.set(doc.uri, [...byLine.values()].flatMap((r) => (r.diagnostic ? [r.diagnostic] : [])));
    for (const ed of vscode.window.visibleTextEditors) this.paint(ed);
  }

  private paint(editor: vscode.TextEditor): void {
    const s = [...(this.shown.get(editor.document.uri.toString())?.values() ?? [])].filter((r) => r.option.renderOptions);
    editor.setDecorations(this.passed, s.filter((r) => r.ok).map((r) => r.option));
    editor.setDecorations(this.failed, s.filter((r) => !r.ok).map((r) => r.option));
  }

  private clear(uri: vscode.Uri): void {
    if (!this.shown.delete(uri.toString())) return;
    this.diagnostics.delete(uri);
    for (const ed of vscode.window.visibleTextEditors) if (ed.document.uri.toString() === uri.toString()) this.paint(ed);
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.passed.dispose();
    this.failed.dispose();
    this.diagnostics.dispose();
  }
}
