// Issue 18, items 3, 9 and 10: the Lc quick fix keeps Le, the hover explains P1/P2 with the
// log's decoder, and completion offers the everyday ISO 7816-4 commands first, with previews.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeActions, completions, hover } from '../../../server/src/lsp/features';
import { decodeExchange } from '../../../server/src/lsp/decodeExchange';
import { parseScript } from '../../../server/src/script/parser';
import { InsertTextFormat, MarkupKind, type CodeAction, type MarkupContent } from 'vscode-languageserver';

const apply = (line: string, a: CodeAction): string => {
  const edits = Object.values(a.edit!.changes!)[0];
  let out = line;
  for (const e of [...edits].sort((x, y) => y.range.start.character - x.range.start.character)) {
    out = out.slice(0, e.range.start.character) + e.newText + out.slice(e.range.end.character);
  }
  return out;
};
const fixesFor = (line: string) => codeActions(parseScript(line), 'file:///t.apdu', { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } });

test('item 3: SELECT by a 5-byte AID with Lc 07: the first fix keeps the trailing 00 as Le', () => {
  const line = '00 A4 04 00 07 A0 00 00 00 03 00 => 90 00';
  const fixes = fixesFor(line);
  assert.ok(fixes.length >= 2, `two readings offered, got ${fixes.map((f) => f.title).join(' | ')}`);
  assert.equal(fixes[0].title, 'Set Lc to 05, keep the last byte 00 as Le (5 data bytes)');
  assert.equal(fixes[0].isPreferred, true);
  const fixed = apply(line, fixes[0]);
  assert.equal(fixed, '00 A4 04 00 05 A0 00 00 00 03 00 => 90 00');
  assert.equal(parseScript(fixed).diagnostics.length, 0, 'the fixed line is a valid case 4 APDU');
  assert.equal(fixes[1].title, 'Set Lc to 06 (6 data bytes, no Le)');
  assert.equal(apply(line, fixes[1]), '00 A4 04 00 06 A0 00 00 00 03 00 => 90 00');
});

test('item 3: a case 3 command with a missing data byte offers the data reading first', () => {
  const line = '00 D6 00 00 05 01 02 03 04';
  const fixes = fixesFor(line);
  assert.equal(fixes[0].title, 'Set Lc to 04 (4 data bytes, no Le)');
  assert.equal(fixes[1].title, 'Set Lc to 03, keep the last byte 04 as Le (3 data bytes)');
});

test('item 3: the SELECT by AID snippet keeps Lc in step: the AID is one placeholder and Lc follows its length', () => {
  const sel = completions().find((c) => c.label === 'SELECT by AID')!;
  assert.ok(sel, 'the snippet exists');
  // Lc is not a separate tab stop the user must remember: it is the snippet's own computed value,
  // and editing the AID leaves a diagnostic whose preferred fix restores it (test above).
  assert.match(String(sel.insertText), /^00 A4 04 00 \$\{2:07\} \$\{1:F0574244454D4F\} 00/, "the AID is typed first, then Lc");
});

test('item 9: the hover explains P1/P2 with the same words as the log decoder', () => {
  const cases: Array<[string, RegExp]> = [
    ['00 A4 04 00 07 F0 57 42 44 45 4D 4F 00', /P1 04: select by DF name \(AID\)[\s\S]*P2 00: first or only occurrence, return FCI/],
    ['00 A4 02 0C 02 50 01', /P1 02: select EF under the current DF[\s\S]*P2 0C: first or only occurrence, no response data/],
    ['00 B0 00 10 2E', /P1P2 0010: offset 16/],
    ['00 B2 01 0C 00', /P1 01: record number 1[\s\S]*P2 0C: SFI 1, the record numbered P1/],
    ['00 20 00 81 00', /P2 81: /],
  ];
  for (const [line, re] of cases) {
    const h = hover(parseScript(line), { line: 0, character: 1 });
    const text = (h!.contents as MarkupContent).value;
    assert.match(text, re, line);
    const log = decodeExchange(line, '9000').command.params ?? [];
    for (const p of log) assert.ok(text.includes(`${p.field} ${p.value}: ${p.meaning}`), `the hover and the log agree on ${p.field} for ${line}`);
    assert.ok(log.length > 0, `the log decoder explains P1/P2 of ${line}`);
  }
});

test('item 10: snippets first, with documentation and a preview of what is inserted', () => {
  const items = completions();
  const sorted = [...items].sort((a, b) => (a.sortText ?? a.label).localeCompare(b.sortText ?? b.label));
  const firstKeyword = sorted.findIndex((c) => c.kind !== 15 /* Snippet */);
  const lastSnippet = sorted.map((c) => c.kind).lastIndexOf(15);
  assert.ok(lastSnippet < firstKeyword, 'every snippet sorts before every keyword');
  assert.match(sorted[0].label, /^SELECT/);
  const want = [
    'SELECT MF', 'SELECT by FID', 'SELECT by AID', 'SELECT by path', 'SELECT next',
    'READ BINARY', 'UPDATE BINARY', 'READ RECORD', 'UPDATE RECORD', 'GET DATA', 'GET RESPONSE',
    'VERIFY with PIN prompt', 'VERIFY retry counter', 'CHANGE REFERENCE DATA', 'RESET RETRY COUNTER',
    'GET CHALLENGE', 'INTERNAL AUTHENTICATE', 'EXTERNAL AUTHENTICATE', 'MANAGE CHANNEL open', 'MANAGE CHANNEL close', 'ENVELOPE',
  ];
  for (const label of want) {
    const c = items.find((i) => i.label === label);
    assert.ok(c, `completion offers ${label}`);
    assert.equal(c!.insertTextFormat, InsertTextFormat.Snippet);
    const doc = c!.documentation as MarkupContent;
    assert.equal(doc.kind, MarkupKind.Markdown, `${label} has markdown documentation`);
    assert.match(doc.value, /```apdu\n[0-9A-F]{2} [0-9A-F]{2} /, `${label} previews the inserted line`);
    assert.ok(!/\$\{\d|\$\d/.test(doc.value.split('```apdu\n')[1]), `${label}'s preview shows text, not snippet syntax`);
    assert.ok(c!.detail, `${label} has a one-line detail`);
    // Every snippet, as inserted with its defaults, is a valid line.
    const inserted = doc.value.split('```apdu\n')[1].split('\n```')[0];
    assert.equal(parseScript(inserted).diagnostics.filter((d) => d.severity === 'error').length, 0, `${label}: ${inserted}`);
  }
});

test('item 5: text is shown as text, quietly "not TLV"; TLV that parses is still a tree', () => {
  const text = Buffer.from('Hello from the Workbench demo card, EF 5001.\n', 'latin1');
  const d = decodeExchange('00B000002E', text.toString('hex') + '9000');
  assert.equal(d.response.tlv, undefined);
  assert.equal(d.response.tlvError, 'not TLV (text)');
  assert.doesNotMatch(JSON.stringify(d), /declares|Not BER-TLV/);
  assert.equal(d.response.isText, true);
  assert.equal(d.response.ascii, 'Hello from the Workbench demo card, EF 5001..');
  const fci = decodeExchange('00A4040007F0574244454D4F00', '6F0B8407F0574244454D4FA5009000');
  assert.ok(fci.response.tlv?.length, 'FCI decodes as TLV');
  assert.equal(fci.response.isText, undefined);
  assert.equal(fci.response.ascii, 'o....WBDEMO..');
  const rnd = decodeExchange('0084000008', '01FF02FE03FD04FC9000');
  assert.equal(rnd.response.tlvError, 'not TLV');
});
