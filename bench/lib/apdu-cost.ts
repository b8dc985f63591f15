// In-process side of bench/apdu-cost.mjs: the reader side's work per APDU, bundled by it with
// esbuild from one source tree. Prints `MARK begin` / `MARK end` around the measured loop (after
// a forced collection when run with --expose-gc, so --trace-gc-nvp's `allocated=` between the
// marks is what the loop allocated) and `RESULT {json}`.
//   apdu-cost vpcd PORT N TRACEFILE   engine + manager + vpcd driver (a card peer connects to PORT),
//                                     the trace printed to TRACEFILE as `scard run` prints it
//   apdu-cost sim N                   Connection.transmit loop on the simulator (T=1)
// COLD=1: no warm-up run first (the bench's harness measures a fresh process). CURVE=W: also the
// process's CPU µs per APDU in each window of W APDUs (vpcd mode).
import fs from 'node:fs';
import { SimulatorDriver } from '../../server/src/drivers/simulator/driver';
import { createVpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { ReaderManager } from '../../server/src/manager/manager';
import { runScript } from '../../server/src/script/engine';
import { parseScript } from '../../server/src/script/parser';
import { BufferedOutput, entryPrinter } from '../../server/src/script/trace';

const gc = (globalThis as { gc?: () => void }).gc;
const mark = (s: string): void => { gc?.(); fs.writeSync(1, `MARK ${s}\n`); };
const SELECT_MF = Uint8Array.of(0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00);

/** CPU ticks (utime + stime) per thread: the main thread vs V8's workers (compiler, GC). */
function threadTicks(): number[] {
  return fs.readdirSync('/proc/self/task').sort((a, b) => Number(a) - Number(b)).map((t) => {
    const stat = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  });
}

async function main(): Promise<void> {
  const [mode, a, b, c] = process.argv.slice(2);
  const vpcd = mode === 'vpcd';
  const n = Number(vpcd ? b : a);
  const m = new ReaderManager([vpcd ? createVpcdDriver({ ports: [Number(a)] }) : new SimulatorDriver({ card: 'T=1' })], { historySize: 0 });
  await m.start();
  const reader = m.list().readers[0].name;
  let fd = -1;
  let out: BufferedOutput | undefined;
  if (vpcd) {
    fd = fs.openSync(c, 'w');
    out = new BufferedOutput((t) => fs.writeSync(fd, t));
    m.onEntry(entryPrinter(out, false));
  }
  fs.writeSync(2, 'LISTENING\n');
  await m.waitForCard(reader, true, 20_000);
  const cold = process.env.COLD === '1';
  let cpu: NodeJS.CpuUsage;
  let ticks0: number[];
  const curve: number[] = [];
  if (vpcd) {
    const line = '00 A4 00 0C 02 3F 00\n';
    const script = parseScript(line.repeat(n));
    // A Cancel signal, as `scard run` (SIGINT) and the helper (the run's Cancel) give every run.
    const signal = new AbortController().signal;
    if (!cold) await runScript(parseScript(line.repeat(2000)), { manager: m, reader, signal });
    const w = Number(process.env.CURVE ?? 0);
    let last: NodeJS.CpuUsage;
    const onProgress = w > 0 ? (done: number): void => {
      if (done % w) return;
      const u = process.cpuUsage(last);
      curve.push((u.user + u.system) / w);
      last = process.cpuUsage();
    } : undefined;
    mark('begin');
    ticks0 = threadTicks();
    const cpu0 = process.cpuUsage();
    last = cpu0;
    const r = await runScript(script, { manager: m, reader, onProgress, signal });
    out?.flush();
    cpu = process.cpuUsage(cpu0);
    if (!r.ok) throw new Error(String(r.failure?.message));
  } else {
    const conn = await m.connect(reader, {});
    if (!cold) for (let i = 0; i < 2000; i++) await conn.transmit(SELECT_MF);
    mark('begin');
    ticks0 = threadTicks();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) await conn.transmit(SELECT_MF);
    cpu = process.cpuUsage(cpu0);
    await conn.close();
  }
  const ticks = threadTicks();
  mark('end');
  const tickUs = 1e6 / 100; // CLK_TCK
  const mainUs = ((ticks[0] - ticks0[0]) * tickUs) / n;
  const allUs = ticks.reduce((s, t, i) => s + t - (ticks0[i] ?? 0), 0) * tickUs / n;
  fs.writeSync(1, `RESULT ${JSON.stringify({ cpuUs: (cpu.user + cpu.system) / n, userUs: cpu.user / n, systemUs: cpu.system / n, mainThreadUs: mainUs, workerThreadsUs: allUs - mainUs, ...(curve.length ? { curve } : {}) })}\n`);
  await m.stop();
  if (fd >= 0) fs.closeSync(fd);
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
