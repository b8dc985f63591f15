// What the Testing view lists of an APDU script (testing.ts): its commands with
// expectations. Pure, so unit tests read it without VS Code.
import { parseScript } from '../../server/src/script/parser';
import type { Statement } from '../../server/src/script/ast';

/** A command with an expectation: its 1-based line and the expectation as written. */
export interface ExpectedLine { line: number; command: string; expected: string }

/** The commands with expectations, in order, repeat bodies included (each line once). */
export function expectedLines(text: string): ExpectedLine[] {
  const out: ExpectedLine[] = [];
  const seen = new Set<number>();
  const stack: Statement[][] = [parseScript(text).statements];
  const lines = text.split(/\r?\n/);
  // Iterative walk: nesting has no depth limit.
  const all: Statement[] = [];
  while (stack.length) {
    const body = stack.pop()!;
    for (const s of body) {
      if (s.kind === 'repeat') stack.push(s.body);
      else all.push(s);
    }
  }
  for (const s of all) {
    if ((s.kind === 'apdu' || s.kind === 'pinpad') && s.expect && !seen.has(s.line)) {
      seen.add(s.line);
      const src = (lines[s.line - 1] ?? '').trim();
      const arrow = src.indexOf('=>');
      out.push({ line: s.line, command: (arrow >= 0 ? src.slice(0, arrow) : src).trim(), expected: s.expect.text.trim() });
    }
  }
  return out.sort((a, b) => a.line - b.line);
}

