// Reader names that are not ASCII through pcsc-lite 2.5.1's own pcscd (R93): two vpcd readers whose
// reader.conf FRIENDLYNAMEs are UTF-8 ("Lecteur é") and latin1 bytes ("\xE9t\xE9"), a scripted card
// in each, and the driver's transport over that build's libpcsclite. pcscd compares the name a client
// gives with strcmp (readerfactory.c 869; winscard_clnt.c 1887–1923 for SCardGetStatusChange).
// Run under `flock /tmp/wb-refstack.lock`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadWinscard, type Handle, type Winscard } from '../../server/src/drivers/pcsc/transport';
import { SCARD_STATE } from '../../server/src/drivers/pcsc/constants';
import { requireCommands } from '../support/system';
import { startBuiltPcscd, type BuiltPcscd } from '../support/builtPcscd';
import { freePort } from './stack';
import { ScriptedCard } from './scriptedCard';

const VPCD_LIB = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';
const skip = requireCommands('gcc', 'meson', 'ninja', 'flex', 'pkg-config') || (!fs.existsSync(VPCD_LIB) && `no ${VPCD_LIB} (vsmartcard-vpcd)`);

const READERS = [
  { conf: Buffer.from('Lecteur \xC3\xA9', 'latin1'), shown: 'Lecteur é' },
  { conf: Buffer.from('\xE9t\xE9', 'latin1'), shown: 'été' },
];

let tmp = '';
let daemon: BuiltPcscd | null = null;
const cards: ScriptedCard[] = [];
let w: Winscard;
let ctx: Handle = 0;
const savedSocket = process.env.PCSCLITE_CSOCK_NAME;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-names-'));
  const conf = path.join(tmp, 'reader.conf.d');
  fs.mkdirSync(conf);
  const ports: number[] = [];
  for (const [i, r] of READERS.entries()) {
    const port = await freePort();
    ports.push(port);
    const hex = `0x${port.toString(16)}`;
    // A copy of the driver per reader: vpcd keeps its slots in a global array indexed by the slot alone, not the
    // reader (ifd-vpcd.c: `ctx[Lun & 0xffff]`),
    // so two readers served by one loaded copy take each other's slots (the cards then show UNAVAILABLE).
    const lib = path.join(tmp, `libifdvpcd-${i}.so`);
    fs.copyFileSync(VPCD_LIB, lib);
    fs.writeFileSync(
      path.join(conf, `vpcd${i}`),
      Buffer.concat([Buffer.from('FRIENDLYNAME "'), r.conf, Buffer.from(`"\nDEVICENAME   /dev/null:${hex}\nLIBPATH      ${lib}\nCHANNELID    ${hex}\n`)]),
    );
  }
  daemon = await startBuiltPcscd('2.5.1', conf);
  for (const port of ports) {
    const card = new ScriptedCard();
    await card.insert(port);
    cards.push(card);
  }
  const url = pathToFileURL(path.resolve('scripts/pcsclite.mjs')).href;
  const { buildPcscliteDaemon } = (await import(url)) as { buildPcscliteDaemon(v: string): { dir: string } };
  process.env.PCSCLITE_CSOCK_NAME = daemon.socket; // the build's own default too; set against a caller's environment
  w = loadWinscard(path.join(buildPcscliteDaemon('2.5.1').dir, 'libpcsclite_real.so.1')); // its libpcsclite.so.1 is 2.x's dispatcher, which dlopens this one by name
  ctx = w.establishContext(2);
});

after(async () => {
  if (ctx) w.releaseContext(ctx);
  for (const c of cards) await c.remove();
  await daemon?.stop();
  if (savedSocket === undefined) delete process.env.PCSCLITE_CSOCK_NAME;
  else process.env.PCSCLITE_CSOCK_NAME = savedSocket;
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('pcscd 2.5.1: a UTF-8 and a latin1 reader name are listed readably, show their cards, connect, and SCardStatus gives them back', { skip }, async () => {
  // pcscd adds " NN SS" to each FRIENDLYNAME (NN: the reader's number among readers of that name; SS: the slot,
  // vpcd has two: the vicc on `port` is in slot 00, slot 01 listens on port + 1 and stays empty).
  const listed = w.listReaders(ctx).sort();
  assert.deepEqual(listed, READERS.flatMap((r) => [`${r.shown} 00 00`, `${r.shown} 00 01`]).sort());
  const shown = READERS.map((r) => `${r.shown} 00 00`);
  // Both cards: wait (10 s at most) until pcscd has powered each (PRESENT with its ATR).
  const ready = (s: { eventState: number; atr: Uint8Array }) => (s.eventState & SCARD_STATE.PRESENT) !== 0 && s.atr.length > 0;
  let states = await w.getStatusChange(ctx, 0, shown.map((reader) => ({ reader, currentState: 0, eventState: 0, atr: new Uint8Array() })));
  for (const deadline = Date.now() + 10_000; !states.every(ready) && Date.now() < deadline; ) {
    states = await w.getStatusChange(ctx, 1000, states.map((s) => ({ ...s, currentState: s.eventState & ~SCARD_STATE.CHANGED }))).catch(() => states);
  }
  for (const s of states) {
    assert.equal(s.eventState & SCARD_STATE.UNKNOWN, 0, `${s.reader}: eventState 0x${s.eventState.toString(16)}`);
    assert.ok(s.eventState & SCARD_STATE.PRESENT, `${s.reader}: eventState 0x${s.eventState.toString(16)}`);
    assert.ok(s.atr.length > 0, `${s.reader}: an ATR`);
  }
  for (const name of shown) {
    const { handle } = await w.connect(ctx, name, 2, 3);
    assert.equal((await w.statusAsync!(handle)).reader, name);
    assert.equal(w.status(handle).reader, name);
    await w.disconnect(handle, 0);
  }
});
