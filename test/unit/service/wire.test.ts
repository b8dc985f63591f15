// The codec's struct sizes, offsets and constants against what gcc says about
// pcsc-lite's own headers: a C probe (wireProbe.c) is compiled at test time into a
// temp folder against the 2.3.3 (4:5) and 2.5.1 (4:6) trees, and against Debian
// 12's installed 1.9.9 public headers (4:4; its private winscard_msg.h is not
// installed, so 2.3.3's is used with 1.9.9's pcsclite.h and wintypes.h: the
// ChangeLog between them adds CMD_GET_READER_EVENTS and changes no struct).
// Then the framing: whole, split, pipelined and broken messages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Command, commandSinceMinor, decodeStruct, Disposition, encodeRequest, encodeStruct, HOST_LITTLE_ENDIAN, MAX_ATR_SIZE,
  MAX_BUFFER_SIZE, MAX_BUFFER_SIZE_EXTENDED, MAX_READERNAME, PCSCLITE_MAX_READERS_CONTEXTS, PCSCLITE_SHARING_EXCLUSIVE_CONTEXT,
  PCSCLITE_SHARING_LAST_CONTEXT, PCSCLITE_SHARING_NO_CONTEXT, PROTOCOL_VERSION_MAJOR, ProtocolBits, READER_NOT_INITIALIZED,
  ReaderStateBits, RequestDecoder, Rv, ShareMode, STRUCTS, type StructName,
} from '../../../server/src/service/wire';

const SOURCES = process.env.PCSCLITE_SOURCES ?? path.resolve('..', 'shared', 'data', 'pcsc-lite');
const PROBE = path.resolve('test/unit/service/wireProbe.c');
const hasGcc = spawnSync('gcc', ['--version']).status === 0;

interface ProbeStruct { struct: string; size: number; fields: Record<string, [number, number]> }
interface ProbeConst { const: string; value: number }
interface Probe { structs: Map<string, ProbeStruct>; consts: Map<string, number>; headers: string }

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-wireprobe-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

/** Generates pcsclite.h / pcscd.h from their .in templates (meson's configure_file does the same). */
function generated(dir: string, src: string, withPcsclite: boolean): void {
  fs.mkdirSync(dir, { recursive: true });
  const subst = (t: string) => t.replace(/@[A-Za-z_]+@/g, '"probe"').replace(/""probe""/g, '"probe"');
  fs.writeFileSync(path.join(dir, 'pcscd.h'), subst(fs.readFileSync(path.join(src, 'pcscd.h.in'), 'utf8')));
  if (withPcsclite) fs.writeFileSync(path.join(dir, 'pcsclite.h'), subst(fs.readFileSync(path.join(src, 'PCSC', 'pcsclite.h.in'), 'utf8')));
}

function runProbe(name: string, includes: string[], defines: string[]): Probe {
  const exe = path.join(tmp, `probe-${name}`);
  const args = [...defines, ...includes.map((i) => `-I${i}`)];
  const c = spawnSync('gcc', ['-w', ...args, '-o', exe, PROBE], { encoding: 'utf8' });
  assert.equal(c.status, 0, `gcc failed for ${name}:\n${c.stderr}`);
  const deps = spawnSync('gcc', ['-w', '-M', ...args, PROBE], { encoding: 'utf8' }).stdout;
  const r = spawnSync(exe, [], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const structs = new Map<string, ProbeStruct>();
  const consts = new Map<string, number>();
  for (const line of r.stdout.trim().split('\n')) {
    const o = JSON.parse(line) as ProbeStruct | ProbeConst;
    if ('struct' in o) structs.set(o.struct, o); else consts.set(o.const, o.value);
  }
  return { structs, consts, headers: deps };
}

function compareLayouts(p: Probe): void {
  for (const [name, l] of Object.entries(STRUCTS) as [StructName, (typeof STRUCTS)[StructName]][]) {
    const c = p.structs.get(name);
    assert.ok(c, `the probe printed no ${name}`);
    assert.equal(l.size, c.size, `sizeof(${name})`);
    assert.deepEqual(Object.keys(l.fields).sort(), Object.keys(c.fields).sort(), `fields of ${name}`);
    for (const [field, f] of Object.entries(l.fields)) {
      assert.deepEqual([f.offset, f.size], c.fields[field], `offsetof/sizeof(${name}.${field})`);
    }
  }
}

function compareConstants(p: Probe, minor: number): void {
  const want: Record<string, number> = {
    PROTOCOL_VERSION_MAJOR, PROTOCOL_VERSION_MINOR: minor, MAX_READERNAME, MAX_ATR_SIZE, MAX_BUFFER_SIZE, MAX_BUFFER_SIZE_EXTENDED,
    PCSCLITE_MAX_READERS_CONTEXTS, PCSCLITE_SHARING_LAST_CONTEXT, PCSCLITE_SHARING_NO_CONTEXT, PCSCLITE_SHARING_EXCLUSIVE_CONTEXT,
    READER_NOT_INITIALIZED, ...Rv, ...ReaderStateBits, ...ShareMode, ...Disposition,
    SCARD_PROTOCOL_UNDEFINED: ProtocolBits.SCARD_PROTOCOL_UNDEFINED, SCARD_PROTOCOL_T0: ProtocolBits.SCARD_PROTOCOL_T0,
    SCARD_PROTOCOL_T1: ProtocolBits.SCARD_PROTOCOL_T1, SCARD_PROTOCOL_RAW: ProtocolBits.SCARD_PROTOCOL_RAW,
    SCARD_PROTOCOL_T15: ProtocolBits.SCARD_PROTOCOL_T15,
  };
  for (const [k, v] of Object.entries(Command)) {
    if (commandSinceMinor(v) <= minor) want[k] = v;
  }
  let compared = 0;
  for (const [k, v] of Object.entries(want)) {
    if (k === 'SCARD_S_SUCCESS') continue; // not printed by the probe
    assert.ok(p.consts.has(k), `the probe printed no ${k}`);
    // Return codes are LONG in C (printed signed on some platforms): compare as uint32.
    assert.equal(p.consts.get(k)! >>> 0, v >>> 0, k);
    compared++;
  }
  assert.ok(compared > 60, `${compared} constants compared`);
  // One past the last command this version knows: a command beyond is unknown to its pcscd.
  const last = Math.max(...Object.values(Command).filter((c) => commandSinceMinor(c) <= minor));
  assert.equal(p.consts.get('CMD_ENUM_LAST'), last + 1, 'CMD_ENUM_LAST');
}

const trees = [
  { version: '2.3.3', minor: 5, readersH: false },
  { version: '2.5.1', minor: 6, readersH: true },
];

describe('wire structs match pcsc-lite\'s C headers (gcc probe)', () => {
  for (const t of trees) {
    const src = path.join(SOURCES, t.version, 'src');
    const skip = !hasGcc ? 'gcc is not installed (npm run setup:system)' : !fs.existsSync(src) ? `no pcsc-lite ${t.version} sources in ${SOURCES}` : false;
    test(`pcsc-lite ${t.version} (protocol 4:${t.minor}): every struct's size and field offsets, and the constants`, { skip }, () => {
      const gen = path.join(tmp, `gen-${t.version}`);
      generated(gen, src, true);
      const p = runProbe(t.version, [gen, src, path.join(src, 'PCSC')], t.readersH ? ['-DPROBE_READERS_H'] : []);
      compareLayouts(p);
      compareConstants(p, t.minor);
    });
  }

  const debianHeaders = '/usr/include/PCSC/pcsclite.h';
  const src233 = path.join(SOURCES, '2.3.3', 'src');
  const skip = !hasGcc ? 'gcc is not installed' : !fs.existsSync(debianHeaders) ? 'libpcsclite-dev is not installed (npm run setup:system)'
    : !fs.existsSync(src233) ? 'no pcsc-lite 2.3.3 sources' : false;
  test('Debian 12\'s pcsc-lite 1.9.9 public headers (4:4): same sizes and constants', { skip }, () => {
    const version = fs.readFileSync(debianHeaders, 'utf8').match(/PCSCLITE_VERSION_NUMBER\s+"([^"]+)"/)?.[1];
    assert.equal(version, '1.9.9', 'Debian 12 ships pcsc-lite 1.9.9');
    const gen = path.join(tmp, 'gen-1.9.9');
    generated(gen, src233, false);
    const p = runProbe('1.9.9', [gen, '/usr/include/PCSC', src233], []);
    assert.match(p.headers, /\/usr\/include\/PCSC\/pcsclite\.h/, 'compiled against the installed 1.9.9 pcsclite.h');
    assert.match(p.headers, /\/usr\/include\/PCSC\/wintypes\.h/);
    compareLayouts(p);
    assert.equal(p.consts.get('MAX_READERNAME'), MAX_READERNAME);
    assert.equal(p.consts.get('MAX_BUFFER_SIZE_EXTENDED'), MAX_BUFFER_SIZE_EXTENDED);
    assert.equal(p.consts.get('PCSCLITE_MAX_READERS_CONTEXTS'), PCSCLITE_MAX_READERS_CONTEXTS);
  });
});

describe('framing', () => {
  const version = encodeRequest(Command.CMD_VERSION, encodeStruct('version_struct', { major: 4, minor: 6 }));

  test('a CMD_VERSION whole, then byte by byte, decodes to the same request', () => {
    const d = new RequestDecoder();
    d.push(version);
    const whole = d.next();
    assert.ok(whole && 'request' in whole);
    assert.equal(whole.request.command, Command.CMD_VERSION);
    assert.deepEqual(whole.request.body, { major: 4, minor: 6, rv: 0 });
    assert.equal(d.next(), null);
    const d2 = new RequestDecoder();
    for (let i = 0; i < version.length; i++) {
      assert.equal(d2.next(), null, `complete after ${i} bytes`);
      d2.push(version.subarray(i, i + 1));
    }
    const split = d2.next();
    assert.ok(split && 'request' in split);
    assert.deepEqual(split.request.body, whole.request.body);
  });

  test('the header is host byte order: size then command, both uint32', () => {
    const h = new DataView(version.buffer);
    assert.equal(h.getUint32(0, HOST_LITTLE_ENDIAN), 12);
    assert.equal(h.getUint32(4, HOST_LITTLE_ENDIAN), 0x11);
  });

  test('TRANSMIT carries cbSendLength bytes after its struct, not counted in the header', () => {
    const apdu = Uint8Array.from([0x00, 0xa4, 0x04, 0x00, 0x07, 1, 2, 3, 4, 5, 6, 7]);
    const body = encodeStruct('transmit_struct', { hCard: 7, ioSendPciProtocol: 2, ioSendPciLength: 8, cbSendLength: apdu.length, pcbRecvLength: 258 });
    const msg = encodeRequest(Command.SCARD_TRANSMIT, body, apdu);
    assert.equal(new DataView(msg.buffer).getUint32(0, HOST_LITTLE_ENDIAN), 32);
    const d = new RequestDecoder();
    d.push(msg.subarray(0, msg.length - 1));
    assert.equal(d.next(), null, 'one data byte missing: not complete');
    d.push(msg.subarray(msg.length - 1));
    const r = d.next();
    assert.ok(r && 'request' in r);
    assert.deepEqual([...r.request.data!], [...apdu]);
    assert.equal(r.request.body.hCard, 7);
  });

  test('pipelined requests come out one at a time, in order', () => {
    const est = encodeRequest(Command.SCARD_ESTABLISH_CONTEXT, encodeStruct('establish_struct', { dwScope: 2 }));
    const get = encodeRequest(Command.CMD_GET_READERS_STATE);
    const d = new RequestDecoder();
    d.push(Uint8Array.from([...version, ...est, ...get]));
    const got: number[] = [];
    for (let r = d.next(); r; r = d.next()) {
      assert.ok('request' in r);
      got.push(r.request.command);
    }
    assert.deepEqual(got, [Command.CMD_VERSION, Command.SCARD_ESTABLISH_CONTEXT, Command.CMD_GET_READERS_STATE]);
    assert.equal(d.bufferedBytes, 0);
  });

  test('unknown commands, commands pcscd has no case for, wrong sizes and overflows are typed errors that stick', () => {
    const cases: [Uint8Array, string, number][] = [
      [encodeRequest(0x99, new Uint8Array(4)), 'unknown-command', 0x99],
      [encodeRequest(Command.SCARD_LIST_READERS, new Uint8Array(0)), 'unknown-command', Command.SCARD_LIST_READERS],
      [encodeRequest(Command.SCARD_GET_STATUS_CHANGE, new Uint8Array(0)), 'unknown-command', Command.SCARD_GET_STATUS_CHANGE],
      [encodeRequest(Command.CMD_VERSION, new Uint8Array(8)), 'wrong-size', Command.CMD_VERSION],
      [encodeRequest(Command.CMD_GET_READERS_STATE, new Uint8Array(4)), 'wrong-size', Command.CMD_GET_READERS_STATE],
      [encodeRequest(Command.SCARD_TRANSMIT, encodeStruct('transmit_struct', { cbSendLength: MAX_BUFFER_SIZE_EXTENDED + 1 })), 'buffer-overflow', Command.SCARD_TRANSMIT],
      [encodeRequest(Command.SCARD_CONTROL, encodeStruct('control_struct', { cbSendLength: 0xffffffff })), 'buffer-overflow', Command.SCARD_CONTROL],
    ];
    for (const [bytes, kind, command] of cases) {
      const d = new RequestDecoder();
      d.push(bytes);
      const r = d.next();
      assert.ok(r && 'error' in r, `${kind}: ${JSON.stringify(r)}`);
      assert.equal(r.error.kind, kind);
      assert.equal(r.error.command, command);
      d.push(version);
      const again = d.next();
      assert.ok(again && 'error' in again && again.error.kind === kind, 'after an error the decoder stays failed');
      assert.equal(d.bufferedBytes, 0, 'and holds nothing');
    }
  });

  test('half a message at the end of the connection is "truncated"; a clean end is not', () => {
    const d = new RequestDecoder();
    d.push(version.subarray(0, 10));
    assert.equal(d.next(), null);
    const e = d.end();
    assert.equal(e?.kind, 'truncated');
    assert.equal(e?.command, Command.CMD_VERSION);
    const clean = new RequestDecoder();
    clean.push(version);
    clean.next();
    assert.equal(clean.end(), null);
  });

  test('structs round-trip; strings keep their NUL, ints their sign', () => {
    const long = 'R'.repeat(200);
    const c = decodeStruct('connect_struct', encodeStruct('connect_struct', { hContext: 0xfedcba98, szReader: long, hCard: -5, rv: Rv.SCARD_W_REMOVED_CARD }));
    assert.equal(c.hContext, 0xfedcba98);
    assert.equal(c.szReader, 'R'.repeat(MAX_READERNAME - 1));
    assert.equal(c.hCard, -5);
    assert.equal(c.rv, Rv.SCARD_W_REMOVED_CARD);
    // A name without any NUL in its 128 bytes is read as 127 bytes, as pcscd forces szReader[127] = 0.
    const raw = encodeStruct('connect_struct', {});
    raw.fill(0x41, 4, 4 + MAX_READERNAME);
    assert.equal((decodeStruct('connect_struct', raw).szReader as string).length, MAX_READERNAME - 1);
  });
});
