// The simulator driver with a reader that can be unplugged and plugged back, as a
// USB reader comes and goes (the simulator itself never loses its reader). Test
// code only: the PC/SC service's PnP scenarios run on the real manager with it.
import { SimulatorDriver, type SimulatorOptions } from '../../server/src/drivers/simulator/driver';
import type { DriverSink, SlotDescriptor } from '../../server/src/drivers/driver';

export class PluggableSimulator extends SimulatorDriver {
  private outer: DriverSink | null = null;
  private readonly descriptors = new Map<string, SlotDescriptor>();
  private readonly unplugged = new Set<string>();

  constructor(options: SimulatorOptions = {}) {
    super(options);
  }

  override async start(sink: DriverSink): Promise<void> {
    this.outer = sink;
    await super.start({ ...sink, slotAdded: (d) => { this.descriptors.set(d.key, d); sink.slotAdded(d); } });
  }

  /** Every slot key (`sim:0` …). */
  get keys(): string[] {
    return [...this.descriptors.keys()];
  }

  /** Unplugs (false) or plugs back (true) the reader of `key`; its card stays in it. */
  setPlugged(plugged: boolean, key = this.keys[0]): void {
    if (plugged === !this.unplugged.has(key)) return;
    if (plugged) {
      this.unplugged.delete(key);
      this.outer?.slotAdded({ ...this.descriptors.get(key)!, cardPresent: this.cardIn(key) !== null });
    } else {
      this.unplugged.add(key);
      this.outer?.slotRemoved(key);
    }
  }
}
