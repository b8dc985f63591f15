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

/** Length of the bucket key: "3B 8F" (TS and T0). */
const KEY_LENGTH = 5;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const HASH = 0x23;

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

/** FNV-1a over the upper-cased pattern: finds duplicate candidates without keeping the strings. */
function patternHash(upper: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < upper.length; i++) h = Math.imul(h ^ upper.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** End of the line starting at `from` (the index of its LF, or the end of the bytes). */
function lineEnd(bytes: Uint8Array, from: number): number {
  const lf = bytes.indexOf(LF, from);
  return lf < 0 ? bytes.length : lf;
}

/**
 * Regular expressions for the pattern lines that can match an ATR starting with `key` (the others'
 * first characters are literal hex digits and spaces that differ from it, as the index's buckets know): `first` (sticky) for the text's first line, `next` (global) for each later one, matched
 * from the LF before it. Such a line is neither a description (TAB) nor a comment (#) and: has at
 * most KEY_LENGTH characters, starts with a space, has a character other than a hex digit or a
 * space in its first KEY_LENGTH, starts with `key` (any case), has a quantifier right after them,
 * or holds a `|` anywhere. (Not `^` with the m flag: JavaScript also starts a line after a CR.)
 */
function candidateLines(key: string): { first: RegExp; next: RegExp } {
  const keyPattern = [...key].map((c) => (/[A-F]/.test(c) ? `[${c}${c.toLowerCase()}]` : c)).join('');
  const k = KEY_LENGTH;
  const alternatives = `[^\\n]{0,${k}}(?=\\n|$)| |[^\\n]{0,${k - 1}}[^0-9A-Fa-f \\n]|${keyPattern}|[^\\n]{${k}}[*?{+]|[^\\n]*\\|`;
  return { first: new RegExp(`(?![\\t#])(?:${alternatives})`, 'y'), next: new RegExp(`\\n(?![\\t#])(?:${alternatives})`, 'g') };
}

/** Per entry, in the order added (so index order is priority order: source, then line). */
const FIELDS = 7;
const F_SOURCE = 0;
const F_PATTERN_START = 1;
const F_PATTERN_END = 2;
const F_DESCRIPTIONS_END = 3;
const F_LINE = 4;
const F_PREFIX_LENGTH = 5;
const F_HASH = 6;

/**
 * The list as a compact index over each file's bytes: an entry is seven integers
 * (offsets, line, literal prefix length, hash) in a bucket by its first two ATR bytes.
 * Patterns, descriptions and regular expressions are made only when an ATR is
 * looked up, for the entries whose literal prefix matches it; the result is the
 * same as matching every pattern (what ATR_analysis does), since a pattern can
 * only match an ATR that starts with its literal prefix.
 */
export class SmartcardList {
  private readonly texts: Buffer[] = [];
  private entries = new Int32Array(FIELDS * 256);
  private readonly buckets = new Map<string, number[]>();
  private readonly unbucketed: number[] = [];
  /** Files read, in priority order. */
  readonly sources: string[] = [];
  private readonly problems: string[] = [];
  private count = 0;
  /** Texts added but not indexed yet (the index is built on the second lookup, or for size / warnings). */
  private indexedTexts = 0;
  private lookups = 0;

  /** Lines that could not be used (bad patterns, unreadable files other than missing ones). */
  get warnings(): readonly string[] {
    this.index();
    return this.problems;
  }

  get size(): number {
    this.index();
    return this.count;
  }

  /**
   * Adds one file's text; a pattern already known from an earlier source is skipped. The text is
   * indexed when first needed: the helper identifies one card before it announces "started", and
   * indexing the whole list (4,000 patterns) cost more than the scan one ATR needs.
   */
  addText(text: string | Uint8Array, source: string): void {
    const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    this.texts.push(bytes);
    this.sources.push(source);
  }

  /** Reading problems found before the texts (an unreadable file). */
  warn(message: string): void {
    this.problems.push(message);
  }

  private index(): void {
    while (this.indexedTexts < this.texts.length) this.indexText(this.indexedTexts++);
  }

  private indexText(sourceIndex: number): void {
    const bytes = this.texts[sourceIndex];
    let pending: { pattern: string; start: number; end: number; line: number } | undefined;
    const flush = (descriptionsEnd: number) => {
      if (pending) this.add(pending.pattern, sourceIndex, pending.start, pending.end, descriptionsEnd, pending.line);
      pending = undefined;
    };
    let line = 0;
    for (let start = 0; start < bytes.length; ) {
      const end = lineEnd(bytes, start);
      line++;
      const first = start < end ? bytes[start] : -1;
      if (first !== HASH && first !== TAB) {
        flush(start);
        const contentEnd = end > start && bytes[end - 1] === CR ? end - 1 : end;
        const pattern = bytes.toString('utf8', start, contentEnd).trim();
        if (pattern) pending = { pattern, start, end: contentEnd, line };
      }
      start = end + 1;
    }
    flush(bytes.length);
  }

  private add(pattern: string, source: number, start: number, end: number, descriptionsEnd: number, line: number): void {
    const upper = pattern.toUpperCase();
    const hash = patternHash(upper);
    const prefix = literalPrefix(pattern);
    const bucket = prefix.length >= KEY_LENGTH ? this.buckets.get(prefix.slice(0, KEY_LENGTH)) : this.unbucketed;
    if (bucket?.some((k) => this.entries[k * FIELDS + F_HASH] === hash && this.pattern(k).toUpperCase() === upper)) return;
    try {
      // Checked here so a bad pattern is reported once, at load; compiled again when looked up.
      new RegExp(`^(?:${pattern})$`, 'i');
    } catch (e) {
      this.problems.push(`${this.sources[source]}:${line}: ATR pattern is not a valid regular expression (${(e as Error).message})`);
      return;
    }
    const k = this.count++;
    if (this.entries.length < (k + 1) * FIELDS) {
      const grown = new Int32Array(this.entries.length * 2);
      grown.set(this.entries);
      this.entries = grown;
    }
    const o = k * FIELDS;
    this.entries[o + F_SOURCE] = source;
    this.entries[o + F_PATTERN_START] = start;
    this.entries[o + F_PATTERN_END] = end;
    this.entries[o + F_DESCRIPTIONS_END] = descriptionsEnd;
    this.entries[o + F_LINE] = line;
    this.entries[o + F_PREFIX_LENGTH] = prefix.length;
    this.entries[o + F_HASH] = hash;
    if (bucket) bucket.push(k);
    else this.buckets.set(prefix.slice(0, KEY_LENGTH), [k]);
  }

  private pattern(k: number): string {
    const o = k * FIELDS;
    return this.texts[this.entries[o + F_SOURCE]].toString('utf8', this.entries[o + F_PATTERN_START], this.entries[o + F_PATTERN_END]).trim();
  }

  private descriptions(k: number): string[] {
    const o = k * FIELDS;
    const bytes = this.texts[this.entries[o + F_SOURCE]];
    const end = this.entries[o + F_DESCRIPTIONS_END];
    const lines: string[] = [];
    for (let start = lineEnd(bytes, this.entries[o + F_PATTERN_START]) + 1; start < end; ) {
      const stop = lineEnd(bytes, start);
      // Between a pattern and the next one there are only description (TAB) and comment lines.
      if (bytes[start] === TAB) lines.push(bytes.toString('utf8', start + 1, stop > start + 1 && bytes[stop - 1] === CR ? stop - 1 : stop));
      start = stop + 1;
    }
    return lines;
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
    // The first lookup scans the texts for this ATR alone; later ones use (and build) the index.
    if (this.lookups++ === 0 && this.indexedTexts === 0) return this.scan(atr);
    this.index();
    const candidates = [...(this.buckets.get(atr.slice(0, KEY_LENGTH)) ?? []), ...this.unbucketed].sort((a, b) => a - b);
    const found: SmartcardListEntry[] = [];
    for (const k of candidates) {
      const pattern = this.pattern(k);
      const o = k * FIELDS;
      const prefixLength = this.entries[o + F_PREFIX_LENGTH];
      if (prefixLength && atr.slice(0, prefixLength) !== pattern.slice(0, prefixLength).toUpperCase()) continue;
      if (!new RegExp(`^(?:${pattern})$`, 'i').test(atr)) continue;
      found.push({ pattern, descriptions: this.descriptions(k), source: this.sources[this.entries[o + F_SOURCE]], line: this.entries[o + F_LINE] });
    }
    return found;
  }

  /**
   * What lookup() answers, found by one pass over the texts without the index: a pattern line is
   * skipped at its first bytes when they are literal and differ from the ATR's (as the index's
   * buckets and literal prefixes do); the others are matched as lookup() matches them, a repeated
   * pattern only once and a bad one never.
   */
  private scan(atr: string): SmartcardListEntry[] {
    const found: SmartcardListEntry[] = [];
    const seen = new Set<string>();
    const { first, next } = candidateLines(atr.slice(0, KEY_LENGTH));
    for (let source = 0; source < this.texts.length; source++) {
      const bytes = this.texts[source];
      // Found by a regular expression over the bytes as Latin-1 (one character per byte, so its
      // offsets are the bytes'): the pattern lines that can match, without a JavaScript
      // step per line (the first lookup happens before the helper says "started").
      const text = bytes.toString('latin1');
      let line = 1;
      let counted = 0;
      const lineOf = (at: number) => {
        for (; counted < at; counted++) if (bytes[counted] === LF) line++;
        return line;
      };
      first.lastIndex = 0;
      let start = first.test(text) ? 0 : -1;
      next.lastIndex = 0;
      for (;;) {
        if (start < 0) {
          const m = next.exec(text);
          if (!m) break;
          start = m.index + 1;
        }
        const end = lineEnd(bytes, start);
        next.lastIndex = end;
        const contentEnd = end > start && bytes[end - 1] === CR ? end - 1 : end;
        const pattern = bytes.toString('utf8', start, contentEnd).trim();
        const upper = pattern.toUpperCase();
        const prefix = literalPrefix(pattern);
        if (pattern && !seen.has(upper) && atr.startsWith(prefix)) {
          let re: RegExp | undefined;
          try { re = new RegExp(`^(?:${pattern})$`, 'i'); } catch { re = undefined; }
          if (re) seen.add(upper); // a bad pattern is not an entry (a later copy of it is not one either)
          if (re?.test(atr)) {
            const entry: SmartcardListEntry = { pattern, descriptions: [], source: this.sources[source], line: lineOf(start) };
            // Its descriptions: the TAB lines up to the next line that is neither one nor a comment.
            for (let at = end + 1; at < bytes.length && (bytes[at] === TAB || bytes[at] === HASH); ) {
              const stop = lineEnd(bytes, at);
              if (bytes[at] === TAB) entry.descriptions.push(bytes.toString('utf8', at + 1, stop > at + 1 && bytes[stop - 1] === CR ? stop - 1 : stop));
              at = stop + 1;
            }
            found.push(entry);
          }
        }
        start = -1;
      }
    }
    return found;
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
    let text: Buffer;
    try {
      text = readFileSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') list.warn(`${path}: cannot read the card list (${code ?? (e as Error).message})`);
      continue;
    }
    list.addText(text, path);
  }
  return list;
}
