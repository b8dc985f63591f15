// Issue 18 item 11: a retry-counter query (VERIFY without data) is a count, the PIN prompt
// says the tries left when the counter was just read, and the automatic check does not
// repeat a query the script itself just made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeStatusWordFor } from '../../../server/src/codecs/sw';
import { decodeExchange } from '../../../server/src/lsp/decodeExchange';
import type { ExchangeEntry } from '../../../server/src/protocol';
import { runScript } from '../../../server/src/script/engine';
import { parseScript } from '../../../server/src/script/parser';
import { simulatorManager } from './support';
import { pinPromptText } from '../../../extension/src/pinPrompt';

const QUERY = Uint8Array.of(0x00, 0x20, 0x00, 0x01);
const VERIFY_WRONG = Uint8Array.of(0x00, 0x20, 0x00, 0x01, 0x04, 0x30, 0x30, 0x30, 0x30);

test('63 Cx answering a VERIFY without data is a count; answering a VERIFY with a PIN it is a failure', () => {
  assert.equal(describeStatusWordFor(QUERY, 0x63, 0xC3).meaning, 'Retry counter: 3 tries left');
  assert.equal(describeStatusWordFor(QUERY, 0x63, 0xC1).meaning, 'Retry counter: 1 try left');
  assert.match(describeStatusWordFor(QUERY, 0x63, 0xC0).meaning, /no tries left/);
  assert.doesNotMatch(describeStatusWordFor(QUERY, 0x63, 0xC3).meaning, /failed/i);
  assert.equal(describeStatusWordFor(VERIFY_WRONG, 0x63, 0xC2).meaning, 'Verification failed, 2 retries left');
  assert.equal(describeStatusWordFor(QUERY, 0x90, 0x00).meaning, describeStatusWordFor(VERIFY_WRONG, 0x90, 0x00).meaning);
  // The log's expanded row says the same.
  assert.equal(decodeExchange('00200001', '63C3').response.swMeaning, 'Retry counter: 3 tries left');
  assert.equal(decodeExchange('00200001043030303030'.slice(0, 18), '63C2').response.swMeaning, 'Verification failed, 2 retries left');
});

async function setup() {
  const { m, sim, entries } = await simulatorManager();
  const card = sim.cardIn('sim:0')!;
  return { m, card, entries };
}

const SCRIPT = '00 20 00 01 => 63 C? | 90 00\n00 20 00 01 04 ${pin:"User PIN"} => 90 00';

test('the script\'s own query is not repeated by the automatic check; the log row reads as a count; the prompt gets the tries', async () => {
  const { m, card, entries } = await setup();
  card.reset();
  card.process(VERIFY_WRONG); // one wrong try: the counter says 2
  const asked: Array<{ label: string; tries?: number }> = [];
  const r = await runScript(parseScript(SCRIPT), {
    manager: m, pinPolicy: 'none', confirm: async () => true,
    askPin: async (label, where) => { asked.push({ label, ...(where?.tries !== undefined ? { tries: where.tries } : {}) }); return '1234'; },
  });
  assert.equal(r.ok, true, r.failure?.message);
  const exchanges = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange');
  assert.deepEqual(exchanges.filter((e) => e.auto === 'retryCounter').map((e) => e.command), [], 'no automatic repeat of the query');
  const query = exchanges.find((e) => e.command === '00200001')!;
  assert.equal(query.sw, '63C2');
  assert.equal(query.swMeaning, 'Retry counter: 2 tries left');
  assert.deepEqual(asked, [{ label: 'User PIN', tries: 2 }]);
  const { title, prompt } = pinPromptText({ label: 'User PIN (simulator: 1234)', reader: 'Workbench Simulator 00 00', uri: 'file:///ws/verify-pin.apdu', line: 9, tries: 2 });
  assert.match(prompt, /^2 tries left\./);
  assert.equal(`${title}\n${prompt}`.split('User PIN (simulator: 1234)').length - 1, 1, 'the label once, in the title');
  assert.match(pinPromptText({ label: 'PIN', tries: 1 }).prompt, /1 try left: a wrong PIN blocks it/);
  assert.doesNotMatch(pinPromptText({ label: 'PIN' }).prompt, /tries? left/);
});

test('without a query just before, the automatic check reads the counter once and the prompt gets its count', async () => {
  const { m, card, entries } = await setup();
  card.reset();
  const asked: Array<number | undefined> = [];
  // A statement between the query and the VERIFY: the count may be stale, so the check reads it again.
  const r = await runScript(parseScript('00 20 00 01 => 63 C? | 90 00\n00 A4 04 0C 07 F0 57 42 44 45 4D 4F => 90 00\n00 20 00 01 04 ${pin:"User PIN"} => 90 00'), {
    manager: m, pinPolicy: 'none', confirm: async () => true,
    askPin: async (_l, where) => { asked.push(where?.tries); return '1234'; },
  });
  assert.equal(r.ok, true, r.failure?.message);
  const auto = entries.filter((e): e is ExchangeEntry => e.kind === 'exchange' && e.auto === 'retryCounter');
  assert.equal(auto.length, 1);
  assert.deepEqual(asked, [3]);
});
