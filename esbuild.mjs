// Builds the three bundles (extension, helper, webview), the CLI, and the test files.
//   node esbuild.mjs [--production] [--watch] [--outdir=DIR]   (default out/; packaging builds elsewhere)
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
const outdir = process.argv.find((a) => a.startsWith('--outdir='))?.slice('--outdir='.length) ?? 'out';
const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'warning', legalComments: 'none' };
// The package's version, for `scard --version` (server/src/cli.ts declares SCARD_VERSION).
const { version } = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const node = { ...common, platform: 'node', target: 'node20', format: 'cjs', define: { SCARD_VERSION: JSON.stringify(version) } };
// Native packages are loaded at run time from node_modules, never bundled.
const nativeExternals = ['usb', 'koffi'];

function testEntries(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testEntries(p));
    else if (/\.test\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

const builds = [
  { ...node, entryPoints: { extension: 'extension/src/extension.ts' }, outdir, external: ['vscode', ...nativeExternals] },
  { ...node, entryPoints: { server: 'server/src/boot.ts', helper: 'server/src/main.ts', cli: 'server/src/cli.ts' }, outdir, external: nativeExternals },
  { ...common, platform: 'browser', target: 'es2022', format: 'iife', entryPoints: { webview: 'webview/src/main.ts' }, outdir },
];
if (!production && outdir === 'out') {
  const tests = [...testEntries('test/unit'), ...testEntries('test/helper'), ...testEntries('test/refstack')];
  if (tests.length) {
    builds.push({ ...node, entryPoints: tests, outdir: 'out/test', outbase: 'test', external: [...nativeExternals, 'vscode'], sourcemap: 'inline' });
  }
}

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log('esbuild: watching');
} else {
  const t0 = Date.now();
  await Promise.all(builds.map((b) => esbuild.build(b)));
  // The webview toolkit ships as one browser bundle; copy it next to our webview bundle.
  fs.copyFileSync('node_modules/@vscode/webview-ui-toolkit/dist/toolkit.min.js', path.join(outdir, 'toolkit.min.js'));
  console.log(`esbuild: built ${builds.length} bundles in ${Date.now() - t0} ms`);
}
