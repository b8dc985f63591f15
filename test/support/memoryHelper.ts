// The helper (language server + reader manager) over in-memory streams, the way the
// extension drives it over IPC: one copy of the wiring for every helper-tier test.
import { PassThrough } from 'node:stream';
import { createConnection } from 'vscode-languageserver/node';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import { createHelper, type HelperOptions } from '../../server/src/lsp/server';
import { type AskPinParams, askPinAad, newPinKey, type ParamsOf, sealPin, type SealedPin, StartedNotification } from '../../server/src/protocol';

export interface MemoryHelper {
  client: MessageConnection;
  /** What the helper announced once its reader cache was filled. */
  started: ParamsOf<typeof StartedNotification>;
  /** Every byte the helper has sent to the client so far (for leak searches). */
  wire(): string;
  /** Every byte the client has sent to the helper so far (PIN answers included: they travel sealed). */
  wireIn(): string;
  /** The key the helper opens PINs with (the extension hands it over in the helper's environment). */
  pinKey: Buffer;
  stop(): Promise<void>;
}

/**
 * Starts a helper, registers the test's handlers (before the connection listens, so no
 * early notification is missed), initializes it and waits for `smartcard/started`.
 */
export async function startMemoryHelper(options: {
  helper?: HelperOptions;
  initializationOptions?: unknown;
  handlers?: (client: MessageConnection, pinKey: Buffer) => void;
} = {}): Promise<MemoryHelper> {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  let wire = '';
  let wireIn = '';
  toClient.on('data', (d: Buffer) => { wire += d.toString('utf8'); });
  toServer.on('data', (d: Buffer) => { wireIn += d.toString('utf8'); });
  const pinKey = options.helper?.pinKey ?? newPinKey();
  createHelper(createConnection(toServer, toClient), { ...options.helper, pinKey });
  const client = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
  const started = new Promise<ParamsOf<typeof StartedNotification>>((resolve) => client.onNotification(StartedNotification.method, resolve));
  options.handlers?.(client, pinKey);
  client.listen();
  // The system's PC/SC readers stay out unless a test asks for them: another program's pcscd with a
  // vpcd reader (the refstack tier's, a developer's vicc) would add "Virtual PCD 00 00" beside the
  // simulator and change what a test that picks "the reader with a card" finds.
  const init = (options.initializationOptions ?? {}) as Record<string, unknown>;
  const initializationOptions = 'pcsc' in init ? init : { ...init, pcsc: { enabled: false } };
  await client.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, initializationOptions });
  client.sendNotification('initialized', {});
  return {
    client,
    started: await started,
    wire: () => wire,
    wireIn: () => wireIn,
    pinKey,
    async stop() {
      await client.sendRequest('shutdown');
      client.dispose();
    },
  };
}

/** The extension's answer to a PIN prompt: the PIN sealed with the helper's key for that prompt. */
export function sealedAnswer(key: Buffer, p: AskPinParams, pin: string): { sealed: SealedPin } {
  return { sealed: sealPin(key, pin, askPinAad(p)) };
}

/**
 * Waits on what a test collects from the helper's notifications (log entries, reader lists):
 * `until(check)` resolves once `check()` holds, re-checked at each `changed()` (call it from the
 * notification handlers after storing what arrived). Bounded by the test's own time-out.
 */
export function notified(): { changed(): void; until(check: () => boolean): Promise<void> } {
  const waiters: Array<() => void> = [];
  return {
    changed() { for (const w of waiters.splice(0)) w(); },
    until: (check) => new Promise((resolve) => {
      const poll = () => { if (check()) resolve(); else waiters.push(poll); };
      poll();
    }),
  };
}
