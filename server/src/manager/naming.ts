// Reader names follow pcsc-lite's rule so tools and users see familiar names:
//   <name> [<interface>] (<serial>) NN SS
// NN: index of the device among the present devices of the same driver,
// SS: slot number within the device; both two upper-case hex digits.
import type { SlotDescriptor } from '../drivers/driver';

const hex2 = (n: number) => (n & 0xff).toString(16).toUpperCase().padStart(2, '0');

export function readerName(slot: Pick<SlotDescriptor, 'name' | 'interfaceName' | 'serial' | 'slotIndex'>, deviceIndex: number): string {
  let s = slot.name.trim();
  if (slot.interfaceName) s += ` [${slot.interfaceName}]`;
  if (slot.serial) s += ` (${slot.serial})`;
  return `${s} ${hex2(deviceIndex)} ${hex2(slot.slotIndex)}`;
}
