// The trace printer of `scard run` / `scard serve` (entryPrinter into BufferedOutput): an exchange's
// two lines are written as UTF-8 bytes straight into the output's buffer (issue 15, "Measured": the
// service's CPU per APDU), and must stay exactly formatEntry's text, in order with every other line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ExchangeEntry, LogEntry } from '../../../server/src/protocol';
import { BufferedOutput, entryPrinter, formatEntry } from '../../../server/src/script/trace';

/** A printer whose writes are kept as they came. */
function printer(limit?: number) {
  const writes: unknown[] = [];
  const out = new BufferedOutput((chunk) => { writes.push(chunk); }, limit);
  const print = entryPrinter(out, false);
  const text = () => writes.map((w) => (typeof w === 'string' ? w : Buffer.from(w as Uint8Array).toString('utf8'))).join('');
  return { out, print, writes, text };
}

/** What formatEntry makes of the entries, as the printer's text. */
function expected(entries: LogEntry[]): string {
  let s = '';
  for (const e of entries) {
    if (e.kind === 'readerAdded' || e.kind === 'cardInserted') continue;
    for (const l of formatEntry(e)) s += l + '\n';
  }
  return s;
}

const MEANINGS = ['Normal processing', 'Warning: end of file reached before Le bytes', 'Wrong length', 'Größe – falsch …', 'ok 😀', ''];
const CLIENTS = [undefined, 'python3 (pid 4711)', 'pcsc_scan (pid 12)', 'Jörg’s tool (pid 7)', '工具 (pid 9)'];
const AUTOS = [undefined, undefined, 'getResponse', 'resendWithLe', 'retryCounter'] as const;
const DURATIONS = [0, 0.001, 0.005, 0.125, 0.845, 1.005, 2.675, 9.994, 9.995, 9.999, 10, 10.5, 123.456, 4000.5, -1, Number.NaN, 0.3333333, 7.123456789];

function randomExchange(i: number): ExchangeEntry {
  const pick = <T>(a: readonly T[]) => a[Math.floor(Math.random() * a.length)];
  const hex = (n: number) => randomBytes(n).toString('hex').toUpperCase();
  const cmd = pick([hex(4), hex(5), hex(7), hex(13), hex(261), '0020000108' + '**'.repeat(8), hex(3).slice(1), '']);
  const e: ExchangeEntry = {
    kind: 'exchange', reader: 'Workbench Simulator 00 00', command: cmd, response: pick([hex(2 + Math.floor(Math.random() * 40)), '9000', hex(258), '6A8', '']),
    sw: '9000', swMeaning: pick(MEANINGS), swCategory: 'success', durationMs: pick(DURATIONS), seq: i, time: 0,
  } as ExchangeEntry;
  const auto = pick(AUTOS);
  if (auto) e.auto = auto;
  if (Math.random() < 0.5) e.line = 1 + Math.floor(Math.random() * 10_000);
  const client = pick(CLIENTS);
  if (client !== undefined) e.client = client;
  return e;
}

const others: LogEntry[] = [
  { kind: 'echo', message: 'échö: a line of the script’s own', seq: 0, time: 0 } as LogEntry,
  { kind: 'cardPowered', reader: 'r', atr: '3B8B8131FE45', protocol: 1, seq: 0, time: 0 } as LogEntry,
  { kind: 'readerAdded', reader: 'r', seq: 0, time: 0 } as LogEntry,
  { kind: 'scriptEnded', ok: true, message: '3 commands', seq: 0, time: 0 } as LogEntry,
];

test('exchanges come out as formatEntry\'s lines, in order with the other entries, whatever the buffer size', () => {
  for (const limit of [undefined, 40, 300, 4096]) {
    const entries: LogEntry[] = [];
    for (let i = 0; i < 3000; i++) entries.push(i % 7 === 3 ? others[i % others.length] : randomExchange(i));
    const { out, print, text } = printer(limit);
    for (const e of entries) print(e);
    out.flush();
    assert.equal(text(), expected(entries), `limit ${limit}`);
  }
});

test('an extended APDU\'s exchange (65,548 bytes of answer) is written whole, between the others', () => {
  const { out, print, text } = printer();
  const big = randomExchange(1);
  big.command = randomBytes(65_544).toString('hex').toUpperCase();
  big.response = randomBytes(65_548).toString('hex').toUpperCase();
  const entries = [randomExchange(0), big, randomExchange(2)];
  for (const e of entries) print(e);
  out.flush();
  const got = text();
  const want = expected(entries);
  assert.ok(got === want, `${got.length} characters printed, ${want.length} expected; first difference at ${[...want].findIndex((c, i) => got[i] !== c)}`);
});

test('the trace reaches the output as UTF-8 bytes, each write in a buffer of its own', () => {
  const { out, print, writes, text } = printer(64);
  const entries = [randomExchange(1), randomExchange(2), randomExchange(3), randomExchange(4)];
  print(entries[0]);
  out.flush();
  const first = writes[0];
  assert.ok(Buffer.isBuffer(first), `a write got ${typeof first}, not bytes`);
  const firstText = Buffer.from(first as Buffer).toString('utf8');
  for (const e of entries.slice(1)) print(e);
  out.line('after');
  out.flush();
  assert.equal(Buffer.from(first as Buffer).toString('utf8'), firstText, 'a later text changed an earlier write');
  assert.ok(writes.every((w) => Buffer.isBuffer(w)));
  assert.equal(text(), expected(entries) + 'after\n');
});

test('held text is written within the 20 ms timer, without a flush', async () => {
  const { print, writes, text } = printer();
  const e = randomExchange(1);
  print(e);
  assert.equal(writes.length, 0, 'held, not written per APDU');
  const t0 = Date.now();
  while (writes.length === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
  assert.equal(text(), expected([e]));
});
