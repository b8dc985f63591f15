// The only module that touches the `usb` package (house rule 2). It hands the
// driver node-usb's WebUSB object, or says why USB cannot be used here.

import type { WebUsbLike } from './webusb';

export type SystemWebUsb = { ok: true; webusb: WebUsbLike } | { ok: false; reason: string };

/** Loads `usb` lazily so a machine where its native part cannot load still runs the helper. */
export async function loadSystemWebUsb(): Promise<SystemWebUsb> {
  try {
    const mod = await import('usb');
    return { ok: true, webusb: mod.webusb as unknown as WebUsbLike };
  } catch (e) {
    return { ok: false, reason: `the usb package could not be loaded (${e instanceof Error ? e.message : String(e)})` };
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
