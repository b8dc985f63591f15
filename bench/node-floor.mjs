#!/usr/bin/env node
// The floor for any Node reader side of the vpcd protocol: a bare socket server
// that sends one SELECT frame and waits for the answer, 10,000 times, with no
// manager, engine or driver (docs/benchmarks.md, "Second pass"). Starts
// bench/fast-peer.mjs as the card and prints its rate and CPU per APDU.
//   node bench/node-floor.mjs [N]
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const N = Number(process.argv[2] ?? 10_000);
const frame = Buffer.from([0, 7, 0x00, 0xa4, 0x00, 0x0c, 0x02, 0x3f, 0x00]);
const peerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fast-peer.mjs');
let peer;
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let sent = 0;
  let cpu0;
  let t0;
  socket.on('data', () => {
    if (sent === 0) { cpu0 = process.cpuUsage(); t0 = performance.now(); }
    if (sent++ < N) { socket.write(frame); return; }
    const cpu = process.cpuUsage(cpu0);
    const ms = performance.now() - t0;
    console.log(`bare Node reader side: ${Math.round(N / (ms / 1000))} APDU/s, ${((cpu.user + cpu.system) / N).toFixed(1)} µs CPU per APDU`);
    socket.destroy();
    server.close();
  });
  socket.write(Buffer.from([0, 1, 0x04])); // GET ATR: the first answer starts the clock
});
server.listen(0, '127.0.0.1', () => {
  peer = spawn(process.execPath, [peerScript, String(server.address().port)], { stdio: 'ignore' });
});
server.on('close', () => peer?.kill());
