// Runs a parsed script against the reader manager. One run = one connection
// (shared by default), opened at the first card operation, closed at the end;
// an open transaction is ended on any exit so the card is left in a known state.

import { describeStatusWord, isRetryCounterQuery } from '../codecs/sw';
import type { Connection, ReaderManager, TransmitResult } from '../manager/manager';
import type { ControlEntry, ErrorValue, LineResult, PinCachePolicy, RunScriptResult, ScriptEntry } from '../protocol';
import { ScError, asScError } from '../util/errors';
import { concatBytes, toHex, toSpacedHex } from '../util/hex';
import type { Expectation, HexPart, PinEncoding, Script, Slice, Statement } from './ast';
import { CM_IOCTL_GET_FEATURE_REQUEST, parseFeatureList } from '../codecs/pcscFeatures';
import { encodePinVerify } from '../codecs/pinpad';
import { instructionName, parseCommandApdu, secretRanges } from '../codecs/apdu';
import { countCommands } from './ast';
import type { SessionPinCache } from './pins';
import { matchExpectation } from './parser';

export interface EngineContext {
  manager: ReaderManager;
  /** Reader name or glob; default: the only reader with a card. */
  reader?: string;
  uri?: string;
  signal?: AbortSignal;
  /** Asks the user for a PIN (masked), saying which reader and line it is for. The value never reaches a log. */
  /** `tries`: what the retry counter said just before (63 Cx), when it was read. */
  askPin?: (label: string, where?: { reader?: string; line?: number; tries?: number }) => Promise<string>;
  /** How PINs are remembered: none, for this run (default), or in `sessionPins`. */
  pinPolicy?: PinCachePolicy;
  sessionPins?: SessionPinCache;
  /** Asks the user to confirm a risky step; with it, a VERIFY's retry counter is read first. */
  confirm?: (message: string, confirmLabel: string) => Promise<boolean>;
  checkRetries?: boolean;
  onProgress?: (done: number, total: number, line: number) => void;
  /** Run only statements on these 1-based lines (inclusive). */
  fromLine?: number;
  toLine?: number;
  runId?: number;
  /** The extension that runs the script through the API: its rows in the log carry the id. */
  client?: string;
}

let nextRunId = 1;
export function allocateRunId(): number { return nextRunId++; }

interface RunState {
  conn: Connection | null;
  /** The reader the run last used. */
  readerName?: string;
  readerPattern?: string;
  getResponse: boolean;
  vars: Map<string, Uint8Array>;
  /** The last answer with its status word ($data and $sw are cut from it when a script asks). */
  response: Uint8Array;
  /** $data after a `control` statement (its output has no status word). */
  controlData?: Uint8Array;
  done: number;
  total: number;
  /** One result per source line (a repeat does not grow it): last status word, a failure sticks. */
  lines: Map<number, LineResult>;
  inTransaction: number;
  pinCache: Map<string, string>;
  /** Statements and loop iterations since the event loop last turned. */
  sinceYield: number;
  /** The line of the statement being run (a PIN prompt names it). */
  line?: number;
  /** `set timeout MS`: passed with every card and control call; undefined = the manager's setting. */
  timeoutMs?: number;
  /**
   * The last card exchange, when it was a retry-counter query (VERIFY without data):
   * its CLA/P1/P2 and status word. Any other statement clears it. A VERIFY right after
   * reads the count from here instead of asking the card again.
   */
  lastQuery?: { cla: number; p1: number; p2: number; sw: number };
}

/** Let the event loop turn this often, so events stream live and a cancel is heard. */
const YIELD_EVERY = 256;

class ExitScript { }

export async function runScript(script: Script, ctx: EngineContext): Promise<RunScriptResult> {
  const runId = ctx.runId ?? allocateRunId();
  const t0 = performance.now();
  const errors = script.diagnostics.filter((d) => d.severity === 'error');
  const statements = selectLines(script.statements, ctx.fromLine, ctx.toLine);
  const st: RunState = {
    conn: null, readerPattern: ctx.reader, getResponse: true, vars: new Map(),
    response: new Uint8Array(0), done: 0, total: countCommands(statements),
    lines: new Map(), inTransaction: 0, pinCache: new Map(), sinceYield: 0,
  };
  const { manager } = ctx;
  const lineRun = { ...(ctx.fromLine !== undefined && ctx.fromLine === ctx.toLine ? { lineRun: true } : {}), ...clientOf(ctx) };
  manager.emitEntry<ScriptEntry>({ kind: 'scriptStarted', runId, ...(ctx.uri ? { file: ctx.uri } : {}), ...lineRun });

  let failure: (ErrorValue & { line?: number }) | undefined;
  if (errors.length) {
    const first = errors[0];
    failure = { code: 'SCRIPT_SYNTAX', message: `line ${first.span.start.line + 1}: ${first.message}`, line: first.span.start.line + 1 };
  } else {
    try {
      await execBlock(statements, st, ctx, runId);
    } catch (e) {
      if (!(e instanceof ExitScript)) {
        const err = e instanceof LineError ? e.error : asScError(e);
        const line = e instanceof LineError ? e.line : undefined;
        failure = { code: err.code, message: line ? `line ${line}: ${err.message}` : err.message, ...(line ? { line } : {}) };
      }
    } finally {
      await cleanUp(st, manager, runId);
    }
  }
  const result: RunScriptResult = {
    runId, ok: !failure, commands: st.done, durationMs: Math.round(performance.now() - t0),
    lines: [...st.lines.values()], ...(st.readerName ? { reader: st.readerName } : {}), ...(failure ? { failure } : {}),
  };
  manager.emitEntry<ScriptEntry>({
    kind: 'scriptEnded', runId, ok: result.ok, ...(ctx.uri ? { file: ctx.uri } : {}), ...lineRun,
    message: failure ? failure.message : `${st.done} command(s) passed`, ...(failure?.line ? { line: failure.line } : {}),
  });
  return result;
}

/** How the Readers view names a run's connection: "script verify-pin.apdu", "Send APDU". */
export function scriptLabel(uri: string | undefined): string {
  if (!uri) return 'script';
  if (!/[/\\:]/.test(uri)) return uri; // a name such as 'Send APDU'
  let base = uri.split(/[/\\]/).pop() ?? uri;
  try { base = decodeURIComponent(base); } catch { /* as it is */ }
  return `script ${base.replace(/^untitled:/, '') || uri}`;
}

/** `{ client }` for a run through the API, spread into its log entries. */
function clientOf(ctx: EngineContext): { client?: string } {
  return ctx.client !== undefined ? { client: ctx.client } : {};
}

class LineError extends Error {
  constructor(readonly line: number, readonly error: ScError) { super(error.message); }
}

function selectLines(statements: Statement[], from?: number, to?: number): Statement[] {
  if (from === undefined && to === undefined) return statements;
  const lo = from ?? 1;
  const hi = to ?? Number.MAX_SAFE_INTEGER;
  return statements.filter((s) => s.line >= lo && s.line <= hi);
}

async function cleanUp(st: RunState, manager: ReaderManager, runId: number): Promise<void> {
  const conn = st.conn;
  st.conn = null;
  if (!conn) return;
  try {
    while (st.inTransaction > 0) { await conn.endTransaction('leave'); st.inTransaction--; }
  } catch { /* the card or reader is gone: nothing left to end */ }
  try { await conn.disconnect('leave'); } catch (e) {
    manager.emitEntry<ScriptEntry>({ kind: 'echo', runId, message: `disconnect: ${asScError(e).message}` });
  }
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

const cancelled = (line: number) => new LineError(line, new ScError('CANCELLED', 'Cancelled by the user before this line; the connection was closed and the card left as it was (no reset).'));

async function execBlock(statements: Statement[], st: RunState, ctx: EngineContext, runId: number): Promise<void> {
  for (let i = 0; i < statements.length; i++) {
    const s = statements[i];
    if (++st.sinceYield >= YIELD_EVERY) {
      st.sinceYield = 0;
      await yieldToEventLoop();
    }
    if (ctx.signal?.aborted) throw cancelled(s.line);
    st.line = s.line;
    try {
      if (s.kind === 'apdu') {
        // The hot path, nearly every line: a command of hex literals on an open connection, its
        // answer awaited here (no promise or closure of the engine's own per line). Anything else
        // (variables, PINs, the first connect) in execApduBuilt; both send with the same transmit.
        const conn = st.conn;
        const bytes = conn ? literalCommand(s.parts) : undefined;
        if (conn && bytes) {
          st.lastQuery = undefined;
          // A PIN written in the file (a literal VERIFY's data) is masked as a client's is.
          const res = await conn.transmit(bytes, { getResponse: st.getResponse, runId, line: s.line, secret: secretRanges(bytes), signal: ctx.signal, timeoutMs: st.timeoutMs });
          answered(s, st, ctx, conn, bytes, res, undefined);
        } else await execApduBuilt(s, st, ctx, runId);
      } else await execStatement(s, st, ctx, runId); // every other statement: its own frame, so this one stays small
    } catch (e) {
      if (e instanceof ExitScript || e instanceof LineError) throw e;
      throw new LineError(s.line, asScError(e));
    }
  }
}

async function connection(st: RunState, ctx: EngineContext, opts: { share?: 'shared' | 'exclusive'; protocol?: 0 | 1 } = {}): Promise<Connection> {
  if (st.conn) return st.conn;
  const name = ctx.manager.resolve(st.readerPattern);
  // The connection hears the run's Cancel on every call (power-up, control, transactions), not only transmit.
  st.conn = await ctx.manager.connect(name, { ...opts, signal: ctx.signal, waitBehindExclusive: true, label: scriptLabel(ctx.uri), ...clientOf(ctx) });
  st.readerName = name;
  return st.conn;
}

type ApduStatement = Extract<Statement, { kind: 'apdu' }>;

/** The bytes of a command made of hex literals only, built once per statement (the engine never changes them). */
const literalBytes = new WeakMap<HexPart[], Uint8Array>();

function literalCommand(parts: HexPart[]): Uint8Array | undefined {
  if (parts.length === 1) return parts[0].kind === 'hex' ? parts[0].bytes : undefined; // the usual line: nothing to build or cache
  const hit = literalBytes.get(parts);
  if (hit) return hit;
  for (const p of parts) if (p.kind !== 'hex') return undefined;
  const bytes = parts.length === 1 ? (parts[0] as { bytes: Uint8Array }).bytes : concatBytes(...parts.map((p) => (p as { bytes: Uint8Array }).bytes));
  literalBytes.set(parts, bytes);
  return bytes;
}

/** After the card answered a line's command: the retry-counter query remembered, a refused PIN forgotten, the line's result. */
function answered(s: ApduStatement, st: RunState, ctx: EngineContext, conn: Connection, bytes: Uint8Array, res: TransmitResult, pinLabels: string[] | undefined): void {
  if (isRetryCounterQuery(bytes)) st.lastQuery = { cla: bytes[0], p1: bytes[2], p2: bytes[3], sw: res.sw };
  if (pinLabels && (res.response[res.response.length - 2] & 0xf0) === 0x60) {
    // The card refused: never offer this PIN again.
    for (const label of pinLabels) {
      st.pinCache.delete(label);
      ctx.sessionPins?.forget(conn.readerName, toHexPlain(conn.atr ?? new Uint8Array(0)), label);
    }
  }
  // One exchange (T=1, or T=0 without GET RESPONSE): its log entry's hex is the response's; not built twice.
  record(s.line, res.response, s.expect, st, ctx, res.exchanges.length === 1 ? res.exchanges[0].response : undefined);
}

async function execApduBuilt(s: ApduStatement, st: RunState, ctx: EngineContext, runId: number): Promise<void> {
  const conn = st.conn ?? await connection(st, ctx);
  let bytes = literalCommand(s.parts);
  let secret: Array<[number, number]> | undefined;
  let pinLabels: string[] | undefined;
  if (!bytes) {
    for (const p of s.parts) if (p.kind === 'pin') (pinLabels ??= []).push(p.label);
    const tries = pinLabels ? await checkRetryCounter(s.parts, pinLabels[0], st, ctx, conn, runId, s.line) : undefined;
    st.lastQuery = undefined;
    const m = await materialize(s.parts, st, ctx, tries);
    bytes = m.bytes;
    if (m.secret.length) secret = m.secret;
    checkBuiltCommand(bytes, secret, s.parts);
  }
  // The data of a VERIFY & co. is a PIN however it was written (hex, \${NAME}, $data): masked as a
  // client's is, beside the \${pin} bytes (which may sit elsewhere, in a proprietary command).
  const own = secretRanges(bytes);
  if (own) secret = secret ? [...secret, ...own] : own;
  st.lastQuery = undefined;
  const res = await conn.transmit(bytes, { getResponse: st.getResponse, runId, line: s.line, secret, signal: ctx.signal, timeoutMs: st.timeoutMs });
  answered(s, st, ctx, conn, bytes, res, pinLabels);
}

/** bTimerOut of the pinpad's VERIFY structure: seconds the reader waits for the PIN to be typed. */
const PINPAD_TIMEOUT_S = 30;

async function execStatement(s: Statement, st: RunState, ctx: EngineContext, runId: number): Promise<void> {
  const { manager } = ctx;
  if (s.kind !== 'apdu') st.lastQuery = undefined;
  switch (s.kind) {
    case 'apdu':
      return execApduBuilt(s, st, ctx, runId);
    case 'pinpad': {
      const conn = await connection(st, ctx);
      const features = parseFeatureList(await conn.control(CM_IOCTL_GET_FEATURE_REQUEST, new Uint8Array(0), { timeoutMs: st.timeoutMs }));
      const verify = features.find((f) => f.name === 'VERIFY_PIN_DIRECT');
      if (!verify) throw new ScError('NOT_SUPPORTED', `'${conn.readerName}' has no pinpad (no FEATURE_VERIFY_PIN_DIRECT); use \${pin:"…"} to type the PIN in the editor instead.`);
      const { bytes } = await materialize(s.parts, st, ctx);
      const structure = encodePinVerify({ timeout: PINPAD_TIMEOUT_S, format: s.format, position: 0, minDigits: s.minDigits, maxDigits: s.maxDigits, apdu: bytes });
      const t0 = performance.now();
      // The reader waits up to PINPAD_TIMEOUT_S for the keypad: a shorter exchange time-out must not cut the person off.
      const out = await conn.control(verify.controlCode, structure, { timeoutMs: st.timeoutMs, minTimeoutMs: (PINPAD_TIMEOUT_S + 10) * 1000 });
      manager.emitEntry<ControlEntry>({ kind: 'control', reader: conn.readerName, code: verify.controlCode, command: toHexPlain(structure), response: toHexPlain(out), durationMs: performance.now() - t0, runId, line: s.line, ...clientOf(ctx) });
      if (out.length < 2) throw new ScError('PROTOCOL', `The pinpad answered ${out.length} byte(s); a status word was expected.`);
      record(s.line, out, s.expect, st, ctx);
      return;
    }
    case 'reset': {
      const conn = await connection(st, ctx);
      await conn.reset(s.mode);
      st.pinCache.clear();
      ctx.sessionPins?.clearReader(conn.readerName);
      return;
    }
    case 'connect': {
      if (st.conn) await cleanUp(st, manager, runId);
      if (s.reader !== undefined) st.readerPattern = s.reader;
      await connection(st, ctx, { ...(s.share ? { share: s.share } : {}), ...(s.protocol !== undefined ? { protocol: s.protocol } : {}) });
      return;
    }
    case 'disconnect': {
      const conn = st.conn;
      if (!conn) return;
      st.conn = null;
      st.inTransaction = 0;
      await conn.disconnect(s.disposition);
      return;
    }
    case 'control': {
      const conn = await connection(st, ctx);
      const { bytes } = await materialize(s.parts, st, ctx);
      const t0 = performance.now();
      try {
        const out = await conn.control(s.code, bytes, { timeoutMs: st.timeoutMs });
        st.controlData = out;
        manager.emitEntry<ControlEntry>({ kind: 'control', reader: conn.readerName, code: s.code, command: toHexPlain(bytes), response: toHexPlain(out), durationMs: performance.now() - t0, runId, line: s.line, ...clientOf(ctx) });
      } catch (e) {
        manager.emitEntry<ControlEntry>({ kind: 'control', reader: conn.readerName, code: s.code, command: toHexPlain(bytes), error: asScError(e).message, durationMs: performance.now() - t0, runId, line: s.line, ...clientOf(ctx) });
        throw e;
      }
      return;
    }
    case 'transaction': {
      const conn = await connection(st, ctx);
      if (s.action === 'begin') { await conn.beginTransaction(); st.inTransaction++; }
      else {
        if (st.inTransaction === 0) throw new ScError('BAD_REQUEST', "'transaction end' without 'transaction begin'");
        await conn.endTransaction('leave');
        st.inTransaction--;
      }
      return;
    }
    case 'wait': {
      const name = st.conn?.readerName ?? manager.resolve(st.readerPattern ?? undefined);
      await manager.waitForCard(name, s.what === 'card', s.ms ?? 0, ctx.signal);
      {
        // After a removal or a new card, the old connection points at a card that is gone.
        if (st.conn) { const c = st.conn; st.conn = null; st.inTransaction = 0; await c.disconnect('leave').catch(() => undefined); }
        st.readerPattern = name;
        st.pinCache.clear();
      }
      return;
    }
    case 'delay':
      await sleep(s.ms, ctx.signal);
      return;
    case 'echo':
      manager.emitEntry<ScriptEntry>({ kind: 'echo', runId, line: s.line, message: interpolate(s.text, st), ...clientOf(ctx) });
      return;
    case 'repeat':
      // Each iteration counts towards the yield, so an empty or tiny body still lets Cancel (and SIGINT) in.
      for (let i = 0; i < s.count; i++) {
        if (++st.sinceYield >= YIELD_EVERY) {
          st.sinceYield = 0;
          await yieldToEventLoop();
        }
        if (ctx.signal?.aborted) throw cancelled(s.line);
        if (s.body.length) await execBlock(s.body, st, ctx, runId);
      }
      return;
    case 'set':
      if (s.option === 'timeout') st.timeoutMs = s.timeoutMs;
      else st.getResponse = s.value;
      return;
    case 'let': {
      const { bytes, secret } = await materialize(s.parts, st, ctx);
      if (secret.length) throw new ScError('BAD_REQUEST', 'A PIN cannot be stored in a variable; put ${pin:"…"} in the command itself.');
      st.vars.set(s.name, bytes);
      return;
    }
    case 'exit':
      throw new ExitScript();
  }
}

/** Keeps a command's response as $data/$sw, counts it, and checks its expectation. */
function record(line: number, response: Uint8Array, expect: Expectation | undefined, st: RunState, ctx: EngineContext, responseHex?: string): void {
  st.response = response;
  st.controlData = undefined;
  st.done++;
  ctx.onProgress?.(st.done, st.total, line);
  const prev = st.lines.get(line);
  if (expect && !matchExpectation(expect, response)) {
    const data = dataOf(st);
    const sw = swOf(st);
    const swHex = toSpacedHex(sw);
    const meaning = describeStatusWord(sw[0], sw[1]).meaning;
    const got = data.length ? `${toSpacedHex(data.length > 16 ? data.subarray(0, 16) : data)}${data.length > 16 ? ' …' : ''} ${swHex}` : swHex;
    const message = `expected ${expect.text}, got ${got} (${meaning})`;
    st.lines.set(line, { line, sw: swHex.replace(' ', ''), ...shownResponse(response), ok: false, message, count: (prev?.count ?? 0) + 1 });
    throw new LineError(line, new ScError('EXPECTATION_FAILED', message));
  }
  if (prev?.ok === false) { prev.count++; return; }
  // Every command line: the result built in one object (no intermediate objects to spread).
  const n = response.length;
  const sw = n >= 2 ? HEX2[response[n - 2]] + HEX2[response[n - 1]] : '';
  const hex = n <= 258 && responseHex !== undefined ? responseHex : toHex(n > 258 ? concatBytes(response.subarray(0, 256), response.subarray(n - 2)) : response);
  const swMeaning = n >= 2 ? describeStatusWord(response[n - 2], response[n - 1]).meaning : undefined;
  if (prev) {
    // A line run again (repeat): its last response and the count.
    prev.sw = sw;
    prev.response = hex;
    prev.responseBytes = n;
    if (swMeaning !== undefined) prev.swMeaning = swMeaning;
    prev.count++;
  } else {
    st.lines.set(line, swMeaning !== undefined
      ? { line, sw, response: hex, responseBytes: n, swMeaning, ok: true, count: 1 }
      : { line, sw, response: hex, responseBytes: n, ok: true, count: 1 });
  }
}

/** The response for the editor's inline result: its hex, the data cut to 256 bytes. */
function shownResponse(response: Uint8Array): { response: string; responseBytes: number; swMeaning?: string } {
  const n = response.length;
  const shown = n > 258 ? concatBytes(response.subarray(0, 256), response.subarray(n - 2)) : response;
  return { response: toHex(shown), responseBytes: n, ...(n >= 2 ? { swMeaning: describeStatusWord(response[n - 2], response[n - 1]).meaning } : {}) };
}

const HEX2 = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase().padStart(2, '0'));

function dataOf(st: RunState): Uint8Array {
  return st.controlData ?? st.response.subarray(0, Math.max(0, st.response.length - 2));
}

function swOf(st: RunState): Uint8Array {
  return st.response.subarray(Math.max(0, st.response.length - 2));
}

function toHexPlain(b: Uint8Array): string { return toSpacedHex(b).replace(/ /g, ''); }

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(new ScError('CANCELLED', 'Cancelled during delay.')); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Substitutes ${NAME}, $data, $sw in echo text. */
function interpolate(text: string, st: RunState): string {
  return text.replace(/\$\{([A-Za-z_]\w*)\}|\$(data|sw)\b/g, (_, name, builtin) => {
    const v = builtin ? lookup(builtin, st) : st.vars.get(name);
    return v ? toSpacedHex(v) : `\${${name ?? builtin}}`;
  });
}

function lookup(name: string, st: RunState): Uint8Array | undefined {
  switch (name) {
    case 'data': return dataOf(st);
    case 'sw': return swOf(st);
    case 'sw1': return swOf(st).subarray(0, 1);
    case 'sw2': return swOf(st).subarray(1, 2);
    default: return st.vars.get(name);
  }
}

function applySlice(b: Uint8Array, s: Slice, name: string): Uint8Array {
  const norm = (i: number) => (i < 0 ? b.length + i : i);
  if (s.index !== undefined) {
    const i = norm(s.index);
    if (i < 0 || i >= b.length) throw new ScError('BAD_REQUEST', `index ${s.index} is outside ${name} (${b.length} bytes)`);
    return b.subarray(i, i + 1);
  }
  const start = s.start === undefined ? 0 : norm(s.start);
  const end = s.end === undefined ? b.length : norm(s.end);
  if (start < 0 || end > b.length || start > end) {
    throw new ScError('BAD_REQUEST', `slice [${s.start ?? ''}:${s.end ?? ''}] is outside ${name} (${b.length} bytes)`);
  }
  return b.subarray(start, end);
}

/**
 * Before a VERIFY that carries a PIN: read the retry counter with an empty
 * VERIFY (ISO 7816-4 §11.5.6), refuse when blocked, ask when one try is left.
 * When the script's own statement before was that query, its answer is used:
 * the card is not asked twice. Returns the tries left when the counter said so.
 */
async function checkRetryCounter(parts: HexPart[], label: string, st: RunState, ctx: EngineContext, conn: Connection, runId: number, line: number): Promise<number | undefined> {
  const q = st.lastQuery;
  const asked = (header: number[]) => q && q.cla === header[0] && q.p1 === header[2] && q.p2 === header[3];
  if (!ctx.confirm || ctx.checkRetries === false) {
    // No check of our own, but the script may just have read the counter.
    const h = headerOf(parts, st);
    return h && h[1] === 0x20 && asked(h) ? triesLeft(q!.sw) : undefined;
  }
  const header = headerOf(parts, st);
  if (!header || header[1] !== 0x20) return undefined;
  const sw = asked(header)
    ? q!.sw
    : (await conn.transmit(new Uint8Array([header[0], 0x20, header[2], header[3]]), { getResponse: false, runId, line, auto: 'retryCounter', timeoutMs: st.timeoutMs })).sw;
  if (sw === 0x6983 || sw === 0x63c0) {
    throw new ScError('BAD_REQUEST', `The PIN "${label}" is blocked (no tries left); the VERIFY was not sent.`);
  }
  if (sw === 0x63c1) {
    const ok = await ctx.confirm(`Only 1 try is left for the PIN "${label}" on ${conn.readerName}. A wrong PIN blocks it. Send the VERIFY?`, 'Use the last try');
    if (!ok) throw new ScError('CANCELLED', `Stopped before the VERIFY: only 1 try left for the PIN "${label}".`);
  }
  return triesLeft(sw);
}

/** 63 Cx → x; anything else says no count. */
const triesLeft = (sw: number): number | undefined => ((sw & 0xFFF0) === 0x63C0 ? sw & 0x0F : undefined);

/** CLA INS P1 P2 of a command that carries a PIN, when they are known before the PIN is asked. */
function headerOf(parts: HexPart[], st: RunState): number[] | undefined {
  const header: number[] = [];
  for (const p of parts) {
    if (p.kind === 'pin' || header.length >= 4) break;
    const b = p.kind === 'hex' ? p.bytes : lookup(p.name, st);
    if (!b) return undefined;
    header.push(...b);
  }
  return header.length < 4 ? undefined : header;
}

/**
 * A command built at run time (\${NAME}, $data, \${pin:…}) must fit its length fields
 * exactly as a literal one must (ISO 7816-4 §5.1): otherwise a T=0 card takes P3
 * bytes and a 6-digit PIN verifies on its first 4 digits. Nothing is sent. With a
 * PIN in the command the message names the label only: no PIN bytes and no data
 * length, which would tell the PIN's length.
 */
function checkBuiltCommand(bytes: Uint8Array, secret: Array<[number, number]> | undefined, parts: HexPart[]): void {
  const problem = parseCommandApdu(bytes).errors[0];
  if (!problem) return;
  const pinInHeader = secret?.some(([start]) => start < 5);
  if (secret && !(!pinInHeader && /^(INS|CLA) /.test(problem))) {
    const labels = [...new Set(parts.flatMap((p) => (p.kind === 'pin' ? [`"${p.label}"`] : [])))].join(', ');
    const lcFromScript = bytes.length > 5 && !pinInHeader && bytes[4] !== 0;
    throw new ScError('BAD_REQUEST', (lcFromScript
      ? `Lc is ${HEX2[bytes[4]]} but the data with the PIN ${labels} has another length`
      : `the command built with the PIN ${labels} does not fit its length fields`)
      + '; the command was not sent. Give the PIN a fixed length that matches Lc, e.g. ${pin:"User PIN",pad=8} with Lc 08.');
  }
  if (secretRanges(bytes) && !/^(INS|CLA) /.test(problem)) {
    // A VERIFY & co. built from \${NAME} or $data: its data is a PIN, and the problem's byte count
    // would tell its length.
    const what = `this ${instructionName(bytes[0], bytes[1]) ?? 'command'}`;
    throw new ScError('BAD_REQUEST', `${bytes[4] !== 0 ? `Lc is ${HEX2[bytes[4]]} but the data of ${what} has another length` : `the length fields of ${what} do not fit its data`}; the command was not sent.`);
  }
  throw new ScError('BAD_REQUEST', `the command built at run time is not a valid APDU: ${problem}; the command was not sent.`);
}

/** Builds the bytes of a command; returns where PIN bytes sit so the log can mask them. */
async function materialize(parts: HexPart[], st: RunState, ctx: EngineContext, tries?: number): Promise<{ bytes: Uint8Array; secret: Array<[number, number]> }> {
  const chunks: Uint8Array[] = [];
  const secret: Array<[number, number]> = [];
  let offset = 0;
  for (const p of parts) {
    let b: Uint8Array;
    if (p.kind === 'hex') b = p.bytes;
    else if (p.kind === 'var') {
      const v = lookup(p.name, st);
      if (!v) throw new ScError('BAD_REQUEST', `\${${p.name}} is not defined; define it with 'let ${p.name} = …' first`);
      b = p.slice ? applySlice(v, p.slice, p.name) : v;
    } else {
      if (!ctx.askPin) throw new ScError('NOT_SUPPORTED', `This script asks for a PIN ("${p.label}") but no PIN prompt is available here.`);
      const policy = ctx.pinPolicy ?? 'run';
      const reader = st.conn?.readerName ?? '';
      const atr = toHexPlain(st.conn?.atr ?? new Uint8Array(0));
      let pin = policy === 'none' ? undefined : policy === 'session' ? ctx.sessionPins?.get(reader, atr, p.label) : st.pinCache.get(p.label);
      if (pin === undefined) {
        pin = await ctx.askPin(p.label, { ...(reader ? { reader } : {}), ...(st.line ? { line: st.line } : {}), ...(tries !== undefined ? { tries } : {}) });
        if (ctx.signal?.aborted) throw new ScError('CANCELLED', `The run was cancelled while the PIN "${p.label}" was asked; the command was not sent.`);
        if (policy === 'run') st.pinCache.set(p.label, pin);
        else if (policy === 'session') ctx.sessionPins?.set(reader, atr, p.label, pin);
      }
      b = encodePin(pin, p.encoding, p.padTo, p.fill);
      secret.push([offset, offset + b.length]);
    }
    chunks.push(b);
    offset += b.length;
  }
  return { bytes: concatBytes(...chunks), secret };
}

/** PIN encodings: ASCII, packed BCD, ISO 9564 format 2 PIN block; optional padding. */
export function encodePin(pin: string, encoding: PinEncoding, padTo: number | undefined, fill: number): Uint8Array {
  let out: number[];
  if (encoding === 'ascii') {
    out = [...new TextEncoder().encode(pin)];
  } else {
    if (!/^\d+$/.test(pin)) throw new ScError('BAD_REQUEST', `A ${encoding === 'bcd' ? 'BCD' : 'format 2'} PIN must be digits only.`);
    if (encoding === 'bcd') {
      const digits = pin.length % 2 ? pin + 'F' : pin;
      out = [];
      for (let i = 0; i < digits.length; i += 2) out.push(parseInt(digits.substr(i, 2), 16));
    } else {
      if (pin.length < 4 || pin.length > 12) throw new ScError('BAD_REQUEST', 'A format 2 PIN block holds 4 to 12 digits.');
      const nibbles = (pin + 'F'.repeat(14 - pin.length));
      out = [0x20 | pin.length];
      for (let i = 0; i < 14; i += 2) out.push(parseInt(nibbles.substr(i, 2), 16));
    }
  }
  if (padTo !== undefined) {
    if (out.length > padTo) throw new ScError('BAD_REQUEST', `The PIN is longer than the pad length ${padTo}.`);
    while (out.length < padTo) out.push(fill);
  }
  return new Uint8Array(out);
}
