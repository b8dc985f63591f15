// Parser for `.apdu` scripts. Never throws: problems become diagnostics with
// exact ranges, and statements with errors are left out of the result.
//
// Scriptor compatibility (pcsc-tools' scriptor): hex lines with or without
// spaces, `#` comments, `reset`, `exit`, a trailing `\` continues a line.
// Scriptor also stops at any line that merely contains "exit" (even in a
// comment); we warn about that instead of copying it.

import type {
  Expectation, HexPart, PatternItem, PinEncoding, Pos, QuickFix, Script, ScriptDiagnostic, Slice, Span, Statement,
} from './ast';
import { KEYWORDS } from './ast';
import { isEnvelopeIns, isSecretIns, parseCommandApdu } from '../codecs/apdu';

/**
 * A logical line: physical lines joined by `\`. Positions are kept per physical
 * piece, not per character (a 10,000-line script held ~23 MB of position objects):
 * piece k starts at text offset `starts[k]` on source line `line + k`, column 0.
 * The space that joins two pieces stands at the position of the backslash.
 */
interface Logical {
  text: string;
  line: number; // first physical line, 0-based
  starts: number[];
}
export function parseScript(source: string): Script {
  const diagnostics: ScriptDiagnostic[] = [];
  const logical = toLogicalLines(source, diagnostics);
  const top: Statement[] = [];
  const stack: Array<{ body: Statement[]; repeat?: Extract<Statement, { kind: 'repeat' }>; discard?: boolean }> = [{ body: top }];

  for (const l of logical) {
    const st = parseStatement(l, diagnostics);
    if (st === BAD_REPEAT) {
      // Its 'end' still closes it: one error for a bad count, not a second one for the 'end'.
      stack.push({ body: [], repeat: { line: l.line + 1, span: spanOf(l, 0, l.text.length), kind: 'repeat', count: 1, body: [] }, discard: true });
      continue;
    }
    if (!st) continue;
    if (st === 'end') {
      if (stack.length === 1) {
        diagnostics.push(diag(spanOf(l, 0, l.text.length), 'error', "'end' without a matching 'repeat'", 'unmatched-end'));
      } else {
        const frame = stack.pop()!;
        frame.repeat!.span = { start: frame.repeat!.span.start, end: spanOf(l, 0, l.text.length).end };
      }
      continue;
    }
    stack[stack.length - 1].body.push(st);
    if (st.kind === 'repeat') stack.push({ body: st.body, repeat: st });
  }
  while (stack.length > 1) {
    const frame = stack.pop()!;
    if (frame.discard) continue;
    diagnostics.push(diag(frame.repeat!.span, 'error', "'repeat' without a matching 'end'", 'unclosed-repeat'));
  }
  return { statements: top, diagnostics };
}

// ------------------------------------------------------------ lines

function toLogicalLines(source: string, diagnostics: ScriptDiagnostic[]): Logical[] {
  // Line breaks as LSP counts them: \r\n, \n, or a lone \r.
  const lines = source.split(/\r\n|\r|\n/);
  const out: Logical[] = [];
  // Pieces of a continued line are collected and joined once: no quadratic concatenation.
  let pieces: string[] = [];
  let starts: number[] = [];
  let length = 0;
  let first = 0;
  const flush = () => {
    const text = pieces.length === 1 ? pieces[0] : pieces.join(' ');
    if (text.trim()) out.push({ text, line: first, starts });
    pieces = []; starts = []; length = 0;
  };
  for (let ln = 0; ln < lines.length; ln++) {
    const raw = lines[ln];
    const commentAt = findComment(raw);
    const code = commentAt < 0 ? raw : raw.slice(0, commentAt);
    if (raw.length >= 4) checkScriptorExit(raw, ln, commentAt, code, diagnostics);
    let body = code.trimEnd();
    const continues = body.endsWith('\\');
    if (continues) body = body.slice(0, -1);
    if (!pieces.length) first = ln;
    else length++; // the joining space
    starts.push(length);
    pieces.push(body);
    length += body.length;
    if (!continues) flush();
  }
  if (pieces.length) flush();
  return out;
}

/** Index where a `#` or `//` comment starts, outside double quotes; -1 if none. */
function findComment(line: string): number {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') inString = !inString;
    else if (!inString && (c === '#' || (c === '/' && line[i + 1] === '/'))) return i;
  }
  return -1;
}

function checkScriptorExit(raw: string, ln: number, commentAt: number, code: string, diagnostics: ScriptDiagnostic[]): void {
  const m = /exit/i.exec(raw);
  if (!m) return;
  if (/^\s*exit\s*$/i.test(code) && (commentAt < 0 || commentAt > m.index)) return; // a real `exit` statement
  const span = { start: { line: ln, character: m.index }, end: { line: ln, character: m.index + 4 } };
  diagnostics.push({
    span, severity: 'warning', code: 'scriptor-exit',
    message: "scriptor stops at any line containing 'exit', so under scriptor the script would end here; the workbench carries on.",
    fixes: [{ title: "Reword 'exit' so scriptor does not stop here", edits: [{ span, newText: m[0][0] + '-' + m[0].slice(1) }] }],
  });
}

// ------------------------------------------------------------ statements

const WORD = /[A-Za-z_][\w-]*/y;
const KEYWORD_SET: ReadonlySet<string> = new Set(KEYWORDS);

/** A `repeat` line with an error: left out, but its body and 'end' are still matched to it. */
const BAD_REPEAT = Symbol('bad repeat');

function parseStatement(l: Logical, diagnostics: ScriptDiagnostic[]): Statement | 'end' | typeof BAD_REPEAT | null {
  let lead = 0;
  while (lead < l.text.length && /\s/.test(l.text[lead])) lead++;
  WORD.lastIndex = lead;
  const m = WORD.exec(l.text);
  const word = m ? m[0].toLowerCase() : '';
  // Most lines are commands: they skip the keyword machinery below.
  if (!KEYWORD_SET.has(word)) return parseCommand(l, lead, m, word, diagnostics);
  const base = { line: l.line + 1, span: spanOf(l, lead, l.text.trimEnd().length) };
  const rest = m ? l.text.slice(lead + m[0].length) : '';
  const restAt = lead + (m ? m[0].length : 0);
  const args = rest.trim().split(/\s+/).filter(Boolean).map((a) => a.toLowerCase());
  const err = (message: string, code = 'syntax', from = lead, to = l.text.trimEnd().length) => {
    diagnostics.push(diag(spanOf(l, from, to), 'error', message, code));
    return null;
  };
  const onlyArgs = (allowed: string[][], usage: string): boolean => {
    if (args.length > allowed.length) { err(`too many arguments; usage: ${usage}`); return false; }
    for (let i = 0; i < args.length; i++) {
      if (!allowed[i].includes(args[i])) { err(`'${args[i]}' is not valid here; usage: ${usage}`); return false; }
    }
    return true;
  };

  if ((KEYWORDS as readonly string[]).includes(word)) {
    switch (word) {
      case 'reset':
        if (!onlyArgs([['cold', 'warm']], 'reset [cold|warm]')) return null;
        return { ...base, kind: 'reset', mode: args[0] === 'cold' ? 'cold' : 'warm' };
      case 'exit':
        if (args.length) return err("'exit' takes no arguments");
        return { ...base, kind: 'exit' };
      case 'end':
        if (args.length) return err("'end' takes no arguments");
        return 'end';
      case 'transaction':
        if (args.length !== 1 || !['begin', 'end'].includes(args[0])) return err('usage: transaction begin|end');
        return { ...base, kind: 'transaction', action: args[0] as 'begin' | 'end' };
      case 'disconnect':
        if (!onlyArgs([['leave', 'reset', 'unpower', 'eject']], 'disconnect [leave|reset|unpower|eject]')) return null;
        return { ...base, kind: 'disconnect', disposition: (args[0] ?? 'leave') as 'leave' };
      case 'set': {
        if (args[0] === 'timeout') {
          const usage = `usage: set timeout <milliseconds, 1 to ${MAX_TIMER_MS}>|default`;
          if (args.length !== 2) return err(usage);
          if (args[1] === 'default') return { ...base, kind: 'set', option: 'timeout' };
          const ms = parseNumber(args[1]);
          if (ms === null) return err(usage);
          if (ms < 1 || ms > MAX_TIMER_MS) return err(`${tooBig(args[1], ms, 1, MAX_TIMER_MS)}; ${usage}`);
          return { ...base, kind: 'set', option: 'timeout', timeoutMs: ms };
        }
        if (args.length !== 2 || args[0] !== 'getresponse' || !['on', 'off'].includes(args[1])) return err('usage: set getresponse on|off, or set timeout <milliseconds>|default');
        return { ...base, kind: 'set', option: 'getresponse', value: args[1] === 'on' };
      }
      case 'delay': {
        const ms = parseNumber(args[0]);
        if (args.length !== 1 || ms === null) return err(`usage: delay <milliseconds, 0 to ${MAX_TIMER_MS}>`);
        if (ms > MAX_TIMER_MS) return err(`${tooBig(args[0], ms, 0, MAX_TIMER_MS)}; usage: delay <milliseconds, 0 to ${MAX_TIMER_MS}>`);
        return { ...base, kind: 'delay', ms };
      }
      case 'wait': {
        const usage = `usage: wait card|removal [milliseconds, 0 to ${MAX_TIMER_MS}]`;
        if (!args.length || !['card', 'removal'].includes(args[0])) return err(usage);
        const ms = args[1] === undefined ? undefined : parseNumber(args[1]);
        if (ms === null || args.length > 2) return err(usage);
        if (ms !== undefined && ms > MAX_TIMER_MS) return err(`${tooBig(args[1], ms, 0, MAX_TIMER_MS)}; ${usage}`);
        return { ...base, kind: 'wait', what: args[0] as 'card', ...(ms !== undefined ? { ms } : {}) };
      }
      case 'repeat': {
        const n = parseNumber(args[0]);
        const usage = `usage: repeat <count, 1 to ${MAX_REPEAT.toLocaleString('en-US')}> … end`;
        if (args.length !== 1 || n === null) { err(usage); return BAD_REPEAT; }
        if (n < 1 || n > MAX_REPEAT) { err(`${tooBig(args[0], n, 1, MAX_REPEAT)}; ${usage}`); return BAD_REPEAT; }
        return { ...base, kind: 'repeat', count: n, body: [] };
      }
      case 'echo': {
        const s = /^\s*"((?:[^"\\]|\\.)*)"\s*$/.exec(rest);
        if (!s) return err('usage: echo "<text>"');
        return { ...base, kind: 'echo', text: s[1].replace(/\\(.)/g, '$1') };
      }
      case 'connect': {
        const c = /^\s*(?:"([^"]*)")?\s*(.*)$/.exec(rest)!;
        const opts = c[2].trim().split(/\s+/).filter(Boolean).map((a) => a.toLowerCase());
        let protocol: 0 | 1 | undefined;
        let share: 'shared' | 'exclusive' | undefined;
        for (const o of opts) {
          if (o === 't=0' || o === 't=1') protocol = o === 't=0' ? 0 : 1;
          else if (o === 'shared' || o === 'exclusive') share = o;
          else return err(`'${o}' is not valid here; usage: connect ["<reader glob>"] [T=0|T=1] [shared|exclusive]`);
        }
        return { ...base, kind: 'connect', ...(c[1] !== undefined ? { reader: c[1] } : {}), ...(protocol !== undefined ? { protocol } : {}), ...(share ? { share } : {}) };
      }
      case 'control': {
        const c = /^\s*(\S+)/.exec(rest);
        const code = c ? parseNumber(c[1]) : null;
        if (code === null) return err('usage: control <code> [hex data]');
        if (code > 0xffffffff) return err(`${tooBig(c![1], code, 0, 0xffffffff)}; usage: control <code> [hex data]`);
        const dataAt = restAt + c![0].length;
        const parts = parseHexParts(l, dataAt, l.text.length, diagnostics);
        if (!parts) return null;
        return { ...base, kind: 'control', code, parts };
      }
      case 'verify': {
        // verify pinpad <VERIFY APDU with placeholder PIN bytes> [ascii|bcd|binary] [min=N] [max=N] [=> expectation]
        const usage = 'usage: verify pinpad <APDU with placeholder PIN bytes> [ascii|bcd|binary] [min=N] [max=N] [=> 90 00]';
        const p = /^\s*pinpad\b/i.exec(rest);
        if (!p) return err(usage);
        const arrowAt = l.text.indexOf('=>');
        const end = arrowAt < 0 ? l.text.length : arrowAt;
        const from = restAt + p[0].length;
        const body = l.text.slice(from, end);
        const opt = /\s(ascii|bcd|binary|min=\S*|max=\S*)(?=\s|$)/i.exec(' ' + body);
        const hexEnd = opt ? from + opt.index : end;
        let format: 'ascii' | 'bcd' | 'binary' = 'ascii';
        let minDigits = 4;
        let maxDigits = 8;
        for (const o of (opt ? l.text.slice(hexEnd, end) : '').trim().split(/\s+/).filter(Boolean)) {
          const [k, v] = o.toLowerCase().split('=');
          if (k === 'ascii' || k === 'bcd' || k === 'binary') format = k;
          else if ((k === 'min' || k === 'max') && /^\d+$/.test(v ?? '') && +v >= 1 && +v <= 16) { if (k === 'min') minDigits = +v; else maxDigits = +v; }
          else return err(`'${o}' is not valid here; ${usage}`);
        }
        if (minDigits > maxDigits) return err(`min=${minDigits} is more than max=${maxDigits}`);
        const parts = parseHexParts(l, from, hexEnd, diagnostics);
        if (!parts) return null;
        if (!parts.length || parts.some((x) => x.kind === 'pin')) return err(`${usage} (the keypad supplies the PIN: no \${pin:…} here)`);
        let expect: Expectation | undefined;
        if (arrowAt >= 0) {
          const e = parseExpectation(l, arrowAt + 2, l.text.length, diagnostics);
          if (!e) return null;
          expect = e;
        }
        return { ...base, kind: 'pinpad', parts, format, minDigits, maxDigits, ...(expect ? { expect } : {}) };
      }
      case 'let': {
        const c = /^\s*([A-Za-z_]\w*)\s*=\s*/.exec(rest);
        if (!c) return err('usage: let NAME = <hex>');
        if (['data', 'sw', 'sw1', 'sw2', 'pin'].includes(c[1].toLowerCase())) return err(`'${c[1]}' is a built-in name; choose another`);
        const parts = parseHexParts(l, restAt + c[0].length, l.text.length, diagnostics);
        if (!parts) return null;
        return { ...base, kind: 'let', name: c[1], parts };
      }
    }
  }

  return null;
}

/** A command APDU, optionally with an expectation. */
function parseCommand(l: Logical, lead: number, m: RegExpExecArray | null, word: string, diagnostics: ScriptDiagnostic[]): Statement | null {
  const end = l.text.trimEnd().length;
  const err = (message: string, code = 'syntax', from = lead, to = end) => {
    diagnostics.push(diag(spanOf(l, from, to), 'error', message, code));
    return null;
  };
  const arrow = l.text.indexOf('=>');
  const cmdEnd = arrow < 0 ? l.text.length : arrow;
  if (word && !/^[0-9a-f]+$/i.test(word)) {
    const suggestion = word.length <= 16 ? KEYWORDS.find((k) => Math.abs(k.length - word.length) <= 2 && levenshtein(k, word) <= 2) : undefined;
    const shown = m![0].length > 40 ? `${m![0].slice(0, 37)}…` : m![0];
    return err(`unknown command '${shown}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`, 'unknown-command', lead, lead + m![0].length);
  }
  const parts = parseHexParts(l, lead, cmdEnd, diagnostics, true);
  if (!parts) return null;
  if (!parts.length) return err("an expectation '=>' needs a command before it");
  let expect: Expectation | undefined;
  if (arrow >= 0) {
    const e = parseExpectation(l, arrow + 2, l.text.length, diagnostics);
    if (!e) return null;
    expect = e;
  }
  const literal = parts.every((p) => p.kind === 'hex');
  if (literal) {
    const bytes = joinBytes(parts as Array<Extract<HexPart, { kind: 'hex' }>>);
    const problem = parseCommandApdu(bytes).errors[0];
    if (problem) {
      const d = diag(spanOf(l, lead, cmdEnd), 'error', problem, 'apdu-shape');
      const fixes = lcFixes(l, lead, cmdEnd, bytes);
      if (fixes.length) d.fixes = fixes;
      diagnostics.push(d);
      return null;
    }
  }
  return { line: l.line + 1, span: spanOf(l, lead, end), kind: 'apdu', parts, ...(expect ? { expect } : {}), text: l.text.slice(lead, cmdEnd).trim() };
}

function joinBytes(parts: Array<{ bytes: Uint8Array }>): Uint8Array {
  if (parts.length === 1) return parts[0].bytes;
  let n = 0;
  for (const p of parts) n += p.bytes.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p.bytes, o); o += p.bytes.length; }
  return out;
}

/**
 * Quick fixes for a short APDU whose Lc does not match the bytes after it. Two readings:
 * all the bytes after Lc are data (case 3), or the last one is Le (case 4). The likelier comes
 * first and is preferred: Le when the last byte is 00 ("all available", as a SELECT by AID
 * ends) — setting Lc to count that 00 as data would send it to the card as part of the AID.
 */
function lcFixes(l: Logical, from: number, to: number, bytes: Uint8Array): QuickFix[] {
  if (bytes.length <= 5 || bytes[4] === 0) return [];
  const after = bytes.length - 5;
  // The command is hex only: find the text offset of its fifth byte (digits come in pairs inside a run).
  let seen = 0;
  let at = -1;
  for (let i = from; i < to; i++) {
    if (!isHexDigit(l.text.charCodeAt(i))) continue;
    if (seen === 8) { at = i; break; }
    seen++;
  }
  if (at < 0) return [];
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
  const edits = (n: number) => [{ span: spanOf(l, at, at + 2), newText: hex(n) }];
  const bytesWord = (n: number) => `${n} data byte${n === 1 ? '' : 's'}`;
  const out: QuickFix[] = [];
  const last = bytes[bytes.length - 1];
  const withLe = after - 1 >= 1 && after - 1 <= 255 && after - 1 !== bytes[4]
    ? { title: `Set Lc to ${hex(after - 1)}, keep the last byte ${hex(last)} as Le (${bytesWord(after - 1)})`, edits: edits(after - 1) } : undefined;
  const noLe = after <= 255 && after !== bytes[4]
    ? { title: `Set Lc to ${hex(after)} (${bytesWord(after)}, no Le)`, edits: edits(after) } : undefined;
  if (last === 0) out.push(...[withLe, noLe].filter((f): f is QuickFix => !!f));
  else out.push(...[noLe, withLe].filter((f): f is QuickFix => !!f));
  if (out.length) out[0] = { ...out[0], preferred: true };
  return out;
}

/** The longest time a Node.js timer can wait (2^31−1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;
/** The largest `repeat` count. */
export const MAX_REPEAT = 10_000_000;

/**
 * A decimal or 0x number; Infinity when it has digits but is past 2^53 (so a
 * bound check refuses it; 400 nines must not become a loop count of Infinity).
 */
function parseNumber(s: string | undefined): number | null {
  if (s === undefined) return null;
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(s)) n = s.length > 15 ? Infinity : parseInt(s.slice(2), 16);
  else if (/^\d+$/.test(s)) n = s.length > 16 ? Infinity : parseInt(s, 10);
  else return null;
  return Number.isSafeInteger(n) ? n : Infinity;
}

/** "'99999…' is out of range: 1 to 10000000" without echoing a 400-digit argument. */
function tooBig(arg: string, n: number, min: number, max: number): string {
  const shown = arg.length > 24 ? `${arg.slice(0, 20)}…` : arg;
  return `'${shown}' is ${n < min ? 'too small' : 'too large'}: ${min} to ${max}${max === MAX_TIMER_MS ? ' ms (2^31−1, the longest timer)' : ''}`;
}

// ------------------------------------------------------------ hex, variables, PINs

const isHexDigit = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
const hexValue = (c: number) => (c <= 57 ? c - 48 : (c | 0x20) - 87);
/** Space, tab, or ':' (as in `3F:00`) between hex bytes. */
const isByteSeparator = (c: number) => c === 32 || c === 9 || c === 58;
/** A letter past F, or '_': makes a hex-looking run a word (`1X`, `0g`). */
const isWordTail = (c: number) => (c >= 71 && c <= 90) || (c >= 103 && c <= 122) || c === 95;

/**
 * A word of a line, quoted for a message; unless it sits in the data of a command APDU that is a
 * VERIFY & co., where it is part of a PIN written in the file (R88; a pinpad template's data is not a
 * PIN), or of an ENVELOPE (R92). `parts` are the line's parts so far, `current` the hex part being collected.
 */
function quoteWord(command: boolean, parts: HexPart[], current: Uint8Array | undefined, text: string): string {
  const lead = !command ? undefined : parts.length ? parts[0] : current && { kind: 'hex' as const, bytes: current };
  // R92: an ENVELOPE's data may be a VERIFY & co. or the rest of one split over several (which its line alone cannot
  // tell): never quoted either.
  const ins = lead?.kind === 'hex' && lead.bytes.length >= 2 ? lead.bytes[1] : undefined;
  if (ins === undefined || !(isSecretIns(ins) || isEnvelopeIns(ins))) return `'${clip(text)}'`;
  let count = current?.length ?? 0;
  for (const p of parts) count += p.kind === 'hex' ? p.bytes.length : 5; // past a variable or PIN: in the data
  return count >= 5 ? "a word of this command's data (not quoted: the data is a PIN)" : `'${clip(text)}'`;
}

/**
 * Hex bytes, ${NAME}, $data and PIN placeholders. Hex runs separated only by
 * spaces or ':' become one part (one byte array and one range for
 * `00 A4 04 00 07 …`, not one per byte: that was most of a parsed script's memory).
 */
function parseHexParts(l: Logical, from: number, to: number, diagnostics: ScriptDiagnostic[], command = false): HexPart[] | null {
  const parts: HexPart[] = [];
  const t = l.text;
  let i = from;
  let ok = true;
  let buf: Uint8Array | null = null; // bytes of the hex part being collected
  let n = 0;
  let partFrom = -1;
  let partTo = -1;
  const endPart = () => {
    if (partFrom < 0) return;
    parts.push({ kind: 'hex', bytes: buf!.slice(0, n), span: spanOf(l, partFrom, partTo) });
    partFrom = -1;
    n = 0;
  };
  while (i < to) {
    const c = t.charCodeAt(i);
    if (isByteSeparator(c)) { i++; continue; }
    if (isHexDigit(c)) {
      let j = i + 1;
      while (j < to && isHexDigit(t.charCodeAt(j))) j++;
      if (j < to && isWordTail(t.charCodeAt(j))) {
        let k = j;
        while (k < to && /\w/.test(t[k])) k++;
        diagnostics.push(diag(spanOf(l, i, k), 'error', `${quoteWord(command, parts, partFrom >= 0 ? buf!.subarray(0, n) : undefined, t.slice(i, k))} is not hex`, 'bad-hex'));
        ok = false; i = k; continue;
      }
      if ((j - i) % 2) {
        diagnostics.push(diag(spanOf(l, i, j), 'error', `odd number of hex digits in ${quoteWord(command, parts, partFrom >= 0 ? buf!.subarray(0, n) : undefined, t.slice(i, j))}`, 'odd-hex'));
        ok = false;
      } else if (ok) {
        if (partFrom < 0) { partFrom = i; buf ??= new Uint8Array((to - i + 1) >> 1); }
        for (let k = i; k < j; k += 2) buf![n++] = (hexValue(t.charCodeAt(k)) << 4) | hexValue(t.charCodeAt(k + 1));
        partTo = j;
      }
      i = j;
      continue;
    }
    endPart();
    if (c === 36 /* $ */) {
      const r = parseVariable(l, i, to, diagnostics);
      if (!r) { ok = false; i = skipToken(t, i, to); continue; }
      parts.push(r.part);
      i = r.end;
      continue;
    }
    let k = i + 1;
    while (k < to && !/\s/.test(t[k])) k++;
    diagnostics.push(diag(spanOf(l, i, k), 'error', `unexpected ${quoteWord(command, parts, partFrom >= 0 ? buf!.subarray(0, n) : undefined, t.slice(i, k))}: expected hex bytes, \${NAME}, $data or $sw`, 'bad-hex'));
    ok = false;
    i = k;
  }
  endPart();
  return ok ? parts : null;
}

/** A token as quoted in a message: long ones cut, so a 200,000-character line is not copied into a diagnostic. */
function clip(token: string): string {
  return token.length > 40 ? `${token.slice(0, 37)}…` : token;
}

function skipToken(t: string, i: number, to: number): number {
  let k = i + 1;
  while (k < to && !/\s/.test(t[k])) k++;
  return k;
}

function parseVariable(l: Logical, i: number, to: number, diagnostics: ScriptDiagnostic[]): { part: HexPart; end: number } | null {
  const t = l.text;
  if (t[i + 1] === '{') {
    const close = t.indexOf('}', i + 2);
    if (close < 0 || close >= to) {
      diagnostics.push(diag(spanOf(l, i, to), 'error', "'${' without a closing '}'", 'bad-variable'));
      return null;
    }
    const inner = t.slice(i + 2, close);
    const span = spanOf(l, i, close + 1);
    const pin = /^pin\s*:\s*"([^"]*)"\s*(?:,(.*))?$/i.exec(inner);
    if (pin) {
      const part = parsePinOptions(pin[1], pin[2] ?? '', span, diagnostics);
      return part ? { part, end: close + 1 } : null;
    }
    const v = /^([A-Za-z_]\w*)\s*(\[[^\]]*\])?$/.exec(inner.trim());
    if (!v) {
      diagnostics.push(diag(span, 'error', `'\${${inner}}' is not a variable: use \${NAME}, \${NAME[0:4]} or \${pin:"label"}`, 'bad-variable'));
      return null;
    }
    const slice = v[2] ? parseSlice(v[2]) : undefined;
    if (slice === null) {
      diagnostics.push(diag(span, 'error', `bad slice '${v[2]}': use [start:end] or [index]`, 'bad-slice'));
      return null;
    }
    return { part: { kind: 'var', name: v[1], ...(slice ? { slice } : {}), span }, end: close + 1 };
  }
  const m = /^\$(data|sw1|sw2|sw|[A-Za-z_]\w*)(\[[^\]]*\])?/.exec(t.slice(i, to));
  if (!m) {
    diagnostics.push(diag(spanOf(l, i, i + 1), 'error', "'$' must start $data, $sw or ${NAME}", 'bad-variable'));
    return null;
  }
  const span = spanOf(l, i, i + m[0].length);
  const slice = m[2] ? parseSlice(m[2]) : undefined;
  if (slice === null) {
    diagnostics.push(diag(span, 'error', `bad slice '${m[2]}': use [start:end] or [index]`, 'bad-slice'));
    return null;
  }
  return { part: { kind: 'var', name: m[1], ...(slice ? { slice } : {}), span }, end: i + m[0].length };
}

function parseSlice(s: string): Slice | null {
  const inner = s.slice(1, -1).trim();
  const num = (x: string) => (x.trim() === '' ? undefined : /^-?\d+$/.test(x.trim()) ? parseInt(x, 10) : NaN);
  if (!inner.includes(':')) {
    const n = num(inner);
    return n === undefined || Number.isNaN(n) ? null : { index: n };
  }
  const [a, b, extra] = inner.split(':');
  if (extra !== undefined) return null;
  const start = num(a);
  const end = num(b);
  if (Number.isNaN(start) || Number.isNaN(end)) return null;
  return { ...(start !== undefined ? { start } : {}), ...(end !== undefined ? { end } : {}) };
}

function parsePinOptions(label: string, opts: string, span: Span, diagnostics: ScriptDiagnostic[]): HexPart | null {
  let encoding: PinEncoding = 'ascii';
  let padTo: number | undefined;
  let fill = 0xff;
  for (const raw of opts.split(',').map((o) => o.trim()).filter(Boolean)) {
    const [k, v] = raw.split('=').map((x) => x.trim().toLowerCase());
    if ((k === 'ascii' || k === 'bcd' || k === 'format2') && v === undefined) encoding = k;
    else if (k === 'pad' && v && /^\d+$/.test(v) && +v > 0 && +v <= 64) padTo = +v;
    else if (k === 'fill' && v && /^[0-9a-f]{2}$/.test(v)) fill = parseInt(v, 16);
    else {
      diagnostics.push(diag(span, 'error', `unknown PIN option '${raw}': use ascii, bcd, format2, pad=<n>, fill=<hex byte>`, 'bad-pin'));
      return null;
    }
  }
  if (!label.trim()) {
    diagnostics.push(diag(span, 'error', 'a PIN placeholder needs a label: ${pin:"User PIN"}', 'bad-pin'));
    return null;
  }
  return { kind: 'pin', label, encoding, ...(padTo ? { padTo } : {}), fill, span };
}

// ------------------------------------------------------------ expectations

function parseExpectation(l: Logical, from: number, to: number, diagnostics: ScriptDiagnostic[]): Expectation | null {
  const text = l.text.slice(from, to);
  const alternatives: PatternItem[][] = [];
  let start = from;
  let ok = true;
  for (const alt of text.split('|')) {
    const end = start + alt.length;
    const items: PatternItem[] = [];
    const re = /\S+/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(alt))) {
      const tok = m[0];
      const at = start + m.index;
      if (tok === '*') { items.push({ kind: 'any' }); continue; }
      if (tok.length % 2 || !/^[0-9a-fA-F?xX]+$/.test(tok)) {
        diagnostics.push(diag(spanOf(l, at, at + tok.length), 'error',
          `'${tok}' is not a byte pattern: use hex bytes, ?? for any byte, X or ? for any nibble, * for any bytes`, 'bad-expectation'));
        ok = false;
        continue;
      }
      for (let k = 0; k < tok.length; k += 2) items.push(bytePattern(tok.substr(k, 2)));
    }
    const fixed = items.filter((x) => x.kind === 'byte').length;
    if (ok && (fixed < 2 || items[items.length - 1].kind !== 'byte' || items[items.length - 2].kind !== 'byte')) {
      diagnostics.push(diag(spanOf(l, start, end), 'error', 'an expectation ends with the status word, e.g. => 90 00 or => 6F * 90 00', 'bad-expectation'));
      ok = false;
    }
    alternatives.push(items);
    start = end + 1;
  }
  if (!ok) return null;
  return { alternatives, text: text.trim(), span: spanOf(l, from - 2, to) };
}

/** Byte patterns shared by every expectation: `90`, `6X`, `??` are the same object each time. */
const PATTERNS = new Map<string, PatternItem>();

function bytePattern(two: string): PatternItem {
  const key = two.toUpperCase();
  let p = PATTERNS.get(key);
  if (p) return p;
  let value = 0;
  let mask = 0;
  for (let k = 0; k < 2; k++) {
    const c = key.charCodeAt(k);
    value <<= 4; mask <<= 4;
    if (isHexDigit(c)) { value |= hexValue(c); mask |= 0xf; }
  }
  p = Object.freeze({ kind: 'byte', value, mask }) as PatternItem;
  if (PATTERNS.size < 4096) PATTERNS.set(key, p);
  return p;
}

/**
 * Does a response (data + SW) match one of the expectation's alternatives?
 * An alternative that is just a status word (`=> 90 00`) checks only the SW,
 * whatever data came before it; one with a data pattern checks the whole response.
 */
export function matchExpectation(e: Expectation, response: Uint8Array): boolean {
  return e.alternatives.some((alt) => (isStatusWordOnly(alt) ? matchStatusWord(alt, response) : matchPattern(alt, response)));
}

const isStatusWordOnly = (p: PatternItem[]) => p.length === 2 && p[0].kind === 'byte' && p[1].kind === 'byte';

function matchStatusWord(p: PatternItem[], r: Uint8Array): boolean {
  return r.length >= 2 && byteMatches(p[0], r[r.length - 2]) && byteMatches(p[1], r[r.length - 1]);
}

const byteMatches = (item: PatternItem, b: number) => item.kind === 'byte' && (b & item.mask) === item.value;

/**
 * Glob match where `*` is any run of bytes: on a mismatch, go back to the last
 * `*` and let it take one more byte. O(pattern × response), never exponential.
 */
function matchPattern(p: PatternItem[], r: Uint8Array): boolean {
  let pi = 0;
  let ri = 0;
  let star = -1;
  let starRi = 0;
  while (ri < r.length) {
    if (pi < p.length && p[pi].kind === 'any') { star = pi++; starRi = ri; continue; }
    if (pi < p.length && byteMatches(p[pi], r[ri])) { pi++; ri++; continue; }
    if (star < 0) return false;
    pi = star + 1;
    ri = ++starRi;
  }
  while (pi < p.length && p[pi].kind === 'any') pi++;
  return pi === p.length;
}

// ------------------------------------------------------------ helpers

/** Source position of text offset i (i = text.length is the end of the last piece). */
function posAt(l: Logical, i: number): Pos {
  const st = l.starts;
  let lo = 0;
  let hi = st.length - 1;
  while (lo < hi) { // the last piece starting at or before i
    const mid = (lo + hi + 1) >> 1;
    if (st[mid] <= i) lo = mid; else hi = mid - 1;
  }
  return { line: l.line + lo, character: i - st[lo] };
}

function spanOf(l: Logical, from: number, to: number): Span {
  const f = Math.max(0, Math.min(from, l.text.length));
  const t = Math.max(f, Math.min(to, l.text.length));
  let end: Pos;
  if (t > f) { end = posAt(l, t - 1); end.character++; } else end = posAt(l, t);
  return { start: posAt(l, f), end };
}

function diag(span: Span, severity: ScriptDiagnostic['severity'], message: string, code: string): ScriptDiagnostic {
  return { span, severity, message, code };
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}
