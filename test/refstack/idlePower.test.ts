// pcscd's on-demand power (R77) and a DIRECT connect asking for SCARD_PROTOCOL_RAW (R78), compared: one pyscard
// client (Debian 12's libpcsclite 1.9.9) runs the same scenarios against the workbench service (the reader manager's
// vpcd driver, its default 5 s grace period) and against Debian's pcscd + vpcd, with the same scripted card
// (scriptedCard.ts) in `Virtual PCD 00 00`, and the answers are compared step by step:
// - a SELECT's FCI still waits for GET RESPONSE when the client connects again at once (within the grace period),
//   and is gone after the grace period (the card was powered down and is powered up, i.e. reset, by the connect);
//   meanwhile the table keeps the card's bits and ATR, its cardProtocol UNDEFINED (a DIRECT connect answers it);
// - after a DIRECT connect asking for RAW, the reader's cardProtocol is RAW for every client, and a card handle's
//   Reconnect(LEAVE) must ask for RAW too (R80) until a reset.
// Run under `flock /tmp/wb-refstack.lock` (pcscd's vpcd uses fixed ports, pcscd the machine-wide socket).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { PcscServer } from '../../server/src/service/server';
import { ReaderManager } from '../../server/src/manager/manager';
import { VpcdDriver } from '../../server/src/drivers/vpcd/driver';
import { createPcscDriver } from '../../server/src/drivers/pcsc/driver';
import { fromHex } from '../../server/src/util/hex';
import { missingPyscard, requireCommands } from '../support/system';
import { freePort, loadRefStack, type RefStack, type StackProcess } from './stack';
import { ScriptedCard } from './scriptedCard';
import { clientEnv as env, startServiceStack, type ServiceStack } from './serviceStack';

const PY = '/usr/bin/python3';
const IDLE = path.resolve('test/refstack/py/pcsc_idle.py');
const READER = 'Virtual PCD 00 00';
/** Past the workbench's grace period (5 s, pcscd's PCSCLITE_POWER_OFF_GRACE_PERIOD); pcscd + vpcd power down sooner (no card-event thread: the next 400 ms poll). */
const WAIT_S = 7;
const skip = requireCommands('pcscd') || missingPyscard(PY);

type Line = Record<string, unknown>;

/** One scenario to its end (bounded): its step lines. */
function scenario(args: string[], e: NodeJS.ProcessEnv, ms = 45_000): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(PY, [IDLE, ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${args.join(' ')}: no exit within ${ms} ms: ${out} ${err}`)); }, ms);
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) { reject(new Error(`${args.join(' ')}: exit ${code}: ${out} ${err}`)); return; }
      resolve(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line).filter((l) => 'step' in l));
    });
  });
}

const step = (lines: Line[], name: string) => lines.find((l) => l.step === name);
const ours: { idle?: Line[]; raw?: Line[] } = {};

describe('the workbench service (reader manager, vpcd driver, the scripted card) with Debian\'s libpcsclite client', { skip }, () => {
  let stack: ServiceStack | undefined;
  let server: PcscServer;
  const card = new ScriptedCard();
  before(async () => {
    const port = await freePort();
    stack = await startServiceStack([new VpcdDriver({ ports: [port] })], 'wb-idlepower-');
    server = stack.server;
    await card.insert(port);
  });
  after(async () => {
    await card.remove();
    await stack?.stop();
  });

  test('R77: the card keeps its state within the grace period, and is reset after it; the table keeps bits and ATR, cardProtocol UNDEFINED', { timeout: 60_000 }, async () => {
    ours.idle = await scenario(['idle', READER, String(WAIT_S)], env(server.socketPath));
    const lines = ours.idle;
    assert.equal(step(lines, 'GET RESPONSE within the grace period: the FCI still waits')?.sw, '9000', JSON.stringify(lines));
    assert.equal(step(lines, 'direct connect after the grace period: cardProtocol')?.protocol, 0, 'SCARD_PROTOCOL_UNDEFINED');
    assert.equal(step(lines, 'GET RESPONSE after the grace period: the card was reset')?.sw, '6985', 'nothing waits: the card was powered down and up');
    assert.equal(step(lines, 'direct status after the power-up')?.rv, 0, 'the on-demand power-up tells no handle');
  });

  test('R78: a DIRECT connect asking for RAW makes RAW the reader\'s protocol for every client', { timeout: 60_000 }, async () => {
    ours.raw = await scenario(['raw', READER], env(server.socketPath));
    const lines = ours.raw;
    assert.deepEqual(step(lines, 'direct connect asking for RAW'), { step: 'direct connect asking for RAW', rv: 0, protocol: 4 }, JSON.stringify(lines));
    assert.equal(step(lines, 'shared transmit, its T=1 PCI')?.rv, 0x8010000f, 'SCARD_E_PROTO_MISMATCH');
    assert.equal(step(lines, 'a new shared T0|T1 connect')?.rv, 0x8010000f, 'SCARD_E_PROTO_MISMATCH');
    assert.equal(step(lines, 'shared reconnect LEAVE, T0|T1')?.rv, 0x8010000f, 'R80: SCARD_E_PROTO_MISMATCH');
    assert.deepEqual(step(lines, 'shared reconnect LEAVE, T0|T1|RAW'), { step: 'shared reconnect LEAVE, T0|T1|RAW', rv: 0, protocol: 4 });
    assert.equal(step(lines, 'shared reconnect RESET, T0|T1')?.rv, 0, 'a reset negotiates again');
    assert.equal(step(lines, 'shared transmit after the reset, its PCI')?.rv, 0);
  });
});

describe('the same client against Debian\'s pcscd 1.9.9 + vpcd (the same scripted card): the same answers', { skip }, () => {
  let stack: RefStack;
  let pcscd: StackProcess | null = null;
  const card = new ScriptedCard();
  before(async () => {
    stack = await loadRefStack();
    pcscd = await stack.startPcscd();
    await card.insert(stack.VPCD_PORTS[0]);
  });
  after(async () => {
    await card.remove();
    await pcscd?.stop();
  });

  test('R77: the same answers, step by step, as the workbench service gave', { timeout: 60_000 }, async () => {
    assert.ok(ours.idle, 'the workbench run comes first (same file, earlier test)');
    assert.deepEqual(await scenario(['idle', READER, String(WAIT_S)], env(null)), ours.idle);
  });

  // Before the RAW scenario: its cardProtocol RAW stays in pcscd until the card is powered down, and the driver's
  // T=0|T=1 SCardConnect meanwhile is SCARD_E_PROTO_MISMATCH (pcscd's rule, winscard.c ~408–414).
  test('R77 on a system reader (PC/SC driver): the driver lets go of the card, so pcscd powers it down itself; the next connection gets it reset', { timeout: 60_000 }, async () => {
    const manager = new ReaderManager([createPcscDriver({ reconnectDelaysMs: [100, 200, 400] })], { historySize: 0 });
    await manager.start();
    try {
      const reader = manager.list().readers.find((r) => r.details?.['system reader name'] === READER);
      assert.ok(reader?.card, `the workbench lists ${READER} with its card`);
      const c = await manager.connect(reader.name);
      assert.equal((await c.transmit(fromHex('00A4040008F0574244454D4F00'), { getResponse: false })).sw, 0x610c);
      await c.disconnect('leave');
      const d = await manager.connect(reader.name);
      assert.equal((await d.transmit(fromHex('00C000000C'), { getResponse: false })).sw, 0x9000, 'at once: the FCI still waits');
      assert.equal((await d.transmit(fromHex('00A4040008F0574244454D4F00'), { getResponse: false })).sw, 0x610c);
      await d.disconnect('leave');
      // pcscd + vpcd power an unused card down at the next 400 ms poll; nothing tells a client (past it, bounded).
      await new Promise((r) => setTimeout(r, 2000));
      const e = await manager.connect(reader.name);
      assert.equal((await e.transmit(fromHex('00C000000C'), { getResponse: false })).sw, 0x6985, 'pcscd powered the card down: nothing waits');
      await e.disconnect('leave');
    } finally {
      await manager.stop();
    }
  });

  test('R78: the same answers as the workbench service gave', { timeout: 60_000 }, async () => {
    assert.ok(ours.raw, 'the workbench run comes first');
    assert.deepEqual(await scenario(['raw', READER], env(null)), ours.raw);
  });

});
