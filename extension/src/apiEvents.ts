// The API's card events (api/smartcard-workbench.d.ts, CardEvent) from the helper's log entries:
// pure, so a unit test holds the mapping (api.ts imports vscode).
import type * as Api from '../../api/smartcard-workbench';
import type { EventEntry, LogEntry } from '../../server/src/protocol';

const CARD_EVENTS: Partial<Record<LogEntry['kind'], Api.CardEvent['kind']>> = {
  cardInserted: 'inserted', cardRemoved: 'removed', cardPowered: 'powered', cardUnpowered: 'unpowered', cardReset: 'reset',
};

/** The public event for a log entry, or undefined for entries that are not card events. */
export function publicCardEvent(e: LogEntry): Api.CardEvent | undefined {
  const kind = CARD_EVENTS[e.kind];
  if (!kind) return undefined;
  const ev = e as EventEntry;
  return {
    kind, reader: ev.reader,
    ...(ev.atr ? { atr: ev.atr } : {}), ...(ev.protocol !== undefined ? { protocol: ev.protocol } : {}),
    ...(ev.eventCount !== undefined ? { eventCount: ev.eventCount } : {}),
    // The manager powered it down because nobody used it (smartcard.readerManager.idlePowerOff, as pcscd).
    ...(ev.kind === 'cardUnpowered' && ev.idle ? { idle: true as const, ...(ev.idleMs !== undefined ? { idleMs: ev.idleMs } : {}) } : {}),
  };
}
