// The PC/SC structure layouts the driver declares (PCSC_TYPES in transport.ts, laid out
// by koffi) against each platform's real headers, laid out by a real compiler
// (pcsc-layout/probe.c):
//  - Windows x64: mingw-w64's winscard.h, compiled with x86_64-w64-mingw32-gcc and run under wine64;
//  - Windows arm64: the same header, compiled with clang for aarch64-w64-mingw32;
//  - macOS x86_64 / arm64: pcsc-lite's __APPLE__ branch (shared/data/pcsc-lite), clang for
//    *-apple-macos; and Apple's own SmartCardServices headers when SMARTCARDSERVICES_SRC
//    names a copy (they cannot be fetched at test time);
//  - Linux x64: Debian's libpcsclite-dev headers, gcc, run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hasCommand, requireCommands } from '../support/system';
import { pcscLayout, type PcscLayout } from '../../server/src/drivers/pcsc/transport';

const PROBE = path.resolve('test/refstack/pcsc-layout/probe.c');
const WINE = hasCommand('wine64') ? 'wine64' : ['/usr/lib/wine/wine64', '/usr/lib/wine/wine'].find((p) => fs.existsSync(p));
const skip = requireCommands('x86_64-w64-mingw32-gcc', 'clang', 'gcc', ...(WINE ? [] : ['wine64']));
/** pcsc-lite's sources sit beside the repository (CI's fresh clone, a developer's checkout). */
const PCSC_LITE = process.env.PCSC_LITE_SRC
  ?? [path.resolve('..', 'shared', 'data', 'pcsc-lite', '2.5.1'), '/work/shared/data/pcsc-lite/2.5.1'].find((d) => fs.existsSync(d))
  ?? path.resolve('..', 'shared', 'data', 'pcsc-lite', '2.5.1');
const APPLE = process.env.SMARTCARDSERVICES_SRC; // a folder holding PCSC/winscard.h, PCSC/pcsclite.h, PCSC/wintypes.h
const MINGW_INCLUDE = '/usr/share/mingw-w64/include';
const CACHE = path.join(process.env.SMARTCARD_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'smartcard-workbench'));

let work: string;
before(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), 'pcsc-layout-')); });
after(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

/** The probe's values, in its order, as a layout. */
function asLayout(v: number[]): PcscLayout {
  assert.equal(v.length, 15, `the probe prints 15 values, got ${v.join(' ')}`);
  return {
    DWORD: v[0], LONG: v[1], SCARDHANDLE: v[2], SCARDCONTEXT: v[3],
    SCARD_READERSTATE: { size: v[4], szReader: v[5], pvUserData: v[6], dwCurrentState: v[7], dwEventState: v[8], cbAtr: v[9], rgbAtr: v[10], rgbAtrLength: v[11] },
    SCARD_IO_REQUEST: { size: v[12], dwProtocol: v[13], cbPciLength: v[14] },
  };
}

function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Compiles the probe for a target without running it: the values are read from the LLVM IR's constant array. */
function compileOnly(target: string, flags: string[]): PcscLayout {
  const ir = sh('clang', [`--target=${target}`, ...flags, '-S', '-emit-llvm', '-o', '-', PROBE]);
  const m = /@probe_layout = [^[]*\[\d+ x i64\] \[([^\]]*)\]/.exec(ir);
  assert.ok(m, `no probe_layout array in clang's output for ${target}`);
  return asLayout(m[1].split(',').map((s) => Number(s.trim().replace(/^i64 /, ''))));
}

function lines(out: string): number[] {
  return out.trim().split(/\r?\n/).map(Number);
}

/** clang without the host's C library: its own stddef.h/stdint.h, the platform's PC/SC headers only. */
const freestanding = (): string[] => ['-ffreestanding', '-nostdinc', '-isystem', path.join(sh('clang', ['-print-resource-dir']).trim(), 'include')];

/** pcsc-lite's PCSC headers as installed (pcsclite.h is generated from pcsclite.h.in; its placeholders are only in strings). */
function pcscLiteInclude(): string {
  const dir = path.join(work, 'pcsc-lite');
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(PCSC_LITE, 'src', 'PCSC');
  for (const f of ['winscard.h', 'wintypes.h']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  fs.copyFileSync(path.join(src, 'pcsclite.h.in'), path.join(dir, 'pcsclite.h'));
  return dir;
}

test('Windows x64: mingw-w64 winscard.h, built with x86_64-w64-mingw32-gcc and run under wine64, matches the driver', { skip }, () => {
  const exe = path.join(work, 'probe.exe');
  sh('x86_64-w64-mingw32-gcc', ['-DPROBE_MAIN', '-o', exe, PROBE]);
  const prefix = path.join(CACHE, 'wine');
  fs.mkdirSync(prefix, { recursive: true });
  const out = sh(WINE!, [exe], { WINEPREFIX: prefix, WINEDEBUG: '-all', DISPLAY: '' });
  const header = asLayout(lines(out));
  assert.deepEqual(header, pcscLayout('win32'));
  // What the header says in words: 32-bit DWORD/LONG, pointer-sized handles, rgbAtr[36].
  assert.deepEqual([header.DWORD, header.LONG, header.SCARDHANDLE, header.SCARD_READERSTATE.rgbAtrLength, header.SCARD_READERSTATE.size], [4, 4, 8, 36, 64]);
});

test('Windows arm64: mingw-w64 winscard.h, compiled by clang for aarch64-w64-mingw32, matches the driver', { skip }, () => {
  assert.deepEqual(compileOnly('aarch64-w64-mingw32', ['-isystem', MINGW_INCLUDE]), pcscLayout('win32'));
});

/** pcsc-lite's sources (shared/data): a skip where they are not, a failure under CI. */
function missingPcscLite(): string | false {
  if (fs.existsSync(PCSC_LITE)) return false;
  if (process.env.CI === 'true') throw new Error(`no ${PCSC_LITE} (CI=true: a missing part fails the run)`);
  return `no ${PCSC_LITE}`;
}

for (const target of ['x86_64-apple-macos11', 'arm64-apple-macos11']) {
  test(`macOS ${target.split('-')[0]}: pcsc-lite's __APPLE__ headers, compiled by clang, match the driver's SCARD_READERSTATE (packed), DWORD, LONG and handles`, { skip: skip || missingPcscLite() }, () => {
    const header = compileOnly(target, [...freestanding(), '-I', pcscLiteInclude(), '-DPROBE_HEADER=<winscard.h>']);
    const driver = pcscLayout('darwin');
    assert.deepEqual({ ...header, SCARD_IO_REQUEST: null }, { ...driver, SCARD_IO_REQUEST: null });
    assert.equal(header.SCARD_READERSTATE.size, 61, 'packed: 8 + 8 + 3 × 4 + 33');
    // pcsc-lite's own macOS build declares SCARD_IO_REQUEST with `unsigned long` fields (8 bytes
    // each there); Apple's PCSC.framework, which the driver loads, declares uint32_t
    // (SmartCardServices src/PCSC/pcsclite.h; the SMARTCARDSERVICES_SRC test below compiles it).
    // The driver follows the framework: pcsc-lite's header is not the one to match here.
    assert.deepEqual(header.SCARD_IO_REQUEST, { size: 16, dwProtocol: 0, cbPciLength: 8 }, "pcsc-lite's __APPLE__ SCARD_IO_REQUEST changed: look again at which one the driver should follow");
    assert.deepEqual(driver.SCARD_IO_REQUEST, { size: 8, dwProtocol: 0, cbPciLength: 4 });
  });

  // Apple's own headers are not fetchable at test time: this variant runs where a copy is at hand
  // (SMARTCARDSERVICES_SRC, a copy of apple-oss-distributions/SmartCardServices src/); everywhere else,
  // CI included, the pcsc-lite __APPLE__ test above checks the macOS layout.
  if (APPLE) test(`macOS ${target.split('-')[0]}: Apple's SmartCardServices headers (PCSC.framework), compiled by clang, match the driver`, { skip }, () => {
    const header = compileOnly(target, [...freestanding(), '-I', APPLE!, '-include', 'PCSC/wintypes.h', '-DPROBE_HEADER=<PCSC/winscard.h>']);
    assert.deepEqual(header, pcscLayout('darwin'));
  });
}

test('Linux x64: Debian\'s pcsc-lite headers, built with gcc and run, match the driver', { skip: skip || (process.platform !== 'linux' || process.arch !== 'x64' ? 'not a Linux x64 machine' : !fs.existsSync('/usr/include/PCSC/winscard.h') && 'no /usr/include/PCSC (libpcsclite-dev)') }, () => {
  const exe = path.join(work, 'probe-linux');
  sh('gcc', ['-DPROBE_MAIN', '-I/usr/include/PCSC', '-DPROBE_HEADER=<winscard.h>', '-o', exe, PROBE]);
  assert.deepEqual(asLayout(lines(sh(exe, []))), pcscLayout('linux'));
});
