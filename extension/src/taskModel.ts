// What an `apdu` task writes (tasks.ts): the lines its pseudoterminal prints and the one
// the `$apdu` problem matcher (package.json) turns into a Problems entry. Pure, so unit
// tests check the matcher's pattern against these lines and against the `scard` CLI's.
import type { RunScriptResult } from '../../server/src/protocol';

/** `{"type": "apdu", "script": "…", "reader": "…"}` in tasks.json (package.json taskDefinitions). */
export interface ApduTaskDefinition {
  type: 'apdu';
  /** The script: relative to the task's workspace folder, or absolute. */
  script: string;
  /** An exact reader name or a glob matching exactly one reader; default the editor's reader. */
  reader?: string;
}

/** A task definition as tasks.json gives it, checked: the reason when it is not usable. */
export function checkDefinition(d: { [k: string]: unknown }): { ok: ApduTaskDefinition } | { error: string } {
  if (typeof d.script !== 'string' || !d.script.trim()) return { error: 'The task names no script: set "script" to an .apdu file, e.g. "examples/hello.apdu".' };
  if (d.reader !== undefined && (typeof d.reader !== 'string' || !d.reader.trim())) return { error: '"reader" must be a reader\'s name or a glob matching one reader, e.g. "Workbench Simulator*".' };
  return { ok: { type: 'apdu', script: d.script.trim(), ...(typeof d.reader === 'string' ? { reader: d.reader.trim() } : {}) } };
}

/** Absolute paths: POSIX `/…`, Windows `C:\…` / `C:/…` and UNC `\\…`. */
export function isAbsoluteScript(script: string): boolean {
  return script.startsWith('/') || /^[A-Za-z]:[\\/]/.test(script) || script.startsWith('\\\\');
}

/** The script's path as the problem matcher reads it: relative to the folder (`/` separators) when inside it. */
export function displayPath(scriptPath: string, folderPath: string | undefined): string {
  if (!folderPath) return scriptPath;
  const f = folderPath.endsWith('/') ? folderPath : folderPath + '/';
  return scriptPath.startsWith(f) ? scriptPath.slice(f.length) : scriptPath;
}

/** The message without the engine's `line N: ` prefix (the location says the line). */
function withoutLinePrefix(message: string, line: number | undefined): string {
  return line !== undefined && message.startsWith(`line ${line}: `) ? message.slice(`line ${line}: `.length) : message;
}

/**
 * The lines after the trace: for a failure at a line, `FILE:LINE: message` (the form of
 * `scard run`, which `$apdu` matches); for a failure without a line (no card, no reader)
 * `FILE: message`, which it does not (that is the card's state, not the script's);
 * then a summary.
 */
export function resultLines(file: string, result: RunScriptResult): string[] {
  const summary = `${result.commands} command(s) in ${Math.round(result.durationMs)} ms${result.reader ? ` on ${result.reader}` : ''}`;
  if (result.ok) return [`${file}: passed, ${summary}`];
  const f = result.failure;
  const message = withoutLinePrefix(f?.message ?? 'failed', f?.line);
  return [f?.line !== undefined ? `${file}:${f.line}: ${message}` : `${file}: ${message}`, `${file}: failed, ${summary}`];
}

/** The pseudoterminal's exit code: 0 passed, 1 failed, 130 cancelled (as `scard run` after Ctrl-C). */
export function exitCode(result: RunScriptResult | undefined, cancelled: boolean): number {
  if (cancelled && (!result || result.failure?.code === 'CANCELLED')) return 130;
  return result?.ok ? 0 : 1;
}
