// Readable trace of a run: `>`/`<` lines like scriptor and GlobalPlatformPro,
// with the status word's meaning and the time taken. JSON Lines is one entry a line.

import type { ExchangeEntry, LogEntry } from '../protocol';

function spaced(hex: string): string {
  return hex.replace(/(..)(?=.)/g, '$1 ');
}

function ms(n: number): string {
  return n < 10 ? `${n.toFixed(2)} ms` : `${Math.round(n)} ms`;
}

const AUTO_TAGS: Record<NonNullable<ExchangeEntry['auto']>, string> = {
  getResponse: 'GET RESPONSE',
  resendWithLe: 'resent with the Le from 6Cxx',
  retryCounter: 'PIN retry counter read before VERIFY',
};

export function formatEntry(e: LogEntry): string[] {
  switch (e.kind) {
    case 'exchange': {
      const indent = e.auto && e.auto !== 'retryCounter' ? '    ' : '';
      const tag = e.auto ? `  (${AUTO_TAGS[e.auto]}, automatic)` : '';
      const where = !e.auto && e.line ? `  (line ${e.line})` : '';
      return [
        `${indent}> ${spaced(e.command)}${tag}${where}`,
        `${indent}< ${spaced(e.response)} : ${e.swMeaning} [${ms(e.durationMs)}]`,
      ];
    }
    case 'control':
      return [`> CONTROL ${e.code} ${spaced(e.command)}`, e.error ? `< error: ${e.error}` : `< ${spaced(e.response ?? '')} [${ms(e.durationMs)}]`];
    case 'readerAdded': return [`# reader added: ${e.reader}`];
    case 'readerRemoved': return [`# reader removed: ${e.reader}`];
    case 'cardInserted': return [`# card inserted: ${e.reader}`];
    case 'cardRemoved': return [`# card removed: ${e.reader}`];
    case 'cardPowered': return [`# card powered: ATR ${spaced(e.atr ?? '')}, T=${e.protocol}${e.identified?.length ? ` (${e.identified[0]})` : ''}`];
    case 'cardReset': return [`> RESET`, `< OK: ${spaced(e.atr ?? '')} (T=${e.protocol})`];
    case 'cardUnpowered': return [`# card powered off: ${e.reader}`];
    case 'echo': return [e.message ?? ''];
    case 'scriptStarted': return [];
    case 'scriptEnded': return [e.ok ? `# passed: ${e.message}` : `# FAILED: ${e.message}`];
  }
}

export function toJsonLine(e: LogEntry): string {
  return JSON.stringify(e);
}
