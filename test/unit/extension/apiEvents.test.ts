// The API's onDidChangeCard events from the helper's log entries (extension/src/apiEvents.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { publicCardEvent } from '../../../extension/src/apiEvents';
import type { LogEntry } from '../../../server/src/protocol';

const base = { seq: 1, time: 0 };

test('card events: the five kinds with reader, ATR, protocol and counter; other entries are not events', () => {
  assert.deepEqual(publicCardEvent({ ...base, kind: 'cardInserted', reader: 'R', eventCount: 2 } as LogEntry), { kind: 'inserted', reader: 'R', eventCount: 2 });
  assert.deepEqual(publicCardEvent({ ...base, kind: 'cardPowered', reader: 'R', atr: '3B00', protocol: 1, eventCount: 3, identified: ['x'] } as LogEntry),
    { kind: 'powered', reader: 'R', atr: '3B00', protocol: 1, eventCount: 3 });
  assert.deepEqual(publicCardEvent({ ...base, kind: 'cardReset', reader: 'R', atr: '3B00', protocol: 0 } as LogEntry), { kind: 'reset', reader: 'R', atr: '3B00', protocol: 0 });
  assert.deepEqual(publicCardEvent({ ...base, kind: 'cardRemoved', reader: 'R' } as LogEntry), { kind: 'removed', reader: 'R' });
  assert.equal(publicCardEvent({ ...base, kind: 'readerAdded', reader: 'R' } as LogEntry), undefined);
  assert.equal(publicCardEvent({ ...base, kind: 'exchange', reader: 'R', command: '00', response: '9000', sw: '9000', durationMs: 1 } as unknown as LogEntry), undefined);
});

test('an idle power-down (R77: nobody used the card for idlePowerOff seconds) says so; a person\'s power-off does not', () => {
  assert.deepEqual(publicCardEvent({ ...base, kind: 'cardUnpowered', reader: 'R', eventCount: 4, idle: true, idleMs: 5000 } as LogEntry),
    { kind: 'unpowered', reader: 'R', eventCount: 4, idle: true, idleMs: 5000 });
  const asked = publicCardEvent({ ...base, kind: 'cardUnpowered', reader: 'R', eventCount: 4 } as LogEntry);
  assert.deepEqual(asked, { kind: 'unpowered', reader: 'R', eventCount: 4 });
  assert.equal('idle' in asked!, false);
});
