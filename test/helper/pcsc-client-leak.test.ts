// Issue 15: the secrets a PC/SC program sends through the workbench's service never
// reach a log. A pcsc-lite client over the real socket (the wire client speaks what
// winscard_clnt.c does) sends VERIFY (INS 20 and 21), CHANGE REFERENCE DATA (24),
// RESET RETRY COUNTER (2C) and PIN-pad control calls whose APDU templates carry PINs
// (FEATURE_VERIFY_PIN_DIRECT, which the reader lists, and MODIFY_PIN_DIRECT, which it
// does not), MCT_UNIVERSAL and libccid's escape (CCID_ESC_COMMAND) carrying a VERIFY, and
// GET_KEY, whose answer is the keys typed (review finding 5); every message the helper sends (its log lines included), the log history
// and the APDU Log's export (text trace and JSON Lines, built as the extension builds
// them), and `scard serve`'s output (text and JSON) hold none of the PINs' forms.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodePinVerify } from '../../server/src/codecs/pinpad';
import { LogHistoryRequest, PcscServiceStatusNotification, type LogEntry, type PcscServiceStatus } from '../../server/src/protocol';
import { Command } from '../../server/src/service/wire';
import { LogStore } from '../../extension/src/logStore';
import { jsonLines, traceText } from '../../webview/src/format';
import { GetKeySimulator, OWN_GET_KEY } from '../support/getKeySimulator';
import { startMemoryHelper, type MemoryHelper } from '../support/memoryHelper';
import { SocketTransport, WireClient } from '../support/pcscWireClient';
import { noPinAssertion } from '../support/pinForms';
import { startServe, type Serve } from '../support/scardServe';

const PIN = '582947';
const NEW_PIN = '613085';
const PUK = '90417326';
const assertNoPin = noPinAssertion(PIN, NEW_PIN, PUK);
const READER = 'Workbench Simulator 00 00';
const ascii = (digits: string): number[] => [...Buffer.from(digits, 'ascii')];
const apdu = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);

/** The secret-bearing commands a PC/SC program sends (on the demo card: the PIN is 1234, so they are refused). */
const SECRET_APDUS: Array<[string, Uint8Array]> = [
  ['VERIFY', apdu(0x00, 0x20, 0x00, 0x01, 0x06, ...ascii(PIN))],
  ['VERIFY (odd INS, BER-TLV data)', apdu(0x00, 0x21, 0x00, 0x01, 0x08, 0x53, 0x06, ...ascii(PIN))],
  ['VERIFY, extended length', apdu(0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x06, ...ascii(PIN))],
  ['CHANGE REFERENCE DATA', apdu(0x00, 0x24, 0x00, 0x01, 0x0c, ...ascii(PIN), ...ascii(NEW_PIN))],
  ['RESET RETRY COUNTER', apdu(0x00, 0x2c, 0x00, 0x01, 0x0e, ...ascii(PUK), ...ascii(NEW_PIN))],
  // R91: a VERIFY inside an ENVELOPE, whole, then split over two (the second carries the rest of the PIN).
  ['VERIFY in an ENVELOPE', apdu(0x00, 0xc2, 0x00, 0x00, 0x0b, 0x00, 0x20, 0x00, 0x01, 0x06, ...ascii(PIN))],
  ['VERIFY split over two ENVELOPEs (1)', apdu(0x00, 0xc2, 0x00, 0x00, 0x08, 0x00, 0x20, 0x00, 0x01, 0x06, ...ascii(PIN.slice(0, 3)))],
  ['VERIFY split over two ENVELOPEs (2)', apdu(0x00, 0xc2, 0x00, 0x00, 0x03, ...ascii(PIN.slice(3)))],
];

const IOCTL_VERIFY_PIN_DIRECT = 0x42330006; // the simulator's pinpad lists it (libccid's numbering)
const IOCTL_MODIFY_PIN_DIRECT = 0x42330007; // libccid's numbering; this reader does not list it
const IOCTL_MCT_UNIVERSAL = 0x42330009; // libccid's numbering of the tag (cyberJack drivers list their own)
const IOCTL_CCID_ESC_COMMAND = 0x42000001; // libccid: FEATURE_CCID_ESC_COMMAND is SCARD_CTL_CODE(1)

/** PIN_VERIFY_STRUCTURE whose APDU template carries the PIN (some programs fill it in themselves). */
const PIN_VERIFY = encodePinVerify({ timeout: 0, format: 'ascii', position: 0, minDigits: 6, maxDigits: 6, apdu: apdu(0x00, 0x20, 0x00, 0x01, 0x06, ...ascii(PIN)) });
/** PIN_MODIFY_STRUCTURE (PC/SC part 10 §2.5.3) with the old and new PINs in its APDU template. */
function pinModify(): Uint8Array {
  const template = [0x00, 0x24, 0x00, 0x01, 0x0c, ...ascii(PIN), ...ascii(NEW_PIN)];
  const header = [0, 0, 0x82, 0, 0, 0, 6, 6, 6, 0x01, 0x02, 0x03, 0x09, 0x04, 0, 1, 2, 0, 0, 0, template.length, 0, 0, 0];
  return Uint8Array.from([...header, ...template]);
}

/** SCardControl over the wire: the reply struct (and the answer bytes when it succeeded). */
async function control(c: WireClient, hCard: number, code: number, data: Uint8Array): Promise<number> {
  c.sendStruct(Command.SCARD_CONTROL, 'control_struct', { hCard, dwControlCode: code, cbSendLength: data.length, cbRecvLength: 258, dwBytesReturned: 0, rv: 0 }, data);
  const s = await c.readStruct('control_struct', 'CONTROL reply');
  if (s.rv === 0) await c.read(s.dwBytesReturned as number, 'CONTROL answer bytes');
  return s.rv as number;
}

/** Every secret command and PIN-pad call once, as a client of the service at `socket`. */
async function sendSecrets(socket: string, getKey = false): Promise<void> {
  const c = new WireClient(await SocketTransport.connect(socket));
  try {
    const hContext = await c.open(4);
    const conn = await c.connect(hContext, READER);
    assert.equal(conn.rv, 0, 'connect');
    const hCard = conn.hCard as number;
    for (const [what, command] of SECRET_APDUS) {
      const { s, response } = await c.transmit(hCard, command, conn.dwActiveProtocol as number);
      assert.equal(s.rv, 0, `${what}: transmitted`);
      assert.ok(response && response.length >= 2, `${what}: a status word`);
    }
    // The keypad answers; the PIN in the template is what must not be logged.
    await control(c, hCard, IOCTL_VERIFY_PIN_DIRECT, PIN_VERIFY);
    await control(c, hCard, IOCTL_MODIFY_PIN_DIRECT, pinModify());
    // CT-BCS (SAD 02, DAD 00) and an escape, each carrying a VERIFY to the card; answered or refused, they are logged.
    const verify = SECRET_APDUS[0][1];
    await control(c, hCard, IOCTL_MCT_UNIVERSAL, Uint8Array.from([0x02, 0x00, ...verify]));
    await control(c, hCard, IOCTL_CCID_ESC_COMMAND, Uint8Array.from([0xff, 0x00, 0x00, 0x00, verify.length, ...verify]));
    if (getKey) assert.equal(await control(c, hCard, OWN_GET_KEY, new Uint8Array(0)), 0, 'GET_KEY answered');
    // A direct handle (no card session): control goes to the reader.
    const direct = await c.connect(hContext, READER, 3, 0);
    assert.equal(direct.rv, 0, 'direct connect');
    await control(c, direct.hCard as number, IOCTL_VERIFY_PIN_DIRECT, PIN_VERIFY);
  } finally {
    c.transport.end();
  }
}

/** The simulator's pinpad reader, also listing GET_KEY at a code of its own: it answers the digits typed. */
let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-client-leak-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

test('helper: a client\'s VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER and PIN-pad calls are masked in its messages, its log, the history and the APDU Log export', async () => {
  let running: (s: PcscServiceStatus) => void = () => undefined;
  const ready = new Promise<PcscServiceStatus>((r) => { running = r; });
  let helper: MemoryHelper | undefined;
  try {
    helper = await startMemoryHelper({
      helper: { drivers: [new GetKeySimulator(PIN, { keypad: async () => '1234' })] },
      initializationOptions: { pcscService: { enabled: true, socketPath: path.join(tmp, 'helper', 'pcscd.comm') } },
      handlers: (c) => {
        c.onNotification(PcscServiceStatusNotification.method, (p: PcscServiceStatus) => { if (p.state === 'running') running(p); });
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const st = await Promise.race([ready, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the service did not run within 10 s')), 10_000); })]).finally(() => clearTimeout(timer));
    await sendSecrets(st.socketPath!, true);
    const { entries } = await helper.client.sendRequest(LogHistoryRequest.method, {}) as { entries: LogEntry[] };
    // What the client sent is in the log, masked: these are the rows to search.
    const commands = entries.flatMap((e) => (e.kind === 'exchange' || e.kind === 'control' ? [e.command] : []));
    assert.ok(commands.includes('0020000106************'), `VERIFY masked: ${commands.join(' ')}`);
    assert.ok(commands.includes('002C00010E****************************'), `RESET RETRY COUNTER masked: ${commands.join(' ')}`);
    // R91: the ENVELOPEs after their inner header, with their own length; the split PIN's second half whole.
    assert.deepEqual(commands.filter((c) => c.startsWith('00C2')), [`00C20000**00200001${'**'.repeat(7)}`, `00C20000**00200001${'**'.repeat(4)}`, `00C20000${'**'.repeat(4)}`]);
    assert.equal(entries.filter((e) => e.kind === 'control' && (e.code === IOCTL_VERIFY_PIN_DIRECT || e.code === IOCTL_MODIFY_PIN_DIRECT)).length, 3, 'the three PIN-pad calls are logged');
    const controls = entries.flatMap((e) => (e.kind === 'control' ? [e] : []));
    // Each control row names the program, as its exchanges do (the APDU Log's client filter, scard serve's lines).
    assert.deepEqual(controls.filter((e) => !/ \(pid \d+\)$/.test(e.client ?? '')).map((e) => e.code), [], 'control rows carry the client');
    assert.equal(controls.find((e) => e.code === IOCTL_MCT_UNIVERSAL)?.command, '**'.repeat(13), 'MCT_UNIVERSAL masked');
    assert.equal(controls.find((e) => e.code === IOCTL_CCID_ESC_COMMAND)?.command, '**'.repeat(16), 'the escape masked');
    assert.equal(controls.find((e) => e.code === OWN_GET_KEY)?.response, '**'.repeat(PIN.length), 'GET_KEY\'s answer masked');
    const store = new LogStore();
    store.newGeneration();
    store.addEntries(entries);
    assertNoPin(traceText(store.rows()), 'the APDU Log export (text trace)');
    assertNoPin(jsonLines(store.rows()), 'the APDU Log export (JSON Lines)');
    assertNoPin(JSON.stringify(entries), 'the log history');
    await new Promise((r) => setImmediate(r));
    assertNoPin(helper.wire(), 'the helper\'s messages to the extension (its log lines included)');
  } finally {
    await helper?.stop();
  }
});

/** Resolves once `done()` holds, checked on each chunk serve prints; rejects after `ms` whatever serve does. */
function printed(s: Serve, done: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => { if (done()) finish(); };
    const timer = setTimeout(() => { s.p.stdout!.off('data', check); reject(new Error(`serve did not print it within ${ms} ms: ${s.out()}`)); }, ms);
    const finish = (): void => { clearTimeout(timer); s.p.stdout!.off('data', check); resolve(); };
    s.p.stdout!.on('data', check);
    check();
  });
}

for (const json of [false, true]) {
  test(`scard serve${json ? ' --json' : ''} --pinpad --verbose: the client's secret commands and PIN-pad calls appear masked, their PINs nowhere`, async () => {
    const env = { ...process.env, SCARD_PIN: '1234' }; // the simulated keypad's digits (not the planted PINs)
    const s = await startServe(['--pinpad', '--verbose', '--simulator-pin', '1234', '--socket', path.join(tmp, json ? 'json' : 'text', 'pcscd.comm'), ...(json ? ['--json'] : [])], { env });
    try {
      await sendSecrets(s.socket);
      // serve prints in batches: wait (bounded, whether or not it prints more) for the last call's line.
      // The three PIN-pad calls (0x42330006 = 1110638598, 0x42330007 = 1110638599), the last one on the direct handle.
      const last = (o: string): boolean => (o.match(json ? /"code":111063859[89]\b/g : /^> CONTROL 111063859[89] /gm) ?? []).length >= 3;
      await printed(s, () => last(s.out()), 10_000);
      // MCT_UNIVERSAL (0x42330009 = 1110638601) and the escape (0x42000001 = 1107296257): masked.
      assert.match(s.out(), json ? /"code":1110638601,[^}]*"command":"(\*\*){13}"/ : /^> CONTROL 1110638601 (\*\* ){12}\*\*  \[node \(pid \d+\)\]$/m);
      assert.match(s.out(), json ? /"code":1107296257,[^}]*"command":"(\*\*){16}"/ : /^> CONTROL 1107296257 (\*\* ){15}\*\*  \[node \(pid \d+\)\]$/m);
      assert.match(s.out(), json ? /"command":"0020000106\*{12}"/ : /> 00 20 00 01 06 (\*\* ){5}\*\*/);
      // R91: the second half of the VERIFY split over two ENVELOPEs, masked whole.
      assert.match(s.out(), json ? /"command":"00C20000\*{8}"/ : /> 00 C2 00 00 (\*\* ){3}\*\* {2}\[/);
      assertNoPin(s.out(), `serve's ${json ? 'JSON Lines' : 'text'} output`);
      assertNoPin(s.err(), 'serve\'s stderr (--verbose)');
    } finally {
      await s.stop();
    }
  });
}
