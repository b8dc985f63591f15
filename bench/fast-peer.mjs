#!/usr/bin/env node
// A minimal card for the vpcd protocol that answers at once, so a benchmark
// measures the reader side and not the card emulator. It connects to a vpcd
// (pcscd's or ours) like vicc does. Frames both ways: 2-byte big-endian length
// + payload; 0x04 → ATR, 0x00/0x01/0x02 → no reply, anything longer → 90 00.
//   node bench/fast-peer.mjs PORT [--host 127.0.0.1] [--timeout-ms 10000]
// Prints "connected" once the socket is up; exits when the reader side closes it
// or on SIGTERM.
import net from 'node:net';

const ATR = Buffer.from('3B951381018073FF01000B', 'hex'); // vicc's iso7816 ATR: T=1 only
const OK = Buffer.from([0x00, 0x02, 0x90, 0x00]);
const ATR_FRAME = Buffer.concat([Buffer.from([0, ATR.length]), ATR]);

const argv = process.argv.slice(2);
const port = Number(argv[0]);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const host = opt('--host', '127.0.0.1');
const deadline = Date.now() + Number(opt('--timeout-ms', '10000'));

function connect() {
  const socket = net.connect({ port, host });
  socket.setNoDelay(true);
  let buf = Buffer.alloc(0);
  socket.once('connect', () => process.stdout.write('connected\n'));
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const replies = [];
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      if (len === 1) { if (buf[2] === 0x04) replies.push(ATR_FRAME); } else if (len > 1) replies.push(OK);
      buf = buf.subarray(2 + len);
    }
    if (replies.length) socket.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
  });
  socket.on('error', (e) => {
    // The reader side may not listen yet: retry until the deadline, like a card being inserted later.
    if (e.code === 'ECONNREFUSED' && Date.now() < deadline) setTimeout(connect, 20);
    else if (e.code !== 'ECONNRESET') { process.stderr.write(`fast-peer: ${e.message}\n`); process.exitCode = 1; }
  });
  socket.on('close', () => { if (socket.bytesRead > 0 || socket.bytesWritten > 0) process.exit(); });
}

process.on('SIGTERM', () => process.exit(0));
connect();
