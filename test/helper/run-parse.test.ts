// "Run APDU Script" sends the editor's text and its uri; the helper has already parsed that open
// document for its diagnostics (textDocument/didOpen, didChange). A run of exactly that text uses
// that parse instead of parsing the text again; any other text (unsaved changes the helper has not
// heard of yet, another uri, no uri) is parsed from what the request carries, never from the document.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventsNotification, type LogEntry, RunScriptRequest, type RunScriptResult } from '../../server/src/protocol';
import { parseScript } from '../../server/src/script/parser';
import { startMemoryHelper, notified, type MemoryHelper } from '../support/memoryHelper';

const PublishDiagnosticsMethod = 'textDocument/publishDiagnostics';

const parsed: string[] = [];
const n = notified();
const published = new Set<string>();
const entries: LogEntry[] = [];
let helper: MemoryHelper;
before(async () => { helper = await startMemoryHelper({
  initializationOptions: { simulator: { card: 'T=1' } },
  helper: { parseScript: (text: string) => { parsed.push(text); return parseScript(text); } },
  handlers: (c) => {
    c.onNotification(PublishDiagnosticsMethod, (p: { uri: string }) => { published.add(p.uri); n.changed(); });
    c.onNotification(EventsNotification.method, (p: { entries: LogEntry[] }) => { entries.push(...p.entries); n.changed(); });
  },
}); });
after(() => helper.stop());

const run = (params: { text: string; uri?: string }): Promise<RunScriptResult> => helper.client.sendRequest(RunScriptRequest.method, params);

test('a run of an open document\'s text uses the parse made for its diagnostics; its results are the same as a fresh parse\'s', async () => {
  const uri = 'file:///tmp/run-parse-open.apdu';
  const text = '00 A4 00 0C 02 3F 00\nrepeat 3\n00 A4 00 0C 02 3F 00 => 90 00\nend\n';
  helper.client.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'apdu', version: 1, text } });
  await n.until(() => published.has(uri));
  assert.equal(parsed.filter((t) => t === text).length, 1, 'parsed once for the diagnostics');
  const first = await run({ text, uri });
  const second = await run({ text, uri });
  assert.equal(parsed.filter((t) => t === text).length, 1, 'the runs parsed the text again');
  const fresh = await run({ text }); // no uri: parsed from the request
  assert.equal(parsed.filter((t) => t === text).length, 2);
  for (const r of [first, second, fresh]) {
    assert.equal(r.ok, true);
    assert.equal(r.commands, 4);
    assert.deepEqual(r.lines.map((l) => [l.line, l.sw, l.count, l.ok]), [[1, '9000', 1, true], [3, '9000', 3, true]]);
  }
});

test('a run whose text differs from the open document (unsaved edits not yet synced) runs the request\'s text', async () => {
  const uri = 'file:///tmp/run-parse-changed.apdu';
  const open = '00 A4 00 0C 02 3F 00\n';
  helper.client.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'apdu', version: 1, text: open } });
  await n.until(() => published.has(uri));
  const text = '00 A4 00 0C 02 3F 00\n00 A4 00 0C 02 3F 00\n';
  const r = await run({ text, uri });
  assert.equal(r.commands, 2, 'the request\'s two commands, not the document\'s one');
  assert.ok(parsed.includes(text));
  // The same uri, now with a syntax error in the request: reported from the request's text.
  const bad = await run({ text: '00 A4 0\n', uri });
  assert.equal(bad.ok, false);
  assert.equal(bad.failure?.code, 'SCRIPT_SYNTAX');
});

test('another document\'s uri with the same text is parsed for itself (the open document of that uri decides)', async () => {
  const text = '00 A4 00 0C 02 3F 00 => 90 00\n';
  const uri = 'file:///tmp/run-parse-other.apdu';
  const before = parsed.filter((t) => t === text).length;
  const r = await run({ text, uri }); // not open
  assert.equal(r.ok, true);
  assert.equal(parsed.filter((t) => t === text).length, before + 1);
  assert.ok(entries.some((e) => e.kind === 'scriptEnded' && (e as { file?: string }).file === uri));
});
