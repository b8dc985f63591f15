import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWebviewMessage } from '../../../webview/src/protocol';
import { eventLabel, responseData, rowText, spacedHex } from '../../../webview/src/format';
import { packRows, unpackRows } from '../../../webview/src/packed';

test('well-formed webview messages pass', () => {
  assert.deepEqual(parseWebviewMessage({ type: 'ready' }), { ok: true, message: { type: 'ready' } });
  assert.deepEqual(parseWebviewMessage({ type: 'request', id: 1, method: 'clear', params: {} }), { ok: true, message: { type: 'request', id: 1, method: 'clear', params: {} } });
  const r = parseWebviewMessage({ type: 'request', id: 2, method: 'revealLine', params: { uri: 'file:///a.apdu', line: 3 } });
  assert.equal(r.ok, true);
});

test('anything else is rejected with a reason', () => {
  const bad: unknown[] = [
    null, 'ready', [], { type: 'nope' },
    { type: 'request', id: -1, method: 'clear', params: {} },
    { type: 'request', id: 1.5, method: 'clear', params: {} },
    { type: 'request', id: 1, method: 'toString', params: {} },
    { type: 'request', id: 1, method: 'revealLine', params: { uri: 'file:///a', line: 0 } },
    { type: 'request', id: 1, method: 'revealLine', params: { uri: 5, line: 1 } },
    { type: 'request', id: 1, method: 'copy', params: { text: 7 } },
    { type: 'request', id: 1, method: 'copy', params: [] },
  ];
  for (const b of bad) {
    const r = parseWebviewMessage(b);
    assert.equal(r.ok, false, JSON.stringify(b));
    if (!r.ok) assert.ok(r.reason.length > 0);
  }
});

test('trace text splits data from the status word', () => {
  assert.equal(spacedHex('00a4040007'), '00 A4 04 00 07');
  assert.equal(responseData('6F109000'), '6F10');
  assert.equal(responseData('9000'), '');
  const text = rowText({
    kind: 'exchange', id: '1:1', time: 0, reader: 'R', command: '0084000008', response: '01020304050607089000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 1.25, line: 2,
  });
  assert.match(text, /> 00 84 00 00 08\n< 01 02 03 04 05 06 07 08 90 00 : Success \(1\.25 ms\)/);
  assert.match(rowText({ kind: 'cardRemoved', id: '1:2', time: 0, reader: 'R' }), /Card removed: R$/);
});

test('an idle power-down says what happened: powered down, unused for the period; a person\'s power-off stays "Card unpowered"', () => {
  assert.match(rowText({ kind: 'cardUnpowered', id: '1:3', time: 0, reader: 'R' }), / Card unpowered: R$/);
  assert.match(rowText({ kind: 'cardUnpowered', id: '1:4', time: 0, reader: 'R', idle: true, idleMs: 5000 }), / Card powered down \(unused for 5 s\): R$/);
  assert.match(rowText({ kind: 'cardUnpowered', id: '1:5', time: 0, reader: 'R', idle: true, idleMs: 1500 }), /\(unused for 1\.5 s\)/);
  assert.match(rowText({ kind: 'cardUnpowered', id: '1:6', time: 0, reader: 'R', idle: true, idleMs: 150 }), /\(unused for 0\.15 s\)/);
  // A row from an older stored log: idle without the period.
  assert.match(rowText({ kind: 'cardUnpowered', id: '1:7', time: 0, reader: 'R', idle: true }), / Card powered down \(unused\): R$/);
  assert.deepEqual(eventLabel({ kind: 'cardUnpowered', id: '1:4', time: 0, reader: 'R', idle: true, idleMs: 5000 }), { icon: '○', text: 'Card powered down (unused for 5 s)' });
  assert.deepEqual(eventLabel({ kind: 'cardPowered', id: '1:8', time: 0, reader: 'R' }), { icon: '⚡', text: 'Card powered' });
  // The flag and the period reach the panel through a packed batch (rare fields).
  const row = { kind: 'cardUnpowered', id: '1:4', time: 0, reader: 'R', idle: true, idleMs: 5000 } as const;
  const back = unpackRows(structuredClone(packRows([row])))?.row(0);
  assert.ok(back);
  assert.equal(rowText(back), rowText(row));
  assert.match(rowText(back), /unused for 5 s/);
});

test('script files are shown by name', async () => {
  const { fileName } = await import('../../../webview/src/format');
  assert.equal(fileName('file:///work/main/examples/hello%20world.apdu'), 'hello world.apdu');
  assert.equal(fileName('C:\\scripts\\a.apdu'), 'a.apdu');
});
