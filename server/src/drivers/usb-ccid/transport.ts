// The only module that touches the `usb` package (house rule 2). It hands the
// driver node-usb's WebUSB object, or says why USB cannot be used here.

import type { WebUsbLike } from './webusb';

/** Not loaded: why, and `wrongBuild` when the package is another VS Code build's (the hint about /sys/bus/usb does not apply). */
export type SystemWebUsb = { ok: true; webusb: WebUsbLike } | { ok: false; reason: string; wrongBuild: boolean };

/**
 * The errors usb 3.x's loader met, first to last: it throws "Cannot find native binding" whatever they were, with
 * each attempt's error down its `cause` chain (its createLoadErrorChain).
 */
function loadErrors(e: unknown): string[] {
  const out: string[] = [];
  for (let c = (e as { cause?: unknown } | null)?.cause; c && out.length < 32; c = (c as { cause?: unknown }).cause) {
    out.push(c instanceof Error ? c.message : String(c));
  }
  return out.reverse();
}

/**
 * A package of another VS Code build: usb found no native binding at all, every attempt a module not found. A binding
 * that is there and does not load (a noexec folder, a C library too old) is not that, and is said as it is.
 */
function wrongBuild(e: unknown): boolean {
  const message = e instanceof Error ? e.message : String(e);
  const tried = loadErrors(e);
  return /native binding/i.test(message) && tried.every((m) => /Cannot find module/i.test(m));
}

/** The package target of this process: Alpine's for a Linux without glibc (as scripts/package.mjs tells). */
function packageTarget(platform: string, arch: string, musl: boolean): string {
  return `${platform === 'linux' && musl ? 'alpine' : platform}-${arch}`;
}

const isMusl = (): boolean => process.platform === 'linux' && !(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;

/**
 * Why `usb` did not load, for the USB group. usb 3.x finds its native part in a package of its own per
 * platform (`@node-usb/usb-linux-x64-gnu`, …); a .vsix built for another VS Code carries another one, and
 * usb's own words ("Cannot find native binding … try `npm i` again") tell a user of the package nothing.
 */
export function usbLoadFailure(e: unknown, platform: string = process.platform, arch: string = process.arch, musl: boolean = isMusl()): string {
  if (wrongBuild(e)) {
    const target = packageTarget(platform, arch, musl);
    return `the usb package's native part does not load in this VS Code (${target}): install the Smart Card Workbench package built for ${target} (docs/install.md: the VS Code build counts, Help → About)`;
  }
  const message = e instanceof Error ? e.message : String(e);
  const cause = loadErrors(e).find((m) => !/Cannot find module/i.test(m));
  return `the usb package could not be loaded (${cause ?? message})`;
}

/** Loads `usb` lazily so a machine where its native part cannot load still runs the helper. */
export async function loadSystemWebUsb(load: () => Promise<{ webusb: unknown }> = () => import('usb')): Promise<SystemWebUsb> {
  try {
    const mod = await load();
    return { ok: true, webusb: mod.webusb as unknown as WebUsbLike };
  } catch (e) {
    return { ok: false, reason: usbLoadFailure(e), wrongBuild: wrongBuild(e) };
  }
}

/**
 * node-usb starts its own `getDevices()` when the first `connect` listener is
 * added and does not catch its rejection (no /sys/bus/usb on this machine, or it
 * vanished). That rejection would end the helper. While the driver listens, this
 * guard absorbs rejections from node-usb's getDevices and reports them once;
 * any other unhandled rejection is thrown on, as Node would do without it.
 */
export function guardNodeUsbRejections(report: (reason: string) => void): () => void {
  let reported = false;
  const handler = (reason: unknown) => {
    const message = reason instanceof Error ? reason.message : String(reason);
    if (/^getDevices error/.test(message)) {
      if (!reported) report(message);
      reported = true;
      return;
    }
    throw reason;
  };
  process.on('unhandledRejection', handler);
  return () => { process.off('unhandledRejection', handler); };
}
