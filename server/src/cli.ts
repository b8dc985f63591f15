// `scard`: the same reader manager and script engine as the editor, headless.
//   scard run FILE [--reader GLOB] [--card T=0|T=1] [--json]
//   scard test [PATH|GLOB …] [--junit FILE] [--reader GLOB] [--card T=0|T=1] [--json]
//   scard readers [--watch] [--json]
//   scard serve [--socket PATH] [--vpcd PORT] [--pcsc] [--usb] [--no-simulator] [--card T=0|T=1] [--idle-power-off SECONDS] [--json]
//   scard atr HEX [--json]
//   scard ccid HEX [--json]
import fs from 'node:fs';
import { createDrivers, identifyAtr } from './drivers/registry';
import { ReaderManager } from './manager/manager';
import { pcscServiceExportLine, type HelperSettings, type RunScriptResult } from './protocol';
import { runScript } from './script/engine';
import { parseScript } from './script/parser';
import { BufferedOutput, entryPrinter, formatEntry, toJsonLine } from './script/trace';
import { ScError, asScError } from './util/errors';
import { fromHex, HexError, toSpacedHex } from './util/hex';
import { atrToJson, describeAtr, parseAtr } from './codecs/atr';
import { ccidCommand } from './ccid/cli';
import { NotFoundError, failureMessage, findScripts, junitXml, testCaseNames, type TestCaseResult } from './script/suite';
import os from 'node:os';
import { ManagerBackend } from './service/managerBackend';
import { PcscService } from './service/session';
import { SocketFolderError, startPcscServer } from './service/server';

/** The package's version, put in by the build (esbuild.mjs `define`). */
declare const SCARD_VERSION: string;

const USAGE = `usage:
  scard run FILE [--reader GLOB] [--card T=0|T=1] [--json]   run an APDU script (default: on the simulator)
  scard test [PATH|GLOB ...] [--junit FILE] [--reader GLOB] [--card T=0|T=1] [--json]
                                                              run every script found (folders recursively; default **/*.apdu),
                                                              each on a freshly reset card; a line per script, then
                                                              "N passed, N failed"; --junit FILE writes JUnit XML for CI
  scard readers [--watch] [--json]                            list readers; --watch prints events until Ctrl-C
  scard serve [--socket PATH] [--vpcd PORT] [--pcsc] [--usb] [--no-simulator] [--card T=0|T=1] [--json]
                                                              serve the readers to every PC/SC program (pcscd's protocol on a
                                                              UNIX socket): prints \`export PCSCLITE_CSOCK_NAME=PATH\` when
                                                              ready, then the exchanges, until SIGINT/SIGTERM
  scard atr HEX [--json]                                      decode an ATR
  scard ccid HEX [--json]                                     decode a CCID class descriptor
  scard help | --help | -h                                    this text
  scard version | --version | -V                              the version, and the Node.js and platform it runs on
options:
  --vpcd PORT[,PORT]   also listen for vpcd card emulators (vicc) on 127.0.0.1:PORT
  --pcsc               also use the system PC/SC service (pcscd, Windows Smart Card service)
  --usb                also drive USB CCID readers directly
  --ccid-trace         with --usb, print every raw CCID message on stderr
  --no-simulator       do not provide the simulator reader
  --reader GLOB        the reader: an exact name, or a glob (* ?) that matches exactly one reader
  --simulator-pin PIN  the simulator card's PIN, 4 to 12 digits (default 1234)
  --pinpad             the simulator reader is a pinpad (VERIFY_PIN_DIRECT; its keypad is the terminal or SCARD_PIN)
  --wait-card MS       scard run: before running, wait up to MS ms for a card (e.g. an emulator connecting to --vpcd)
  --socket PATH        scard serve: the socket (default $XDG_RUNTIME_DIR/smartcard-workbench/pcscd.comm,
                       else /tmp/smartcard-workbench-UID/pcscd.comm)
  --timeout MS         a card or reader that does not answer one exchange within MS ms fails it (default 60000)
  --idle-power-off S   power a card nobody uses down after S seconds, as pcscd does (default 5; 0 keeps idle
                       cards powered): the next connection meets a freshly reset card
  --verbose            print the reader manager's log on stderr
  --pin-env NAME       read PINs from environment variable NAME (default SCARD_PIN) when it is set, else ask
                       on the terminal
exit status: 0 done (scard serve: stopped by SIGINT/SIGTERM), 1 failed (script (scard test: any script), invalid ATR, reader), 2 wrong usage, 130/143 interrupted (SIGINT/SIGTERM)`;

interface Args { _: string[]; flags: Map<string, string | true>; help: boolean }

/** A wrong invocation (unknown option, bad value): exit 2, with the usage unless `usage` is false. */
class UsageError extends Error {
  constructor(message: string, readonly usage = true) { super(message); }
}

/** stdout, buffered (a 10,000-APDU trace is 20,000 lines); flushed before anything goes to stderr. */
const stdout = new BufferedOutput((text) => process.stdout.write(text));
function stderr(text: string): void {
  stdout.flush();
  process.stderr.write(text);
}

const VALUED = new Set(['junit', 'reader', 'card', 'vpcd', 'pin-env', 'wait-card', 'simulator-pin', 'timeout', 'socket', 'idle-power-off']);
const BOOLEAN = new Set(['json', 'watch', 'pcsc', 'usb', 'ccid-trace', 'no-simulator', 'pinpad', 'verbose', 'help', 'version']);
/** Options that shape the reader manager (drivers, simulator), for the commands that start one. */
const MANAGER = ['vpcd', 'pcsc', 'usb', 'ccid-trace', 'no-simulator', 'simulator-pin', 'pinpad', 'card', 'verbose', 'idle-power-off'];
const ALLOWED: Record<string, Set<string>> = {
  run: new Set([...MANAGER, 'reader', 'json', 'wait-card', 'pin-env', 'timeout', 'help']),
  test: new Set([...MANAGER, 'reader', 'json', 'junit', 'pin-env', 'timeout', 'help']),
  readers: new Set([...MANAGER, 'watch', 'json', 'help']),
  serve: new Set([...MANAGER, 'socket', 'json', 'pin-env', 'timeout', 'help']),
  atr: new Set(['json', 'help']),
  ccid: new Set(['json', 'help']),
  help: new Set(['help']),
  version: new Set(['version']),
};

/** Parses argv strictly: an unknown option, a missing or unexpected value is a UsageError. `--` ends the options. */
function parseArgs(argv: string[]): Args {
  const out: Args = { _: [], flags: new Map(), help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { out._.push(...argv.slice(i + 1)); break; }
    if (a === '-h' || a === '--help') { out.help = true; continue; }
    if (a === '-V') { out.flags.set('version', true); continue; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const k = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const v = eq < 0 ? undefined : a.slice(eq + 1);
      if (VALUED.has(k)) {
        if (v !== undefined) out.flags.set(k, v);
        else if (i + 1 < argv.length) out.flags.set(k, argv[++i]);
        else throw new UsageError(`--${k} needs a value`);
      } else if (BOOLEAN.has(k)) {
        if (v !== undefined) throw new UsageError(`'--${k}' takes no value`);
        out.flags.set(k, true);
      } else throw new UsageError(`unknown option '--${k}'`);
    } else if (a.startsWith('-') && a.length > 1) {
      throw new UsageError(`unknown option '${a}'`);
    } else out._.push(a);
  }
  const cmd = out._[0];
  const allowed = cmd !== undefined ? ALLOWED[cmd] : undefined;
  if (allowed) {
    for (const k of out.flags.keys()) if (!allowed.has(k)) throw new UsageError(`'--${k}' is not an option of 'scard ${cmd}'`);
  }
  return out;
}

/** The longest --idle-power-off, as the smartcard.readerManager.idlePowerOff setting is capped (a day). */
const MAX_IDLE_POWER_OFF_S = 86_400;

/** `--idle-power-off SECONDS` in ms (0: never), or undefined for pcscd's 5 s; a bad value is a UsageError. */
function idlePowerOffMs(args: Args): number | undefined {
  const v = args.flags.get('idle-power-off');
  if (v === undefined) return undefined;
  const s = typeof v === 'string' && /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(s) || s > MAX_IDLE_POWER_OFF_S) {
    throw new UsageError(`--idle-power-off takes seconds, 0 (keep idle cards powered) to ${MAX_IDLE_POWER_OFF_S}, e.g. --idle-power-off 5 (pcscd's grace period)`);
  }
  return Math.round(s * 1000);
}

function settingsFrom(args: Args): HelperSettings {
  idlePowerOffMs(args); // refused with the other bad values, before anything starts
  const card = args.flags.get('card');
  if (card !== undefined && card !== 'T=0' && card !== 'T=1') throw new UsageError('--card is T=0 or T=1');
  const vpcd = args.flags.get('vpcd');
  const ports = typeof vpcd === 'string' ? vpcd.split(',').map((p) => Number(p)) : [];
  if (ports.some((p) => !Number.isInteger(p) || p <= 0 || p > 65535)) throw new UsageError('--vpcd takes TCP port numbers, e.g. --vpcd 35963');
  const pin = args.flags.get('simulator-pin');
  // Like the smartcard.simulator.pin setting; the rejected value is not echoed.
  if (pin !== undefined && (typeof pin !== 'string' || !/^[0-9]{4,12}$/.test(pin))) throw new UsageError('--simulator-pin takes 4 to 12 digits (like the smartcard.simulator.pin setting)');
  // The CLI defaults to the simulator alone; other drivers are asked for.
  return {
    simulator: {
      enabled: !args.flags.has('no-simulator'),
      ...(card ? { card: card as 'T=0' | 'T=1' } : {}),
      ...(typeof pin === 'string' ? { pin } : {}),
      ...(args.flags.has('pinpad') ? { pinpad: true } : {}),
    },
    vpcd: { enabled: ports.length > 0, ports },
    pcsc: { enabled: args.flags.has('pcsc') },
    usbCcid: { enabled: args.flags.has('usb'), rawTrace: args.flags.has('ccid-trace') },
    ...(typeof args.flags.get('socket') === 'string' ? { pcscService: { socketPath: args.flags.get('socket') as string } } : {}),
  };
}

/** The signal that ended a run (SIGINT, SIGTERM, or Ctrl-C at the PIN prompt), and its abort. */
const interruption = { signal: null as NodeJS.Signals | null, abort: new AbortController() };
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

function interrupt(signal: NodeJS.Signals): void {
  if (interruption.signal) {
    // A second signal while the run winds down: stop now.
    stderr(`scard: interrupted (${signal}) again; stopping now\n`);
    process.exit(SIGNAL_EXIT[signal] ?? 130);
  }
  interruption.signal = signal;
  interruption.abort.abort();
}

async function startManager(args: Args): Promise<ReaderManager> {
  const verbose = args.flags.has('verbose');
  const pinEnv = (args.flags.get('pin-env') as string | undefined) ?? 'SCARD_PIN';
  const timeout = args.flags.get('timeout');
  const exchangeTimeoutMs = timeout === undefined ? undefined : Number(timeout);
  if (exchangeTimeoutMs !== undefined && (typeof timeout !== 'string' || !/^[0-9]+$/.test(timeout) || exchangeTimeoutMs < 1 || exchangeTimeoutMs > 2 ** 31 - 1)) {
    throw new UsageError('--timeout takes milliseconds, 1 to 2147483647, e.g. --timeout 120000');
  }
  const powerOffGraceMs = idlePowerOffMs(args);
  const m = new ReaderManager(createDrivers(settingsFrom(args), { keypad: (prompt) => readPin(prompt, pinEnv), trace: (line) => stderr(line + '\n') }), {
    identify: (atr) => identifyAtr(atr),
    ...(exchangeTimeoutMs !== undefined ? { exchangeTimeoutMs } : {}),
    ...(powerOffGraceMs !== undefined ? { powerOffGraceMs } : {}),
    historySize: 0, // no client connects later: entries are printed and dropped (they die young, the collector's cheap case)
    log: (level, msg) => { if (verbose || level === 'error' || level === 'warn') stderr(`[${level}] ${msg}\n`); },
  });
  await m.start();
  return m;
}

function readPin(label: string, envName: string): Promise<string> {
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined) return Promise.resolve(fromEnv);
  if (!process.stdin.isTTY) {
    return Promise.reject(new ScError('BAD_REQUEST', `The script asks for a PIN ("${label}"); run it on a terminal or set ${envName}.`));
  }
  return new Promise((resolve, reject) => {
    stderr(`${label}: `);
    const stdin = process.stdin;
    stdin.setRawMode(true);
    stdin.resume();
    let pin = '';
    const onData = (d: Buffer) => {
      for (const c of d.toString('utf8')) {
        if (c === '\r' || c === '\n') { done(); resolve(pin); return; }
        if (c === '\u0003') { done(); interrupt('SIGINT'); reject(new ScError('CANCELLED', 'PIN entry cancelled.')); return; }
        if (c === '\u007f') pin = pin.slice(0, -1); else pin += c;
      }
    };
    const done = () => { stdin.off('data', onData); stdin.setRawMode(false); stdin.pause(); process.stderr.write('\n'); };
    stdin.on('data', onData);
  });
}

async function cmdRun(args: Args): Promise<number> {
  const file = args._[1];
  if (!file) throw new UsageError('scard run needs a script file');
  if (args._.length > 2) throw new UsageError(`scard run takes one script file, not ${args._.length - 1} (${args._.slice(1).join(' ')})`);
  const waitCard = args.flags.get('wait-card');
  if (waitCard !== undefined && !(typeof waitCard === 'string' && /^[0-9]+$/.test(waitCard))) throw new UsageError('--wait-card takes milliseconds, e.g. --wait-card 10000');
  settingsFrom(args); // bad values are refused before anything starts
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`, false);
  }
  const script = parseScript(text);
  for (const d of script.diagnostics) {
    process.stderr.write(`${file}:${d.span.start.line + 1}:${d.span.start.character + 1}: ${d.severity}: ${d.message}\n`);
  }
  const onInt = () => interrupt('SIGINT');
  const onTerm = () => interrupt('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const m = await startManager(args);
    try {
      return await runWith(m, args, file, script);
    } catch (e) {
      if (interruption.signal) return reportInterrupted(args, file, null, 0);
      throw e;
    } finally {
      await m.stop();
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/** The run was ended by a signal: say so (never "passed") and exit 128 + the signal's number. */
function reportInterrupted(args: Args, file: string, result: RunScriptResult | null, commands: number): number {
  const signal = interruption.signal!;
  if (args.flags.has('json')) {
    stdout.line(JSON.stringify({ kind: 'result', ...(result ?? { ok: false, commands }), ok: false, interrupted: signal }));
  }
  const line = result?.failure?.line;
  stderr(`${file}${line ? `:${line}` : ''}: interrupted (${signal}) after ${result?.commands ?? commands} command(s)\n`);
  return SIGNAL_EXIT[signal] ?? 130;
}

async function runWith(m: ReaderManager, args: Args, file: string, script: ReturnType<typeof parseScript>): Promise<number> {
  const json = args.flags.has('json');
  m.onEntry(entryPrinter(stdout, json));
  const reader = args.flags.get('reader');
  const waitCard = args.flags.get('wait-card');
  const signal = interruption.abort.signal;
  if (waitCard !== undefined) {
    const ms = Number(waitCard);
    const names = m.list().readers.map((r) => r.name);
    if (!names.length) throw new ScError('NO_READER', 'No reader to wait on: add --vpcd PORT, --pcsc or the simulator.');
    const name = typeof reader === 'string' ? m.resolve(reader) : names[0];
    await m.waitForCard(name, true, ms, signal);
  }
  const pinEnv = (args.flags.get('pin-env') as string | undefined) ?? 'SCARD_PIN';
  const result = await runScript(script, {
    manager: m, uri: file, signal,
    ...(typeof reader === 'string' ? { reader } : {}),
    askPin: (label) => readPin(label, pinEnv),
  });
  if (interruption.signal) return reportInterrupted(args, file, result, result.commands);
  if (!json) {
    if (result.ok) stdout.line(`${file}: passed, ${result.commands} command(s) in ${result.durationMs} ms on ${result.reader ?? 'no reader'}`);
    else stderr(`${file}${result.failure?.line ? `:${result.failure.line}` : ''}: ${withoutLinePrefix(result.failure?.message ?? 'failed', result.failure?.line)}\n`);
  } else {
    stdout.line(JSON.stringify({ kind: 'result', ...result }));
  }
  stdout.flush();
  return result.ok ? 0 : 1;
}

/** `file:12: line 12: …` says the line twice: the engine's message starts with it, the CLI prints it first. */
function withoutLinePrefix(message: string, line: number | undefined): string {
  const prefix = `line ${line}: `;
  return line && message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

/**
 * `scard test`: every script found, one after another, each on a card reset (cold) after the
 * previous script, so each starts from the card's power-up state. A line per script, then
 * `N passed, N failed`; exit 1 when any failed. `--junit FILE`: JUnit XML (PINs are masked in the trace).
 */
async function cmdTest(args: Args): Promise<number> {
  settingsFrom(args); // bad values are refused before anything starts
  const junit = args.flags.get('junit');
  if (junit !== undefined && (typeof junit !== 'string' || !junit)) throw new UsageError('--junit takes a file name, e.g. --junit scard-junit.xml');
  let files: string[];
  try { files = findScripts(args._.slice(1)); } catch (e) {
    if (e instanceof NotFoundError) throw new UsageError(e.message, false);
    throw e;
  }
  if (!files.length) throw new UsageError('no scripts found (looked for **/*.apdu here)', false);
  const json = args.flags.has('json');
  const onInt = () => interrupt('SIGINT');
  const onTerm = () => interrupt('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const started = new Date();
  const t0 = performance.now();
  const cases: TestCaseResult[] = [];
  try {
    const m = await startManager(args);
    let trace: string[] = [];
    m.onEntry((e) => { if (e.kind !== 'readerAdded' && e.kind !== 'cardInserted' && e.kind !== 'scriptStarted') trace.push(...formatEntry(e)); });
    const pinEnv = (args.flags.get('pin-env') as string | undefined) ?? 'SCARD_PIN';
    const reader = args.flags.get('reader');
    let previous: string | undefined;
    try {
      for (const abs of files) {
        if (interruption.signal) break;
        const names = testCaseNames(abs);
        let result: RunScriptResult;
        trace = [];
        // A fresh card state for each script: a cold reset of the card the previous script used.
        if (previous) {
          try { if (m.reader(previous).card) await m.resetCard(previous, 'cold'); } catch (e) {
            stderr(`scard: could not reset the card in '${previous}' before ${names.file}: ${asScError(e).message}\n`);
          }
        }
        let text: string | undefined;
        try { text = fs.readFileSync(abs, 'utf8'); } catch (e) {
          result = { runId: 0, ok: false, commands: 0, durationMs: 0, lines: [], failure: { code: 'READ_FAILED', message: `cannot read ${names.file}: ${(e as Error).message}` } };
        }
        if (text !== undefined) {
          const t = performance.now();
          try {
            result = await runScript(parseScript(text), {
              manager: m, uri: abs, signal: interruption.abort.signal,
              ...(typeof reader === 'string' ? { reader } : {}),
              askPin: (label) => readPin(label, pinEnv),
            });
          } catch (e) {
            const err = asScError(e);
            result = { runId: 0, ok: false, commands: 0, durationMs: Math.round(performance.now() - t), lines: [], failure: { code: err.code, message: err.message } };
          }
        }
        if (interruption.signal) break;
        previous = result!.reader ?? previous;
        const c: TestCaseResult = { ...names, result: result!, trace };
        cases.push(c);
        if (json) stdout.line(JSON.stringify({ kind: 'test', file: c.file, classname: c.classname, name: c.name, ...c.result }));
        else if (c.result.ok) stdout.line(`PASS  ${c.file}  (${c.result.commands} command(s), ${c.result.durationMs} ms)`);
        else stdout.line(`FAIL  ${c.file}${c.result.failure?.line ? `:${c.result.failure.line}` : ''}: ${withoutLinePrefix(failureMessage(c.result), c.result.failure?.line)}  (${c.result.durationMs} ms)`);
      }
    } finally {
      await m.stop();
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  const durationMs = Math.round(performance.now() - t0);
  const failed = cases.filter((c) => !c.result.ok).length;
  const passed = cases.length - failed;
  if (typeof junit === 'string') {
    try {
      fs.writeFileSync(junit, junitXml(cases, { timestamp: started, durationMs, hostname: os.hostname() }));
    } catch (e) {
      stderr(`scard: cannot write ${junit}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  if (json) stdout.line(JSON.stringify({ kind: 'summary', passed, failed, durationMs, ...(interruption.signal ? { interrupted: interruption.signal } : {}) }));
  else stdout.line(`${passed} passed, ${failed} failed`);
  stdout.flush();
  if (interruption.signal) {
    stderr(`scard: interrupted (${interruption.signal}) after ${cases.length} of ${files.length} script(s)\n`);
    return SIGNAL_EXIT[interruption.signal] ?? 130;
  }
  return failed ? 1 : 0;
}

async function cmdReaders(args: Args): Promise<number> {
  const m = await startManager(args);
  try {
    return await readersWith(m, args);
  } finally {
    await m.stop();
  }
}

async function readersWith(m: ReaderManager, args: Args): Promise<number> {
  const json = args.flags.has('json');
  const list = m.list();
  if (json && !args.flags.has('watch')) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
  else if (!json) {
    if (!list.readers.length) process.stdout.write('no readers\n');
    for (const r of list.readers) {
      const card = r.card ? `card present${r.card.atr ? `, ATR ${r.card.atr}` : ''}` : 'no card';
      process.stdout.write(`${r.name}  [${r.driver}]  ${r.unavailable ? `unavailable: ${r.unavailable}` : card}\n`);
    }
  }
  if (!args.flags.has('watch')) return 0;
  if (json) {
    for (const r of list.readers) process.stdout.write(JSON.stringify({ kind: 'reader', ...r }) + '\n');
    process.stdout.write(JSON.stringify({ kind: 'ready', readerListCounter: list.readerListCounter }) + '\n');
  }
  m.onEntry((e) => {
    if (e.kind === 'exchange' || e.kind === 'control') return;
    if (json) process.stdout.write(toJsonLine(e) + '\n');
    else for (const l of formatEntry(e)) process.stdout.write(l + '\n');
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  return 0;
}

/**
 * `scard serve`: the PC/SC service without VS Code. The first line on stdout is
 * `export PCSCLITE_CSOCK_NAME=PATH` (for `eval`), printed once the socket accepts;
 * then every exchange of every client (text or JSON Lines; the data of VERIFY,
 * CHANGE REFERENCE DATA and RESET RETRY COUNTER masked as `**`). SIGINT/SIGTERM
 * closes the socket and removes it.
 */
async function cmdServe(args: Args): Promise<number> {
  if (args._.length > 1) throw new UsageError(`scard serve takes no arguments (got ${args._.slice(1).join(' ')})`);
  settingsFrom(args);
  const socket = args.flags.get('socket');
  if (socket !== undefined && (typeof socket !== 'string' || !socket)) throw new UsageError('--socket takes a path, e.g. --socket /tmp/wb/pcscd.comm');
  const json = args.flags.has('json');
  const verbose = args.flags.has('verbose');
  let stopped: NodeJS.Signals | null = null;
  let wake = (): void => {};
  const onSignal = (sig: NodeJS.Signals) => { stopped ??= sig; wake(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const m = await startManager(args);
    const backend = new ManagerBackend(m, { log: (level, msg) => { if (verbose) stderr(`[${level}] ${msg}\n`); } });
    const service = new PcscService(backend, (level, msg) => { if (verbose || level === 'warn') stderr(`[${level}] ${msg}\n`); });
    try {
      let server;
      try {
        server = await startPcscServer(service, typeof socket === 'string' ? { socketPath: socket } : {});
      } catch (e) {
        if (e instanceof SocketFolderError) throw new ScError('BAD_REQUEST', e.message);
        throw e;
      }
      try {
        // The one ready line, before any exchange; a shell reads it with eval "$(scard serve | head -1)".
        stdout.flush();
        process.stdout.write(`${pcscServiceExportLine(server.socketPath)}\n`);
        m.onEntry(entryPrinter(stdout, json));
        if (!stopped) await new Promise<void>((resolve) => { wake = resolve; });
      } finally {
        await server.close();
      }
    } finally {
      service.dispose();
      backend.dispose();
      await m.stop();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  stdout.flush();
  if (verbose) stderr(`scard: stopped (${stopped}); the socket is removed\n`);
  return 0;
}

/** ISO/IEC 7816-3 §8.2.1: TS, T0 and at most 32 further characters. */
const MAX_ATR_BYTES = 33;

function cmdAtr(args: Args): number {
  const json = args.flags.has('json');
  if (!args._[1]) throw new UsageError('scard atr needs the ATR in hex');
  let atr: Uint8Array;
  try { atr = fromHex(args._.slice(1).join('')); } catch (e) {
    throw new UsageError(`the ATR is not hex: ${e instanceof HexError ? e.message : String(e)}`);
  }
  if (atr.length > MAX_ATR_BYTES) throw new UsageError(`an ATR has at most ${MAX_ATR_BYTES} bytes (ISO/IEC 7816-3 §8.2.1); this one has ${atr.length}`);
  const info = parseAtr(atr);
  const identified = identifyAtr(toSpacedHex(atr));
  if (json) process.stdout.write(JSON.stringify({ ...atrToJson(info), identified }, null, 2) + '\n');
  else {
    process.stdout.write(describeAtr(info).join('\n') + '\n');
    if (identified.length) process.stdout.write(`Possibly identified card:\n  ${identified.join('\n  ')}\n`);
  }
  // The decode is printed either way (it shows where the ATR goes wrong); the status says it is not valid.
  if (info.errors.length) {
    stderr(`scard: the ATR is not valid: ${info.errors.join('; ')}\n`);
    return 1;
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const cmd = args._[0];
  if (args.help || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (cmd === undefined ? args.flags.has('version') : cmd === 'version') {
    if (args._.length > 1) throw new UsageError(`scard version takes no arguments (got ${args._.slice(1).join(' ')})`);
    process.stdout.write(`scard ${SCARD_VERSION} (Smart Card Workbench; Node.js ${process.version}, ${process.platform}-${process.arch})\n`);
    return 0;
  }
  switch (cmd) {
    case 'run': return cmdRun(args);
    case 'test': return cmdTest(args);
    case 'readers':
      if (args._.length > 1) throw new UsageError(`scard readers takes no arguments (got ${args._.slice(1).join(' ')})`);
      settingsFrom(args);
      return cmdReaders(args);
    case 'serve': return cmdServe(args);
    case 'atr': return cmdAtr(args);
    case 'ccid': {
      if (!args._[1]) throw new UsageError('scard ccid needs the descriptor in hex');
      let out: ReturnType<typeof ccidCommand>;
      try { out = ccidCommand(args._.slice(1).join('')); } catch (e) {
        const err = asScError(e);
        if (err.code === 'BAD_REQUEST') throw new UsageError(err.message);
        throw e;
      }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      return 0;
    }
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

// Exit status: 0 done, 1 failed (script, invalid ATR, no reader…), 2 wrong invocation
// (with the usage line), 130 / 143 interrupted by SIGINT / SIGTERM.
main(process.argv.slice(2)).then(
  (code) => { stdout.flush(); process.exitCode = code; },
  (e) => {
    if (e instanceof UsageError) {
      stderr(`scard: ${e.message}\n`);
      if (e.usage) process.stderr.write(USAGE + '\n');
      process.exitCode = 2;
      return;
    }
    const err = asScError(e);
    stderr(`scard: ${err.message}\n`);
    process.exitCode = 1;
  },
);
