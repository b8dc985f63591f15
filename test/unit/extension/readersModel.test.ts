import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { DriverStatus, ReaderInfo } from '../../../server/src/protocol';
import {
  type ReaderState, STATE_LOOK, cardText, defaultReader, detailRows, driverGroups, driverTitle, groupText, itemContextValue,
  parseControlCode, parseHexInput, readerContextValue, readerState, readerText, driverStateWords, connectModes, parseAtrInput, defaultAtrReader,
} from '../../../extension/src/readersModel';

const root = process.cwd();

function reader(name: string, extra: Partial<ReaderInfo> = {}): ReaderInfo {
  return { name, driver: 'simulator', slot: 0, eventCount: 1, card: null, connections: 0, exclusive: false, inTransaction: false, ...extra };
}
const card = { atr: '3B8E800180318066B1840C016E0183009000', protocol: 1 as const, powered: true };

test('contextValue words match the package.json menus', () => {
  assert.equal(readerContextValue(reader('A', { card })), 'reader simulator present powered atr free');
  assert.equal(readerContextValue(reader('A')), 'reader simulator empty free');
  assert.equal(readerContextValue(reader('B', { driver: 'pcsc', card })), 'reader present powered atr free');
  assert.equal(readerContextValue(reader('C', { driver: 'usb-ccid', unavailable: 'claimed by pcscd' })), 'reader unavailable free');
  assert.equal(itemContextValue('card', reader('D', { driver: 'pcsc', card, editor: { share: 'exclusive' }, canEject: true })), 'card present powered atr editor eject');
  assert.equal(itemContextValue('card', reader('E', { card: { powered: false, mute: true } })), 'card simulator present mute free');
});

test('the when clauses of package.json pick the right rows', () => {
  // Evaluates each view/item/context `when` as VS Code would for our clauses (view == …, viewItem =~ /re/, &&).
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const menus: Array<{ command: string; when: string; group?: string }> = pkg.contributes.menus['view/item/context'];
  const shown = (viewItem: string) => new Set(menus.filter((m) => m.when.split(' && ').every((c) => {
    if (c === 'view == smartcard.readers') return true;
    const re = /^viewItem =~ \/(.*)\/$/.exec(c);
    assert.ok(re, `unexpected clause ${c}`);
    return new RegExp(re[1]).test(viewItem);
  })).map((m) => m.command));
  const powered = shown(readerContextValue(reader('A', { card })));
  for (const c of ['smartcard.connect', 'smartcard.resetCard', 'smartcard.powerOff', 'smartcard.sendControl', 'smartcard.copyAtr', 'smartcard.decodeAtr', 'smartcard.removeCard', 'smartcard.selectReader']) assert.ok(powered.has(c), c);
  assert.ok(!powered.has('smartcard.disconnect') && !powered.has('smartcard.insertCard'));
  const held = shown(itemContextValue('card', reader('A', { card, editor: { share: 'shared' } })));
  assert.ok(held.has('smartcard.disconnect') && !held.has('smartcard.connect'));
  assert.ok(!held.has('smartcard.sendControl'), 'control is on reader rows');
  const empty = shown(readerContextValue(reader('A')));
  assert.deepEqual([...empty].sort(), ['smartcard.insertCard', 'smartcard.selectReader', 'smartcard.sendControl']);
  const gone = shown(readerContextValue(reader('C', { driver: 'usb-ccid', unavailable: 'claimed' })));
  assert.deepEqual([...gone], ['smartcard.selectReader']);
  // Every menu command is declared.
  const declared = new Set(pkg.contributes.commands.map((c: { command: string }) => c.command));
  for (const m of menus) assert.ok(declared.has(m.command), m.command);
});

test('each reader state has its own icon; the state follows the reader', () => {
  const looks = Object.values(STATE_LOOK).map((l) => l.icon);
  assert.equal(new Set(looks).size, looks.length, 'distinct icons');
  const unpowered = { powered: false };
  const cases: Array<[Partial<ReaderInfo>, ReaderState, string]> = [
    [{}, 'empty', 'circle-large-outline'],
    [{ card: unpowered }, 'present', 'credit-card'],
    [{ card }, 'powered', 'zap'],
    [{ card, connections: 1 }, 'inUse', 'plug'],
    [{ card, connections: 0, inTransaction: true }, 'inUse', 'plug'],
    [{ card, connections: 1, exclusive: true }, 'exclusive', 'lock'],
    [{ card: { powered: false, mute: true } }, 'mute', 'mute'],
    [{ card, unavailable: 'claimed by pcscd' }, 'unavailable', 'warning'],
  ];
  for (const [extra, state, icon] of cases) {
    assert.equal(readerState(reader('A', extra)), state, JSON.stringify(extra));
    assert.equal(STATE_LOOK[state].icon, icon);
  }
  assert.equal(STATE_LOOK.mute.color, 'problemsErrorIcon.foreground');
});

test('readers are grouped by enabled driver; a failed driver says why on its group', () => {
  const drivers: DriverStatus[] = [{ id: 'simulator', state: 'running' }, { id: 'pcsc', state: 'failed', message: 'libpcsclite.so.1 not found' }, { id: 'usb-ccid', state: 'disabled' }, { id: 'vpcd', state: 'running' }];
  const groups = driverGroups(drivers, [reader('S 00 00'), reader('V 00 00', { driver: 'vpcd' }), reader('S 00 01', { slot: 1 })]);
  assert.deepEqual(groups.map((g) => [g.title, g.readers.map((r) => r.name)]), [['Simulator', ['S 00 00', 'S 00 01']], ['PC/SC', []], ['vpcd', ['V 00 00']]]);
  const failed = groupText(groups[1]);
  assert.equal(failed.failed, true);
  assert.equal(failed.description, 'failed: libpcsclite.so.1 not found');
  assert.match(failed.tooltip, /smartcard\.pcsc\.\* settings/);
  assert.equal(groupText(groups[0]).description, '2 readers');
  assert.equal(driverTitle('usb-ccid'), 'USB CCID');
});

test('details list driver, slot, connections, reader facts and PC/SC features', () => {
  const rows = detailRows(reader('P 00 00', { driver: 'pcsc', connections: 2, exclusive: false, inTransaction: true, details: { 'VID:PID': '072F:90CC' }, features: ['VERIFY_PIN_DIRECT 0x42330006'] }));
  assert.deepEqual(rows.map((r) => `${r.label}=${r.value}`), ['driver=pcsc', 'slot=0', 'events=1', 'connections=2 connections, in a transaction', 'VID:PID=072F:90CC', 'PC/SC feature=VERIFY_PIN_DIRECT (0x42330006)']);
});

// Issue 18 item 14: the Details rows explain their numbers and the PC/SC features.
test('Details explain the numbers, the reader facts and the features', () => {
  const rows = detailRows(reader('ACS ACR39U 01 00', {
    driver: 'usb-ccid', eventCount: 3, card: { ...card, protocols: [1] },
    details: { 'exchange level': 'TPDU', 'max message length': '271 bytes' }, features: ['VERIFY_PIN_DIRECT 0x42330006'],
  }));
  const tip = (label: string) => rows.find((r) => r.label === label)?.tooltip ?? '';
  assert.match(tip('slot'), /device index 01, slot 00/);
  assert.match(tip('events'), /3 card events .* dwEventState/);
  assert.match(tip('card protocols'), /offers: T=1; in use: T=1/);
  assert.match(tip('exchange level'), /TPDU: .*dwFeatures|CCID dwFeatures/);
  assert.match(tip('max message length'), /dwMaxCCIDMessageLength/);
  assert.match(tip('PC/SC feature'), /PIN pad: the PIN never reaches the computer\ncontrol code 0x42330006/);
  const none = detailRows(reader('Workbench Simulator 00 00'));
  assert.deepEqual(none.at(-1), { label: 'PC/SC features', value: 'none announced', tooltip: none.at(-1)!.tooltip });
  assert.match(none.at(-1)!.tooltip, /CM_IOCTL_GET_FEATURE_REQUEST \(3400\)/);
});

test('control codes: decimal, hex, or a feature the reader announced; clear errors', () => {
  const f = ['VERIFY_PIN_DIRECT 0x42330006'];
  assert.deepEqual(parseControlCode('3400'), { code: 3400 });
  assert.deepEqual(parseControlCode(' 0x42000D48 '), { code: 0x42000d48 });
  assert.deepEqual(parseControlCode('verify_pin_direct', f), { code: 0x42330006 });
  assert.match((parseControlCode('MODIFY_PIN_DIRECT', f) as { error: string }).error, /no PC\/SC feature 'MODIFY_PIN_DIRECT' \(it has: VERIFY_PIN_DIRECT\)/);
  assert.match((parseControlCode('12ab') as { error: string }).error, /not a control code/);
  assert.match((parseControlCode('') as { error: string }).error, /Enter a control code/);
  assert.match((parseControlCode('99999999999') as { error: string }).error, /not a control code|32 bits/);
  assert.match((parseControlCode('0x1FFFFFFFF') as { error: string }).error, /not a control code/);
  assert.deepEqual(parseHexInput('01 02:0a'), { hex: '01020A' });
  assert.deepEqual(parseHexInput(''), { hex: '' });
  assert.match((parseHexInput('0G') as { error: string }).error, /'G' is not a hex digit/);
  assert.match((parseHexInput('123') as { error: string }).error, /Odd number of hex digits \(3\)/);
});

test('a card shows its ATR spaced and its protocol; a long ATR is shortened on the row, whole in the tooltip', () => {
  const t = cardText(reader('A', { card }));
  assert.equal(t.label, 'ATR 3B 8E 80 01 80 31 …');
  assert.equal(t.description, 'T=1 · powered');
  assert.match(t.tooltip, /^ATR 3B 8E 80 01 80 31 80 66 B1 84 0C 01 6E 01 83 00 90 00\n/);
  assert.equal(cardText(reader('A', { card: { ...card, atr: '3B02148000' } })).label, 'ATR 3B 02 14 80 00');
  assert.equal(cardText(reader('A', { card: { ...card, atr: '3B0614800001020304' } })).label, 'ATR 3B 06 14 80 00 01 …');
  assert.equal(cardText(reader('A')).label, 'no card');
  assert.equal(cardText(reader('A', { unavailable: 'USB not available' })).label, 'USB not available');
  assert.equal(cardText(reader('A', { card: { powered: false, mute: true } })).label, 'mute card');
});

test('a card the manager powered down for being unused says so, with the setting, not "not powered" as a power-off', () => {
  const idle = reader('A', { card: { atr: card.atr, powered: false, idle: true } });
  const t = cardText(idle);
  assert.equal(t.label, 'ATR 3B 8E 80 01 80 31 …');
  assert.equal(t.description, 'powered down (unused)');
  assert.match(t.tooltip, /Powered down because nobody used it/);
  assert.match(t.tooltip, /smartcard\.readerManager\.idlePowerOff/);
  assert.match(t.tooltip, /next connection .*powers it up again/);
  assert.doesNotMatch(t.tooltip, /not powered/);
  assert.equal(readerText(idle, false).description, 'powered down (unused)');
  // A card a person powered off (Power Off, a client's SCARD_UNPOWER_CARD) stays "not powered".
  const off = reader('A', { card: { atr: card.atr, powered: false } });
  assert.equal(cardText(off).description, 'not powered');
  assert.equal(readerText(off, false).description, 'unpowered');
});

test('reader text names the driver and the selection', () => {
  const t = readerText(reader('Workbench Simulator 00 00', { card }), true);
  assert.equal(t.label, 'Workbench Simulator 00 00');
  assert.equal(t.description, 'powered · selected');
  assert.match(t.tooltip, /state: powered\ndriver: simulator\nslot: 0/);
  const held = readerText(reader('B', { card, connections: 1, exclusive: true, editor: { share: 'exclusive', protocol: 1 } }), false);
  assert.equal(held.description, 'exclusive · editor: exclusive, T=1');
  assert.match(held.tooltip, /1 connection, exclusive/);
});

test('the default reader: the selected one, else the only one with a card', () => {
  const a = reader('A', { card });
  const b = reader('B');
  const c = reader('C', { card });
  assert.equal(defaultReader([a, b], undefined), 'A');
  assert.equal(defaultReader([a, b], 'B'), 'B');
  assert.equal(defaultReader([a, b], 'gone'), 'A');
  assert.equal(defaultReader([a, c], undefined), undefined);
  assert.equal(defaultReader([b], undefined), 'B');
  assert.equal(defaultReader([], undefined), undefined);
});

test('the card row names the identified card; the reader tooltip lists PC/SC features', () => {
  const r = {
    name: 'Virtual PCD 00 00', driver: 'vpcd', slot: 0, eventCount: 1, connections: 0, exclusive: false, inTransaction: false,
    card: { powered: true, protocol: 1 as const, atr: '3B951381018073FF01000B', identified: ['vsmartcard - iso7816 (Other)', 'https://frankmorgner.github.io/vsmartcard/'] },
    features: ['VERIFY_PIN_DIRECT 0x42330006'],
  };
  const c = cardText(r);
  assert.match(c.description ?? '', /^vsmartcard - iso7816 \(Other\) · T=1 · powered$/);
  assert.match(c.tooltip, /Identified \(smartcard_list.txt\):\n  vsmartcard - iso7816 \(Other\)\n  https:/);
  assert.ok(detailRows(r).some((d) => d.value === 'VERIFY_PIN_DIRECT (0x42330006)'));
});

// Issue 18 item 1: why a driver has no readers is on its group, with a warning icon and the way out.
test('a waiting, unavailable or claimed driver group says why and how out, with a warning', () => {
  const pcsc = groupText(driverGroups([{ id: 'pcsc', state: 'waiting', message: 'the PC/SC service (pcscd / Smart Card service) is not running; start it (SCARD_E_NO_SERVICE).', hint: 'Start pcscd: "sudo systemctl start pcscd.socket"' }], [])[0]);
  assert.equal(pcsc.warning, true);
  assert.equal(pcsc.description, 'waiting for pcscd');
  assert.match(pcsc.tooltip, /^The PC\/SC driver is waiting: .*\(SCARD_E_NO_SERVICE\)\.\n/);
  assert.match(pcsc.tooltip, /systemctl start pcscd/);
  assert.match(pcsc.tooltip, /appear here as soon as it is back/);
  const usb = groupText(driverGroups([{ id: 'usb-ccid', state: 'unavailable', message: 'USB not available: /sys/bus/usb/devices not found', hint: 'containers' }], [])[0]);
  assert.equal(usb.warning, true);
  assert.equal(usb.description, 'USB not available');
  assert.match(usb.tooltip, /\/sys\/bus\/usb\/devices not found/);
  const claimed = groupText(driverGroups([{ id: 'usb-ccid', state: 'running' }], [reader('ACS ACR39U 00 00', { driver: 'usb-ccid', unavailable: "the system's CCID driver (pcscd) owns this reader: use the PC/SC driver or stop pcscd" })])[0]);
  assert.equal(claimed.warning, true);
  assert.equal(claimed.description, '1 reader, 1 unavailable');
  assert.match(claimed.tooltip, /ACS ACR39U 00 00: the system's CCID driver \(pcscd\) owns this reader: use the PC\/SC driver or stop pcscd/);
  const fine = groupText(driverGroups([{ id: 'simulator', state: 'running' }], [reader('S 00 00')])[0]);
  assert.equal(fine.warning, false);
  assert.equal(fine.description, '1 reader');
  assert.equal(driverStateWords({ id: 'pcsc', state: 'waiting' }), 'waiting for the PC/SC service');
  assert.equal(driverStateWords({ id: 'pcsc', state: 'running' }), 'running');
});

// Issue 18 item 7: Connect offers only the protocols the ATR allows.
test('Connect offers only the protocols the card\'s ATR offers', () => {
  const t1 = connectModes({ powered: true, atr: '3B8E800180318066B1840C016E0183009000', protocol: 1, protocols: [1] });
  assert.deepEqual(t1.map((m) => m.label), ['Shared, any protocol', 'Shared, T=1', 'Exclusive, any protocol', 'Exclusive, T=1']);
  assert.equal(t1[0].description, 'the card offers T=1');
  assert.deepEqual(t1[1], { label: 'Shared, T=1', share: 'shared', protocol: 1 });
  const both = connectModes({ powered: true, protocols: [0, 1] });
  assert.deepEqual(both.map((m) => m.label), ['Shared, any protocol', 'Shared, T=0', 'Shared, T=1', 'Exclusive, any protocol', 'Exclusive, T=0', 'Exclusive, T=1']);
  assert.equal(connectModes({ powered: false }).length, 6, 'ATR not known yet: every choice (the helper refuses before touching the card)');
});

// Issue 18 item 8: Decode ATR checks the hex while typing; empty means the selected (or only) card's ATR.
test('Decode ATR: the typed ATR is checked; an empty box takes the selected or only card', () => {
  assert.deepEqual(parseAtrInput('3b 02 14 50'), { hex: '3B021450' });
  assert.deepEqual(parseAtrInput(''), { hex: '' });
  assert.match((parseAtrInput('3B 0G') as { error: string }).error, /'G' is not a hex digit/);
  assert.match((parseAtrInput('3B0') as { error: string }).error, /Odd number/);
  assert.match((parseAtrInput('3B') as { error: string }).error, /at least TS and T0/);
  assert.match((parseAtrInput('12 34') as { error: string }).error, /TS = 3B .* or 3F/);
  assert.match((parseAtrInput('3B' + '00'.repeat(33)) as { error: string }).error, /at most 33 bytes/);
  const a = reader('A', { card });
  const b = reader('B', { card: { powered: false } });
  const c = reader('C', { card: { ...card, atr: '3B021450' } });
  assert.equal(defaultAtrReader([a, b], undefined)?.name, 'A', 'the only card with an ATR');
  assert.equal(defaultAtrReader([a, c], undefined), undefined, 'two: none without a selection');
  assert.equal(defaultAtrReader([a, c], 'C')?.name, 'C');
  assert.equal(defaultAtrReader([a, c], 'B'), undefined);
});
