// What the APDU Log panel allocates when it is reopened and gets the whole history again (100,000
// rows in packed batches of 1,000, the first one a reset saying the history's length): the garbage
// a major collection in the workbench's shared heap meets later, in the scroll (docs/benchmarks.md,
// eighth pass). Measured with V8's sampling heap profiler, collected objects included, as
// bench/panel-profile.mjs --sample-reopen does in the real webview.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from 'node:inspector/promises';
import { Columns } from '../../../webview/src/columns';
import { showAll } from '../../../webview/src/filter';
import { LogModel } from '../../../webview/src/model';
import { packRows, unpackRows, type PackedRows } from '../../../webview/src/packed';
import type { ExchangeRow, LogRow } from '../../../webview/src/protocol';

const N = 100_000;
const CHUNK = 1000;

function exchange(seq: number, extra: Partial<ExchangeRow> = {}): ExchangeRow {
  return {
    kind: 'exchange', id: `1:${seq}`, time: 1_700_000_000_000 + seq, reader: 'Workbench Simulator 00 00', command: '00A4000C023F00', response: '9000',
    sw: '9000', swMeaning: 'Success', swCategory: 'success', durationMs: 0.05, line: 2, uri: 'file:///w/examples/panel100k.apdu', ...extra,
  };
}

/** The history as the extension sends it (extension/src/logPanel.ts sendHistory), carried as VS Code does (a fresh buffer per message). */
function history(rows: LogRow[]): PackedRows[] {
  const out: PackedRows[] = [];
  for (let i = 0; i < rows.length; i += CHUNK) {
    const p = packRows(rows.slice(i, i + CHUNK));
    out.push({ ...structuredClone(p), num: new Uint8Array(p.num) });
  }
  return out;
}

interface SampleNode { selfSize: number; callFrame: { functionName: string; url: string; lineNumber: number }; children: SampleNode[] }

/**
 * Bytes of JavaScript heap `fn` allocates (every allocation sampled, also those collected since),
 * and the largest allocating functions (said when the test fails).
 */
async function allocated(fn: () => void): Promise<{ bytes: number; top: string }> {
  const s = new Session();
  s.connect();
  try {
    await s.post('HeapProfiler.enable');
    await s.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    fn();
    const { profile } = await s.post('HeapProfiler.stopSampling');
    let bytes = 0;
    const by = new Map<string, number>();
    const walk = (node: SampleNode) => {
      bytes += node.selfSize;
      const k = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').pop()}:${node.callFrame.lineNumber + 1}`;
      if (node.selfSize) by.set(k, (by.get(k) ?? 0) + node.selfSize);
      for (const c of node.children) walk(c);
    };
    walk(profile.head as unknown as SampleNode);
    const top = [...by].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${v}`).join('; ');
    return { bytes, top };
  } finally {
    s.disconnect();
  }
}

function reopen(m: LogModel, batches: PackedRows[], total: number): void {
  batches.forEach((p, k) => assert.ok(m.receivePacked(p, k === 0, k === 0 ? total : undefined)));
  while (m.queuedRows) m.ingest(25_000);
}

test('a reopen\'s 100,000 rows are taken in without a JavaScript allocation per row', async () => {
  const rows = Array.from({ length: N }, (_, i) => exchange(i));
  const first = history(rows);
  const second = history(rows);
  // The panel before the reopen: warm (its code optimized, its tables made), as the bench's is.
  // Three reopens warm it: on a loaded machine V8's optimizing compiles (a background thread) can still
  // be pending after one, and code not yet optimized boxes numbers on the heap (CI saw 8.9 bytes a row once).
  const m = new LogModel({ ...showAll }, N);
  for (let k = 0; k < 3; k++) reopen(m, first, N);
  assert.equal(m.itemCount, N);
  // The least of up to three measured reopens: a late tier-up can make one of them allocate more; the
  // code this guards against allocated 18 MB in every one.
  const tries: { bytes: number; top: string }[] = [];
  for (let k = 0; k < 3 && !tries.some((t) => t.bytes < 600_000); k++) tries.push(await allocated(() => reopen(m, second, N)));
  assert.equal(m.itemCount, N);
  assert.equal(m.id(N - 1), `1:${N - 1}`);
  const { bytes, top } = tries.reduce((a, b) => (b.bytes < a.bytes ? b : a));
  // A pointer per row in one JavaScript array alone would be 800 KB (before: 18 MB, 184 bytes a
  // row, in this test); the batches' own views and maps (100 of them) are a few KB each.
  assert.ok(bytes < 600_000, `taking in ${N} rows allocated ${bytes} bytes of JavaScript heap (${(bytes / N).toFixed(1)} per row; tries: ${tries.map((t) => t.bytes).join(', ')}); the largest: ${top}`);
});

test('the columns are sized once from the history\'s length: no regrowth while it is taken in', () => {
  const c = new Columns();
  c.reserve(N);
  const buffers = [c.gen.buffer, c.seq.buffer, c.time.buffer, c.reader.buffer];
  const u = unpackRows(history(Array.from({ length: CHUNK }, (_, i) => exchange(i)))[0]);
  assert.ok(u);
  for (let i = 0; i < N; i++) c.pushPacked(u, i % CHUNK);
  assert.equal(c.length, N);
  assert.deepEqual([c.gen.buffer, c.seq.buffer, c.time.buffer, c.reader.buffer], buffers, 'the same buffers: never copied to a larger one');
  assert.equal(c.gen.length, N, 'exactly the history\'s length: no doubling past it');
  // Past the reservation (live rows after the history) the columns grow as before.
  c.pushPacked(u, 0);
  assert.equal(c.length, N + 1);
  assert.equal(c.row(N).id, '1:0');
});

test('a reset without a length (an older extension, a clear) still takes every row in', () => {
  const m = new LogModel({ ...showAll }, N);
  const batches = history(Array.from({ length: 3 * CHUNK }, (_, i) => exchange(i)));
  batches.forEach((p, k) => assert.ok(m.receivePacked(p, k === 0)));
  while (m.queuedRows) m.ingest(25_000);
  assert.equal(m.itemCount, 3 * CHUNK);
  assert.deepEqual(m.row(2 * CHUNK + 5), JSON.parse(JSON.stringify(exchange(2 * CHUNK + 5))));
});

test('a reset saying a length far beyond the bound reserves no more than the bound allows', () => {
  const m = new LogModel({ ...showAll }, 1000);
  const batches = history(Array.from({ length: 2 * CHUNK }, (_, i) => exchange(i)));
  batches.forEach((p, k) => assert.ok(m.receivePacked(p, k === 0, k === 0 ? 1e9 : undefined)));
  while (m.queuedRows) m.ingest(25_000);
  assert.equal(m.itemCount, 1000);
  assert.equal(m.id(999), `1:${2 * CHUNK - 1}`);
});

test('a measured height is kept beside the row\'s flags without changing the row; a trim keeps heights, hex and rare fields with their rows', () => {
  const c = new Columns();
  const rows: LogRow[] = [];
  for (let i = 0; i < 3000; i++) {
    rows.push(i % 7 === 3
      ? { kind: 'cardInserted', id: `1:${i}`, time: i, reader: 'R', atr: `3B${i.toString(16).padStart(4, '0')}`, protocol: 1 }
      : exchange(i, { response: i % 2 ? `${i.toString(16).padStart(40, 'A')}9000` : '9000', auto: i % 5 === 0 ? 'getResponse' : undefined, swCategory: i % 3 === 0 ? 'warning' : 'success' }));
  }
  for (const r of rows) c.push(r);
  const expected = (i: number) => JSON.parse(JSON.stringify(rows[i])) as LogRow;
  for (let i = 0; i < 3000; i += 1) c.setHeight(i, 40 + (i % 9) / 64);
  c.setHeight(5, undefined);
  for (let i = 0; i < 3000; i++) assert.deepEqual(c.row(i), expected(i), `row ${i}`);
  assert.equal(c.getHeight(5), undefined, 'forgotten');
  assert.equal(c.getHeight(7), 40 + 7 / 64);
  c.dropFront(1000);
  assert.equal(c.length, 2000);
  for (let i = 0; i < 2000; i++) {
    assert.deepEqual(c.row(i), expected(i + 1000), `row ${i + 1000} after the trim`);
    assert.equal(c.getHeight(i), 40 + ((i + 1000) % 9) / 64);
  }
  // Rows pushed after the trim share the short hex kept, and get their own long one.
  c.push(exchange(5000, { response: '9000' }));
  c.push(exchange(5001, { response: `${'C'.repeat(40)}9000` }));
  assert.deepEqual(c.row(2000), JSON.parse(JSON.stringify(exchange(5000, { response: '9000' }))));
  assert.deepEqual(c.row(2001), JSON.parse(JSON.stringify(exchange(5001, { response: `${'C'.repeat(40)}9000` }))));
  assert.equal(c.getHeight(2000), undefined, 'a new row is not measured');
});
