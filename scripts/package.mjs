// `npm run package`: a .vsix for this platform. koffi (PC/SC) and usb (USB CCID)
// ship native code per platform, so the package is platform-specific
// (vsce --target), with the native modules of the machine that builds it.
import { spawnSync } from 'node:child_process';

const TARGETS = { 'linux-x64': 'linux-x64', 'linux-arm64': 'linux-arm64', 'darwin-x64': 'darwin-x64', 'darwin-arm64': 'darwin-arm64', 'win32-x64': 'win32-x64', 'win32-arm64': 'win32-arm64' };
const target = TARGETS[`${process.platform}-${process.arch}`];
if (!target) {
  console.error(`npm run package: no VS Code target for ${process.platform}-${process.arch}`);
  process.exit(1);
}
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.execPath, ['esbuild.mjs', '--production']);
// Relative links stay relative: the README's screenshot is in docs/images (no repository URL to rewrite them to).
run(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['vsce', 'package', '--target', target, '--no-rewrite-relative-links', '--allow-missing-repository', '--out', `smartcard-workbench-${target}.vsix`]);
