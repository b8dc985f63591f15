// `scard ccid HEX --json`: decodes a CCID class descriptor given as hex.

import { ScError } from '../util/errors';
import { fromHex, HexError } from '../util/hex';
import { ccidDescriptorToJson, decodeCcidDescriptor, type CcidDescriptorJson } from './descriptor';

/** Returns the decoded descriptor as JSON, or throws ScError('BAD_REQUEST') saying what is wrong. */
export function ccidCommand(hex: string): CcidDescriptorJson {
  let bytes: Uint8Array;
  try {
    bytes = fromHex(hex);
  } catch (e) {
    const where = e instanceof HexError ? ` (at character ${e.index + 1})` : '';
    throw new ScError('BAD_REQUEST', `the CCID class descriptor must be hex: ${(e as Error).message}${where}`);
  }
  const r = decodeCcidDescriptor(bytes);
  if (!r.ok) throw new ScError('BAD_REQUEST', `not a CCID class descriptor: ${r.error.message}`, { reason: r.error.code });
  return ccidDescriptorToJson(r.descriptor, r.warnings);
}
