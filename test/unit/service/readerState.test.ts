// The reader state table against what pcsc-lite 2.5.1's eventhandler.c,
// winscard.c and readerfactory.c set (line references in each row), and its
// encoding for 4:4/4:5 (16 entries) and 4:6 (the whole array).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildTable, EMPTY_ENTRY, encodeTable, entryFor, INITIAL_LAYOUT, INITIAL_READER_EVENTS, nextReaderEvents, placeReaders,
  type ReaderFacts,
} from '../../../server/src/service/readerState';
import { decodeStruct, MAX_ATR_SIZE, PCSCLITE_MAX_READERS_CONTEXTS, READER_NOT_INITIALIZED, ReaderStateBits as B, STRUCTS } from '../../../server/src/service/wire';

const ATR = Uint8Array.from([0x3b, 0x8b, 0x81, 0x31, 0xfe, 0x45, 0x80, 0x31, 0xe0, 0xf7, 0xf0, 0x57, 0x42, 0x44, 0x45, 0x4d, 0x4f, 0xc0]);
const base: ReaderFacts = { name: 'Workbench Simulator 00 00', card: 'powered', eventCounter: 1, atr: ATR, protocol: 0, handles: 0, exclusive: false };

const rows: { what: string; facts: Partial<ReaderFacts>; state: number; atrLength: number; protocol: number; sharing?: number }[] = [
  // eventhandler.c EHStatusHandlerThread: IFDPowerICC succeeded after insertion
  { what: 'card inserted and powered', facts: {}, state: B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE, atrLength: ATR.length, protocol: 0 },
  // winscard.c SCardConnect: cardProtocol = negotiated protocol; bits unchanged
  { what: 'a client negotiated T=1', facts: { protocol: 2 }, state: B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE, atrLength: ATR.length, protocol: 2 },
  // eventhandler.c: IFDPowerICC failed → SCARD_PRESENT | SCARD_SWALLOWED, cardAtrLength = 0 (card insertion branch)
  { what: 'mute card', facts: { card: 'mute', protocol: 2 }, state: B.SCARD_PRESENT | B.SCARD_SWALLOWED, atrLength: 0, protocol: 0 },
  // eventhandler.c: card removed → SCARD_ABSENT, cardAtrLength 0, protocol undefined
  { what: 'card removed', facts: { card: 'absent', protocol: 2 }, state: B.SCARD_ABSENT, atrLength: 0, protocol: 0 },
  // winscard.c SCardDisconnect(SCARD_UNPOWER_CARD): readerState = SCARD_PRESENT, ATR untouched, protocol undefined
  { what: 'unpowered by a client', facts: { card: 'unpowered', protocol: 2 }, state: B.SCARD_PRESENT, atrLength: ATR.length, protocol: 0 },
  // eventhandler.c: IFDStatusICC failed → SCARD_UNKNOWN, cardAtrLength 0
  { what: 'reader not answering', facts: { card: 'reader-error' }, state: B.SCARD_UNKNOWN, atrLength: 0, protocol: 0 },
  // winscard.c: contexts = PCSCLITE_SHARING_EXCLUSIVE_CONTEXT / contexts += 1
  { what: 'exclusive handle', facts: { handles: 1, exclusive: true }, state: B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE, atrLength: ATR.length, protocol: 0, sharing: -1 },
  { what: 'three shared handles', facts: { handles: 3 }, state: B.SCARD_PRESENT | B.SCARD_POWERED | B.SCARD_NEGOTIABLE, atrLength: ATR.length, protocol: 0, sharing: 3 },
];

for (const row of rows) {
  test(`READER_STATE as pcscd sets it: ${row.what}`, () => {
    const e = entryFor({ ...base, ...row.facts });
    assert.equal(e.readerState, row.state, `readerState 0x${e.readerState.toString(16)}`);
    assert.equal(e.cardAtrLength, row.atrLength);
    assert.equal(e.cardProtocol, row.protocol);
    assert.equal(e.readerSharing, row.sharing ?? 0);
    assert.equal(e.readerState & B.SCARD_SPECIFIC, 0, 'pcscd never sets SCARD_SPECIFIC');
    if (row.atrLength) assert.deepEqual([...e.cardAtr.subarray(0, row.atrLength)], [...ATR]);
  });
}

test('eventCounter: insertions + removals modulo 0x10000, as eventhandler.c wraps it', () => {
  assert.equal(entryFor({ ...base, eventCounter: 0xffff }).eventCounter, 0xffff);
  assert.equal(entryFor({ ...base, eventCounter: 0x10000 }).eventCounter, 0);
  assert.equal(entryFor({ ...base, eventCounter: 0x10005 }).eventCounter, 5);
});

test('an ATR longer than MAX_ATR_SIZE is cut, and a name longer than MAX_READERNAME keeps its NUL', () => {
  const e = entryFor({ ...base, atr: new Uint8Array(40).fill(0x3b), name: 'N'.repeat(300) });
  assert.equal(e.cardAtrLength, MAX_ATR_SIZE);
  const decoded = decodeStruct('READER_STATE', encodeTable([e], false));
  assert.equal((decoded.readerName as string).length, 127);
});

test('slots: a reader keeps its slot, a new one takes the first hole, the array grows by 2 and never shrinks', () => {
  let l = placeReaders(INITIAL_LAYOUT, ['A 00 00']);
  assert.deepEqual(l.slots, ['A 00 00', null]);
  l = placeReaders(l, ['A 00 00', 'B 00 00', 'C 00 00']);
  assert.deepEqual(l.slots, ['A 00 00', 'B 00 00', 'C 00 00', null]);
  l = placeReaders(l, ['C 00 00']); // A and B unplugged
  assert.deepEqual(l.slots, [null, null, 'C 00 00', null]);
  l = placeReaders(l, ['C 00 00', 'D 00 00']);
  assert.deepEqual(l.slots, ['D 00 00', null, 'C 00 00', null], 'D takes the first free slot, C stays');
  l = placeReaders(l, []);
  assert.equal(l.slots.length, 4, 'never shrinks: a 4:6 client refuses a different array size');
});

test('empty slots look like readerfactory.c leaves them: no name, cardAtrLength READER_NOT_INITIALIZED', () => {
  const table = buildTable(placeReaders(INITIAL_LAYOUT, []), []);
  assert.equal(table.length, 2);
  assert.deepEqual(table[0], EMPTY_ENTRY);
  const d = decodeStruct('READER_STATE', encodeTable(table, false).subarray(0, STRUCTS.READER_STATE.size));
  assert.equal(d.readerName, '');
  assert.equal(d.cardAtrLength, READER_NOT_INITIALIZED);
});

test('4:4/4:5 see exactly 16 entries: the first 16 slots, zero-padded (2.5.1 MSGSendReaderStates old_api)', () => {
  const size = STRUCTS.READER_STATE.size;
  const small = buildTable(placeReaders(INITIAL_LAYOUT, ['A 00 00']), [{ ...base, name: 'A 00 00' }]);
  const bytes = encodeTable(small, true);
  assert.equal(bytes.length, PCSCLITE_MAX_READERS_CONTEXTS * size);
  assert.equal(decodeStruct('READER_STATE', bytes.subarray(0, size)).readerName, 'A 00 00');
  assert.equal(decodeStruct('READER_STATE', bytes.subarray(size, 2 * size)).cardAtrLength, READER_NOT_INITIALIZED, 'slot 1 is in the array: empty');
  assert.equal(decodeStruct('READER_STATE', bytes.subarray(2 * size, 3 * size)).cardAtrLength, 0, 'slot 2 is padding: zeros');

  const names = Array.from({ length: 20 }, (_, i) => `R ${i.toString(16).padStart(2, '0')} 00`);
  const big = buildTable(placeReaders(INITIAL_LAYOUT, names), names.map((name) => ({ ...base, name })));
  assert.equal(big.length, 20);
  assert.equal(encodeTable(big, true).length, 16 * size, 'readers past slot 16 are not visible to 4:4/4:5 clients');
  assert.equal(encodeTable(big, false).length, 20 * size);
});

test('ReaderEvents: int16 from 1, +1 per reader added or removed, wraps to 1 (readerfactory.c)', () => {
  assert.equal(INITIAL_READER_EVENTS, 1);
  assert.equal(nextReaderEvents(1), 2);
  assert.equal(nextReaderEvents(0x7ffe), 0x7fff);
  assert.equal(nextReaderEvents(0x7fff), 1);
});
