// The APDU script language (design: "APDU scripts"): scriptor-compatible hex
// lines plus expectations, control statements, variables and PIN placeholders.

/** 0-based line and character, as LSP counts them. */
export interface Pos { line: number; character: number }
export interface Span { start: Pos; end: Pos }

export type PinEncoding = 'ascii' | 'bcd' | 'format2';

export type HexPart =
  | { kind: 'hex'; bytes: Uint8Array; span: Span }
  | { kind: 'var'; name: string; slice?: Slice; span: Span }
  | { kind: 'pin'; label: string; encoding: PinEncoding; padTo?: number; fill: number; span: Span };

/** Byte slice `[start:end]` or `[index]`, Python-style, negative from the end. */
export interface Slice { start?: number; end?: number; index?: number }

/** One byte pattern: (byte & mask) === value; or a run of any bytes. */
export type PatternItem = { kind: 'byte'; value: number; mask: number } | { kind: 'any' };
export interface Expectation { alternatives: PatternItem[][]; text: string; span: Span }

interface Base { line: number; span: Span }

export type Statement =
  | (Base & { kind: 'apdu'; parts: HexPart[]; expect?: Expectation; text: string })
  | (Base & { kind: 'reset'; mode: 'cold' | 'warm' })
  | (Base & { kind: 'connect'; reader?: string; protocol?: 0 | 1; share?: 'shared' | 'exclusive' })
  | (Base & { kind: 'disconnect'; disposition: 'leave' | 'reset' | 'unpower' | 'eject' })
  | (Base & { kind: 'control'; code: number; parts: HexPart[] })
  | (Base & { kind: 'transaction'; action: 'begin' | 'end' })
  | (Base & { kind: 'wait'; what: 'card' | 'removal'; ms?: number })
  | (Base & { kind: 'delay'; ms: number })
  | (Base & { kind: 'echo'; text: string })
  | (Base & { kind: 'repeat'; count: number; body: Statement[] })
  | (Base & { kind: 'set'; option: 'getresponse'; value: boolean })
  /** `set timeout MS`: the exchange time-out for this run's card and control calls; without timeoutMs, the setting's value. */
  | (Base & { kind: 'set'; option: 'timeout'; timeoutMs?: number })
  | (Base & { kind: 'let'; name: string; parts: HexPart[] })
  | (Base & { kind: 'exit' })
  | (Base & { kind: 'pinpad'; parts: HexPart[]; format: 'ascii' | 'bcd' | 'binary'; minDigits: number; maxDigits: number; expect?: Expectation });

export type Severity = 'error' | 'warning' | 'info';

export interface TextEdit { span: Span; newText: string }

export interface ScriptDiagnostic {
  span: Span;
  severity: Severity;
  message: string;
  code: string;
  /** Quick fixes, the most likely reading first. */
  fixes?: QuickFix[];
}

export interface QuickFix {
  title: string;
  edits: TextEdit[];
  /** The fix an editor applies on "Auto Fix" (at most one per diagnostic). */
  preferred?: boolean;
}

export interface Script {
  statements: Statement[];
  diagnostics: ScriptDiagnostic[];
}

export const KEYWORDS = [
  'reset', 'connect', 'disconnect', 'control', 'transaction', 'wait', 'delay', 'echo', 'repeat', 'end', 'set', 'let', 'exit', 'verify',
] as const;

/** Counts the card commands a statement list will send (repeat bodies multiplied). Iterative: nesting has no depth limit. */
export function countCommands(statements: Statement[]): number {
  // Each frame: a body, the index reached, the commands counted so far, and the count that multiplies it.
  const frames: Array<{ body: Statement[]; i: number; n: number; times: number }> = [{ body: statements, i: 0, n: 0, times: 1 }];
  for (;;) {
    const f = frames[frames.length - 1];
    if (f.i < f.body.length) {
      const s = f.body[f.i++];
      if (s.kind === 'apdu' || s.kind === 'pinpad') f.n++;
      else if (s.kind === 'repeat') frames.push({ body: s.body, i: 0, n: 0, times: s.count });
      continue;
    }
    frames.pop();
    if (!frames.length) return f.n;
    frames[frames.length - 1].n += f.n * f.times;
  }
}
