// The workbench's version, one place for the helper (LSP serverInfo, "started") and the
// simulator's IFD version; test/unit checks it against package.json.
export const WORKBENCH_VERSION = '0.1.0';

/**
 * A version `M.m.b` as SCARD_ATTR_VENDOR_IFD_VERSION's DWORD 0xMMmmbbbb, major and minor in BCD
 * as libccid fills them from the USB bcdDevice (so 1.10 reads 0x0110…), the build in binary.
 */
export function ifdVersionDword(version: string): number {
  const [major = 0, minor = 0, build = 0] = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const bcd = (n: number): number => Number.parseInt(String(Math.min(n, 99)), 16);
  return ((bcd(major) << 24) | (bcd(minor) << 16) | (build & 0xffff)) >>> 0;
}
