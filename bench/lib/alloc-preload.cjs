// Preloaded (`node --require`) into `scard serve` by bench/apdu-cost.mjs --mode serve: the first
// SIGUSR2 starts counting the heap allocated (v8.GCProfiler: what every collection freed, plus the
// heap's growth), the second stops and writes `ALLOC bytes` on stderr (fd 2, unbuffered).
'use strict';
const fs = require('node:fs');
const v8 = require('node:v8');

let profiler = null;
let heap0 = 0;
process.on('SIGUSR2', () => {
  if (!profiler) {
    profiler = new v8.GCProfiler();
    heap0 = v8.getHeapStatistics().used_heap_size;
    profiler.start();
    return;
  }
  const data = profiler.stop();
  const freed = data.statistics.reduce((s, g) => s + (g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize), 0);
  fs.writeSync(2, `ALLOC ${freed + v8.getHeapStatistics().used_heap_size - heap0}\n`);
  profiler = null;
});
