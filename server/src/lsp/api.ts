// The helper's side of the public API for other extensions (api/smartcard-workbench.d.ts):
// each extension's connections are manager connections like a script's (same queue, gate,
// transactions, T=0 rules, time-outs), kept here by handle and by the extension's id.
// Arguments come from code we do not know: every one is checked and refused in words.
import type { CancellationToken, Connection as LspConnection } from 'vscode-languageserver';
import { describeAtr, atrToJson, parseAtr } from '../codecs/atr';
import { describeCommand, explainParameters, parseCommandApdu, secretRanges } from '../codecs/apdu';
import { describeStatusWord } from '../codecs/sw';
import { decodeBerTlv, type TlvNode } from '../codecs/tlv';
import { identifyAtr } from '../drivers/registry';
import type { Connection as CardConnection, ReaderManager } from '../manager/manager';
import {
  ApiConnectRequest, ApiControlRequest, ApiDecodeRequest, ApiDisconnectRequest, ApiReleaseRequest, ApiResetRequest,
  ApiTransactionRequest, ApiTransmitRequest, type ControlEntry, type Disposition, type TlvView,
} from '../protocol';
import { ScError, asScError } from '../util/errors';
import { fromHex, toHex, toSpacedHex } from '../util/hex';
import { handle } from './rpc';

/** The longest command APDU: extended case 4 (4 header bytes, 3 Lc, 65,535 data, 2 Le). */
export const MAX_APDU_BYTES = 4 + 3 + 65_535 + 2;
/** Control commands carry at most this much (as the Readers view's Send Control Command). */
export const MAX_CONTROL_BYTES = 65_536;
/** Open connections one extension may hold at a time (a leak in a caller stops here, not in the reader). */
export const MAX_CONNECTIONS_PER_CLIENT = 64;

const DISPOSITIONS: readonly Disposition[] = ['leave', 'reset', 'unpower', 'eject'];
/** An extension id as VS Code spells it (`publisher.name`). */
export function checkClient(v: unknown): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]*\.[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v) || v.length > 200) {
    throw new ScError('BAD_REQUEST', 'The calling extension is not named: the API needs its id (publisher.name).');
  }
  return v;
}

/** Hex of at most `max` bytes, spaces allowed; the error says what `what` is and what is wrong. */
export function apiHex(v: unknown, what: string, max: number, min = 0): Uint8Array {
  if (typeof v !== 'string') throw new ScError('BAD_REQUEST', `The ${what} must be a hex string.`);
  // Counted before parsing: a huge string is refused without building anything from it.
  if (v.length > 3 * max + 16) throw new ScError('BAD_REQUEST', `The ${what} is longer than ${max.toLocaleString('en-US')} bytes.`);
  const clean = v.replace(/[\s:]+/g, '');
  if (!/^[0-9a-fA-F]*$/.test(clean)) {
    const bad = /[^0-9a-fA-F]/.exec(clean)?.[0] ?? '';
    throw new ScError('BAD_REQUEST', `The ${what} is not hex: '${bad}' is not a hex digit.`);
  }
  if (clean.length % 2) throw new ScError('BAD_REQUEST', `The ${what} has an odd number of hex digits (${clean.length}); a byte is two digits.`);
  const n = clean.length / 2;
  if (n > max) throw new ScError('BAD_REQUEST', `The ${what} is ${n.toLocaleString('en-US')} bytes; at most ${max.toLocaleString('en-US')} are allowed.`);
  if (n < min) throw new ScError('BAD_REQUEST', `The ${what} has ${n} byte(s); it needs at least ${min}.`);
  return fromHex(clean);
}

function tlvView(nodes: TlvNode[]): TlvView[] {
  return nodes.map((n) => {
    const v: TlvView = { tag: n.tagHex, length: n.length };
    if (n.name) v.name = n.name;
    if (n.children) v.children = tlvView(n.children);
    else v.value = toSpacedHex(n.value);
    return v;
  });
}

/** The decoders the editor's hover and the APDU Log use, for API callers. */
export function apiDecode(kind: unknown, hex: unknown): unknown {
  switch (kind) {
    case 'atr': {
      const atr = apiHex(hex, 'ATR', 33, 2);
      const info = parseAtr(atr);
      return { lines: describeAtr(info), identified: identifyAtr(toSpacedHex(atr)), fields: atrToJson(info) };
    }
    case 'command': {
      const c = parseCommandApdu(apiHex(hex, 'command APDU', MAX_APDU_BYTES, 4));
      const h = (b: number) => toHex(Uint8Array.of(b));
      return {
        summary: describeCommand(c), cla: h(c.cla), claMeaning: c.claInfo.description, ins: h(c.ins),
        ...(c.insName ? { insName: c.insName } : {}), p1: h(c.p1), p2: h(c.p2), params: explainParameters(c),
        ...(c.case ? { case: c.case } : {}), extended: c.extended,
        ...(c.lc !== undefined ? { lc: c.lc } : {}), ...(c.data.length ? { data: toHex(c.data) } : {}),
        ...(c.le !== undefined ? { le: c.le } : {}), errors: c.errors,
      };
    }
    case 'sw': {
      const sw = apiHex(hex, 'status word', 2, 2);
      const info = describeStatusWord(sw[0], sw[1]);
      return {
        sw: toHex(sw), meaning: info.meaning, category: info.category,
        ...(info.retries !== undefined ? { retries: info.retries } : {}),
        ...(info.available !== undefined ? { available: info.available } : {}),
        ...(info.correctLe !== undefined ? { correctLe: info.correctLe } : {}),
      };
    }
    case 'tlv': {
      const r = decodeBerTlv(apiHex(hex, 'BER-TLV data', 1_000_000));
      return { nodes: tlvView(r.nodes), complete: r.complete, ...(r.error ? { error: r.error } : {}) };
    }
    default:
      throw new ScError('BAD_REQUEST', "decode takes 'atr', 'command', 'sw' or 'tlv'.");
  }
}

interface Held { client: string; session: string; conn: CardConnection }

/** The API object's session id (absent: '' — a caller of the raw requests, as the tests are). */
const sessionOf = (v: unknown): string => (typeof v === 'string' && v.length <= 64 ? v : '');

type Wrap = <P, R>(fn: (p: P, token: CancellationToken) => Promise<R>) => (p: P, token: CancellationToken) => Promise<R>;

export function registerApi(connection: LspConnection, ready: () => Promise<ReaderManager>, wrap: Wrap): { release(client: string, session?: string): Promise<number> } {
  const held = new Map<number, Held>();
  let nextHandle = 1;

  const connOf = (p: { client?: unknown; session?: unknown; handle?: unknown } | undefined): CardConnection => {
    const client = checkClient(p?.client);
    const h = held.get(p?.handle as number);
    // Another extension's (or another API object's) handle is as unknown as a closed one: nobody
    // reaches a connection they did not open.
    if (!h || h.client !== client || h.session !== sessionOf(p?.session)) {
      throw new ScError('BAD_REQUEST', `Connection ${String(p?.handle)} is not open: it was disconnected, its card or reader went away, or the reader manager restarted. Connect again.`);
    }
    return h.conn;
  };
  const disposition = (v: unknown): Disposition => {
    if (v === undefined || v === null) return 'leave';
    if (!DISPOSITIONS.includes(v as Disposition)) throw new ScError('BAD_REQUEST', "disposition is 'leave', 'reset', 'unpower' or 'eject'.");
    return v as Disposition;
  };
  const release = async (client: string, session?: string): Promise<number> => {
    const mine = [...held].filter(([, h]) => h.client === client && (session === undefined || h.session === session));
    for (const [handle] of mine) held.delete(handle);
    await Promise.all(mine.map(([, h]) => h.conn.disconnect('leave').catch(() => undefined)));
    return mine.length;
  };

  handle(connection, ApiConnectRequest, wrap(async (p) => {
    const m = await ready();
    const client = checkClient(p?.client);
    if (typeof p.reader !== 'string' || !p.reader || p.reader.length > 256) throw new ScError('BAD_REQUEST', 'Name the reader exactly (a string of at most 256 characters), as in readers[].name.');
    m.reader(p.reader); // NO_READER, with the name
    if (p.share !== undefined && p.share !== 'shared' && p.share !== 'exclusive') throw new ScError('BAD_REQUEST', "share is 'shared' or 'exclusive'.");
    if (p.protocol !== undefined && p.protocol !== 0 && p.protocol !== 1) throw new ScError('BAD_REQUEST', 'protocol is 0 (T=0) or 1 (T=1).');
    const open = [...held.values()].filter((h) => h.client === client).length;
    if (open >= MAX_CONNECTIONS_PER_CLIENT) throw new ScError('BAD_REQUEST', `${client} already holds ${open} connections; disconnect some first.`);
    const conn = await m.connect(p.reader, { share: p.share ?? 'shared', client, ...(p.protocol !== undefined ? { protocol: p.protocol } : {}) });
    const handleId = nextHandle++;
    held.set(handleId, { client, session: sessionOf(p.session), conn });
    return { handle: handleId, reader: conn.readerName, atr: conn.atr ? toHex(conn.atr) : '', ...(conn.protocol !== undefined ? { protocol: conn.protocol } : {}) };
  }));

  handle(connection, ApiTransmitRequest, wrap(async (p) => {
    await ready();
    const conn = connOf(p);
    const apdu = apiHex(p.apdu, 'command APDU', MAX_APDU_BYTES, 4);
    const secret = secretRanges(apdu);
    const r = await conn.transmit(apdu, secret ? { secret } : {});
    return { response: toHex(r.response), sw: toHex(r.response.subarray(r.response.length - 2)) };
  }));

  handle(connection, ApiControlRequest, wrap(async (p) => {
    const m = await ready();
    const conn = connOf(p);
    if (!Number.isInteger(p.code) || p.code < 0 || p.code > 0xffffffff) throw new ScError('BAD_REQUEST', 'The control code is a whole number from 0 to 0xFFFFFFFF.');
    const data = apiHex(p.data ?? '', 'control data', MAX_CONTROL_BYTES);
    const t0 = performance.now();
    const base = { kind: 'control' as const, reader: conn.readerName, code: p.code, command: toHex(data), client: p.client };
    try {
      const out = await conn.control(p.code, data);
      m.emitEntry<ControlEntry>({ ...base, response: toHex(out), durationMs: performance.now() - t0 });
      return { response: toHex(out) };
    } catch (e) {
      m.emitEntry<ControlEntry>({ ...base, error: asScError(e).message, durationMs: performance.now() - t0 });
      throw e;
    }
  }));

  handle(connection, ApiTransactionRequest, wrap(async (p) => {
    await ready();
    const conn = connOf(p);
    if (p.action === 'begin') return conn.beginTransaction();
    if (p.action === 'end') return conn.endTransaction(disposition(p.disposition));
    throw new ScError('BAD_REQUEST', "action is 'begin' or 'end'.");
  }));

  handle(connection, ApiResetRequest, wrap(async (p) => {
    await ready();
    const conn = connOf(p);
    const mode = p.mode ?? 'warm';
    if (mode !== 'cold' && mode !== 'warm') throw new ScError('BAD_REQUEST', "mode is 'cold' or 'warm'.");
    const atr = await conn.reset(mode);
    return { atr: toHex(atr), ...(conn.protocol !== undefined ? { protocol: conn.protocol } : {}) };
  }));

  handle(connection, ApiDisconnectRequest, wrap(async (p) => {
    const m = await ready();
    const client = checkClient(p?.client);
    const d = disposition(p.disposition);
    const h = held.get(p.handle);
    if (!h || h.client !== client || h.session !== sessionOf(p.session)) return; // already closed: disconnecting twice is harmless
    if (d === 'eject' && !m.canEject(h.conn.readerName)) throw new ScError('NOT_SUPPORTED', `'${h.conn.readerName}' cannot eject cards; disconnect with leave, reset or unpower.`);
    held.delete(p.handle);
    await h.conn.disconnect(d);
  }));

  handle(connection, ApiReleaseRequest, wrap(async (p) => {
    await ready();
    return release(checkClient(p?.client), sessionOf(p?.session));
  }));

  handle(connection, ApiDecodeRequest, wrap(async (p) => apiDecode(p?.kind, p?.hex)));

  return { release };
}
