// The subset of the WebUSB API (as node-usb 3 implements it) the CCID driver uses.
// Declared here because the helper is built without DOM types, and so tests can
// pass a simulated device.

export type UsbDirection = 'in' | 'out';
export type UsbEndpointType = 'bulk' | 'interrupt' | 'isochronous';

export interface UsbEndpointLike {
  endpointNumber: number;
  direction: UsbDirection;
  type: UsbEndpointType;
  packetSize: number;
}

export interface UsbAlternateLike {
  alternateSetting: number;
  interfaceClass: number;
  interfaceSubclass: number;
  interfaceProtocol: number;
  interfaceName?: string | null;
  endpoints: UsbEndpointLike[];
}

export interface UsbInterfaceLike {
  interfaceNumber: number;
  claimed: boolean;
  alternate: UsbAlternateLike;
  alternates: UsbAlternateLike[];
}

export interface UsbConfigurationLike {
  configurationValue: number;
  configurationName?: string | null;
  interfaces: UsbInterfaceLike[];
}

export interface UsbControlSetup {
  requestType: 'standard' | 'class' | 'vendor';
  recipient: 'device' | 'interface' | 'endpoint' | 'other';
  request: number;
  value: number;
  index: number;
}

export interface UsbInResult {
  data?: DataView;
  status: 'ok' | 'stall' | 'babble';
}

export interface UsbOutResult {
  bytesWritten: number;
  status: 'ok' | 'stall';
}

/** node-usb adds an optional timeout (ms) to the WebUSB transfer calls. */
export interface UsbDeviceLike {
  readonly vendorId: number;
  readonly productId: number;
  readonly productName?: string | null;
  readonly manufacturerName?: string | null;
  readonly serialNumber?: string | null;
  /** bcdDevice 0xJJMN as WebUSB splits it: JJ, M, N. */
  readonly deviceVersionMajor?: number;
  readonly deviceVersionMinor?: number;
  readonly deviceVersionSubminor?: number;
  /**
   * node-usb 3's additions (not WebUSB): the bus the device is on, as a string (nusb's `bus_id`: "003" on Linux,
   * two hex digits on macOS, a location path on Windows; see usbChannelId), and its address on that bus. Read for
   * SCARD_ATTR_CHANNEL_ID as libccid gives it.
   */
  readonly bus?: string | number;
  readonly address?: number;
  readonly opened: boolean;
  readonly configuration?: UsbConfigurationLike | null;
  readonly configurations: UsbConfigurationLike[];
  open(): Promise<void>;
  close(): Promise<void>;
  selectConfiguration(configurationValue: number): Promise<void>;
  claimInterface(interfaceNumber: number): Promise<void>;
  releaseInterface(interfaceNumber: number): Promise<void>;
  controlTransferIn(setup: UsbControlSetup, length: number, timeout?: number): Promise<UsbInResult>;
  transferIn(endpointNumber: number, length: number, timeout?: number): Promise<UsbInResult>;
  transferOut(endpointNumber: number, data: Uint8Array, timeout?: number): Promise<UsbOutResult>;
}

export interface UsbConnectionEventLike {
  readonly device: UsbDeviceLike;
}

export interface WebUsbLike {
  getDevices(): Promise<UsbDeviceLike[]>;
  addEventListener(type: 'connect' | 'disconnect', listener: (ev: UsbConnectionEventLike) => void): void;
  removeEventListener(type: 'connect' | 'disconnect', listener: (ev: UsbConnectionEventLike) => void): void;
}

export function viewBytes(v: DataView | undefined): Uint8Array {
  return v ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(0);
}
