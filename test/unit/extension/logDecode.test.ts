// Expanding a row in the APDU Log asks the extension to decode it; a row its store has
// trimmed meanwhile is answered with a state the panel shows, not a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { decodeLogRow } from '../../../extension/src/logDecode';
import { LogStore } from '../../../extension/src/logStore';
import type { DecodedExchange } from '../../../webview/src/protocol';

const decoded = { command: { summary: 'READ BINARY' } } as unknown as DecodedExchange;

function storeWith(capacity: number, n: number): LogStore {
  const s = new LogStore(capacity);
  s.newGeneration();
  s.addEntries(Array.from({ length: n }, (_, i): ExchangeEntry => ({
    kind: 'exchange', seq: i + 1, time: i, reader: 'R 00 00', command: '00B0000004', response: '010203049000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1,
  })));
  return s;
}

test('a row the store still holds is decoded by the helper', async () => {
  const s = storeWith(4, 3);
  const asked: string[] = [];
  const r = await decodeLogRow(s, '1:2', async (c, rsp) => { asked.push(`${c} ${rsp}`); return decoded; });
  assert.equal(r, decoded);
  assert.deepEqual(asked, ['00B0000004 010203049000']);
});

test('a row the store trimmed answers "trimmed" without asking the helper', async () => {
  const s = storeWith(4, 6);
  assert.equal(s.get('1:1'), undefined, 'the store trimmed its oldest rows');
  const r = await decodeLogRow(s, '1:1', () => assert.fail('the helper was asked to decode a trimmed row'));
  assert.deepEqual(r, { trimmed: true });
});
