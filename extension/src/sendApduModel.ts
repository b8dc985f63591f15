// "Smart Card: Send APDU…": its history and the notification's words. Pure (no vscode import).
import { isEnvelopeWithData, secretRanges } from '../../server/src/codecs/apdu';
import { fromHex } from '../../server/src/util/hex';
import type { DecodedExchange, ExchangeEntry, RunScriptResult } from '../../server/src/protocol';
import { failureText } from './runFailure';
import { spacedHex } from './readersModel';

export const HISTORY_SIZE = 20;

/**
 * A command written in hex whose data is a PIN or a new reference value (VERIFY, CHANGE REFERENCE
 * DATA, RESET RETRY COUNTER…: the INS the APDU Log masks, server/src/codecs/apdu.ts): never kept in
 * the history, which VS Code stores on disk. A `${pin:"…"}` in it is no PIN, and is kept. Nor is an
 * ENVELOPE with data: it may carry the rest of a VERIFY an earlier Send APDU began (R91).
 */
export function carriesSecret(apdu: string): boolean {
  const hex = apdu.split('=>')[0].replace(/\s+/g, '');
  if (!/^(?:[0-9A-Fa-f]{2})+$/.test(hex)) return false;
  const bytes = fromHex(hex);
  return secretRanges(bytes) !== undefined || isEnvelopeWithData(bytes);
}

/**
 * The history after sending `apdu`: most recent first, no duplicates (spacing ignored), at most
 * HISTORY_SIZE; a command that carries a PIN is not added, and one kept before this rule goes.
 */
export function pushHistory(history: readonly string[], apdu: string): string[] {
  const key = (s: string) => s.replace(/\s+/g, '').toUpperCase();
  const shown = apdu.trim().replace(/\s+/g, ' ');
  const kept = history.filter((h) => key(h) !== key(shown) && !carriesSecret(h));
  return (carriesSecret(shown) ? kept : [shown, ...kept]).slice(0, HISTORY_SIZE);
}

/** Response data for a notification: spaced hex, cut after `max` bytes with the byte count. */
export function shortData(hex: string, max = 16): string {
  const bytes = hex.length / 2;
  if (!bytes) return '';
  const shown = spacedHex(hex.slice(0, max * 2));
  return bytes > max ? `${shown} … (${bytes} bytes)` : shown;
}

/**
 * The notification after Send APDU: the command's name, the final status word with its
 * meaning and the response data; or the failure (no card, a failed expectation…).
 */
export function sendApduMessage(result: RunScriptResult & { exchanges: ExchangeEntry[] }, decoded?: DecodedExchange): { text: string; ok: boolean } {
  const last = result.exchanges.at(-1);
  const name = decoded?.command.insName ?? decoded?.command.summary.split(' (')[0];
  if (!last) return { text: failureText(result).replace(/^Script failed( at line 1)?: /, 'APDU not sent: '), ok: false };
  const data = last.response.slice(0, -4);
  const answer = `${spacedHex(last.sw)} ${last.swMeaning}${data ? ` · ${shortData(data)}` : ''}`;
  const head = `${name ? `${name}: ` : ''}${answer}`;
  if (!result.ok && result.failure) return { text: `${head} — ${result.failure.message.replace(/^line 1: /, '')}`, ok: false };
  return { text: head, ok: last.swCategory !== 'error' };
}
