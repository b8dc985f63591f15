// Language features for `.apdu` files, as pure functions over the parsed script
// (no connection, no editor), so tests call them directly.

import {
  CodeAction, CodeActionKind, CodeLens, CompletionItem, CompletionItemKind, Diagnostic, DiagnosticSeverity,
  DocumentSymbol, Hover, InsertTextFormat, MarkupKind, Position, Range, SymbolKind,
} from 'vscode-languageserver';
import { describeStatusWord } from '../codecs/sw';
import type { PatternItem, Script, ScriptDiagnostic, Span, Statement } from '../script/ast';
import { describeCommandLines } from './describe';

export const RUN_COMMAND = 'smartcard.runScript';

const toRange = (s: Span): Range => Range.create(s.start.line, s.start.character, s.end.line, s.end.character);

const SEVERITY: Record<ScriptDiagnostic['severity'], DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  info: DiagnosticSeverity.Information,
};

export function diagnostics(script: Script): Diagnostic[] {
  return script.diagnostics.map((d) => ({
    range: toRange(d.span), severity: SEVERITY[d.severity], message: d.message, code: d.code, source: 'apdu',
  }));
}

export function codeActions(script: Script, uri: string, range: Range): CodeAction[] {
  const out: CodeAction[] = [];
  for (const d of script.diagnostics) {
    if (!d.fix) continue;
    if (d.span.end.line < range.start.line || d.span.start.line > range.end.line) continue;
    out.push({
      title: d.fix.title,
      kind: CodeActionKind.QuickFix,
      diagnostics: diagnostics({ statements: [], diagnostics: [d] }),
      edit: { changes: { [uri]: d.fix.edits.map((e) => ({ range: toRange(e.span), newText: e.newText })) } },
    });
  }
  return out;
}

/** Every statement in source order, repeat bodies included. Iterative: nesting has no depth limit. */
function walk(statements: Statement[], fn: (s: Statement) => void): void {
  const stack: Array<{ body: Statement[]; i: number }> = [{ body: statements, i: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.i >= top.body.length) { stack.pop(); continue; }
    const s = top.body[top.i++];
    fn(s);
    if (s.kind === 'repeat' && s.body.length) stack.push({ body: s.body, i: 0 });
  }
}

/** Outline depth: deeper repeat bodies are listed flat under this level (the client serializes the tree recursively). */
const MAX_SYMBOL_DEPTH = 32;

/** "Run" on the file, "Run line" and "Run to here" on each command. */
export function codeLenses(script: Script, uri: string): CodeLens[] {
  const lenses: CodeLens[] = [];
  const first = script.statements[0];
  const top = first ? first.span.start.line : 0;
  lenses.push({ range: Range.create(top, 0, top, 0), command: { title: '▶ Run', command: RUN_COMMAND, arguments: [uri] } });
  for (const s of script.statements) {
    if (s.kind !== 'apdu') continue;
    const r = Range.create(s.span.start.line, 0, s.span.start.line, 0);
    lenses.push({ range: r, command: { title: 'Run line', command: RUN_COMMAND, arguments: [uri, s.line, s.line] } });
    lenses.push({ range: r, command: { title: 'Run to here', command: RUN_COMMAND, arguments: [uri, 1, s.line] } });
  }
  return lenses;
}

function contains(span: Span, p: Position): boolean {
  const after = p.line > span.start.line || (p.line === span.start.line && p.character >= span.start.character);
  const before = p.line < span.end.line || (p.line === span.end.line && p.character <= span.end.character);
  return after && before;
}

export function hover(script: Script, p: Position): Hover | null {
  let found: Statement | null = null;
  walk(script.statements, (s) => { if (!found && s.kind === 'apdu' && contains(s.span, p)) found = s; });
  const s = found as Statement | null;
  if (!s || s.kind !== 'apdu') return null;
  if (s.expect && contains(s.expect.span, p)) {
    const lines = s.expect.alternatives.map((alt) => {
      const sw = alt.slice(-2);
      if (sw.some((b) => b.kind !== 'byte' || b.mask !== 0xff)) return `- \`${fmtPattern(alt)}\`: pattern`;
      const [a, b] = sw as Array<{ value: number }>;
      return `- \`${fmtPattern(alt)}\`: ${describeStatusWord(a.value, b.value).meaning}`;
    });
    return { contents: { kind: MarkupKind.Markdown, value: `**Expected response**\n\n${lines.join('\n')}` }, range: toRange(s.expect.span) };
  }
  return { contents: { kind: MarkupKind.Markdown, value: describeCommandLines(s.parts).join('\n\n') }, range: toRange(s.span) };
}

function fmtPattern(alt: PatternItem[]): string {
  return alt.map((i) => {
    if (i.kind === 'any') return '*';
    const v = i.value.toString(16).toUpperCase().padStart(2, '0');
    if (i.mask === 0xff) return v;
    if (i.mask === 0) return '??';
    return i.mask === 0xf0 ? `${v[0]}?` : `?${v[1]}`;
  }).join(' ');
}

export function documentSymbols(script: Script): DocumentSymbol[] {
  const toSymbol = (s: Statement): DocumentSymbol => {
    const range = toRange(s.span);
    const name = s.kind === 'apdu' ? s.text : s.kind === 'echo' ? `echo "${s.text}"` : s.kind === 'repeat' ? `repeat ${s.count}`
      : s.kind === 'set' ? (s.option === 'timeout' ? `set timeout ${s.timeoutMs ?? 'default'}` : `set getresponse ${s.value ? 'on' : 'off'}`) : s.kind;
    return {
      name: name.length > 60 ? name.slice(0, 57) + '…' : name,
      ...(s.kind === 'apdu' ? { detail: `line ${s.line}` } : {}),
      kind: s.kind === 'apdu' ? SymbolKind.Function : s.kind === 'repeat' ? SymbolKind.Namespace : SymbolKind.Event,
      range, selectionRange: range,
    };
  };
  // Iterative, so 20,000 nested repeat blocks neither overflow the stack here nor in the client's JSON.
  const out: DocumentSymbol[] = [];
  const stack: Array<{ body: Statement[]; i: number; into: DocumentSymbol[]; depth: number }> = [{ body: script.statements, i: 0, into: out, depth: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.i >= top.body.length) { stack.pop(); continue; }
    const s = top.body[top.i++];
    const sym = toSymbol(s);
    top.into.push(sym);
    if (s.kind === 'repeat') {
      if (top.depth + 1 < MAX_SYMBOL_DEPTH) { sym.children = []; stack.push({ body: s.body, i: 0, into: sym.children, depth: top.depth + 1 }); }
      else stack.push({ body: s.body, i: 0, into: top.into, depth: top.depth });
    }
  }
  return out;
}

const SNIPPETS: Array<[string, string, string]> = [
  ['SELECT by AID', '00 A4 04 00 ${1:07} ${2:F0574244454D4F} 00 => 90 00', 'SELECT an application by its AID (DF name)'],
  ['SELECT MF', '00 A4 00 0C 02 3F 00 => 90 00', 'SELECT the master file 3F00'],
  ['READ BINARY', '00 B0 ${1:00} ${2:00} ${3:00} => * 90 00', 'READ BINARY from the current EF at offset P1P2'],
  ['GET RESPONSE', '00 C0 00 00 ${1:00}', 'Fetch the bytes announced by 61xx'],
  ['GET CHALLENGE', '00 84 00 00 08 => * 90 00', 'Ask the card for 8 random bytes'],
  ['VERIFY with PIN prompt', '00 20 00 ${1:01} 04 \\${pin:"${2:User PIN}"} => 90 00', 'VERIFY: asks for the PIN with a masked input box'],
  ['GET DATA', '00 CA ${1:9F} ${2:7F} 00 => * 90 00', 'GET DATA for a tag (P1P2)'],
];

export function completions(): CompletionItem[] {
  const items: CompletionItem[] = SNIPPETS.map(([label, body, doc]) => ({
    label, kind: CompletionItemKind.Snippet, insertText: body, insertTextFormat: InsertTextFormat.Snippet, documentation: doc,
  }));
  const kw: Array<[string, string]> = [
    ['reset', 'reset ${1|warm,cold|}'], ['connect', 'connect "${1:*}" ${2|T=1,T=0|} ${3|shared,exclusive|}'],
    ['disconnect', 'disconnect ${1|leave,reset,unpower,eject|}'], ['control', 'control ${1:3400}'],
    ['transaction', 'transaction ${1|begin,end|}'], ['wait', 'wait ${1|card,removal|} ${2:10000}'],
    ['delay', 'delay ${1:100}'], ['echo', 'echo "${1:text}"'], ['repeat', 'repeat ${1:10}\n\t$0\nend'],
    ['set getresponse', 'set getresponse ${1|on,off|}'], ['set timeout', 'set timeout ${1:120000}'], ['let', 'let ${1:NAME} = ${2:00}'], ['exit', 'exit'],
  ];
  for (const [label, body] of kw) {
    items.push({ label, kind: CompletionItemKind.Keyword, insertText: body, insertTextFormat: InsertTextFormat.Snippet });
  }
  return items;
}
