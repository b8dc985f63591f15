// Card identification from pcsc-tools' smartcard_list.txt: each entry is an ATR
// pattern (a Perl regular expression over the upper-case, space-separated ATR,
// e.g. `3B 8F 80 01 80 4F 0C A0 00 00 03 06 .. 00 01 00 00 00 00 ..`) followed by
// TAB-indented description lines; `#` starts a comment line.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fromHex, toSpacedHex } from '../util/hex';

export interface SmartcardListEntry {
  pattern: string;
  descriptions: string[];
  source: string;
  line: number;
}

interface Compiled extends SmartcardListEntry {
  regex: RegExp;
}

/** Length of the bucket key: "3B 8F" (TS and T0). */
const KEY_LENGTH = 5;

/**
 * The literal text a pattern must start with, upper-cased; '' when a wildcard,
 * class or alternative comes too early to tell.
 */
function literalPrefix(pattern: string): string {
  if (pattern.includes('|')) return '';
  let end = 0;
  while (end < pattern.length && /[0-9A-Fa-f ]/.test(pattern[end])) end++;
  // A quantifier makes the character before it optional.
  if (end < pattern.length && /[*?{+]/.test(pattern[end])) end--;
  return pattern.slice(0, Math.max(0, end)).toUpperCase();
}

export class SmartcardList {
  private readonly buckets = new Map<string, Compiled[]>();
  private readonly unbucketed: Compiled[] = [];
  private readonly patterns = new Set<string>();
  /** Files read, in priority order. */
  readonly sources: string[] = [];
  /** Lines that could not be used (bad patterns, unreadable files other than missing ones). */
  readonly warnings: string[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds the entries of one file's text; a pattern already known from an earlier source is skipped. */
  addText(text: string, source: string): void {
    const lines = text.split(/\r?\n/);
    let current: SmartcardListEntry | undefined;
    const flush = () => {
      if (current) this.add(current);
      current = undefined;
    };
    lines.forEach((raw, k) => {
      if (raw.startsWith('#')) return;
      if (raw.startsWith('\t')) {
        if (current) current.descriptions.push(raw.slice(1));
        return;
      }
      const pattern = raw.trim();
      flush();
      if (pattern) current = { pattern, descriptions: [], source, line: k + 1 };
    });
    flush();
    this.sources.push(source);
  }

  private add(entry: SmartcardListEntry): void {
    const key = entry.pattern.toUpperCase();
    if (this.patterns.has(key)) return;
    let regex: RegExp;
    try {
      regex = new RegExp(`^(?:${entry.pattern})$`, 'i');
    } catch (e) {
      this.warnings.push(`${entry.source}:${entry.line}: ATR pattern is not a valid regular expression (${(e as Error).message})`);
      return;
    }
    this.patterns.add(key);
    this.count++;
    const compiled: Compiled = { ...entry, regex };
    const prefix = literalPrefix(entry.pattern);
    if (prefix.length >= KEY_LENGTH) {
      const bucketKey = prefix.slice(0, KEY_LENGTH);
      const bucket = this.buckets.get(bucketKey);
      if (bucket) bucket.push(compiled); else this.buckets.set(bucketKey, [compiled]);
    } else {
      this.unbucketed.push(compiled);
    }
  }

  /** Entries whose pattern matches the ATR (hex, spaced or not); [] for text that is not hex. */
  lookup(atrHex: string): SmartcardListEntry[] {
    let atr: string;
    try {
      atr = toSpacedHex(fromHex(atrHex));
    } catch {
      return [];
    }
    if (!atr) return [];
    const candidates = [...(this.buckets.get(atr.slice(0, KEY_LENGTH)) ?? []), ...this.unbucketed];
    return candidates
      .filter((c) => c.regex.test(atr))
      .sort((a, b) => this.sources.indexOf(a.source) - this.sources.indexOf(b.source) || a.line - b.line)
      .map(({ pattern, descriptions, source, line }) => ({ pattern, descriptions, source, line }));
  }

  /** Description lines of every matching entry, in file order. */
  identify(atrHex: string): string[] {
    return this.lookup(atrHex).flatMap((e) => e.descriptions);
  }
}

/** Where pcsc-tools looks, newest first (ATR_analysis, pcsc_scan). */
export function standardSmartcardListPaths(env: NodeJS.ProcessEnv = process.env, home = homedir()): string[] {
  const cache = env.XDG_CACHE_HOME || join(home, '.cache');
  return [join(cache, 'smartcard_list.txt'), join(home, '.smartcard_list.txt'), '/usr/share/pcsc/smartcard_list.txt'];
}

/**
 * Loads the standard lists and `extraPaths` (read first, so their entries win).
 * Missing files are skipped; other read errors become warnings.
 */
export function loadSmartcardList(extraPaths: string[] = [], options: { standard?: boolean } = {}): SmartcardList {
  const list = new SmartcardList();
  const paths = [...extraPaths, ...(options.standard === false ? [] : standardSmartcardListPaths())];
  for (const path of new Set(paths)) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') list.warnings.push(`${path}: cannot read the card list (${code ?? (e as Error).message})`);
      continue;
    }
    list.addText(text, path);
  }
  return list;
}
