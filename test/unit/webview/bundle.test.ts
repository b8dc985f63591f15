// The webview runs in the panel's sandbox: it must not carry server (or extension) code.
// The wire types it shares with the helper live in server/src/wire.ts, imported as types
// only; these checks keep it that way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.cwd();
// esbuild's API cannot be bundled into this test file: load it from node_modules at run time.
const esbuild = createRequire(path.join(root, 'package.json'))('esbuild') as typeof import('esbuild');

test('the webview bundle is built from webview/src only', async () => {
  const out = await esbuild.build({
    entryPoints: [path.join(root, 'webview/src/main.ts')], bundle: true, write: false, metafile: true,
    platform: 'browser', format: 'iife', target: 'es2022', logLevel: 'silent', absWorkingDir: root,
  });
  const inputs = Object.keys(out.metafile.inputs).sort();
  assert.ok(inputs.includes('webview/src/model.ts') && inputs.includes('webview/src/protocol.ts'), inputs.join(', '));
  const foreign = inputs.filter((f) => !f.startsWith('webview/src/'));
  assert.deepEqual(foreign, [], `the webview bundle pulls in ${foreign.join(', ')}`);
});

test('server/src/wire.ts declares types only: it compiles to nothing', () => {
  const src = fs.readFileSync(path.join(root, 'server/src/wire.ts'), 'utf8');
  assert.match(src, /export interface DecodedExchange/);
  assert.match(src, /export interface TlvView/);
  assert.doesNotMatch(src, /^\s*import\s(?!type\b)/m, 'wire.ts imports nothing at run time');
  const { code } = esbuild.transformSync(src, { loader: 'ts', format: 'esm' });
  assert.equal(code.trim(), '', 'wire.ts emits no code');
});

test('both protocol files take the wire types from server/src/wire.ts, as types', () => {
  for (const f of ['server/src/protocol.ts', 'webview/src/protocol.ts']) {
    const src = fs.readFileSync(path.join(root, f), 'utf8');
    assert.doesNotMatch(src, /interface (TlvView|DecodedExchange)\b/, `${f} declares its own copy`);
    assert.match(src, /export type \{[^}]*\bDecodedExchange\b[^}]*\} from '[./]*(server\/src\/)?wire'/, `${f} re-exports DecodedExchange from wire.ts`);
  }
});
