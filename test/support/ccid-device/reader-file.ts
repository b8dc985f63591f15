// Parses one of libccid's `parse` dumps (shared/data/ccid-readers/*.txt) into the
// descriptor field values and what libccid printed beside them, so tests can
// compare our interpretation with libccid's and the device simulator can take a
// real reader's profile.

import fs, { readFileSync } from 'node:fs';
import path from 'node:path';
import type { CcidDescriptor } from '../../../server/src/ccid/descriptor';

/** shared/ sits beside the repository (CI's fresh clone, a developer's checkout). */
export const READERS_DIR = process.env.CCID_READERS_DIR
  ?? [path.resolve(process.cwd(), '..', 'shared', 'data', 'ccid-readers'), '/work/shared/data/ccid-readers'].find((d) => fs.existsSync(d))
  ?? path.resolve(process.cwd(), '..', 'shared', 'data', 'ccid-readers');

/** What libccid printed as its interpretation of the fields. */
export interface LibccidSays {
  voltages: number[];
  protocols: number[];
  /** Exchange level line, mapped to our words; null when libccid printed none. */
  exchangeLevel: 'character' | 'tpdu' | 'shortApdu' | 'extendedApdu' | null;
  /** Feature lines (`....02`, `..04..`) as dwFeatures bits. */
  featureBits: number;
  pinVerify: boolean;
  pinModify: boolean;
}

export interface ReaderInterface {
  bInterfaceNumber: number;
  bInterfaceClass: number;
  bInterfaceProtocol: number;
  bNumEndpoints: number;
  iInterface?: string;
  fields: CcidDescriptor;
  says: LibccidSays;
}

export interface ReaderFile {
  file: string;
  idVendor: number;
  idProduct: number;
  iManufacturer: string;
  iProduct: string;
  bcdDevice: string;
  interfaces: ReaderInterface[];
}

const EXCHANGE_LINES: Record<string, LibccidSays['exchangeLevel']> = {
  '00': 'character', '01': 'tpdu', '02': 'shortApdu', '04': 'extendedApdu',
};

const OLD_FEATURE_LINES: ReadonlyArray<readonly [string, number | string]> = [
  ['Automatic parameter configuration based on ATR', 0x02],
  ['Automatic activation of ICC on inserting', 0x04],
  ['Automatic ICC voltage selection', 0x08],
  ['Automatic ICC clock frequency change', 0x10],
  ['Automatic baud rate change', 0x20],
  ['Automatic parameters negotiation', 0x40],
  ['Automatic PPS', 0x80],
  ['CCID can set ICC in clock stop mode', 0x100],
  ['NAD value other than 00 accepted', 0x200],
  ['Automatic IFSD exchange', 0x400],
  ['Character level exchange', 'character'],
  ['TPDU level exchange', 'tpdu'],
  ['Short APDU level exchange', 'shortApdu'],
  ['Short and Extended APDU level exchange', 'extendedApdu'],
];

function num(v: string): number {
  const t = v.trim().split(/\s+/)[0];
  return t.startsWith('0x') ? parseInt(t, 16) : parseInt(t, 10);
}

export function parseReaderFile(path: string): ReaderFile {
  const text = readFileSync(path, 'latin1').replace(/\r/g, '');
  const lines = text.split('\n');
  const file = path.split('/').pop()!;
  const top: Record<string, string> = {};
  const interfaces: ReaderInterface[] = [];
  let iface: Partial<ReaderInterface> & { raw: Record<string, string> } | null = null;
  let inCcid = false;
  let section = '';
  let says: LibccidSays | null = null;
  const finish = () => {
    if (iface && inCcid && says) {
      const r = iface.raw;
      const [maj, min] = r.bcdCCID.trim().split('.');
      const [protoHi, protoLo] = r.dwProtocols.trim().split(/\s+/);
      const fields: CcidDescriptor = {
        bLength: num(r.bLength),
        bDescriptorType: num(r.bDescriptorType),
        bcdCCID: (parseInt(maj, 16) << 8) | parseInt(min, 16),
        bMaxSlotIndex: num(r.bMaxSlotIndex),
        bVoltageSupport: num(r.bVoltageSupport),
        dwProtocols: parseInt(protoHi.slice(2) + protoLo.slice(2), 16),
        dwDefaultClock: Math.round(parseFloat(r.dwDefaultClock) * 1000),
        dwMaximumClock: Math.round(parseFloat(r.dwMaximumClock) * 1000),
        bNumClockSupported: num(r.bNumClockSupported),
        dwDataRate: num(r.dwDataRate),
        dwMaxDataRate: num(r.dwMaxDataRate),
        bNumDataRatesSupported: num(r.bNumDataRatesSupported),
        dwMaxIFSD: num(r.dwMaxIFSD),
        dwSynchProtocols: num(r.dwSynchProtocols),
        dwMechanical: num(r.dwMechanical),
        dwFeatures: num(r.dwFeatures),
        dwMaxCCIDMessageLength: num(r.dwMaxCCIDMessageLength),
        bClassGetResponse: num(r.bClassGetResponse),
        bClassEnvelope: num(r.bClassEnvelope),
        wLcdLayout: num(r.wLcdLayout),
        bPINSupport: num(r.bPINSupport),
        bMaxCCIDBusySlots: num(r.bMaxCCIDBusySlots),
      };
      interfaces.push({
        bInterfaceNumber: iface.bInterfaceNumber ?? 0,
        bInterfaceClass: iface.bInterfaceClass ?? 0x0b,
        bInterfaceProtocol: iface.bInterfaceProtocol ?? 0,
        bNumEndpoints: iface.bNumEndpoints ?? 3,
        iInterface: iface.iInterface,
        fields,
        says,
      });
    }
    iface = null; inCcid = false; says = null;
  };
  for (const line of lines) {
    const m = /^( +)([A-Za-z]+): ?(.*)$/.exec(line);
    if (line === ' CCID Class Descriptor') {
      inCcid = true;
      says = { voltages: [], protocols: [], exchangeLevel: null, featureBits: 0, pinVerify: false, pinModify: false };
      continue;
    }
    if (m && m[1].length === 1 && m[2] === 'bLength' && !inCcid) { finish(); iface = { raw: {} }; continue; }
    if (m && m[1].length === 1 && m[2] === 'bLength' && inCcid) { finish(); iface = { raw: {} }; continue; }
    if (!iface) {
      if (m) top[m[2]] = m[3];
      continue;
    }
    if (!inCcid) {
      if (!m) continue;
      if (m[1].length === 1 && m[2] === 'bInterfaceNumber') iface.bInterfaceNumber = num(m[3]);
      else if (m[1].length === 1 && m[2] === 'bInterfaceClass') iface.bInterfaceClass = num(m[3]);
      else if (m[1].length === 1 && m[2] === 'bInterfaceProtocol') iface.bInterfaceProtocol = num(m[3]);
      else if (m[1].length === 1 && m[2] === 'bNumEndpoints') iface.bNumEndpoints = num(m[3]);
      else if (m[1].length === 1 && m[2] === 'iInterface') iface.iInterface = m[3].trim() || undefined;
      continue;
    }
    if (m && m[1].length === 2) { section = m[2]; iface.raw[m[2]] = m[3]; continue; }
    const s = line.trim();
    if (!says || !s) continue;
    if (section === 'bVoltageSupport') {
      const v = /^([\d.]+)V$/.exec(s);
      if (v) says.voltages.push(parseFloat(v[1]));
    } else if (section === 'dwProtocols') {
      const t = /^T=(\d+)$/.exec(s);
      if (t) says.protocols.push(Number(t[1]));
    } else if (section === 'dwFeatures') {
      const f = /^(\.\.|[0-9A-F]{2})(\.\.|[0-9A-F]{2})(\.\.|[0-9A-F]{2}) /.exec(s);
      if (f) {
        if (f[1] !== '..') {
          if (f[1] in EXCHANGE_LINES) says.exchangeLevel = EXCHANGE_LINES[f[1]];
          else says.featureBits |= parseInt(f[1], 16) << 16;
        } else if (f[2] !== '..') says.featureBits |= parseInt(f[2], 16) << 8;
        else says.featureBits |= parseInt(f[3], 16);
      } else {
        // Older `parse` output prints the words without the bit code.
        const old = OLD_FEATURE_LINES.find(([w]) => s.startsWith(w));
        if (old && typeof old[1] === 'number') says.featureBits |= old[1];
        else if (old) says.exchangeLevel = old[1] as LibccidSays['exchangeLevel'];
      }
    } else if (section === 'bPINSupport') {
      if (s === 'PIN Verification supported') says.pinVerify = true;
      if (s === 'PIN Modification supported') says.pinModify = true;
    }
  }
  finish();
  return {
    file,
    idVendor: num(top.idVendor ?? '0'),
    idProduct: num(top.idProduct ?? '0'),
    iManufacturer: (top.iManufacturer ?? '').trim(),
    iProduct: (top.iProduct ?? '').trim(),
    bcdDevice: (top.bcdDevice ?? '').trim().split(' ')[0],
    interfaces,
  };
}

/** The profile file's path in the shared data folder. */
export function readerPath(name: string): string {
  return `${READERS_DIR}/${name}`;
}
