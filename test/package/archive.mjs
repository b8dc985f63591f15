// Reading a .vsix (a zip) and the headers of the native binaries inside it, with no
// dependency: what the package test needs to check each target's package.
import zlib from 'node:zlib';

/** The files of a zip archive: name → contents. */
export function unzip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const files = new Map();
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central directory entry at ${p}`);
    const method = buf.readUInt16LE(p + 10);
    const compressed = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLength = buf.readUInt16LE(p + 28);
    const extraLength = buf.readUInt16LE(p + 30);
    const commentLength = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLength).toString('utf8');
    p += 46 + nameLength + extraLength + commentLength;
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + compressed);
    const data = method === 0 ? Buffer.from(raw) : method === 8 ? zlib.inflateRawSync(raw) : null;
    if (!data) throw new Error(`${name}: compression method ${method}`);
    if (data.length !== size) throw new Error(`${name}: ${data.length} bytes, the directory says ${size}`);
    files.set(name, data);
  }
  return files;
}

const PE_MACHINES = { 0x8664: 'x86-64', 0xaa64: 'ARM64', 0x14c: 'i386' };
const MACHO_CPUS = { 0x01000007: 'x86_64', 0x0100000c: 'arm64' };
const ELF_MACHINES = { 62: 'x86-64', 183: 'AArch64', 3: 'i386', 40: 'ARM' };

/**
 * Format, machine and (for ELF) the C library a native binary was linked against:
 * { format: 'PE32+'|'PE32'|'Mach-O 64'|'ELF64'|'ELF32', machine, kind, libc? }.
 */
export function describeBinary(b) {
  if (b.length >= 64 && b.toString('latin1', 0, 2) === 'MZ') {
    const pe = b.readUInt32LE(0x3c);
    if (b.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new Error('MZ without a PE header');
    const machine = PE_MACHINES[b.readUInt16LE(pe + 4)] ?? `0x${b.readUInt16LE(pe + 4).toString(16)}`;
    const dll = (b.readUInt16LE(pe + 22) & 0x2000) !== 0;
    const magic = b.readUInt16LE(pe + 24);
    return { format: magic === 0x20b ? 'PE32+' : magic === 0x10b ? 'PE32' : `PE?${magic}`, machine, kind: dll ? 'DLL' : 'EXE' };
  }
  if (b.length >= 32 && b.readUInt32LE(0) === 0xfeedfacf) {
    const cpu = b.readInt32LE(4) >>> 0;
    const filetype = b.readUInt32LE(12);
    return { format: 'Mach-O 64', machine: MACHO_CPUS[cpu] ?? `0x${cpu.toString(16)}`, kind: { 6: 'dylib', 8: 'bundle' }[filetype] ?? `filetype ${filetype}` };
  }
  if (b.length >= 4 && b.readUInt32BE(0) === 0xcafebabe) return { format: 'Mach-O universal', machine: 'several', kind: 'fat' };
  if (b.length >= 64 && b.readUInt32BE(0) === 0x7f454c46) {
    if (b[4] !== 2 || b[5] !== 1) return { format: b[4] === 1 ? 'ELF32' : 'ELF?', machine: ELF_MACHINES[b.readUInt16LE(18)] ?? '?', kind: '?' };
    const machine = ELF_MACHINES[b.readUInt16LE(18)] ?? `${b.readUInt16LE(18)}`;
    const kind = { 2: 'executable', 3: 'shared object' }[b.readUInt16LE(16)] ?? '?';
    const needed = elfNeeded(b);
    const glibc = needed.some((n) => n === 'libc.so.6' || n.startsWith('ld-linux'));
    const musl = needed.some((n) => /^libc\.musl-[\w-]+\.so\.1$/.test(n) || n === 'libc.so');
    return { format: 'ELF64', machine, kind, needed, libc: glibc && !musl ? 'glibc' : musl && !glibc ? 'musl' : 'unknown' };
  }
  return { format: 'unknown', machine: '?', kind: '?' };
}

/** DT_NEEDED entries of a 64-bit little-endian ELF file, from its section headers. */
function elfNeeded(b) {
  const shoff = Number(b.readBigUInt64LE(40));
  const shentsize = b.readUInt16LE(58);
  const shnum = b.readUInt16LE(60);
  const section = (i) => {
    const o = shoff + i * shentsize;
    return { type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 24)), size: Number(b.readBigUInt64LE(o + 32)), link: b.readUInt32LE(o + 40) };
  };
  const out = [];
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== 6) continue; // SHT_DYNAMIC
    const strtab = section(s.link);
    for (let o = s.offset; o + 16 <= s.offset + s.size; o += 16) {
      const tag = b.readBigUInt64LE(o);
      if (tag === 0n) break;
      if (tag !== 1n) continue; // DT_NEEDED
      const at = strtab.offset + Number(b.readBigUInt64LE(o + 8));
      out.push(b.toString('latin1', at, b.indexOf(0, at)));
    }
  }
  return out;
}
