// The real transport (koffi) against a tiny PC/SC library compiled here in C with pcsc-lite's
// Linux types: reader names whose bytes are not ASCII go back to the library byte for byte (R93).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeReaderName, encodeReaderName, loadWinscard, type Winscard } from '../../../server/src/drivers/pcsc/transport';
import { PcscError } from '../../../server/src/drivers/pcsc/errors';
import { PNP_NOTIFICATION, SCARD_STATE } from '../../../server/src/drivers/pcsc/constants';

const UTF8_NAME = 'Lecteur é 00 00'; // "Lecteur \xC3\xA9 00 00": 16 bytes in UTF-8
const ASCII_NAME = 'Plain Reader 01 00';
const LATIN1_NAME = 'été 00 00'; // "\xE9t\xE9 00 00": not valid UTF-8, shown as latin1

// pcsc-lite's PCSC/wintypes.h and pcsclite.h on Linux: LONG/DWORD are long/unsigned long,
// SCARDCONTEXT/SCARDHANDLE long, SCARD_READERSTATE with rgbAtr[MAX_ATR_SIZE = 33].
const FAKE_PCSC_C = String.raw`
#include <string.h>
typedef long LONG;
typedef unsigned long DWORD;
typedef long SCARDCONTEXT;
typedef long SCARDHANDLE;
typedef struct {
  const char *szReader;
  void *pvUserData;
  DWORD dwCurrentState;
  DWORD dwEventState;
  DWORD cbAtr;
  unsigned char rgbAtr[33];
} SCARD_READERSTATE;
#define OK 0
#define E_INSUFFICIENT_BUFFER 0x80100008
#define E_UNKNOWN_READER 0x80100009
#define STATE_CHANGED 0x0002
#define STATE_PRESENT 0x0020
static const char *names[] = { "Lecteur \xC3\xA9 00 00", "Plain Reader 01 00", "\xE9t\xE9 00 00" };
#define N (sizeof names / sizeof names[0])
static const unsigned char atr[] = { 0x3B, 0x02, 0x14, 0x50 };
static const char *pnp = "\\\\?PnP?\\Notification";
static int find(const char *name) {
  for (unsigned i = 0; i < N; i++) if (strcmp(name, names[i]) == 0) return (int)i;
  return -1;
}
LONG SCardEstablishContext(DWORD scope, const void *r1, const void *r2, SCARDCONTEXT *ctx) { *ctx = 7; return OK; }
LONG SCardReleaseContext(SCARDCONTEXT ctx) { return OK; }
LONG SCardIsValidContext(SCARDCONTEXT ctx) { return OK; }
LONG SCardCancel(SCARDCONTEXT ctx) { return OK; }
LONG SCardListReaders(SCARDCONTEXT ctx, const char *groups, char *readers, DWORD *pcch) {
  DWORD need = 1;
  for (unsigned i = 0; i < N; i++) need += strlen(names[i]) + 1;
  if (readers == 0) { *pcch = need; return OK; }
  if (*pcch < need) { *pcch = need; return E_INSUFFICIENT_BUFFER; }
  char *p = readers;
  for (unsigned i = 0; i < N; i++) { strcpy(p, names[i]); p += strlen(names[i]) + 1; }
  *p = 0;
  *pcch = need;
  return OK;
}
LONG SCardGetStatusChange(SCARDCONTEXT ctx, DWORD timeout, SCARD_READERSTATE *rs, DWORD n) {
  for (DWORD i = 0; i < n; i++) {
    if (strcmp(rs[i].szReader, pnp) == 0) { rs[i].dwEventState = 0; continue; }
    if (find(rs[i].szReader) < 0) return E_UNKNOWN_READER;
    rs[i].dwEventState = STATE_PRESENT | STATE_CHANGED;
    rs[i].cbAtr = sizeof atr;
    memcpy(rs[i].rgbAtr, atr, sizeof atr);
  }
  return OK;
}
LONG SCardConnect(SCARDCONTEXT ctx, const char *reader, DWORD share, DWORD protocols, SCARDHANDLE *card, DWORD *active) {
  int i = find(reader);
  if (i < 0) return E_UNKNOWN_READER;
  *card = 100 + i;
  *active = 2;
  return OK;
}
LONG SCardReconnect(SCARDHANDLE card, DWORD share, DWORD protocols, DWORD init, DWORD *active) { *active = 2; return OK; }
LONG SCardDisconnect(SCARDHANDLE card, DWORD disposition) { return OK; }
LONG SCardBeginTransaction(SCARDHANDLE card) { return OK; }
LONG SCardEndTransaction(SCARDHANDLE card, DWORD disposition) { return OK; }
LONG SCardTransmit(SCARDHANDLE card, const void *send_pci, const unsigned char *send, DWORD send_len,
                   void *recv_pci, unsigned char *recv, DWORD *recv_len) {
  recv[0] = 0x90; recv[1] = 0x00; *recv_len = 2; return OK;
}
LONG SCardControl(SCARDHANDLE card, DWORD code, const void *in, DWORD in_len, void *out, DWORD out_len, DWORD *returned) {
  *returned = 0; return OK;
}
LONG SCardGetAttrib(SCARDHANDLE card, DWORD attr, unsigned char *buf, DWORD *len) { *len = 0; return OK; }
LONG SCardStatus(SCARDHANDLE card, char *name, DWORD *name_len, DWORD *state, DWORD *protocol,
                 unsigned char *atr_out, DWORD *atr_len) {
  const char *n = names[card - 100];
  DWORD need = strlen(n) + 2;
  *state = 0x34; *protocol = 2;
  if (atr_out) { memcpy(atr_out, atr, sizeof atr); *atr_len = sizeof atr; }
  if (name == 0) { *name_len = need; return OK; }
  if (*name_len < need) { *name_len = need; return E_INSUFFICIENT_BUFFER; }
  strcpy(name, n); name[need - 1] = 0;
  *name_len = need;
  return OK;
}
`;

function compiler(): string | undefined {
  for (const cc of ['cc', 'gcc', 'clang']) {
    if (spawnSync('sh', ['-c', `command -v ${cc}`], { stdio: 'ignore' }).status === 0) return cc;
  }
  return undefined;
}

const CC = process.platform === 'linux' ? compiler() : undefined;
const noCompiler = process.platform !== 'linux' ? 'the fake library uses pcsc-lite Linux types' : !CC && 'no C compiler (cc, gcc or clang) on PATH to build the fake PC/SC library; install gcc (npm run setup:system)';

test('reader names that are not ASCII round-trip through the real transport (fake libpcsclite in C)', { skip: noCompiler }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wb-fake-pcsc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const src = path.join(dir, 'fake-pcsc.c');
  const so = path.join(dir, 'libfakepcsc.so');
  writeFileSync(src, FAKE_PCSC_C);
  const built = spawnSync(CC!, ['-shared', '-fPIC', '-O1', '-o', so, src], { encoding: 'utf8' });
  assert.equal(built.status, 0, `${CC} failed: ${built.stderr}`);

  const w: Winscard = loadWinscard(so);
  const ctx = w.establishContext(2);
  const names = w.listReaders(ctx);
  assert.deepEqual(names, [UTF8_NAME, ASCII_NAME, LATIN1_NAME]);

  for (const name of names) {
    const { handle, protocol } = await w.connect(ctx, name, 2, 3);
    assert.equal(protocol, 2, name);
    assert.equal(w.status(handle).reader, name, `status of ${name}`);
    assert.equal((await w.statusAsync!(handle)).reader, name, `statusAsync of ${name}`);
    await w.disconnect(handle, 0);
  }

  const states = await w.getStatusChange(ctx, 0, [
    ...names.map((reader) => ({ reader, currentState: 0, eventState: 0, atr: new Uint8Array() })),
    { reader: PNP_NOTIFICATION, currentState: 0, eventState: 0, atr: new Uint8Array() },
  ]);
  assert.deepEqual(states.map((s) => s.reader), [...names, PNP_NOTIFICATION]);
  for (const s of states.slice(0, names.length)) {
    assert.ok(s.eventState & SCARD_STATE.PRESENT, `${s.reader}: eventState 0x${s.eventState.toString(16)}`);
    assert.deepEqual([...s.atr], [0x3b, 0x02, 0x14, 0x50], s.reader);
  }

  // A name the library never listed still reaches it, and its answer comes back as a PcscError.
  await assert.rejects(w.connect(ctx, 'Nobody 00 00', 2, 3), (e: unknown) => e instanceof PcscError && e.rv === 0x80100009);
  w.releaseContext(ctx);
});

test('Windows ANSI names: windows-1252 bytes show as their letters and encode back to the same bytes', () => {
  // "SCM Microsystems® Reader™ 0": 0xAE "®", 0x99 "™" (what SCardListReadersA gives on a windows-1252 system).
  const bytes = Buffer.from('SCM Microsystems\xAE Reader\x99 0', 'latin1');
  const shown = decodeReaderName(bytes, 'win32');
  assert.equal(shown, 'SCM Microsystems® Reader™ 0');
  assert.deepEqual([...encodeReaderName(shown, 'win32')], [...bytes, 0]);
  // Every byte 0x01–0xFF comes back as itself, the five bytes windows-1252 leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) too.
  const all = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
  const text = decodeReaderName(all, 'win32');
  assert.equal(new Set(text).size, 255);
  assert.deepEqual([...encodeReaderName(text, 'win32')], [...all, 0]);
  assert.equal(decodeReaderName(Buffer.of(0x80, 0x8a, 0x9f), 'win32'), '€ŠŸ');
  // A typed name with a character windows-1252 lacks: `?`, as WideCharToMultiByte's default character.
  assert.deepEqual([...encodeReaderName('Ч 00', 'win32')], [0x3f, 0x20, 0x30, 0x30, 0]);
});

test('pcsc-lite and macOS names: valid UTF-8 shows as UTF-8, anything else as latin1; a name never seen encodes as UTF-8', () => {
  for (const platform of ['linux', 'darwin'] as const) {
    assert.equal(decodeReaderName(Buffer.from('Lecteur \xC3\xA9 00 00', 'latin1'), platform), 'Lecteur é 00 00');
    assert.equal(decodeReaderName(Buffer.from('\xE9t\xE9 00 00', 'latin1'), platform), 'été 00 00');
    // Truncated UTF-8 (a 2-byte sequence cut after its first byte) is not taken for UTF-8.
    assert.equal(decodeReaderName(Buffer.from('ab\xC3', 'latin1'), platform), 'ab\u00C3');
    // A byte-order mark is part of the name, not dropped.
    assert.equal(decodeReaderName(Buffer.from('\xEF\xBB\xBFR 00 00', 'latin1'), platform), '\uFEFFR 00 00');
    assert.deepEqual([...encodeReaderName('Lecteur é 00 00', platform)], [...Buffer.from('Lecteur \xC3\xA9 00 00', 'latin1'), 0]);
    assert.deepEqual([...encodeReaderName(PNP_NOTIFICATION, platform)], [...Buffer.from('\\\\?PnP?\\Notification', 'latin1'), 0]);
  }
});
