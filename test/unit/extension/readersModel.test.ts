import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReaderInfo } from '../../../server/src/protocol';
import { cardText, defaultReader, readerContextValue, readerText } from '../../../extension/src/readersModel';

function reader(name: string, extra: Partial<ReaderInfo> = {}): ReaderInfo {
  return { name, driver: 'simulator', slot: 0, eventCount: 1, card: null, connections: 0, exclusive: false, inTransaction: false, ...extra };
}
const card = { atr: '3B8E800180318066B1840C016E0183009000', protocol: 1 as const, powered: true };

test('contextValue words match the package.json menus', () => {
  assert.equal(readerContextValue(reader('A', { card })), 'reader-simulator-present');
  assert.equal(readerContextValue(reader('A')), 'reader-simulator-empty');
  assert.equal(readerContextValue(reader('B', { driver: 'pcsc', card })), 'reader-present');
  assert.equal(readerContextValue(reader('C', { driver: 'usb-ccid', unavailable: 'claimed by pcscd' })), 'reader-unavailable');
  // the `when` clauses: viewItem =~ /simulator-empty/, /simulator-present/, /^reader/
  assert.match(readerContextValue(reader('A')), /simulator-empty/);
  assert.doesNotMatch(readerContextValue(reader('B', { driver: 'pcsc' })), /simulator/);
});

test('a card shows its ATR spaced and its protocol', () => {
  const t = cardText(reader('A', { card }));
  assert.equal(t.label, 'ATR 3B 8E 80 01 80 31 80 66 B1 84 0C 01 6E 01 83 00 90 00');
  assert.equal(t.description, 'T=1 · powered');
  assert.equal(cardText(reader('A')).label, 'no card');
  assert.equal(cardText(reader('A', { unavailable: 'USB not available' })).label, 'USB not available');
  assert.equal(cardText(reader('A', { card: { powered: false, mute: true } })).label, 'mute card');
});

test('reader text names the driver and the selection', () => {
  const t = readerText(reader('Workbench Simulator 00 00', { card }), true);
  assert.equal(t.label, 'Workbench Simulator 00 00');
  assert.equal(t.description, 'simulator · selected');
  assert.match(t.tooltip, /card present/);
});

test('the default reader: the selected one, else the only one with a card', () => {
  const a = reader('A', { card });
  const b = reader('B');
  const c = reader('C', { card });
  assert.equal(defaultReader([a, b], undefined), 'A');
  assert.equal(defaultReader([a, b], 'B'), 'B');
  assert.equal(defaultReader([a, b], 'gone'), 'A');
  assert.equal(defaultReader([a, c], undefined), undefined);
  assert.equal(defaultReader([b], undefined), 'B');
  assert.equal(defaultReader([], undefined), undefined);
});

test('the card row names the identified card; the reader tooltip lists PC/SC features', () => {
  const r = {
    name: 'Virtual PCD 00 00', driver: 'vpcd', slot: 0, eventCount: 1, connections: 0, exclusive: false, inTransaction: false,
    card: { powered: true, protocol: 1 as const, atr: '3B951381018073FF01000B', identified: ['vsmartcard - iso7816 (Other)', 'https://frankmorgner.github.io/vsmartcard/'] },
    features: ['VERIFY_PIN_DIRECT 0x42330006'],
  };
  const c = cardText(r);
  assert.match(c.description ?? '', /^vsmartcard - iso7816 \(Other\) · T=1 · powered$/);
  assert.match(c.tooltip, /Identified \(smartcard_list.txt\):\n  vsmartcard - iso7816 \(Other\)\n  https:/);
  assert.match(readerText(r, false).tooltip, /PC\/SC features:\n  VERIFY_PIN_DIRECT 0x42330006/);
});
