#!/usr/bin/env node
// A minimal card for the vpcd protocol that answers at once, so a benchmark
// measures the reader side and not the card emulator. It connects to a vpcd
// (pcscd's or ours) like vicc does. Frames both ways: 2-byte big-endian length
// + payload; 0x04 → ATR, 0x00/0x01/0x02 → no reply, anything longer → 90 00.
//   node bench/fast-peer.mjs PORT [--host 127.0.0.1] [--timeout-ms 10000] [--tagging]
// Prints "connected" once the socket is up; exits when the reader side closes it
// or on SIGTERM.
//
// --tagging: a card that remembers, for the "64 clients with transactions" row and
// its test (issue 15). It answers
//   80 E0 00 00 05 TAG(5) 05 → the TAG of the APDU before this one (5 zero bytes at
//                              first) + 90 00, and remembers this TAG
//   anything else            → 90 00
// A client that sends tags (client, transaction, index) inside a transaction sees its
// own previous tag in every answer but the first, unless another client's APDU came
// in between. The peer counts the tagged APDUs and prints {"tagged": N} on stdout
// when the reader side closes the socket or on SIGTERM.
import net from 'node:net';

const ATR = Buffer.from('3B951381018073FF01000B', 'hex'); // vicc's iso7816 ATR: T=1 only
const OK = Buffer.from([0x00, 0x02, 0x90, 0x00]);
const ATR_FRAME = Buffer.concat([Buffer.from([0, ATR.length]), ATR]);

const argv = process.argv.slice(2);
const port = Number(argv[0]);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const host = opt('--host', '127.0.0.1');
const deadline = Date.now() + Number(opt('--timeout-ms', '10000'));
const tagging = argv.includes('--tagging');
const me = tagging ? 'fast-peer --tagging' : 'fast-peer';

let last = Buffer.alloc(5);
let tagged = 0;
let reported = false;
const report = () => {
  if (!tagging || reported) return;
  reported = true;
  process.stdout.write(`${JSON.stringify({ tagged })}\n`);
};

function tagAnswer(apdu) {
  if (apdu.length >= 10 && apdu[0] === 0x80 && apdu[1] === 0xe0 && apdu[4] === 5) {
    tagged++;
    const out = Buffer.alloc(2 + 7);
    out.writeUInt16BE(7, 0);
    last.copy(out, 2);
    out[7] = 0x90;
    last = Buffer.from(apdu.subarray(5, 10));
    return out;
  }
  return OK;
}
const answer = tagging ? tagAnswer : () => OK;

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
      if (len === 1) { if (buf[2] === 0x04) replies.push(ATR_FRAME); } else if (len > 1) replies.push(answer(buf.subarray(2, 2 + len)));
      buf = buf.subarray(2 + len);
    }
    if (replies.length) socket.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
  });
  socket.on('error', (e) => {
    // The reader side may not listen yet: retry until the deadline, like a card being inserted later.
    if (e.code === 'ECONNREFUSED' && Date.now() < deadline) setTimeout(connect, 20);
    else if (e.code !== 'ECONNRESET') { process.stderr.write(`${me}: ${e.message}\n`); process.exitCode = 1; }
  });
  socket.on('close', () => { if (socket.bytesRead > 0 || socket.bytesWritten > 0) { report(); process.exit(); } });
}

process.on('SIGTERM', () => { report(); process.exit(0); });
connect();
