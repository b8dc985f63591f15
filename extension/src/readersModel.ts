// What the Readers tree shows: driver groups, readers, their card and details,
// the state of each reader and its icon, and the words package.json's menus
// match on. Pure (no vscode import), so it is tested without an editor.
import type { CardInfo, DriverStatus, ProtocolNumber, ReaderInfo, ShareMode } from '../../server/src/protocol';

// ------------------------------------------------------------ state and icon

/** A reader's state, most telling first: what its icon and description show. */
export type ReaderState = 'unavailable' | 'empty' | 'mute' | 'exclusive' | 'inUse' | 'powered' | 'present';

export function readerState(r: ReaderInfo): ReaderState {
  if (r.unavailable) return 'unavailable';
  if (!r.card) return 'empty';
  if (r.card.mute) return 'mute';
  if (r.exclusive) return 'exclusive';
  if (r.connections > 0 || r.inTransaction) return 'inUse';
  return r.card.powered ? 'powered' : 'present';
}

export interface StateLook {
  /** A codicon id for ThemeIcon. */
  icon: string;
  /** A theme color id for ThemeColor, where colour helps tell states apart. */
  color?: string;
  /** Short words for the description. */
  words: string;
}

export const STATE_LOOK: Readonly<Record<ReaderState, StateLook>> = {
  unavailable: { icon: 'warning', color: 'problemsWarningIcon.foreground', words: 'unavailable' },
  empty: { icon: 'circle-large-outline', words: 'empty' },
  mute: { icon: 'mute', color: 'problemsErrorIcon.foreground', words: 'mute card' },
  exclusive: { icon: 'lock', color: 'charts.orange', words: 'exclusive' },
  inUse: { icon: 'plug', color: 'charts.blue', words: 'in use' },
  powered: { icon: 'zap', color: 'charts.green', words: 'powered' },
  present: { icon: 'credit-card', words: 'unpowered' },
};

/**
 * `contextValue` of reader and card rows: space-separated words that the
 * `when` clauses of package.json's menus match with `viewItem =~ /\bword\b/`.
 * kind (reader|card), simulator, the card (unavailable|empty|present), powered,
 * atr, mute, editor (the editor holds a connection) or free, eject.
 */
export function itemContextValue(kind: 'reader' | 'card', r: ReaderInfo): string {
  const words: string[] = [kind];
  if (r.driver === 'simulator') words.push('simulator');
  if (r.unavailable) words.push('unavailable');
  else if (!r.card) words.push('empty');
  else {
    words.push('present');
    if (r.card.powered) words.push('powered');
    if (r.card.atr) words.push('atr');
    if (r.card.mute) words.push('mute');
  }
  words.push(r.editor ? 'editor' : 'free');
  if (r.canEject) words.push('eject');
  return words.join(' ');
}

/** Kept for callers that only need the reader row's value. */
export const readerContextValue = (r: ReaderInfo): string => itemContextValue('reader', r);

// ------------------------------------------------------------ text

export const protocolName = (p: 0 | 1 | undefined): string | undefined => (p === undefined ? undefined : `T=${p}`);

export function spacedHex(hex: string): string {
  return (hex.replace(/\s+/g, '').toUpperCase().match(/.{1,2}/g) ?? []).join(' ');
}

export interface ItemText {
  label: string;
  description?: string;
  tooltip: string;
}

/** The editor's connection in words: "editor: exclusive, T=1". */
export function editorText(r: ReaderInfo): string | undefined {
  if (!r.editor) return undefined;
  return `editor: ${r.editor.share}${r.editor.protocol !== undefined ? `, T=${r.editor.protocol}` : ''}`;
}

export function connectionsText(r: ReaderInfo): string {
  if (!r.connections) return 'no connection';
  return `${r.connections} connection${r.connections === 1 ? '' : 's'}${r.exclusive ? ', exclusive' : ''}${r.inTransaction ? ', in a transaction' : ''}`;
}

export function readerText(r: ReaderInfo, selected: boolean): ItemText {
  const state = readerState(r);
  const words = state === 'present' && r.card?.idle ? IDLE_WORDS : STATE_LOOK[state].words;
  const description = [words, editorText(r), selected ? 'selected' : undefined].filter(Boolean).join(' · ');
  const lines = [r.name, `state: ${words}`, `driver: ${r.driver}`, `slot: ${r.slot}`, `events: ${r.eventCount}`, connectionsText(r)];
  const ed = editorText(r);
  if (ed) lines.push(`${ed} (Disconnect to release it)`);
  if (r.unavailable) lines.push(r.unavailable);
  if (selected) lines.push('Scripts run on this reader (selected).');
  return { label: r.name, description, tooltip: lines.join('\n') };
}

/** A card the reader manager powered down because nobody used it (R77, `CardInfo.idle`), not a person's power-off. */
const IDLE_WORDS = 'powered down (unused)';
const IDLE_TOOLTIP = 'Powered down because nobody used it (smartcard.readerManager.idlePowerOff, as pcscd does); '
  + 'the next connection or script powers it up again, reset: a verified PIN or a selected applet is gone.';

/** The card row under a reader: why it cannot be used, or its card, or "no card". */
export function cardText(r: ReaderInfo): ItemText {
  if (r.unavailable) return { label: r.unavailable, tooltip: r.unavailable };
  const card: CardInfo | null = r.card;
  if (!card) return { label: 'no card', tooltip: 'No card in this reader' };
  if (card.mute) return { label: 'mute card', description: 'no answer to reset', tooltip: 'A card is present but did not answer to reset. Reset it, or remove and reinsert it.' };
  if (!card.atr) return { label: 'card present', description: card.powered ? 'powered' : 'not powered', tooltip: 'Card present, not powered (Reset powers it up).' };
  const proto = protocolName(card.protocol);
  // The card's name from smartcard_list.txt (its first description line), when known.
  const name = card.identified?.[0];
  const power = card.powered ? 'powered' : card.idle ? IDLE_WORDS : 'not powered';
  const description = [name, proto, power].filter(Boolean).join(' · ');
  const identified = card.identified?.length ? `\nIdentified (smartcard_list.txt):\n  ${card.identified.join('\n  ')}` : '';
  const powerLine = !card.powered && card.idle ? IDLE_TOOLTIP : power;
  return { label: `ATR ${shortAtr(card.atr)}`, description, tooltip: `ATR ${spacedHex(card.atr)}\n${proto ?? 'no protocol yet'}\n${powerLine}${identified}` };
}

/** An ATR's first bytes as the card row's label shows them (a long ATR is cut at the side bar's default width). */
const ATR_SHOWN_BYTES = 6;
const ATR_WHOLE_UP_TO = 8;

/** The ATR spaced, whole up to 8 bytes; longer ones as their first 6 bytes and "…" (the tooltip has it whole). */
export function shortAtr(atr: string): string {
  const spaced = spacedHex(atr);
  const bytes = spaced.split(' ').filter(Boolean);
  return bytes.length <= ATR_WHOLE_UP_TO ? spaced : `${bytes.slice(0, ATR_SHOWN_BYTES).join(' ')} …`;
}

/** What each PC/SC part 10 feature lets the reader do (shown on its Details row). */
const FEATURE_MEANINGS: Record<string, string> = {
  VERIFY_PIN_START: 'PIN verification on the reader\'s PIN pad, started (then VERIFY_PIN_FINISH)',
  VERIFY_PIN_FINISH: 'ends a VERIFY_PIN_START',
  MODIFY_PIN_START: 'PIN change on the PIN pad, started (then MODIFY_PIN_FINISH)',
  MODIFY_PIN_FINISH: 'ends a MODIFY_PIN_START',
  GET_KEY_PRESSED: 'reads the key last pressed on the PIN pad',
  VERIFY_PIN_DIRECT: 'PIN verification on the reader\'s PIN pad: the PIN never reaches the computer',
  MODIFY_PIN_DIRECT: 'PIN change on the reader\'s PIN pad',
  MCT_READER_DIRECT: 'MKT/MCT reader commands',
  MCT_UNIVERSAL: 'MKT/MCT universal commands',
  IFD_PIN_PROPERTIES: 'the PIN pad\'s properties (display size, entry valid condition)',
  ABORT: 'aborts a PIN entry in progress',
  SET_SPE_MESSAGE: 'sets the messages the PIN pad shows',
  VERIFY_PIN_DIRECT_APP_ID: 'PIN pad verification for a named application',
  MODIFY_PIN_DIRECT_APP_ID: 'PIN pad change for a named application',
  WRITE_DISPLAY: 'writes to the reader\'s display',
  GET_KEY: 'reads one key from the keypad',
  IFD_DISPLAY_PROPERTIES: 'the display\'s size',
  GET_TLV_PROPERTIES: 'reader properties as TLV (bMinPINSize, bMaxPINSize, wIdVendor, wIdProduct, firmware…)',
  CCID_ESC_COMMAND: 'CCID escape commands to the reader (PC_to_RDR_Escape)',
  EXECUTE_PACE: 'PACE (password authenticated connection establishment) run by the reader',
};

/** What the driver's own facts mean, where the value alone does not say. */
const FACT_MEANINGS: Record<string, string> = {
  index: 'the device index NN in the reader\'s name, given by the reader manager (lowest free number per driver)',
  transport: 'how the workbench reaches the reader',
  'VID:PID': 'USB vendor and product id (what lsusb shows)',
  CCID: 'the CCID specification version the reader implements (bcdCCID)',
  'exchange level': 'how much of the protocol the reader does itself (CCID dwFeatures): TPDU (the workbench frames T=0/T=1), short or extended APDU (the reader does)',
  slots: 'this slot among the reader\'s slots (bMaxSlotIndex + 1)',
  protocols: 'the protocols the reader supports (CCID dwProtocols)',
  voltages: 'card supply voltages the reader offers (CCID bVoltageSupport)',
  'max message length': 'the longest CCID message the reader accepts (dwMaxCCIDMessageLength): a bound on APDU size',
  'PIN support': 'PIN pad operations the reader announces (CCID bPINSupport)',
  interface: 'the USB interface number of the CCID function',
  'system reader name': 'the name the operating system\'s PC/SC service gives the reader',
  library: 'the PC/SC library the driver loaded',
  address: 'where vpcd listens for the virtual card (vicc connects here)',
  emulator: 'the command that starts a virtual card for this reader',
  pinpad: 'the simulator\'s keypad: PINs are typed into a prompt as on a reader\'s PIN pad',
};

export interface DetailRow { label: string; value: string; tooltip: string }

const hex = (n: number, digits: number): string => `0x${n.toString(16).toUpperCase().padStart(digits, '0')}`;

/**
 * SCARD_ATTR_VENDOR_IFD_VERSION's 0xMMmmbbbb as `major.minor.build`: major and minor read as BCD
 * (libccid copies the USB bcdDevice there, so 0x0216 is release 2.16), the build in decimal.
 */
export function ifdVersionText(v: number): string {
  const bcd = (b: number): string => (/^[0-9]+$/.test(b.toString(16)) ? String(Number(b.toString(16))) : b.toString(16).toUpperCase());
  return `${bcd((v >>> 24) & 0xff)}.${bcd((v >>> 16) & 0xff)}.${v & 0xffff}`;
}

/** PC/SC part 3 channel types (the DDDD of SCARD_ATTR_CHANNEL_ID). */
const CHANNEL_TYPES: Record<number, string> = { 0x01: 'serial port', 0x02: 'parallel port', 0x04: 'PS/2 keyboard port', 0x08: 'SCSI', 0x10: 'IDE', 0x20: 'USB' };

/** SCARD_ATTR_CHANNEL_ID's 0xDDDDCCCC in words: "USB, number 0x0102". */
export function channelIdText(v: number): string {
  const type = (v >>> 16) & 0xffff;
  const words = CHANNEL_TYPES[type] ?? (type >= 0xf0 && type <= 0xff ? `vendor-defined (${hex(type, 4)})` : `type ${hex(type, 4)}`);
  return `${words}, number ${hex(v & 0xffff, 4)}`;
}

/** The rows under a reader's "Details": label, value and what the value means. */
export function detailRows(r: ReaderInfo): DetailRow[] {
  const suffix = / (\d{2}) (\d{2})$/.exec(r.name);
  const rows: DetailRow[] = [
    { label: 'driver', value: r.driver, tooltip: `driver: ${r.driver} (${driverTitle(r.driver)} group)` },
    {
      label: 'slot', value: String(r.slot),
      tooltip: `${r.driver === 'usb-ccid' ? `slot ${r.slot} — CCID slot index (bSlot in every CCID message), counted from 0` : `slot ${r.slot}: the reader's slot, counted from 0`}${suffix ? `; the name ends "${suffix[1]} ${suffix[2]}": device index ${suffix[1]}, slot ${suffix[2]} (pcsc-lite's naming)` : ''}`,
    },
    {
      label: 'events', value: String(r.eventCount),
      tooltip: `events: ${r.eventCount} — card insertions/removals seen since the reader appeared: ${r.eventCount} card events in all, PC/SC's event counter (the upper 16 bits of dwEventState); a client that missed one can tell`,
    },
    { label: 'connections', value: connectionsText(r), tooltip: `connections: ${connectionsText(r)} (scripts, the editor's Connect, the PC/SC service's clients)` },
  ];
  if (r.card?.protocols?.length) {
    const offers = r.card.protocols.map((p) => `T=${p}`).join(', ');
    rows.push({ label: 'card protocols', value: offers, tooltip: `the protocols the card's ATR offers: ${offers}${r.card.protocol !== undefined ? `; in use: T=${r.card.protocol}` : ''}` });
  }
  for (const [k, v] of Object.entries(r.details ?? {})) {
    rows.push({ label: k, value: v, tooltip: `${k}: ${v}${FACT_MEANINGS[k] ? `\n${FACT_MEANINGS[k]}` : ''}` });
  }
  rows.push(...factRows(r));
  for (const f of r.features ?? []) {
    const [name, code] = f.split(' ');
    const meaning = FEATURE_MEANINGS[name];
    rows.push({
      label: 'PC/SC feature', value: code ? `${name} (${code})` : name,
      tooltip: `${name}${meaning ? `: ${meaning}` : ''}${code ? `\ncontrol code ${code} (from CM_IOCTL_GET_FEATURE_REQUEST, 3400); "Send Control Command…" takes the name` : ''}`,
    });
  }
  if (!r.features?.length) {
    rows.push({
      label: 'PC/SC features', value: 'none announced',
      tooltip: 'The reader announced no PC/SC part 10 feature (no PIN pad, no display): the list is read with CM_IOCTL_GET_FEATURE_REQUEST (3400) at the first power-up.',
    });
  }
  return rows;
}

/** Where the facts come from, in words. */
const FACT_SOURCES: Record<string, string> = {
  SCardGetAttrib: 'asked with SCardGetAttrib (PC/SC part 3 attributes, answered by the reader\'s driver behind the PC/SC service)',
  'USB descriptors': 'read from the USB device descriptor and the CCID class descriptor',
  'built in': 'built into the simulator',
};

/** The rows for the reader's facts (ReaderFacts): only what the reader said, each with what it means. */
function factRows(r: ReaderInfo): DetailRow[] {
  const f = r.facts;
  if (!f) return [];
  const usb = f.source === 'USB descriptors';
  const rows: DetailRow[] = [];
  const from = `from ${f.source}`;
  if (f.vendorName) rows.push({ label: 'vendor', value: f.vendorName, tooltip: `vendor: ${f.vendorName}\nwho made the reader: SCARD_ATTR_VENDOR_NAME${usb ? ', the USB iManufacturer string' : ''} (${from})` });
  if (f.ifdType) rows.push({ label: 'model', value: f.ifdType, tooltip: `model: ${f.ifdType}\nthe reader's model: SCARD_ATTR_VENDOR_IFD_TYPE${usb ? ', the USB iProduct string' : ''} (${from})` });
  if (f.ifdVersion !== undefined) {
    const v = ifdVersionText(f.ifdVersion);
    rows.push({
      label: 'IFD version', value: v,
      tooltip: `IFD version ${v} (${hex(f.ifdVersion, 8)}, as the driver reports it)\nSCARD_ATTR_VENDOR_IFD_VERSION is 0xMMmmbbbb: major, minor, build. libccid puts the USB bcdDevice (the reader's firmware release) in MMmm, in BCD, so 0x0216 reads 2.16 (${from})`,
    });
  }
  if (f.ifdSerial) rows.push({ label: 'serial number', value: f.ifdSerial, tooltip: `serial number: ${f.ifdSerial}\nSCARD_ATTR_VENDOR_IFD_SERIAL_NO${usb ? ', the USB iSerialNumber string' : ''}; pcsc-lite puts it in the reader's name as "(serial)" (${from})` });
  if (f.maxIfsd !== undefined) {
    rows.push({
      label: 'max IFSD', value: `${f.maxIfsd} bytes`,
      tooltip: `max IFSD ${f.maxIfsd}: the longest T=1 block the reader accepts (its information field size, IFSD, ISO 7816-3 §11.4.2); a T=1 card sends longer answers in chained blocks of at most this size. ${usb ? 'CCID dwMaxIFSD' : 'SCARD_ATTR_MAX_IFSD'} (${from})`,
    });
  }
  if (f.maxInput !== undefined) {
    rows.push({
      label: 'max input', value: `${f.maxInput} bytes`,
      tooltip: `max input ${f.maxInput}: the longest command the reader takes in one piece (SCARD_ATTR_MAXINPUT; libccid answers dwMaxCCIDMessageLength − 10, the CCID header). A longer APDU needs extended-length support or chaining (${from})`,
    });
  }
  if (f.channelId !== undefined) {
    const words = channelIdText(f.channelId);
    rows.push({ label: 'channel', value: words, tooltip: `channel: ${words} (SCARD_ATTR_CHANNEL_ID ${hex(f.channelId, 8)} = 0xDDDDCCCC: DDDD the channel type, 0x0020 for USB; CCCC its number, for USB the bus and device address) (${from})` });
  }
  if (f.ccid) {
    const c = f.ccid;
    rows.push({
      label: 'CCID features', value: `${c.features.length} flag${c.features.length === 1 ? '' : 's'}`,
      tooltip: `what the reader does by itself (CCID dwFeatures):\n  ${c.features.join('\n  ') || 'nothing automatic'}`,
    });
    const n = (x: number): string => x.toLocaleString('en-US');
    rows.push({ label: 'data rate', value: `${n(c.dataRate)} to ${n(c.maxDataRate)} bps`, tooltip: `data rate: ${n(c.dataRate)} bps at power-up (CCID dwDataRate), at most ${n(c.maxDataRate)} bps after a PPS (dwMaxDataRate): how fast bytes travel to the card` });
    const mhz = (k: number): string => String(k / 1000);
    rows.push({ label: 'clock', value: `${mhz(c.defaultClockKHz)} to ${mhz(c.maxClockKHz)} MHz`, tooltip: `card clock: ${mhz(c.defaultClockKHz)} MHz by default (CCID dwDefaultClock), at most ${mhz(c.maxClockKHz)} MHz (dwMaximumClock)` });
  }
  const told = rows.length > 0;
  const notes = [f.note, f.unanswered?.length ? `not answered:\n  ${f.unanswered.join('\n  ')}` : undefined].filter(Boolean);
  rows.push({
    label: 'reader facts', value: told ? f.source : `none (${f.source})`,
    tooltip: [`reader facts: ${told ? `${FACT_SOURCES[f.source] ?? `from ${f.source}`}, once when the reader appeared` : `none given (${f.source})`}`, ...notes].join('\n'),
  });
  return rows;
}

// ------------------------------------------------------------ driver groups

const DRIVER_TITLES: Record<string, string> = { simulator: 'Simulator', vpcd: 'vpcd', pcsc: 'PC/SC', 'usb-ccid': 'USB CCID' };
export const driverTitle = (id: string): string => DRIVER_TITLES[id] ?? id;

export interface DriverGroup {
  id: string;
  title: string;
  status?: DriverStatus;
  readers: ReaderInfo[];
}

/**
 * One group per enabled driver, in the helper's order, with its readers; a
 * driver that failed keeps its group, which says why. Readers of a driver the
 * helper did not list (none expected) get a group of their own.
 */
export function driverGroups(drivers: readonly DriverStatus[], readers: readonly ReaderInfo[]): DriverGroup[] {
  const groups = new Map<string, DriverGroup>();
  for (const d of drivers) {
    if (d.state === 'disabled') continue;
    groups.set(d.id, { id: d.id, title: driverTitle(d.id), status: d, readers: [] });
  }
  for (const r of readers) {
    let g = groups.get(r.driver);
    if (!g) { g = { id: r.driver, title: driverTitle(r.driver), readers: [] }; groups.set(r.driver, g); }
    g.readers.push(r);
  }
  return [...groups.values()];
}

/** A driver's state in a few words, for the start-up message and the log ("pcsc waiting for the PC/SC service"). */
export function driverStateWords(d: DriverStatus): string {
  switch (d.state) {
    case 'waiting': return d.id === 'pcsc' ? 'waiting for the PC/SC service' : 'waiting';
    case 'unavailable': return 'unavailable';
    default: return d.state;
  }
}

export function groupText(g: DriverGroup): ItemText & { failed: boolean; warning: boolean } {
  const s = g.status;
  if (s && (s.state === 'waiting' || s.state === 'unavailable')) {
    const short = s.state === 'waiting' ? (g.id === 'pcsc' ? 'waiting for pcscd' : 'waiting') : (g.id === 'usb-ccid' ? 'USB not available' : 'unavailable');
    const why = (s.message ?? 'no reason given').replace(/\.+$/, '');
    const head = s.state === 'waiting' ? `The ${g.title} driver is waiting: ${why}.` : `The ${g.title} driver is idle: ${why}.`;
    return {
      label: g.title, failed: false, warning: true,
      description: g.readers.length ? `${short} · ${plural(g.readers.length, 'reader')}` : short,
      tooltip: [head, s.hint, s.state === 'waiting' ? 'Its readers appear here as soon as it is back; nothing to restart.' : undefined].filter(Boolean).join('\n'),
    };
  }
  if (s?.state === 'failed') {
    const setting = g.id === 'usb-ccid' ? 'usbCcid' : g.id;
    return {
      label: g.title, failed: true, warning: false,
      description: `failed: ${s.message ?? 'no reason given'}`,
      tooltip: `The ${g.id} driver could not start: ${s.message ?? 'no reason given'}\nThe other drivers carry on. Check the smartcard.${setting}.* settings, then "Smart Card: Restart Reader Manager".`,
    };
  }
  const n = g.readers.length;
  // Readers that exist but cannot be used (a device the system's driver claimed): the group says so and how out.
  const unusable = g.readers.filter((r) => r.unavailable);
  if (unusable.length) {
    return {
      label: g.title, failed: false, warning: true,
      description: `${plural(n, 'reader')}, ${unusable.length} unavailable`,
      tooltip: [`${g.title} driver (${g.id}): ${plural(n, 'reader')}, ${unusable.length} cannot be used:`, ...unusable.map((r) => `• ${r.name}: ${r.unavailable}`)].join('\n'),
    };
  }
  return { label: g.title, failed: false, warning: false, description: n ? plural(n, 'reader') : 'no reader', tooltip: `${g.title} driver (${g.id}): ${n ? plural(n, 'reader') : 'no reader connected'}` };
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

// ------------------------------------------------------------ commands

export interface ConnectMode { label: string; share: ShareMode; protocol?: ProtocolNumber; description?: string }

/**
 * Connect's choices: share mode × protocol, only the protocols the card's ATR offers
 * (all of them while the ATR is not known yet: the helper refuses the others before touching the card).
 */
export function connectModes(card: CardInfo | null | undefined): ConnectMode[] {
  const offered = card?.protocols?.length ? card.protocols : ([0, 1] as ProtocolNumber[]);
  const modes: ConnectMode[] = [];
  for (const share of ['shared', 'exclusive'] as const) {
    const Share = share === 'shared' ? 'Shared' : 'Exclusive';
    modes.push({ label: `${Share}, any protocol`, share, ...(card?.protocols?.length ? { description: `the card offers ${card.protocols.map((p) => `T=${p}`).join(' and ')}` } : {}) });
    for (const p of offered) modes.push({ label: `${Share}, T=${p}`, share, protocol: p });
  }
  return modes;
}

/** The reader a script runs on when the user has not picked one. */
export function defaultReader(readers: readonly ReaderInfo[], selected: string | undefined): string | undefined {
  if (selected && readers.some((r) => r.name === selected)) return selected;
  const withCard = readers.filter((r) => r.card && !r.unavailable);
  if (withCard.length === 1) return withCard[0].name;
  const usable = readers.filter((r) => !r.unavailable);
  if (usable.length === 1) return usable[0].name;
  return undefined;
}

/**
 * A control code typed by the user: decimal (`3400`), hex (`0x42000D48`) or a
 * PC/SC part 10 feature the reader announced (`VERIFY_PIN_DIRECT`).
 */
export function parseControlCode(text: string, features: readonly string[] = []): { code: number } | { error: string } {
  const t = text.trim();
  if (!t) return { error: 'Enter a control code: decimal (3400), hex (0x42000D48) or a PC/SC feature name.' };
  let code: number | undefined;
  if (/^0x[0-9a-f]{1,8}$/i.test(t)) code = parseInt(t.slice(2), 16);
  else if (/^\d{1,10}$/.test(t)) code = Number(t);
  else if (/^[A-Z_][A-Z0-9_]*$/i.test(t)) {
    const hit = features.map((f) => f.split(' ')).find(([name]) => name.toUpperCase() === t.toUpperCase());
    if (!hit?.[1]) {
      const known = features.map((f) => f.split(' ')[0]);
      return { error: `The reader announced no PC/SC feature '${t}'${known.length ? ` (it has: ${known.join(', ')})` : ' (it announced none)'}.` };
    }
    code = parseInt(hit[1].replace(/^0x/i, ''), 16);
  }
  if (code === undefined || !Number.isFinite(code)) return { error: `'${t}' is not a control code: use decimal (3400), hex (0x42000D48) or a PC/SC feature name.` };
  if (code > 0xffffffff) return { error: `The control code ${t} does not fit in 32 bits.` };
  return { code };
}

/** Hex data typed by the user (spaces allowed); an error says what is wrong. */
export function parseHexInput(text: string): { hex: string } | { error: string } {
  const t = text.replace(/[\s:]+/g, '');
  if (!/^[0-9a-f]*$/i.test(t)) {
    const bad = /[^0-9a-f]/i.exec(t)![0];
    return { error: `'${bad}' is not a hex digit.` };
  }
  if (t.length % 2) return { error: `Odd number of hex digits (${t.length}): each byte takes two.` };
  if (t.length > 2 * 65_536) return { error: 'At most 65,536 bytes.' };
  return { hex: t.toUpperCase() };
}

// ------------------------------------------------------------ Decode ATR

/** An ATR typed into Decode ATR: hex (spaces allowed), 2 to 33 bytes, TS 3B or 3F. Empty is allowed (the card's ATR). */
export function parseAtrInput(text: string): { hex: string } | { error: string } {
  const h = parseHexInput(text);
  if ('error' in h) return h;
  if (!h.hex) return h;
  const n = h.hex.length / 2;
  if (n < 2) return { error: 'An ATR has at least TS and T0 (2 bytes).' };
  if (n > 33) return { error: `An ATR has at most 33 bytes; this is ${n}.` };
  const ts = h.hex.slice(0, 2);
  if (ts !== '3B' && ts !== '3F') return { error: `An ATR starts with TS = 3B (direct) or 3F (inverse convention), not ${ts}.` };
  return h;
}

/** The card whose ATR an empty Decode ATR box decodes: the selected reader's, else the only card with an ATR. */
export function defaultAtrReader(readers: readonly ReaderInfo[], selected: string | undefined): ReaderInfo | undefined {
  const sel = readers.find((r) => r.name === selected && r.card?.atr);
  if (sel) return sel;
  const withAtr = readers.filter((r) => r.card?.atr);
  return withAtr.length === 1 ? withAtr[0] : undefined;
}
