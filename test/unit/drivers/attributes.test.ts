// The SCardGetAttrib tags the pcsc driver asks for (pcsc-lite's reader.h) and how their bytes are read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { READER_ATTRIBUTES, decodeAttribute } from '../../../server/src/drivers/pcsc/attributes';

const READER_H = ['2.5.1', '2.3.3'].map((v) => `/work/shared/data/pcsc-lite/${v}/src/PCSC/reader.h`).concat(path.resolve('..', 'shared', 'data', 'pcsc-lite', '2.5.1', 'src', 'PCSC', 'reader.h')).find((p) => fs.existsSync(p));

test('the tags are pcsc-lite\'s (reader.h: SCARD_ATTR_VALUE(class, tag))', { skip: !READER_H && 'pcsc-lite sources not here' }, () => {
  const h = fs.readFileSync(READER_H!, 'utf8');
  const classes = Object.fromEntries([...h.matchAll(/#define (SCARD_CLASS_\w+)\s+(0x[0-9a-f]+|\d+)/gi)].map((m) => [m[1], Number(m[2])]));
  for (const a of READER_ATTRIBUTES) {
    const m = new RegExp(`#define SCARD_ATTR_${a.name} SCARD_ATTR_VALUE\\((SCARD_CLASS_\\w+), (0x[0-9a-f]+)\\)`, 'i').exec(h);
    assert.ok(m, `SCARD_ATTR_${a.name} in reader.h`);
    assert.equal(a.tag, ((classes[m[1]] << 16) | Number(m[2])) >>> 0, a.name);
  }
  assert.equal(READER_ATTRIBUTES.find((a) => a.name === 'MAX_IFSD')?.tag, 0x00030125);
});

test('strings end at the first NUL; UTF-8 when valid, else latin1; DWORDs little-endian, 1 to 8 bytes', () => {
  assert.equal(decodeAttribute('string', new TextEncoder().encode('ACS\0')), 'ACS');
  assert.equal(decodeAttribute('string', Uint8Array.of(0x47, 0x65, 0x6d, 0xe4, 0x00, 0x41)), 'Gemä');
  assert.equal(decodeAttribute('string', new TextEncoder().encode('Müller')), 'Müller');
  assert.equal(decodeAttribute('string', Uint8Array.of(0)), undefined);
  assert.equal(decodeAttribute('string', new Uint8Array(0)), undefined);
  assert.equal(decodeAttribute('dword', Uint8Array.of(0x00, 0x00, 0x16, 0x02)), 0x02160000);
  assert.equal(decodeAttribute('dword', Uint8Array.of(0xfe)), 254);
  assert.equal(decodeAttribute('dword', Uint8Array.of(0x05, 0x01, 0, 0, 0, 0, 0, 0)), 261, 'an 8-byte unsigned long');
  assert.equal(decodeAttribute('dword', Uint8Array.of(0, 0, 0, 0, 1, 0, 0, 0)), undefined, 'more than 32 bits');
  assert.equal(decodeAttribute('dword', new Uint8Array(12)), undefined);
});
