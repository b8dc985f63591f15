// A simulator whose reader lists part 10's FEATURE_GET_KEY at a code of its own and answers it with
// the digits of a key-by-key PIN entry: the leak tests' source of a secret in a control answer.
import { SimulatorDriver, type SimulatorOptions } from '../../server/src/drivers/simulator/driver';

/** GET_KEY at a code of the reader's own (listed in its feature list as tag 0x10). */
export const OWN_GET_KEY = 0x00313510;

export class GetKeySimulator extends SimulatorDriver {
  constructor(private readonly typed: string, options: SimulatorOptions = {}) { super(options); }

  override async control(key: string, code: number, data: Uint8Array): Promise<Uint8Array> {
    if (code === OWN_GET_KEY) return Uint8Array.from(Buffer.from(this.typed, 'ascii'));
    const out = await super.control(key, code, data);
    if (code !== 3400) return out;
    // CM_IOCTL_GET_FEATURE_REQUEST: the simulator's features, then FEATURE_GET_KEY (0x10) at OWN_GET_KEY.
    return Uint8Array.from([...out, 0x10, 4, 0x00, 0x31, 0x35, 0x10]);
  }
}
