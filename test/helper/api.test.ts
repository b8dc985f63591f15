// Issue 16: the helper's side of the public API for other extensions (smartcard/api/*). The
// arguments come from code the workbench does not know: each bad one is refused in words
// (bad hex, a huge APDU, an unknown reader or handle, another extension's handle), and every
// call goes through the manager's connections, logged under the calling extension's id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import {
  ApiConnectRequest, ApiControlRequest, ApiDecodeRequest, ApiDisconnectRequest, ApiReleaseRequest, ApiResetRequest,
  ApiTransactionRequest, ApiTransmitRequest, AskPinRequest, type AskPinParams, EventsNotification, type LogEntry,
  ReadersRequest, type ReaderList, RunScriptRequest, type RunScriptResult, type ResultOf,
} from '../../server/src/protocol';
import { apiHex, MAX_APDU_BYTES } from '../../server/src/lsp/api';
import { secretRanges } from '../../server/src/codecs/apdu';
import { sealedAnswer, startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';

const READER = 'Workbench Simulator 00 00';
const ME = 'acme.applet-tools';
const OTHER = 'other.extension';
const SELECT = '00A4040007F0574244454D4F00';
let helper: MemoryHelper;
let client: MessageConnection;
const entries: LogEntry[] = [];
const asked: AskPinParams[] = [];
/** Resolves when what the notifications brought satisfies `check`. */
const { changed, until } = notified();

before(async () => {
  helper = await startMemoryHelper({
    // T=0: a SELECT with Le goes out as case 3 and its data comes back by GET RESPONSE (61xx).
    helper: { drivers: [new SimulatorDriver({ card: 'T=0' })] },
    initializationOptions: { pin: { cache: 'none', checkRetries: false } },
    handlers: (c, key) => {
      c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => { entries.push(...p.entries); changed(); });
      c.onNotification('window/logMessage', () => undefined);
      c.onRequest(AskPinRequest.method, (p: AskPinParams) => { asked.push(p); return sealedAnswer(key, p, '1234'); });
    },
  });
  client = helper.client;
  await helper.started;
});

after(() => helper.stop());

type Connected = ResultOf<typeof ApiConnectRequest>;
const connect = (params: Record<string, unknown>): Promise<Connected> => client.sendRequest(ApiConnectRequest.method, params);
const transmit = (handle: number, apdu: unknown, who = ME): Promise<{ response: string; sw: string }> => client.sendRequest(ApiTransmitRequest.method, { client: who, handle, apdu });
/** The helper's refusal: its code and words (a ResponseError's data). */
async function refused(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try { await p; } catch (e) { return (e as { data: { code: string; message: string } }).data; }
  assert.fail('expected the call to be refused');
}

test('hex is checked before anything reaches a reader: bad digits, odd length, too long, too short', () => {
  assert.throws(() => apiHex('00 A4 04 0G', 'command APDU', MAX_APDU_BYTES, 4), /command APDU is not hex: 'G' is not a hex digit/);
  assert.throws(() => apiHex('00A404000', 'command APDU', MAX_APDU_BYTES, 4), /odd number of hex digits \(9\)/);
  assert.throws(() => apiHex('00A4', 'command APDU', MAX_APDU_BYTES, 4), /has 2 byte\(s\); it needs at least 4/);
  assert.throws(() => apiHex('00'.repeat(MAX_APDU_BYTES + 1), 'command APDU', MAX_APDU_BYTES, 4), /65,545 bytes; at most 65,544/);
  assert.throws(() => apiHex(42, 'command APDU', MAX_APDU_BYTES), /must be a hex string/);
  assert.deepEqual([...apiHex('00 a4:04 00', 'x', 10)], [0x00, 0xa4, 0x04, 0x00]);
});

test('a VERIFY\'s reference data is the part the log masks; other commands have none', () => {
  assert.deepEqual(secretRanges(Uint8Array.from([0x00, 0x20, 0x00, 0x01, 0x04, 0x31, 0x32, 0x33, 0x34])), [[5, 9]]);
  assert.deepEqual(secretRanges(Uint8Array.from([0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0x02, 0x31, 0x32])), [[5, 9]], 'extended Lc: the length bytes with the data');
  assert.equal(secretRanges(Uint8Array.from([0x00, 0x20, 0x00, 0x01])), undefined, 'a retry-counter query has no data');
  assert.equal(secretRanges(Uint8Array.from([0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00])), undefined);
});

test('connect refuses an unknown reader, an unnamed caller, a bad share mode, naming what is wrong', async () => {
  const noReader = await refused(connect({ client: ME, reader: 'No Such Reader 00 00' }));
  assert.equal(noReader.code, 'NO_READER');
  assert.match(noReader.message, /No Such Reader 00 00/);
  const glob = await refused(connect({ client: ME, reader: 'Workbench*' }));
  assert.equal(glob.code, 'NO_READER', 'the API names readers exactly; a glob is not a reader');
  for (const who of [undefined, '', 'no-dot', 'a.b\nc', 'x'.repeat(300) + '.y']) {
    const r = await refused(connect({ client: who, reader: READER }));
    assert.equal(r.code, 'BAD_REQUEST');
    assert.match(r.message, /needs its id \(publisher\.name\)/);
  }
  assert.match((await refused(connect({ client: ME, reader: READER, share: 'direct' }))).message, /share is 'shared' or 'exclusive'/);
  assert.match((await refused(connect({ client: ME, reader: READER, protocol: 2 }))).message, /protocol is 0 \(T=0\) or 1 \(T=1\)/);
});

test('a connection transmits through the manager (T=0 GET RESPONSE done), logged under the caller\'s id', async () => {
  const c = await connect({ client: ME, reader: READER });
  assert.equal(c.reader, READER);
  assert.equal(c.protocol, 0);
  assert.match(c.atr, /^3B/);
  const r = await transmit(c.handle, '00 A4 04 00 07 F0 57 42 44 45 4D 4F 00');
  assert.equal(r.sw, '9000');
  assert.match(r.response, /^6F/, 'the FCI, fetched by GET RESPONSE');
  await until(() => entries.some((e) => e.kind === 'exchange' && e.auto === 'getResponse' && e.client === ME));
  const mine = entries.filter((e) => e.kind === 'exchange' && e.client === ME);
  assert.ok(mine.length >= 2, 'the command and its GET RESPONSE');
  assert.ok(mine.every((e) => e.reader === READER));

  // Bad arguments on an open connection: refused, nothing sent.
  const before = entries.length;
  assert.match((await refused(transmit(c.handle, '00 A4 0Z'))).message, /not hex: 'Z'/);
  const huge = await refused(transmit(c.handle, '00'.repeat(70_000)));
  assert.equal(huge.code, 'BAD_REQUEST');
  assert.match(huge.message, /command APDU is 70,000 bytes; at most 65,544 are allowed/);
  assert.match((await refused(transmit(c.handle, 'A'.repeat(5_000_000)))).message, /longer than 65,544 bytes/, 'a 5 MB string is refused unparsed');
  assert.match((await refused(transmit(c.handle, '00A4'))).message, /at least 4/);
  assert.match((await refused(client.sendRequest(ApiControlRequest.method, { client: ME, handle: c.handle, code: -1 }))).message, /control code is a whole number/);
  assert.match((await refused(client.sendRequest(ApiResetRequest.method, { client: ME, handle: c.handle, mode: 'hot' }))).message, /mode is 'cold' or 'warm'/);
  assert.match((await refused(client.sendRequest(ApiTransactionRequest.method, { client: ME, handle: c.handle, action: 'maybe' }))).message, /action is 'begin' or 'end'/);
  assert.equal(entries.filter((e) => e.kind === 'exchange').length, entries.slice(0, before).filter((e) => e.kind === 'exchange').length, 'no exchange for refused calls');

  // Another extension cannot use this handle; a handle nobody opened is "not open".
  const stolen = await refused(transmit(c.handle, SELECT, OTHER));
  assert.equal(stolen.code, 'BAD_REQUEST');
  assert.match(stolen.message, /is not open/);
  assert.match((await refused(transmit(9999, SELECT))).message, /Connection 9999 is not open: .*Connect again/);

  await client.sendRequest(ApiDisconnectRequest.method, { client: ME, handle: c.handle });
  assert.match((await refused(transmit(c.handle, SELECT))).message, /is not open/, 'closed is closed');
  await client.sendRequest(ApiDisconnectRequest.method, { client: ME, handle: c.handle }); // twice: harmless
});

test('a VERIFY sent through the API reaches the card but the log shows its PIN as **', async () => {
  const c = await connect({ client: ME, reader: READER });
  await transmit(c.handle, SELECT);
  const r = await transmit(c.handle, '00 20 00 01 04 31 32 33 34');
  assert.equal(r.sw, '9000', 'the card took the PIN');
  await until(() => entries.some((e) => e.kind === 'exchange' && e.command.startsWith('0020000104')));
  const verify = entries.find((e) => e.kind === 'exchange' && e.command.startsWith('0020000104'));
  assert.equal(verify?.kind === 'exchange' && verify.command, '0020000104********');
  assert.ok(!helper.wire().includes('31323334'), 'the PIN bytes never travel back to the extension');
  await client.sendRequest(ApiDisconnectRequest.method, { client: ME, handle: c.handle });
});

test('a transaction holds the reader: another extension\'s APDU waits for its end; exclusive is refused while shared; a cold reset answers the ATR', async () => {
  const a = await connect({ client: ME, reader: READER });
  const b = await connect({ client: OTHER, reader: READER });
  await client.sendRequest(ApiTransactionRequest.method, { client: ME, handle: a.handle, action: 'begin' });
  let list = await client.sendRequest(ReadersRequest.method, {}) as ReaderList;
  assert.equal(list.readers[0].inTransaction, true);
  const order: string[] = [];
  const theirs = transmit(b.handle, '00 84 00 00 08', OTHER).then((r) => { order.push('other'); return r; });
  await transmit(a.handle, SELECT);
  await transmit(a.handle, '00 84 00 00 08');
  order.push('mine done');
  await client.sendRequest(ApiTransactionRequest.method, { client: ME, handle: a.handle, action: 'end' });
  assert.equal((await theirs).sw, '9000');
  assert.deepEqual(order, ['mine done', 'other'], 'the other extension\'s APDU went after the transaction');
  list = await client.sendRequest(ReadersRequest.method, {}) as ReaderList;
  assert.equal(list.readers[0].inTransaction, false);
  const excl = await refused(connect({ client: OTHER, reader: READER, share: 'exclusive' }));
  assert.equal(excl.code, 'SHARING_VIOLATION');
  const reset = await client.sendRequest(ApiResetRequest.method, { client: ME, handle: a.handle, mode: 'cold' }) as { atr: string; protocol: number };
  assert.match(reset.atr, /^3B/);
  assert.equal(reset.protocol, 0);
  await client.sendRequest(ApiDisconnectRequest.method, { client: ME, handle: a.handle });
  await client.sendRequest(ApiDisconnectRequest.method, { client: OTHER, handle: b.handle });
});

test('a removed card fails the next call clearly, once; release closes every connection of one extension only', async () => {
  const open = async () => ((await client.sendRequest(ReadersRequest.method, {})) as ReaderList).readers[0].connections;
  const was = await open();
  const mine1 = await connect({ client: ME, reader: READER });
  const mine2 = await connect({ client: ME, reader: READER });
  const theirs = await connect({ client: OTHER, reader: READER });
  assert.equal(await open(), was + 3);
  assert.equal(await client.sendRequest(ApiReleaseRequest.method, { client: ME }), 2);
  assert.equal(await open(), was + 1, 'the other extension keeps its connection');
  assert.match((await refused(transmit(mine1.handle, SELECT))).message, /is not open/);
  assert.match((await refused(transmit(mine2.handle, SELECT))).message, /is not open/);
  assert.equal((await transmit(theirs.handle, SELECT, OTHER)).sw, '9000');

  await client.sendRequest('smartcard/simulator/removeCard', { reader: READER });
  const gone = await refused(transmit(theirs.handle, SELECT, OTHER));
  assert.equal(gone.code, 'CARD_REMOVED');
  await client.sendRequest('smartcard/simulator/insertCard', { reader: READER, card: 'T=0' });
  await client.sendRequest(ApiReleaseRequest.method, { client: OTHER });
});

test('a script run for an extension: its rows carry the id, a ${pin} prompt names it, the result has per-line status words', async () => {
  const text = [
    '00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00',
    '00 20 00 01 04 ${pin:"User PIN"} => 90 00',
    '00 84 00 00 08 => * 90 00',
  ].join('\n');
  const r = await client.sendRequest(RunScriptRequest.method, { text, uri: 'file:///ws/pin.apdu', client: ME }) as RunScriptResult;
  assert.equal(r.ok, true, r.failure?.message);
  assert.deepEqual(r.lines.map((l) => [l.line, l.sw]), [[1, '9000'], [2, '9000'], [3, '9000']]);
  assert.equal(asked.at(-1)?.client, ME, 'the prompt says which extension asks');
  await until(() => entries.some((e) => e.kind === 'scriptEnded' && e.runId === r.runId));
  const run = entries.filter((e) => 'runId' in e && e.runId === r.runId);
  assert.ok(run.length >= 5);
  for (const e of run) assert.equal((e as { client?: string }).client, ME, `${e.kind} carries the caller's id`);
  assert.ok(!JSON.stringify(r).includes('31323334') && !JSON.stringify(run).includes('31323334'), 'the PIN is neither returned nor logged');
  const bad = await refused(client.sendRequest(RunScriptRequest.method, { text, client: 'not an id' }));
  assert.match(bad.message, /needs its id/);
});

test('the decoders: ATR, command, status word, BER-TLV; bad input refused in words', async () => {
  const decode = (kind: string, hex: string) => client.sendRequest(ApiDecodeRequest.method, { kind, hex }) as Promise<Record<string, unknown>>;
  const atr = await decode('atr', '3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A');
  assert.ok((atr.lines as string[]).length > 2);
  const cmd = await decode('command', SELECT);
  assert.equal(cmd.insName, 'SELECT');
  assert.equal(cmd.case, '4S');
  assert.equal(cmd.lc, 7);
  const sw = await decode('sw', '63 C2');
  assert.equal(sw.retries, 2);
  assert.equal(sw.category, 'warning');
  const tlv = await decode('tlv', '6F 0A 84 08 F0 57 42 44 45 4D 4F 00');
  assert.equal(tlv.complete, true);
  assert.equal((tlv.nodes as Array<{ tag: string; children: Array<{ tag: string }> }>)[0].children[0].tag, '84');
  assert.match((await refused(decode('sw', '90'))).message, /status word has 1 byte\(s\); it needs at least 2/);
  assert.match((await refused(decode('sw', '900000'))).message, /at most 2/);
  assert.match((await refused(decode('atr', 'XYZ'))).message, /ATR is not hex/);
  assert.match((await refused(decode('emv', '00'))).message, /'atr', 'command', 'sw' or 'tlv'/);
});

test('two API objects claiming one id (two sessions): neither reaches nor releases the other\'s connections', async () => {
  const a = await connect({ client: ME, session: 'session-a', reader: READER });
  const b = await connect({ client: ME, session: 'session-b', reader: READER });
  const send = (handle: number, session: string) => client.sendRequest(ApiTransmitRequest.method, { client: ME, session, handle, apdu: SELECT }) as Promise<{ sw: string }>;
  assert.equal((await send(a.handle, 'session-a')).sw, '9000');
  assert.match((await refused(send(a.handle, 'session-b'))).message, /is not open/, 'B cannot use A\'s handle under the same id');
  assert.match((await refused(transmit(a.handle, SELECT))).message, /is not open/, 'nor can a caller with no session');
  assert.equal(await client.sendRequest(ApiReleaseRequest.method, { client: ME, session: 'session-b' }), 1, 'B\'s release closes B\'s only');
  assert.equal((await send(a.handle, 'session-a')).sw, '9000');
  assert.match((await refused(send(b.handle, 'session-b'))).message, /is not open/);
  assert.equal(await client.sendRequest(ApiReleaseRequest.method, { client: ME, session: 'session-a' }), 1);
});
