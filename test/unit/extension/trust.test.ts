// Settings that load code, open sockets or weaken PIN and log handling are not taken from an
// untrusted workspace (issue 14, security 1). package.json declares it; trust.ts applies it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { effectiveValue, MACHINE_SETTINGS, RESTRICTED_SETTINGS, workspaceSetsRestricted } from '../../../extension/src/trust';

const pkg = JSON.parse(fs.readFileSync(path.resolve('package.json'), 'utf8'));
const props: Record<string, { scope?: string; enum?: string[]; default?: unknown; type?: string }> = pkg.contributes.configuration.properties;

test('package.json: pcsc.library is machine-scoped; every setting that loads code, opens sockets or weakens PIN/log handling is restricted', () => {
  assert.equal(props['smartcard.pcsc.library'].scope, 'machine', 'a library path is never taken from a workspace');
  const restricted: string[] = pkg.capabilities.untrustedWorkspaces.restrictedConfigurations ?? [];
  const dangerous = Object.keys(props).filter((k) => /^smartcard\.(pcsc\.library|vpcd\.|pin\.|usbCcid\.rawTrace|log\.persist)/.test(k));
  assert.ok(dangerous.length >= 7, dangerous.join(', '));
  for (const k of dangerous) assert.ok(restricted.includes(k), `${k} is in restrictedConfigurations`);
  // trust.ts applies the same lists.
  assert.deepEqual([...restricted].sort(), RESTRICTED_SETTINGS.map((k) => `smartcard.${k}`).sort());
  for (const k of MACHINE_SETTINGS) assert.equal(props[`smartcard.${k}`].scope, 'machine', k);
  for (const k of Object.keys(props)) if (props[k].scope === 'machine') assert.ok(MACHINE_SETTINGS.includes(k.replace('smartcard.', '')), k);
});

test('package.json: the language client trace setting exists as vscode-languageclient reads it; log.persist defaults to true', () => {
  // vscode-languageclient reads `<client id>.trace.server`; the client id is 'smartcard'.
  const client = fs.readFileSync(path.resolve('extension/src/client.ts'), 'utf8');
  assert.match(client, /new LanguageClient\('smartcard',/);
  assert.deepEqual(props['smartcard.trace.server'].enum, ['off', 'messages', 'verbose']);
  assert.equal(props['smartcard.trace.server'].default, 'off');
  assert.equal(props['smartcard.log.persist'].type, 'boolean');
  assert.equal(props['smartcard.log.persist'].default, true);
});

test('effectiveValue: machine settings never from a workspace; restricted ones not while untrusted; others as merged', () => {
  const ins = { defaultValue: '', globalValue: '/usr/lib/libpcsclite.so.1', workspaceValue: '/ws/evil.so' };
  assert.equal(effectiveValue('pcsc.library', ins, true, '/ws/evil.so', ''), '/usr/lib/libpcsclite.so.1');
  assert.equal(effectiveValue('pcsc.library', ins, false, '/ws/evil.so', ''), '/usr/lib/libpcsclite.so.1');
  assert.equal(effectiveValue('pcsc.library', { defaultValue: '', workspaceFolderValue: '/ws/evil.so' }, true, '/ws/evil.so', ''), '');
  const ports = { defaultValue: [35963], workspaceValue: [1] };
  assert.deepEqual(effectiveValue('vpcd.ports', ports, false, [1], [35963]), [35963]);
  assert.deepEqual(effectiveValue('vpcd.ports', ports, true, [1], [35963]), [1], 'a trusted workspace may set it');
  assert.equal(effectiveValue('pin.checkRetries', { defaultValue: true, workspaceValue: false }, false, false, true), true);
  assert.equal(effectiveValue('log.persist', { defaultValue: true, globalValue: false, workspaceValue: true }, false, true, true), false);
  assert.equal(effectiveValue('simulator.card', { defaultValue: 'T=1', workspaceValue: 'T=0' }, false, 'T=0', 'T=1'), 'T=0', 'harmless settings follow the workspace');
  assert.equal(effectiveValue('pin.cache', undefined, false, 'session', 'run'), 'run');
});

test('workspaceSetsRestricted: only workspace or folder values of restricted settings count', () => {
  assert.equal(workspaceSetsRestricted(() => ({ globalValue: 1 })), false);
  assert.equal(workspaceSetsRestricted((k) => (k === 'vpcd.enabled' ? { workspaceValue: true } : undefined)), true);
  assert.equal(workspaceSetsRestricted((k) => (k === 'pin.cache' ? { workspaceFolderValue: 'session' } : undefined)), true);
  assert.equal(workspaceSetsRestricted((k) => (k === 'pcsc.library' ? { workspaceValue: '/ws/evil.so' } : undefined)), false, 'trust does not unlock a machine setting');
});
