// The Readers view's rows for who uses a reader (issue 15): one row per connection under
// the reader, "python3 (pid 4711) · exclusive · in a transaction", and "and N more" past
// the helper's cap. Pure: no editor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReaderInfo } from '../../../server/src/protocol';
import { clientRows } from '../../../extension/src/readerClients';

function reader(extra: Partial<ReaderInfo> = {}): ReaderInfo {
  return { name: 'Workbench Simulator 00 00', driver: 'simulator', slot: 0, eventCount: 1, card: null, connections: 0, exclusive: false, inTransaction: false, ...extra };
}

test('one row per connection: who as the label, share mode and transaction as the description; the whole line for screen readers', () => {
  const rows = clientRows(reader({
    connections: 2,
    clients: [
      { client: 'python3 (pid 4711)', share: 'exclusive', transaction: true },
      { client: 'Connect (editor)', share: 'shared', transaction: false },
      { client: 'opensc-tool (pid 12)', share: 'direct', transaction: false },
    ],
  }));
  assert.deepEqual(rows.map((r) => [r.label, r.description, r.accessible, r.icon]), [
    ['python3 (pid 4711)', 'exclusive · in a transaction', 'python3 (pid 4711) · exclusive · in a transaction', 'lock'],
    ['Connect (editor)', 'shared', 'Connect (editor) · shared', 'plug'],
    ['opensc-tool (pid 12)', 'direct', 'opensc-tool (pid 12) · direct', 'debug-disconnect'],
  ]);
  assert.match(rows[0].tooltip, /python3 \(pid 4711\)\nexclusive: no other connection may use the reader\nholds the reader's transaction/);
  assert.match(rows[2].tooltip, /direct: the reader itself \(control commands; APDUs only with RAW or the card’s protocol\), no share of the card/);
});

test('past the cap, one more row says how many are not listed; nobody, or an older helper, gives no row', () => {
  const clients = Array.from({ length: 32 }, (_, i) => ({ client: `c${i}`, share: 'shared' as const, transaction: false }));
  const rows = clientRows(reader({ connections: 40, clients, moreClients: 8 }));
  assert.equal(rows.length, 33);
  assert.equal(rows[32].label, 'and 8 more');
  assert.deepEqual(clientRows(reader()), []);
  assert.deepEqual(clientRows(reader({ connections: 1 })), []);
});
