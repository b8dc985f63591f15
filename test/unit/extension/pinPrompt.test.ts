import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pinPromptText, scriptName, sealedAnswer } from '../../../extension/src/pinPrompt';
import { askPinAad, newPinKey, openPin } from '../../../server/src/protocol';

test('the PIN prompt names the label once, the reader and the script line', () => {
  const p = { label: 'User PIN', reader: 'Workbench Simulator 00 00', uri: 'file:///home/me/ws/hello.apdu', line: 7 };
  const { title, prompt } = pinPromptText(p);
  assert.equal(title, 'User PIN — Workbench Simulator 00 00, hello.apdu:7');
  assert.doesNotMatch(prompt, /User PIN/, 'the label is not repeated in the prompt');
  assert.equal(pinPromptText({ label: 'User PIN' }).title, 'User PIN');
  assert.equal(pinPromptText({ label: 'PIN', line: 3 }).title, 'PIN — line 3');
  assert.equal(pinPromptText({ label: 'PIN', reader: 'R', uri: 'untitled:Untitled-1', line: 2 }).title, 'PIN — R, Untitled-1:2');
  assert.equal(scriptName('file:///c%3A/w/my%20script.apdu'), 'my script.apdu');
  assert.equal(scriptName('vscode-remote://host/ws/a.apdu?x#y'), 'a.apdu');
});

test('the answer is the PIN sealed for that prompt: opens with the key and the prompt only, holds no PIN form', () => {
  const key = newPinKey();
  const p = { label: 'User PIN', reader: 'R 00 00', challenge: 'Y2hhbGxlbmdlLWNoYWxsZW5nZQ==' };
  const a = sealedAnswer(key, p, '73915862');
  const b = sealedAnswer(key, p, '73915862');
  assert.notEqual(a.sealed.nonce, b.sealed.nonce, 'a fresh nonce per answer');
  assert.notEqual(a.sealed.data, b.sealed.data);
  assert.equal(openPin(key, a.sealed, askPinAad(p)), '73915862');
  assert.equal(openPin(newPinKey(), a.sealed, askPinAad(p)), undefined, 'another key');
  assert.equal(openPin(key, a.sealed, askPinAad({ ...p, challenge: 'b3RoZXI=' })), undefined, 'another prompt');
  assert.equal(openPin(key, a.sealed, askPinAad({ ...p, reader: 'R 01 00' })), undefined, 'another reader');
  const tampered = Buffer.from(a.sealed.data, 'base64');
  tampered[0] ^= 1;
  assert.equal(openPin(key, { ...a.sealed, data: tampered.toString('base64') }, askPinAad(p)), undefined, 'a changed ciphertext');
  for (const bad of [undefined, null, 'x', { nonce: 1, data: 2 }, { nonce: 'AAAA', data: 'AAAA' }]) assert.equal(openPin(key, bad, askPinAad(p)), undefined);
  const text = JSON.stringify(a);
  for (const form of ['73915862', Buffer.from('73915862').toString('hex'), Buffer.from('73915862').toString('base64').replace(/=+$/, '')]) {
    assert.ok(!text.includes(form), 'no PIN form in the answer');
  }
});

test('a sealed PIN does not tell its length: 4, 8 and 12 digits seal to the same size, and open to themselves', async () => {
  const { newPinKey: mk, sealPin, openPin: open } = await import('../../../server/src/protocol');
  const key = mk();
  const sizes = new Set<number>();
  for (const pin of ['1234', '12345678', '123456789012', '']) {
    const sealed = sealPin(key, pin, 'aad');
    sizes.add(Buffer.from(sealed.data, 'base64').length);
    assert.equal(open(key, sealed, 'aad'), pin);
  }
  assert.equal(sizes.size, 1, `one ciphertext size for every short PIN, got ${[...sizes].join(', ')}`);
  const long = 'x'.repeat(40);
  assert.equal(open(key, sealPin(key, long, 'aad'), 'aad'), long, 'a long passphrase still opens');
});

test('a PIN prompt of a script another extension runs says which extension asks', () => {
  const { title } = pinPromptText({ label: 'User PIN', reader: 'Workbench Simulator 00 00', uri: 'file:///ws/hello.apdu', line: 7, client: 'acme.applet-tools' });
  assert.equal(title, 'User PIN — Workbench Simulator 00 00, hello.apdu:7, asked by acme.applet-tools');
  assert.doesNotMatch(pinPromptText({ label: 'User PIN' }).title, /asked by/);
});
