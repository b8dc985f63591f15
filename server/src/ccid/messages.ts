// CCID bulk and interrupt messages (CCID rev 1.1 §6). Every bulk message has a
// 10-byte header: bMessageType, dwLength (LE), bSlot, bSeq, 3 message-specific bytes.

// Bulk-OUT commands (§6.1)
export const PC_to_RDR_SetParameters = 0x61;
export const PC_to_RDR_IccPowerOn = 0x62;
export const PC_to_RDR_IccPowerOff = 0x63;
export const PC_to_RDR_GetSlotStatus = 0x65;
export const PC_to_RDR_Secure = 0x69;
export const PC_to_RDR_T0APDU = 0x6a;
export const PC_to_RDR_Escape = 0x6b;
export const PC_to_RDR_GetParameters = 0x6c;
export const PC_to_RDR_ResetParameters = 0x6d;
export const PC_to_RDR_IccClock = 0x6e;
export const PC_to_RDR_XfrBlock = 0x6f;
export const PC_to_RDR_Mechanical = 0x71;
export const PC_to_RDR_Abort = 0x72;
export const PC_to_RDR_SetDataRateAndClockFrequency = 0x73;

// Bulk-IN responses (§6.2)
export const RDR_to_PC_DataBlock = 0x80;
export const RDR_to_PC_SlotStatus = 0x81;
export const RDR_to_PC_Parameters = 0x82;
export const RDR_to_PC_Escape = 0x83;
export const RDR_to_PC_DataRateAndClockFrequency = 0x84;

// Interrupt-IN (§6.3)
export const RDR_to_PC_NotifySlotChange = 0x50;
export const RDR_to_PC_HardwareError = 0x51;

export const CCID_HEADER_LENGTH = 10;

export const MESSAGE_NAMES: Readonly<Record<number, string>> = {
  [PC_to_RDR_SetParameters]: 'PC_to_RDR_SetParameters',
  [PC_to_RDR_IccPowerOn]: 'PC_to_RDR_IccPowerOn',
  [PC_to_RDR_IccPowerOff]: 'PC_to_RDR_IccPowerOff',
  [PC_to_RDR_GetSlotStatus]: 'PC_to_RDR_GetSlotStatus',
  [PC_to_RDR_Secure]: 'PC_to_RDR_Secure',
  [PC_to_RDR_T0APDU]: 'PC_to_RDR_T0APDU',
  [PC_to_RDR_Escape]: 'PC_to_RDR_Escape',
  [PC_to_RDR_GetParameters]: 'PC_to_RDR_GetParameters',
  [PC_to_RDR_ResetParameters]: 'PC_to_RDR_ResetParameters',
  [PC_to_RDR_IccClock]: 'PC_to_RDR_IccClock',
  [PC_to_RDR_XfrBlock]: 'PC_to_RDR_XfrBlock',
  [PC_to_RDR_Mechanical]: 'PC_to_RDR_Mechanical',
  [PC_to_RDR_Abort]: 'PC_to_RDR_Abort',
  [PC_to_RDR_SetDataRateAndClockFrequency]: 'PC_to_RDR_SetDataRateAndClockFrequency',
  [RDR_to_PC_DataBlock]: 'RDR_to_PC_DataBlock',
  [RDR_to_PC_SlotStatus]: 'RDR_to_PC_SlotStatus',
  [RDR_to_PC_Parameters]: 'RDR_to_PC_Parameters',
  [RDR_to_PC_Escape]: 'RDR_to_PC_Escape',
  [RDR_to_PC_DataRateAndClockFrequency]: 'RDR_to_PC_DataRateAndClockFrequency',
  [RDR_to_PC_NotifySlotChange]: 'RDR_to_PC_NotifySlotChange',
  [RDR_to_PC_HardwareError]: 'RDR_to_PC_HardwareError',
};

/** The response message type each command expects (§6.2). */
export const RESPONSE_TO: Readonly<Record<number, number>> = {
  [PC_to_RDR_SetParameters]: RDR_to_PC_Parameters,
  [PC_to_RDR_IccPowerOn]: RDR_to_PC_DataBlock,
  [PC_to_RDR_IccPowerOff]: RDR_to_PC_SlotStatus,
  [PC_to_RDR_GetSlotStatus]: RDR_to_PC_SlotStatus,
  [PC_to_RDR_Secure]: RDR_to_PC_DataBlock,
  [PC_to_RDR_T0APDU]: RDR_to_PC_SlotStatus,
  [PC_to_RDR_Escape]: RDR_to_PC_Escape,
  [PC_to_RDR_GetParameters]: RDR_to_PC_Parameters,
  [PC_to_RDR_ResetParameters]: RDR_to_PC_Parameters,
  [PC_to_RDR_IccClock]: RDR_to_PC_SlotStatus,
  [PC_to_RDR_XfrBlock]: RDR_to_PC_DataBlock,
  [PC_to_RDR_Mechanical]: RDR_to_PC_SlotStatus,
  [PC_to_RDR_Abort]: RDR_to_PC_SlotStatus,
  [PC_to_RDR_SetDataRateAndClockFrequency]: RDR_to_PC_DataRateAndClockFrequency,
};

/** bPowerSelect of PC_to_RDR_IccPowerOn (§6.1.1). */
export const POWER_SELECT = { auto: 0x00, '5V': 0x01, '3V': 0x02, '1.8V': 0x03 } as const;
export type PowerSelect = keyof typeof POWER_SELECT;

/** wLevelParameter / bChainParameter values for APDU-level chaining (§6.1.4, §6.2.1). */
export const CHAIN = {
  BEGINS_AND_ENDS: 0x00,
  BEGINS: 0x01,
  ENDS: 0x02,
  CONTINUES: 0x03,
  /** Command: empty abData, the next part of the response is expected. */
  CONTINUE_RESPONSE: 0x10,
} as const;

export interface CcidMessage {
  bMessageType: number;
  bSlot: number;
  bSeq: number;
  /** The three message-specific header bytes. */
  params: [number, number, number];
  data: Uint8Array;
}

export function encodeMessage(m: CcidMessage): Uint8Array {
  const out = new Uint8Array(CCID_HEADER_LENGTH + m.data.length);
  const n = m.data.length;
  out[0] = m.bMessageType;
  out[1] = n & 0xff; out[2] = (n >>> 8) & 0xff; out[3] = (n >>> 16) & 0xff; out[4] = (n >>> 24) & 0xff;
  out[5] = m.bSlot; out[6] = m.bSeq;
  out[7] = m.params[0]; out[8] = m.params[1]; out[9] = m.params[2];
  out.set(m.data, CCID_HEADER_LENGTH);
  return out;
}

export type MessageDecode =
  | { ok: true; message: CcidMessage }
  | { ok: false; reason: string };

/** Decodes a bulk message; a short or truncated one comes back with the reason. */
export function decodeMessage(bytes: Uint8Array): MessageDecode {
  if (bytes.length < CCID_HEADER_LENGTH) return { ok: false, reason: `a CCID message has a 10-byte header; got ${bytes.length} bytes` };
  const n = (bytes[1] | (bytes[2] << 8) | (bytes[3] << 16) | (bytes[4] << 24)) >>> 0;
  if (bytes.length < CCID_HEADER_LENGTH + n) {
    return { ok: false, reason: `dwLength says ${n} data bytes but only ${bytes.length - CCID_HEADER_LENGTH} arrived (truncated message)` };
  }
  return {
    ok: true,
    message: {
      bMessageType: bytes[0], bSlot: bytes[5], bSeq: bytes[6],
      params: [bytes[7], bytes[8], bytes[9]],
      data: bytes.slice(CCID_HEADER_LENGTH, CCID_HEADER_LENGTH + n),
    },
  };
}

// ---- command builders (§6.1) ----

const cmd = (type: number, slot: number, seq: number, params: [number, number, number] = [0, 0, 0], data: Uint8Array = new Uint8Array(0)): Uint8Array =>
  encodeMessage({ bMessageType: type, bSlot: slot, bSeq: seq, params, data });

export const iccPowerOn = (slot: number, seq: number, power: PowerSelect = 'auto') => cmd(PC_to_RDR_IccPowerOn, slot, seq, [POWER_SELECT[power], 0, 0]);
export const iccPowerOff = (slot: number, seq: number) => cmd(PC_to_RDR_IccPowerOff, slot, seq);
export const getSlotStatus = (slot: number, seq: number) => cmd(PC_to_RDR_GetSlotStatus, slot, seq);
export const xfrBlock = (slot: number, seq: number, data: Uint8Array, bBWI = 0, wLevelParameter = 0) =>
  cmd(PC_to_RDR_XfrBlock, slot, seq, [bBWI, wLevelParameter & 0xff, (wLevelParameter >> 8) & 0xff], data);
export const getParameters = (slot: number, seq: number) => cmd(PC_to_RDR_GetParameters, slot, seq);
export const resetParameters = (slot: number, seq: number) => cmd(PC_to_RDR_ResetParameters, slot, seq);
/** abProtocolDataStructure: 5 bytes for T=0, 7 for T=1 (§6.1.7). */
export const setParameters = (slot: number, seq: number, protocol: 0 | 1, structure: Uint8Array) =>
  cmd(PC_to_RDR_SetParameters, slot, seq, [protocol, 0, 0], structure);
export const escape = (slot: number, seq: number, data: Uint8Array) => cmd(PC_to_RDR_Escape, slot, seq, [0, 0, 0], data);
/** bClockCommand: 0 restart the clock, 1 stop it. */
export const iccClock = (slot: number, seq: number, stop: boolean) => cmd(PC_to_RDR_IccClock, slot, seq, [stop ? 1 : 0, 0, 0]);
export const t0Apdu = (slot: number, seq: number, bmChanges: number, bClassGetResponse: number, bClassEnvelope: number) =>
  cmd(PC_to_RDR_T0APDU, slot, seq, [bmChanges, bClassGetResponse, bClassEnvelope]);
export const secure = (slot: number, seq: number, data: Uint8Array, bBWI = 0, wLevelParameter = 0) =>
  cmd(PC_to_RDR_Secure, slot, seq, [bBWI, wLevelParameter & 0xff, (wLevelParameter >> 8) & 0xff], data);
/** bFunction: 1 accept, 2 eject, 3 capture, 4 lock, 5 unlock. */
export const mechanical = (slot: number, seq: number, bFunction: number) => cmd(PC_to_RDR_Mechanical, slot, seq, [bFunction, 0, 0]);
export const abort = (slot: number, seq: number) => cmd(PC_to_RDR_Abort, slot, seq);
export function setDataRateAndClockFrequency(slot: number, seq: number, clockKHz: number, dataRate: number): Uint8Array {
  const d = new Uint8Array(8);
  const v = new DataView(d.buffer);
  v.setUint32(0, clockKHz, true);
  v.setUint32(4, dataRate, true);
  return cmd(PC_to_RDR_SetDataRateAndClockFrequency, slot, seq, [0, 0, 0], d);
}

// ---- bStatus and bError (§6.2.6) ----

export type IccStatus = 'active' | 'inactive' | 'absent';
export type CommandStatus = 'ok' | 'failed' | 'timeExtension';

const ICC_STATUS: ReadonlyArray<IccStatus | null> = ['active', 'inactive', 'absent', null];
const COMMAND_STATUS: ReadonlyArray<CommandStatus | null> = ['ok', 'failed', 'timeExtension', null];

export interface SlotState {
  iccStatus: IccStatus | null;
  commandStatus: CommandStatus | null;
}

export function decodeStatus(bStatus: number): SlotState {
  return { iccStatus: ICC_STATUS[bStatus & 0x03], commandStatus: COMMAND_STATUS[(bStatus >> 6) & 0x03] };
}

/** bError when bmCommandStatus says "failed" (§6.2.6, Table 6.2-2), in words a user can act on. */
export const SLOT_ERRORS: Readonly<Record<number, readonly [string, string]>> = {
  0xff: ['CMD_ABORTED', 'the command was aborted by PC_to_RDR_Abort'],
  0xfe: ['ICC_MUTE', 'the card does not answer (mute): check that it is inserted the right way and supports this reader\'s voltage'],
  0xfd: ['XFR_PARITY_ERROR', 'parity error talking to the card: reseat the card or lower the data rate'],
  0xfc: ['XFR_OVERRUN', 'the reader\'s buffer overran while receiving from the card'],
  0xfb: ['HW_ERROR', 'the reader reported a hardware error during activation (short circuit or over-current?)'],
  0xf8: ['BAD_ATR_TS', 'the card sent a bad ATR initial character TS'],
  0xf7: ['BAD_ATR_TCK', 'the card sent an ATR with a wrong check byte TCK'],
  0xf6: ['ICC_PROTOCOL_NOT_SUPPORTED', 'the card\'s protocol is not supported by the reader'],
  0xf5: ['ICC_CLASS_NOT_SUPPORTED', 'the card\'s voltage class is not supported by the reader'],
  0xf4: ['PROCEDURE_BYTE_CONFLICT', 'the card sent a procedure byte that conflicts with the command (T=0)'],
  0xf3: ['DEACTIVATED_PROTOCOL', 'the protocol is deactivated on the reader'],
  0xf2: ['BUSY_WITH_AUTO_SEQUENCE', 'the reader is busy with an automatic sequence (activation, PPS): retry shortly'],
  0xf0: ['PIN_TIMEOUT', 'the PIN was not entered on the pinpad in time'],
  0xef: ['PIN_CANCELLED', 'PIN entry was cancelled on the pinpad'],
  0xe0: ['CMD_SLOT_BUSY', 'the slot is busy with another command'],
  0x00: ['CMD_NOT_SUPPORTED', 'the reader does not support this command'],
};

/** Header field names by offset, for "bad parameter at offset N" errors (1–127). */
const HEADER_FIELDS: Readonly<Record<number, string>> = {
  1: 'dwLength', 5: 'bSlot', 6: 'bSeq', 7: 'the first message-specific byte (bPowerSelect/bBWI/bProtocolNum…)',
  8: 'the second message-specific byte (wLevelParameter…)', 9: 'the third message-specific byte', 10: 'abData',
};

export interface SlotError {
  name: string;
  message: string;
}

export function describeSlotError(bError: number): SlotError {
  const known = SLOT_ERRORS[bError];
  if (known) return { name: known[0], message: known[1] };
  if (bError >= 0x01 && bError <= 0x7f) {
    const field = HEADER_FIELDS[bError] ?? (bError > 10 ? `abData byte ${bError - 10}` : `byte ${bError}`);
    return { name: 'BAD_PARAMETER', message: `the reader rejected the command's parameter at offset ${bError} (${field})` };
  }
  return { name: `ERROR_0x${bError.toString(16).toUpperCase().padStart(2, '0')}`, message: `reader-specific error 0x${bError.toString(16).toUpperCase().padStart(2, '0')}` };
}

/** bClockStatus of RDR_to_PC_SlotStatus (§6.2.2). */
export const CLOCK_STATUS: Readonly<Record<number, string>> = {
  0: 'clock running', 1: 'clock stopped in state L', 2: 'clock stopped in state H', 3: 'clock stopped in an unknown state',
};

// ---- interrupt-IN (§6.3) ----

export type InterruptMessage =
  | { type: 'slotChange'; slots: Array<{ slot: number; present: boolean; changed: boolean }> }
  | { type: 'hardwareError'; slot: number; seq: number; code: number; message: string }
  | { type: 'unknown'; bytes: Uint8Array };

/** bmSlotICCState: two bits per slot, bit 0 card present, bit 1 changed. */
export function decodeInterrupt(bytes: Uint8Array, slotCount: number): InterruptMessage {
  if (bytes.length >= 2 && bytes[0] === RDR_to_PC_NotifySlotChange) {
    const slots: Array<{ slot: number; present: boolean; changed: boolean }> = [];
    for (let s = 0; s < slotCount; s++) {
      const byte = bytes[1 + (s >> 2)];
      if (byte === undefined) break;
      const bits = (byte >> ((s & 3) * 2)) & 3;
      slots.push({ slot: s, present: (bits & 1) !== 0, changed: (bits & 2) !== 0 });
    }
    return { type: 'slotChange', slots };
  }
  if (bytes.length >= 4 && bytes[0] === RDR_to_PC_HardwareError) {
    const code = bytes[3];
    return { type: 'hardwareError', slot: bytes[1], seq: bytes[2], code, message: code === 0x01 ? 'over-current on the card contacts' : `hardware error 0x${code.toString(16)}` };
  }
  return { type: 'unknown', bytes };
}

export function encodeNotifySlotChange(slots: Array<{ present: boolean; changed: boolean }>): Uint8Array {
  const out = new Uint8Array(1 + Math.ceil(slots.length / 4));
  out[0] = RDR_to_PC_NotifySlotChange;
  slots.forEach((s, i) => { out[1 + (i >> 2)] |= ((s.present ? 1 : 0) | (s.changed ? 2 : 0)) << ((i & 3) * 2); });
  return out;
}

export function encodeHardwareError(slot: number, seq: number, code: number): Uint8Array {
  return Uint8Array.of(RDR_to_PC_HardwareError, slot, seq, code);
}

/** Builds a bulk-IN response (for the device simulator and tests). */
export function encodeResponse(type: number, slot: number, seq: number, bStatus: number, bError: number, third: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return encodeMessage({ bMessageType: type, bSlot: slot, bSeq: seq, params: [bStatus, bError, third], data });
}

/** One line for the CCID-level trace: `PC_to_RDR_XfrBlock slot 0 seq 3 [5 bytes]`. */
export function describeMessage(bytes: Uint8Array): string {
  const r = decodeMessage(bytes);
  if (!r.ok) return `malformed CCID message (${r.reason})`;
  const m = r.message;
  const name = MESSAGE_NAMES[m.bMessageType] ?? `message 0x${m.bMessageType.toString(16)}`;
  let extra = '';
  if (m.bMessageType >= 0x80) {
    const st = decodeStatus(m.params[0]);
    extra = ` ICC ${st.iccStatus ?? 'RFU'}, ${st.commandStatus ?? 'RFU'}`;
    if (st.commandStatus === 'failed') extra += ` (${describeSlotError(m.params[1]).name})`;
    if (st.commandStatus === 'timeExtension') extra += ` (x${m.params[1]})`;
  }
  return `${name} slot ${m.bSlot} seq ${m.bSeq}${extra} [${m.data.length} bytes]`;
}
