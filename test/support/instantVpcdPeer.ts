// A vpcd card peer that answers at once (for counting the reader side's work per APDU, not timing it):
// a power-up (control byte 04) gets a T=1 ATR, every APDU `90 00`; each frame received is kept.
import net from 'node:net';

/** A free loopback port from the system (the vpcd driver then listens on it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

/** Connects to the vpcd driver listening on `port` as its card; the frames it receives go to `frames`. */
export function connectInstantPeer(port: number, frames?: Buffer[]): net.Socket {
  const peer = net.connect({ port, host: '127.0.0.1' });
  peer.setNoDelay(true);
  let buf = Buffer.alloc(0);
  peer.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      frames?.push(Buffer.from(buf.subarray(0, 2 + len)));
      const body = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      if (len === 1 && body[0] === 0x04) peer.write(Buffer.from('000b3b951381018073ff01000b', 'hex'));
      else if (len > 1) peer.write(Buffer.from([0, 2, 0x90, 0x00]));
    }
  });
  return peer;
}
