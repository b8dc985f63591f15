// Language features for `.apdu` files, as pure functions over the parsed script
// (no connection, no editor), so tests call them directly.

import {
  CodeAction, CodeActionKind, CodeLens, CompletionItem, CompletionItemKind, Diagnostic, DiagnosticSeverity,
  DocumentSymbol, Hover, InsertTextFormat, MarkupKind, Position, Range, SymbolKind,
} from 'vscode-languageserver';
import { isEnvelopeIns, isSecretIns, secretRanges } from '../codecs/apdu';
import { concatBytes } from '../util/hex';
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
  const out: Diagnostic[] = script.diagnostics.map((d) => ({
    range: toRange(d.span), severity: SEVERITY[d.severity], message: d.message, code: d.code, source: 'apdu',
  }));
  for (const range of writtenPins(script.statements)) {
    out.push({ range, severity: DiagnosticSeverity.Information, message: PIN_IN_FILE, code: 'pin-in-file', source: 'apdu' });
  }
  return out;
}

const PIN_IN_FILE = 'This command\'s data is a PIN written in the file: ${pin:"…"} asks for it instead';

/**
 * The commands whose data is a PIN written in hex in the file (VERIFY & co., `isSecretIns`): a run
 * masks it (R88), the file still holds it. Bodies walked with a stack: repeat blocks nest deep.
 */
function writtenPins(statements: Statement[]): Range[] {
  const out: Range[] = [];
  const stack: Statement[][] = [statements];
  while (stack.length) {
    for (const s of stack.pop()!) {
      if (s.kind === 'repeat') stack.push(s.body);
      else if (s.kind === 'apdu' && s.parts[0].kind === 'hex' && s.parts[0].bytes.length >= 2) {
        const ins = s.parts[0].bytes[1];
        // R92: an ENVELOPE (C2/C3) whose data starts with a VERIFY & co. carries a PIN too (secretRanges' rule).
        const envelope = isEnvelopeIns(ins);
        if (!envelope && !isSecretIns(ins)) continue;
        let n = 0;
        for (const p of s.parts) n = p.kind === 'hex' ? n + p.bytes.length : -Infinity;
        if (n <= 5) continue;
        if (envelope && !secretRanges(concatBytes(...s.parts.map((p) => (p.kind === 'hex' ? p.bytes : new Uint8Array(0)))))) continue;
        out.push(Range.create(toRange(s.parts[0].span).start, toRange(s.parts[s.parts.length - 1].span).end));
      }
    }
  }
  return out;
}

export function codeActions(script: Script, uri: string, range: Range): CodeAction[] {
  const out: CodeAction[] = [];
  for (const d of script.diagnostics) {
    if (!d.fixes?.length) continue;
    if (d.span.end.line < range.start.line || d.span.start.line > range.end.line) continue;
    for (const fix of d.fixes) {
      out.push({
        title: fix.title,
        kind: CodeActionKind.QuickFix,
        diagnostics: diagnostics({ statements: [], diagnostics: [d] }),
        ...(fix.preferred ? { isPreferred: true } : {}),
        edit: { changes: { [uri]: fix.edits.map((e) => ({ range: toRange(e.span), newText: e.newText })) } },
      });
    }
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

/** The everyday ISO 7816-4 commands: label, one-line detail, snippet body, what it does (Markdown). */
const SNIPPETS: ReadonlyArray<readonly [label: string, detail: string, body: string, doc: string]> = [
  ['SELECT MF', 'SELECT the master file 3F00', '00 A4 00 0C 02 3F 00 => 90 00',
    'P1 00: select by file ID; P2 0C: no response data. 3F00 is the MF, the root of the file system.'],
  ['SELECT by FID', 'SELECT an EF under the current DF by its file ID', '00 A4 02 0C 02 ${1:50 01} => 90 00',
    'P1 02: EF under the current DF; P2 0C: no response data. Lc 02: the two-byte file ID.'],
  ['SELECT by AID', 'SELECT an application by its AID (DF name), FCI back', '00 A4 04 00 ${2:07} ${1:F0574244454D4F} 00 => 6F * 90 00',
    'P1 04: by DF name; P2 00: first or only occurrence, return FCI; Le 00: all of it. Type the AID first; Lc (its length in bytes) comes next — a quick fix sets it if they disagree.'],
  ['SELECT by path', 'SELECT a file by its path from the MF', '00 A4 08 0C ${2:04} ${1:50 00 50 01} => 90 00',
    'P1 08: path from the MF (without 3F00); P2 0C: no response data. Lc: the path length in bytes.'],
  ['SELECT next', 'SELECT the next application matching a partial AID', '00 A4 04 02 ${2:05} ${1:A0 00 00 00 03} 00 => * 90 00',
    'P1 04: by DF name; P2 02: next occurrence. Repeat it to walk the applications whose AID starts with these bytes.'],
  ['READ BINARY', 'READ BINARY from the current EF at an offset', '00 B0 ${1:00} ${2:00} ${3:00} => * 90 00',
    'P1P2: the offset (P1 b8 set: P1 b5-b1 is a short EF identifier, P2 the offset). Le 00: up to 256 bytes.'],
  ['UPDATE BINARY', 'UPDATE BINARY: write bytes into the current EF at an offset', '00 D6 ${1:00} ${2:00} ${3:04} ${4:01 02 03 04} => 90 00',
    'P1P2: the offset; Lc: the number of bytes written.'],
  ['READ RECORD', 'READ RECORD: one record of the current record EF', '00 B2 ${1:01} ${2:04} 00 => * 90 00',
    'P1: the record number; P2 04: the current EF, the record numbered P1 (P2 = SFI × 8 + 4 to name the EF). Le 00: the whole record.'],
  ['UPDATE RECORD', 'UPDATE RECORD: replace a record of the current EF', '00 DC ${1:01} ${2:04} ${3:04} ${4:01 02 03 04} => 90 00',
    'P1: the record number; P2 04: the current EF, the record numbered P1; Lc: the record length.'],
  ['GET DATA', 'GET DATA: one data object by its tag', '00 CA ${1:9F} ${2:7F} 00 => * 90 00',
    'P1P2: the tag of the data object (9F7F: card production life cycle data on many cards).'],
  ['GET RESPONSE', 'GET RESPONSE: fetch the bytes a 61xx announced', '00 C0 00 00 ${1:00} => * 90 00',
    'Le: the xx of 61xx (00: up to 256). The workbench sends it for you unless `set getresponse off`.'],
  ['VERIFY with PIN prompt', 'VERIFY a PIN, asked for in a masked input box', '00 20 00 ${1:01} 04 \\${pin:"${2:User PIN}"} => 90 00',
    'P2: the PIN reference (01 here; PIV: 80). The PIN is asked when run, never logged. Lc: the PIN length (use `pad=8` for a fixed length).'],
  ['VERIFY retry counter', 'VERIFY without data: how many tries are left', '00 20 00 ${1:01} => 63 C? | 90 00',
    'No data: the card answers 63 Cx (x tries left) or 90 00 (already verified); nothing is counted against the PIN.'],
  ['CHANGE REFERENCE DATA', 'CHANGE REFERENCE DATA: change a PIN', '00 24 00 ${1:01} 08 \\${pin:"${2:Old PIN}"} \\${pin:"${3:New PIN}"} => 90 00',
    'P1 00: the data is the old PIN then the new; P2: the PIN reference. Lc: both lengths together.'],
  ['RESET RETRY COUNTER', 'RESET RETRY COUNTER: unblock a PIN with the PUK', '00 2C 00 ${1:01} 0C \\${pin:"${2:PUK}"} \\${pin:"${3:New PIN}"} => 90 00',
    'P1 00: the data is the resetting code (PUK) then the new PIN; P2: the PIN reference.'],
  ['GET CHALLENGE', 'GET CHALLENGE: random bytes from the card', '00 84 00 00 ${1:08} => * 90 00',
    'Le: the number of random bytes (8 for most authentication schemes).'],
  ['INTERNAL AUTHENTICATE', 'INTERNAL AUTHENTICATE: the card proves it holds a key', '00 88 00 ${1:00} ${2:08} ${3:01 02 03 04 05 06 07 08} 00 => * 90 00',
    'P1: the algorithm (00: known before); P2: the key reference; data: the challenge; Le 00: the card\'s answer.'],
  ['EXTERNAL AUTHENTICATE', 'EXTERNAL AUTHENTICATE: prove to the card you hold a key', '00 82 00 ${1:00} ${2:08} ${3:01 02 03 04 05 06 07 08} => 90 00',
    'P1: the algorithm (00: known before); P2: the key reference; data: the card\'s challenge, enciphered.'],
  ['MANAGE CHANNEL open', 'MANAGE CHANNEL: open a logical channel', '00 70 00 00 01 => * 90 00',
    'P1 00: open; P2 00: the card picks the channel number and returns it (Le 01).'],
  ['MANAGE CHANNEL close', 'MANAGE CHANNEL: close a logical channel', '0${1:1} 70 80 0${1:1} => 90 00',
    'P1 80: close; P2: the channel number (sent on that channel: CLA 01-03).'],
  ['ENVELOPE', 'ENVELOPE: carry a command the card cannot receive otherwise', '00 C2 00 00 ${1:04} ${2:01 02 03 04} => * 90 00',
    'Data: a part of the wrapped command (T=0 transport of a case 4 or extended APDU).'],
];

/** What a snippet inserts with its defaults: `${1:07}` → 07, `${1|a,b|}` → a, `\$` → $. */
export function snippetPreview(body: string): string {
  let prev = '';
  let out = body;
  while (prev !== out) {
    prev = out;
    out = out.replace(/\$\{\d+:([^{}$]*)\}/g, '$1').replace(/\$\{\d+\|([^,|]*)[^|]*\|\}/g, '$1');
  }
  return out.replace(/\$\d+/g, '').replace(/\\\$/g, '$');
}

export function completions(): CompletionItem[] {
  // Snippets first, in the order above (sortText "0…"), then the keywords ("1…").
  const items: CompletionItem[] = SNIPPETS.map(([label, detail, body, doc], i) => ({
    label, kind: CompletionItemKind.Snippet, detail, insertText: body, insertTextFormat: InsertTextFormat.Snippet,
    sortText: `0${String(i).padStart(3, '0')}`, filterText: label,
    documentation: { kind: MarkupKind.Markdown, value: `${doc}\n\nInserts:\n\`\`\`apdu\n${snippetPreview(body)}\n\`\`\`` },
  }));
  const kw: Array<[string, string, string]> = [
    ['reset', 'reset ${1|warm,cold|}', 'Reset the card (warm or cold).'],
    ['connect', 'connect "${1:*}" ${2|T=1,T=0|} ${3|shared,exclusive|}', 'Connect to a reader with a protocol and share mode.'],
    ['disconnect', 'disconnect ${1|leave,reset,unpower,eject|}', 'Disconnect, leaving, resetting, unpowering or ejecting the card.'],
    ['control', 'control ${1:3400}', 'SCardControl: a reader control code.'],
    ['transaction', 'transaction ${1|begin,end|}', 'Begin or end an exclusive transaction.'],
    ['wait', 'wait ${1|card,removal|} ${2:10000}', 'Wait for a card (or its removal), in ms.'],
    ['delay', 'delay ${1:100}', 'Pause, in ms.'], ['echo', 'echo "${1:text}"', 'Write a line to the log ($data: the last response data).'],
    ['repeat', 'repeat ${1:10}\n\t$0\nend', 'Repeat the lines up to `end`.'],
    ['set getresponse', 'set getresponse ${1|on,off|}', 'Automatic GET RESPONSE on 61xx (and resend on 6Cxx).'],
    ['set timeout', 'set timeout ${1:120000}', 'The exchange time-out in ms.'],
    ['let', 'let ${1:NAME} = ${2:00}', 'Name bytes for later lines: ${NAME}.'], ['exit', 'exit', 'Stop the script here.'],
  ];
  kw.forEach(([label, body, doc], i) => {
    items.push({
      label, kind: CompletionItemKind.Keyword, insertText: body, insertTextFormat: InsertTextFormat.Snippet,
      sortText: `1${String(i).padStart(3, '0')}`,
      documentation: { kind: MarkupKind.Markdown, value: `${doc}\n\nInserts:\n\`\`\`apdu\n${snippetPreview(body)}\n\`\`\`` },
    });
  });
  return items;
}
