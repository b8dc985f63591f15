// A folder of APDU scripts as a test suite (`scard test`): finding the scripts
// (files, folders, globs) and the JUnit XML report that CI systems read.

import fs from 'node:fs';
import path from 'node:path';
import type { RunScriptResult } from '../protocol';

/** A pattern with `*`, `?` or `[` is a glob; anything else a file or a folder. */
export function isGlob(p: string): boolean {
  return /[*?[]/.test(p);
}

/** A glob (`*` within a name, `**` any number of folders, `?` one character) as a RegExp over `/`-separated paths. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  const g = glob.replace(/\\/g, '/');
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === '*' && g[i + 1] === '*') {
      // `**/` matches zero or more folders; a trailing `**` anything below.
      if (g[i + 2] === '/') { re += '(?:[^/]*/)*'; i += 2; } else { re += '.*'; i += 1; }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = g.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else { re += '[' + g.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']'; i = end; }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

/** Folders never searched: dependencies and hidden folders (.git, .vscode-test). */
function skipped(name: string): boolean {
  return name === 'node_modules' || name.startsWith('.');
}

function walk(dir: string, out: string[]): void {
  let entries: fs.Dirent[];
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (!skipped(e.name)) walk(p, out); } else if (e.isFile()) out.push(p);
  }
}

export class NotFoundError extends Error {}

/**
 * The scripts named by `patterns` (default `**\/*.apdu`), relative to `cwd`, sorted, each once:
 * a file as given, a folder's `*.apdu` recursively, a glob's matches. A path that does not
 * exist or a glob that matches nothing is a NotFoundError.
 */
export function findScripts(patterns: string[], cwd = process.cwd()): string[] {
  const found = new Set<string>();
  for (const pattern of patterns.length ? patterns : ['**/*.apdu']) {
    if (!isGlob(pattern)) {
      const abs = path.resolve(cwd, pattern);
      let st: fs.Stats;
      try { st = fs.statSync(abs); } catch { throw new NotFoundError(`no such file or folder: ${pattern}`); }
      if (st.isDirectory()) {
        const all: string[] = [];
        walk(abs, all);
        for (const f of all) if (f.endsWith('.apdu')) found.add(f);
      } else found.add(abs);
      continue;
    }
    // Walk from the part before the first glob character; match the rest.
    const parts = pattern.replace(/\\/g, '/').split('/');
    const first = parts.findIndex(isGlob);
    const base = path.resolve(cwd, parts.slice(0, first).join('/') || '.');
    const re = globToRegExp(parts.slice(first).join('/'));
    const all: string[] = [];
    walk(base, all);
    let n = 0;
    for (const f of all) {
      if (re.test(path.relative(base, f).split(path.sep).join('/'))) { found.add(f); n++; }
    }
    if (!n && patterns.length) throw new NotFoundError(`no script matches ${pattern}`);
  }
  return [...found].sort();
}

export interface TestCaseResult {
  /** The script as shown: relative to the working folder when below it. */
  file: string;
  /** The folder (relative, `/`-separated; `.` for the working folder): JUnit's classname. */
  classname: string;
  /** The file name: JUnit's testcase name. */
  name: string;
  result: RunScriptResult;
  /** The run's trace (`>`/`<` lines; PINs are masked by the engine). */
  trace: string[];
}

export function testCaseNames(abs: string, cwd = process.cwd()): Pick<TestCaseResult, 'file' | 'classname' | 'name'> {
  const rel = path.relative(cwd, abs).split(path.sep).join('/');
  const file = rel || path.basename(abs);
  const dir = path.posix.dirname(file);
  return { file, classname: dir, name: path.posix.basename(file) };
}

/** The failed line's status word as JUnit's failure type (`SW 69 82`), or the error's code. */
export function failureType(r: RunScriptResult): string {
  const line = r.failure?.line;
  const sw = line !== undefined ? r.lines.find((l) => l.line === line)?.sw : undefined;
  if (sw && r.failure?.code === 'EXPECTATION_FAILED') return `SW ${sw.slice(0, 2)} ${sw.slice(2, 4)}`;
  return r.failure?.code ?? 'FAILED';
}

/** The failure message, naming the line (`line 12: expected * 90 00, got 69 82 (…)`). */
export function failureMessage(r: RunScriptResult): string {
  const f = r.failure;
  if (!f) return 'failed';
  return f.line && !f.message.startsWith(`line ${f.line}: `) ? `line ${f.line}: ${f.message}` : f.message;
}

/** XML 1.0 text: escaped, and characters XML cannot carry (control characters, lone surrogates) replaced. */
export function xmlEscape(s: string): string {
  return s
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** JUnit XML: one <testsuite> for the run, one <testcase> per script, a <failure> for a failed one. */
export function junitXml(cases: TestCaseResult[], opts: { name?: string; timestamp: Date; durationMs: number; hostname?: string }): string {
  const failures = cases.filter((c) => !c.result.ok).length;
  const name = xmlEscape(opts.name ?? 'scard test');
  const time = seconds(opts.durationMs);
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${name}" tests="${cases.length}" failures="${failures}" errors="0" time="${time}">`,
    `  <testsuite name="${name}" tests="${cases.length}" failures="${failures}" errors="0" skipped="0" time="${time}" timestamp="${opts.timestamp.toISOString().replace(/\.\d+Z$/, '')}"${opts.hostname ? ` hostname="${xmlEscape(opts.hostname)}"` : ''}>`,
  ];
  for (const c of cases) {
    const r = c.result;
    const attrs = `classname="${xmlEscape(c.classname)}" name="${xmlEscape(c.name)}" file="${xmlEscape(c.file)}" time="${seconds(r.durationMs)}"`;
    out.push(`    <testcase ${attrs}>`);
    if (!r.ok) {
      const msg = failureMessage(r);
      out.push(`      <failure message="${xmlEscape(msg)}" type="${xmlEscape(failureType(r))}">${xmlEscape(`${c.file}${r.failure?.line ? `:${r.failure.line}` : ''}: ${r.failure?.line ? msg.replace(`line ${r.failure.line}: `, '') : msg}`)}</failure>`);
    }
    if (c.trace.length) out.push(`      <system-out>${xmlEscape(c.trace.join('\n'))}</system-out>`);
    out.push('    </testcase>');
  }
  out.push('  </testsuite>', '</testsuites>', '');
  return out.join('\n');
}
