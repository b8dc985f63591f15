// The helper (language server + reader manager) driven over in-memory streams,
// the way the extension drives it over IPC.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import {
  AskPinRequest, type AskPinParams, EventsNotification, type LogEntry, ReadersChangedNotification, ReadersRequest, RunScriptRequest,
  SimulatorInsertCardRequest, SimulatorRemoveCardRequest, type ReaderList, LogHistoryRequest,
} from '../../server/src/protocol';
import { sealedAnswer, startMemoryHelper, type MemoryHelper } from '../support/memoryHelper';

let helper: MemoryHelper;
let client: MessageConnection;
const entries: LogEntry[] = [];
const entryWaiters: Array<() => void> = [];
let started: Promise<ReaderList>;
const diagnostics = new Map<string, Array<{ message: string; range: { start: { line: number } } }>>();
const diagWaiters: Array<() => void> = [];

function until(check: () => boolean, waiters: Array<() => void>): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => { if (check()) resolve(); else waiters.push(poll); };
    poll();
  });
}

before(async () => {
  helper = await startMemoryHelper({
    initializationOptions: { simulator: { card: 'T=0' } },
    handlers: (c, key) => {
      c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => {
        entries.push(...p.entries);
        for (const w of entryWaiters.splice(0)) w();
      });
      c.onNotification('textDocument/publishDiagnostics', (p: { uri: string; diagnostics: never[] }) => {
        diagnostics.set(p.uri, p.diagnostics);
        for (const w of diagWaiters.splice(0)) w();
      });
      c.onRequest(AskPinRequest.method, (p: AskPinParams) => sealedAnswer(key, p, '1234'));
    },
  });
  client = helper.client;
  started = Promise.resolve(helper.started);
});

after(() => helper.stop());

test('announces started with the reader cache filled', async () => {
  const list = await started;
  assert.deepEqual(list.readers.map((r) => r.name), ['Workbench Simulator 00 00']);
  // Reader initialization: the card present at start is already powered, its ATR read and identified.
  assert.equal(list.readers[0].card?.powered, true);
  assert.match(list.readers[0].card?.atr ?? '', /^3B/);
  const again: ReaderList = await client.sendRequest(ReadersRequest.method, {});
  assert.equal(again.readerListCounter, 1);
});

test('publishes diagnostics with exact ranges for an opened .apdu document', async () => {
  const uri = 'file:///tmp/bad.apdu';
  client.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'apdu', version: 1, text: '00 A4 04 00\n00 B0 0\n' } });
  await until(() => diagnostics.has(uri), diagWaiters);
  const d = diagnostics.get(uri)!;
  assert.equal(d.length, 1);
  assert.equal(d[0].range.start.line, 1);
  assert.match(d[0].message, /odd number of hex digits/);
  const lenses: Array<{ command: { title: string; arguments: unknown[] } }> = await client.sendRequest('textDocument/codeLens', { textDocument: { uri } });
  assert.deepEqual(lenses.map((l) => l.command.title), ['▶ Run', 'Run line', 'Run to here']);
  const hover: { contents: { value: string } } = await client.sendRequest('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 3 } });
  assert.match(hover.contents.value, /INS A4/);
});

test('completion, outline and quick fixes come from the helper', async () => {
  const uri = 'file:///tmp/features.apdu';
  const text = '# do not exit here\nrepeat 2\n00 A4 04 00 07 F0 57\nend\n00 84 00 00 08 => 90 00\n';
  client.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'apdu', version: 1, text } });
  await until(() => diagnostics.has(uri), diagWaiters);
  const items: Array<{ label: string }> = await client.sendRequest('textDocument/completion', { textDocument: { uri }, position: { line: 4, character: 0 } });
  for (const l of ['SELECT by AID', 'VERIFY with PIN prompt', 'GET RESPONSE', 'repeat']) assert.ok(items.some((i) => i.label === l), l);
  const symbols: Array<{ name: string; children?: unknown[] }> = await client.sendRequest('textDocument/documentSymbol', { textDocument: { uri } });
  assert.deepEqual(symbols.map((x) => x.name), ['repeat 2', '00 84 00 00 08']);
  const actions: Array<{ title: string; edit: { changes: Record<string, Array<{ newText: string }>> } }> = await client.sendRequest('textDocument/codeAction', {
    textDocument: { uri }, range: { start: { line: 0, character: 0 }, end: { line: 2, character: 30 } }, context: { diagnostics: [] },
  });
  assert.deepEqual(actions.map((a) => a.title).sort(), [
    "Reword 'exit' so scriptor does not stop here", 'Set Lc to 01, keep the last byte 57 as Le (1 data byte)', 'Set Lc to 02 (2 data bytes, no Le)',
  ]);
  const lc = actions.find((a) => a.title.startsWith('Set Lc'))! as { isPreferred?: boolean; edit: { changes: Record<string, Array<{ newText: string }>> } };
  assert.equal(lc.edit.changes[uri][0].newText, '02');
  assert.equal(lc.isPreferred, true, 'the likelier reading is the preferred fix');
});

test('runs a script on the T=0 card with automatic GET RESPONSE, streaming exchanges', async () => {
  await started;
  const result = await client.sendRequest(RunScriptRequest.method, {
    text: '00 A4 04 00 07 F0 57 42 44 45 4D 4F 00 => 6F * 90 00\n00 20 00 01 04 ${pin:"PIN"} => 90 00', uri: 'file:///x.apdu',
  }) as { ok: boolean; runId: number; commands: number; failure?: { message: string } };
  assert.equal(result.ok, true, result.failure?.message);
  assert.equal(result.commands, 2);
  await until(() => entries.some((e) => e.kind === 'scriptEnded' && e.runId === result.runId), entryWaiters);
  const mine = entries.filter((e) => e.kind === 'exchange' && e.runId === result.runId);
  assert.deepEqual(mine.map((e) => e.kind === 'exchange' && [e.sw, e.auto ?? '']), [['6112', ''], ['9000', 'getResponse'], ['63C3', 'retryCounter'], ['9000', '']]);
  assert.ok(!JSON.stringify(entries).includes('31323334'), 'the PIN is masked');
  const history: { entries: LogEntry[] } = await client.sendRequest(LogHistoryRequest.method, {});
  assert.ok(history.entries.length >= entries.length - 1);
});

test('decodeAtr returns readable lines and the identification', async () => {
  const r = await client.sendRequest('smartcard/decodeAtr', { atr: '3B 95 13 81 01 80 73 FF 01 00 0B' }) as { lines: string[]; identified: string[] };
  assert.ok(r.lines.some((l) => /TA1 = 13/.test(l)), r.lines.join('\n'));
  assert.ok(r.identified.some((l) => /vsmartcard/.test(l)));
  await assert.rejects(client.sendRequest('smartcard/decodeAtr', { atr: 'zz' }), /not hex/);
});

test('a failing script reports the line; bad requests get clear errors', async () => {
  const result = await client.sendRequest(RunScriptRequest.method, { text: '00 A4 02 0C 02 99 99 => 90 00' }) as { ok: boolean; failure: { line: number; message: string } };
  assert.equal(result.ok, false);
  assert.equal(result.failure.line, 1);
  assert.match(result.failure.message, /6A 82/);
  await assert.rejects(client.sendRequest(RunScriptRequest.method, { text: 42 }), /needs the script text/);
  await assert.rejects(client.sendRequest(SimulatorRemoveCardRequest.method, { reader: 'Nope*' }), /No reader matches 'Nope\*'/);
  await assert.rejects(client.sendRequest(RunScriptRequest.method, { text: '', reader: 42 }), /reader must be a string/);
  await assert.rejects(client.sendRequest(RunScriptRequest.method, { text: '', fromLine: -3 }), /fromLine must be a line number/);
  await assert.rejects(client.sendRequest(SimulatorRemoveCardRequest.method, { reader: 'x'.repeat(5000) }), /at most 256 characters/);
  await assert.rejects(client.sendRequest(SimulatorInsertCardRequest.method, { reader: 'Workbench*', card: 'T=2' }), /card is 'T=0' or 'T=1'/);
  await assert.rejects(client.sendRequest('smartcard/cancelRun', {}), /needs the runId/);
});

test('removing and inserting the simulator card emits events and a new reader list', async () => {
  const changed: ReaderList[] = [];
  client.onNotification(ReadersChangedNotification.method, (p: ReaderList) => { changed.push(p); });
  const before = entries.length;
  await client.sendRequest(SimulatorRemoveCardRequest.method, { reader: 'Workbench Simulator 00 00' });
  await client.sendRequest(SimulatorInsertCardRequest.method, { reader: 'Workbench*', card: 'T=1' });
  // The inserted card is initialized (powered up, ATR read) by the manager right away.
  await until(() => entries.slice(before).filter((e) => e.kind === 'cardRemoved' || e.kind === 'cardInserted' || e.kind === 'cardPowered').length === 3, entryWaiters);
  const kinds = entries.slice(before).map((e) => e.kind);
  assert.deepEqual(kinds.filter((k) => k.startsWith('card')), ['cardRemoved', 'cardInserted', 'cardPowered']);
  const list: ReaderList = await client.sendRequest(ReadersRequest.method, {});
  assert.equal(list.readers[0].eventCount, 2);
  await assert.rejects(client.sendRequest(SimulatorInsertCardRequest.method, { reader: 'Workbench*' }), /already in this simulator reader/);
});
