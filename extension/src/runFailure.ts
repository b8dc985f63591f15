// How a failed run is shown: which failures are the script's own (a diagnostic on
// its line) and which are the card's or reader's state (a notification with a way
// out: Insert Card, Select Reader), and the message without the line said twice.
// Pure (no vscode import), so it is tested without an editor.
import type { RunScriptResult } from '../../server/src/protocol';

/**
 * Failures about the card or reader, not the script: no squiggle (it would stay
 * after the card is inserted), a notification with an action instead.
 */
const STATE_CODES = new Set(['NO_READER', 'NO_CARD', 'CARD_REMOVED', 'CARD_RESET', 'READER_UNAVAILABLE', 'SHARING_VIOLATION', 'TIMEOUT', 'CANCELLED', 'DRIVER', 'INTERNAL']);

/**
 * A run failure that is a diagnostic: the script's own errors only. A syntax error is
 * already the parser's diagnostic; card and reader state are not the script's fault.
 */
export function failureIsDiagnostic(code: string | undefined): boolean {
  if (!code) return false;
  return code !== 'SCRIPT_SYNTAX' && !STATE_CODES.has(code);
}

/** The failure's message without its own "line N: " (the notification names the line once). */
export function failureMessage(f: { message: string; line?: number }): string {
  return f.line ? f.message.replace(new RegExp(`^line ${f.line}: `), '') : f.message;
}

/** The notification of a failed run: "Script failed at line 4: No card in 'X'". */
export function failureText(result: Pick<RunScriptResult, 'failure'>): string {
  const f = result.failure;
  return `Script failed${f?.line ? ` at line ${f.line}` : ''}: ${f ? failureMessage(f) : 'no reason given'}`;
}

export type FailureAction = 'Insert Card' | 'Select Reader';

/** The way out a failed run's notification offers: Insert Card into a simulator reader, or Select Reader. */
export function failureActions(code: string | undefined, readerDriver: string | undefined): FailureAction[] {
  if (code === 'NO_CARD' || code === 'CARD_REMOVED') return readerDriver === 'simulator' ? ['Insert Card', 'Select Reader'] : ['Select Reader'];
  if (code === 'NO_READER' || code === 'READER_UNAVAILABLE' || code === 'SHARING_VIOLATION') return ['Select Reader'];
  return [];
}
