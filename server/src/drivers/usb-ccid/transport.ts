// The only module that touches the `usb` package (house rule 2). It hands the
// driver node-usb's WebUSB object, or says why USB cannot be used here.

import type { WebUsbLike } from './webusb';

/** Not loaded: why, and `wrongBuild` when the package is another VS Code build's (the hint about /sys/bus/usb does not apply). */
export type SystemWebUsb = { ok: true; webusb: WebUsbLike } | { ok: false; reason: string; wrongBuild: boolean };

const WRONG_BUILD = /native binding/i;

/**
 * Why `usb` did not load, for the USB group. usb 3.x finds its native part in a package of its own per
 * platform (`@node-usb/usb-linux-x64-gnu`, …); a .vsix built for another VS Code carries another one, and
 * usb's own words ("Cannot find native binding … try `npm i` again") tell a user of the package nothing.
 */
export function usbLoadFailure(message: string, platform: string = process.platform, arch: string = process.arch): string {
  if (WRONG_BUILD.test(message)) {
    return `the usb package's native part does not load in this VS Code (${platform}-${arch}): install the Smart Card Workbench package built for ${platform}-${arch} (docs/install.md: the VS Code build counts, Help → About)`;
  }
  return `the usb package could not be loaded (${message})`;
}

/** Loads `usb` lazily so a machine where its native part cannot load still runs the helper. */
export async function loadSystemWebUsb(load: () => Promise<{ webusb: unknown }> = () => import('usb')): Promise<SystemWebUsb> {
  try {
    const mod = await load();
    return { ok: true, webusb: mod.webusb as unknown as WebUsbLike };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { ok: false, reason: usbLoadFailure(message), wrongBuild: WRONG_BUILD.test(message) };
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
