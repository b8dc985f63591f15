// `scard`: the same reader manager and script engine as the editor, headless.
//   scard run FILE [--reader GLOB] [--card T=0|T=1] [--json]
//   scard readers [--watch] [--json]
//   scard atr HEX [--json]
//   scard ccid HEX [--json]
import fs from 'node:fs';
import { createDrivers, identifyAtr } from './drivers/registry';
import { ReaderManager } from './manager/manager';
import type { HelperSettings } from './protocol';
import { runScript } from './script/engine';
import { parseScript } from './script/parser';
import { BufferedOutput, entryPrinter, formatEntry, toJsonLine } from './script/trace';
import { ScError, asScError } from './util/errors';
import { fromHex, HexError, toSpacedHex } from './util/hex';
import { atrToJson, describeAtr, parseAtr } from './codecs/atr';
import { ccidCommand } from './ccid/cli';

const USAGE = `usage:
  scard run FILE [--reader GLOB] [--card T=0|T=1] [--json]   run an APDU script (default: on the simulator)
  scard readers [--watch] [--json]                            list readers; --watch prints events until Ctrl-C
  scard atr HEX [--json]                                      decode an ATR
  scard ccid HEX [--json]                                     decode a CCID class descriptor
options:
  --vpcd PORT[,PORT]   also listen for vpcd card emulators (vicc) on 127.0.0.1:PORT
  --pcsc               also use the system PC/SC service (pcscd, Windows Smart Card service)
  --usb                also drive USB CCID readers directly
  --ccid-trace         with --usb, print every raw CCID message on stderr
  --no-simulator       do not provide the simulator reader
  --simulator-pin PIN  the simulator card's PIN (default 1234)
  --pinpad             the simulator reader is a pinpad (VERIFY_PIN_DIRECT; its keypad is the terminal or SCARD_PIN)
  --wait-card MS       before running, wait up to MS ms for a card (e.g. an emulator connecting to --vpcd)
  --timeout MS         a card or reader that does not answer one exchange within MS ms fails it (default 60000)
  --verbose            print the reader manager's log on stderr
  --pin-env NAME       read PINs from environment variable NAME (default SCARD_PIN) when not on a terminal`;

interface Args { _: string[]; flags: Map<string, string | true> }

/** stdout, buffered (a 10,000-APDU trace is 20,000 lines); flushed before anything goes to stderr. */
const stdout = new BufferedOutput((text) => process.stdout.write(text));
function stderr(text: string): void {
  stdout.flush();
  process.stderr.write(text);
}

function parseArgs(argv: string[]): Args {
  const out: Args = { _: [], flags: new Map() };
  const valued = new Set(['reader', 'card', 'vpcd', 'pin-env', 'wait-card', 'simulator-pin', 'timeout']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2);
      if (v !== undefined) out.flags.set(k, v);
      else if (valued.has(k)) {
        if (i + 1 >= argv.length) throw new ScError('BAD_REQUEST', `--${k} needs a value`);
        out.flags.set(k, argv[++i]);
      } else out.flags.set(k, true);
    } else out._.push(a);
  }
  return out;
}

function settingsFrom(args: Args): HelperSettings {
  const card = args.flags.get('card');
  if (card !== undefined && card !== 'T=0' && card !== 'T=1') throw new ScError('BAD_REQUEST', '--card is T=0 or T=1');
  const vpcd = args.flags.get('vpcd');
  const ports = typeof vpcd === 'string' ? vpcd.split(',').map((p) => Number(p)) : [];
  if (ports.some((p) => !Number.isInteger(p) || p <= 0 || p > 65535)) throw new ScError('BAD_REQUEST', '--vpcd takes TCP port numbers, e.g. --vpcd 35963');
  // The CLI defaults to the simulator alone; other drivers are asked for.
  return {
    simulator: {
      enabled: !args.flags.has('no-simulator'),
      ...(card ? { card: card as 'T=0' | 'T=1' } : {}),
      ...(typeof args.flags.get('simulator-pin') === 'string' ? { pin: args.flags.get('simulator-pin') as string } : {}),
      ...(args.flags.has('pinpad') ? { pinpad: true } : {}),
    },
    vpcd: { enabled: ports.length > 0, ports },
    pcsc: { enabled: args.flags.has('pcsc') },
    usbCcid: { enabled: args.flags.has('usb'), rawTrace: args.flags.has('ccid-trace') },
  };
}

async function startManager(args: Args): Promise<ReaderManager> {
  const verbose = args.flags.has('verbose');
  const pinEnv = (args.flags.get('pin-env') as string | undefined) ?? 'SCARD_PIN';
  const timeout = args.flags.get('timeout');
  const exchangeTimeoutMs = timeout === undefined ? undefined : Number(timeout);
  if (exchangeTimeoutMs !== undefined && (!Number.isInteger(exchangeTimeoutMs) || exchangeTimeoutMs < 1)) {
    throw new ScError('BAD_REQUEST', '--timeout takes milliseconds (at least 1), e.g. --timeout 120000');
  }
  const m = new ReaderManager(createDrivers(settingsFrom(args), { keypad: (prompt) => readPin(prompt, pinEnv), trace: (line) => stderr(line + '\n') }), {
    identify: (atr) => identifyAtr(atr),
    ...(exchangeTimeoutMs !== undefined ? { exchangeTimeoutMs } : {}),
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
        if (c === '\u0003') { done(); reject(new ScError('CANCELLED', 'PIN entry cancelled.')); return; }
        if (c === '\u007f') pin = pin.slice(0, -1); else pin += c;
      }
    };
    const done = () => { stdin.off('data', onData); stdin.setRawMode(false); stdin.pause(); process.stderr.write('\n'); };
    stdin.on('data', onData);
  });
}

async function cmdRun(args: Args): Promise<number> {
  const file = args._[1];
  if (!file) throw new ScError('BAD_REQUEST', 'scard run needs a script file');
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    throw new ScError('BAD_REQUEST', `cannot read ${file}: ${(e as Error).message}`);
  }
  const script = parseScript(text);
  for (const d of script.diagnostics) {
    process.stderr.write(`${file}:${d.span.start.line + 1}:${d.span.start.character + 1}: ${d.severity}: ${d.message}\n`);
  }
  const m = await startManager(args);
  try {
    return await runWith(m, args, file, script);
  } finally {
    await m.stop();
  }
}

async function runWith(m: ReaderManager, args: Args, file: string, script: ReturnType<typeof parseScript>): Promise<number> {
  const json = args.flags.has('json');
  m.onEntry(entryPrinter(stdout, json));
  const reader = args.flags.get('reader');
  const waitCard = args.flags.get('wait-card');
  if (waitCard !== undefined) {
    const ms = Number(waitCard);
    if (!Number.isInteger(ms) || ms < 0) throw new ScError('BAD_REQUEST', '--wait-card takes milliseconds, e.g. --wait-card 10000');
    const names = m.list().readers.map((r) => r.name);
    if (!names.length) throw new ScError('NO_READER', 'No reader to wait on: add --vpcd PORT, --pcsc or the simulator.');
    const name = typeof reader === 'string' ? m.resolve(reader) : names[0];
    await m.waitForCard(name, true, ms);
  }
  const pinEnv = (args.flags.get('pin-env') as string | undefined) ?? 'SCARD_PIN';
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const result = await runScript(script, {
    manager: m, uri: file, signal: abort.signal,
    ...(typeof reader === 'string' ? { reader } : {}),
    askPin: (label) => readPin(label, pinEnv),
  });
  if (!json) {
    if (result.ok) stdout.line(`${file}: passed, ${result.commands} command(s) in ${result.durationMs} ms on ${result.reader ?? 'no reader'}`);
    else stderr(`${file}:${result.failure?.line ?? 0}: ${result.failure?.message}\n`);
  } else {
    stdout.line(JSON.stringify({ kind: 'result', ...result }));
  }
  stdout.flush();
  return result.ok ? 0 : 1;
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

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const cmd = args._[0];
  const json = args.flags.has('json');
  switch (cmd) {
    case 'run': return cmdRun(args);
    case 'readers': return cmdReaders(args);
    case 'atr': {
      if (!args._[1]) throw new ScError('BAD_REQUEST', 'scard atr needs the ATR in hex');
      let atr: Uint8Array;
      try { atr = fromHex(args._.slice(1).join('')); } catch (e) {
        throw new ScError('BAD_REQUEST', `the ATR is not hex: ${e instanceof HexError ? e.message : String(e)}`);
      }
      const info = parseAtr(atr);
      const identified = identifyAtr(toSpacedHex(atr));
      if (json) process.stdout.write(JSON.stringify({ ...atrToJson(info), identified }, null, 2) + '\n');
      else {
        process.stdout.write(describeAtr(info).join('\n') + '\n');
        if (identified.length) process.stdout.write(`Possibly identified card:\n  ${identified.join('\n  ')}\n`);
      }
      return 0;
    }
    case 'ccid': {
      if (!args._[1]) throw new ScError('BAD_REQUEST', 'scard ccid needs the descriptor in hex');
      const out = ccidCommand(args._.slice(1).join(''));
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      return 0;
    }
    case undefined: case 'help': case '--help':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      throw new ScError('BAD_REQUEST', `unknown command '${cmd}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => { stdout.flush(); process.exitCode = code; },
  (e) => {
    const err = asScError(e);
    stderr(`scard: ${err.message}\n`);
    if (err.code === 'BAD_REQUEST') process.stderr.write(USAGE + '\n');
    process.exitCode = 2;
  },
);

