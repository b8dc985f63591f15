// Shared by test suites that need system packages (Chromium, pcscd, vicc, pcsc-tools).
// Outside CI a missing tool skips the suite with the install command; under CI=true it fails.
import { spawnSync } from 'node:child_process';

export const INSTALL_HINT = 'install it with: sudo npm run setup:system';

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Returns a skip reason (string) when something is missing outside CI, or false
 * when everything is there. Under CI=true a missing command throws.
 */
export function requireCommands(...names: string[]): string | false {
  const missing = names.filter((n) => !hasCommand(n));
  if (!missing.length) return false;
  return missingPart(`missing ${missing.join(', ')}; ${INSTALL_HINT}`);
}

/** A skip reason outside CI; under CI=true a missing part fails the run. */
export function missingPart(msg: string): string {
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: a missing part fails the run)`);
  return msg;
}

/** A skip reason (missingPart) when `python` cannot import `module`, Debian's `pkg`; `why` says what needs it. */
export function missingPythonModule(python: string, module: string, pkg: string, why = ''): string | false {
  if (spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0) return false;
  return missingPart(`${pkg} is missing${why ? ` (${why})` : ''}; sudo npm run setup:system`);
}

/** A skip reason (missingPart) when `python` cannot import pyscard; `why` says what needs it. */
export const missingPyscard = (python: string, why = ''): string | false => missingPythonModule(python, 'smartcard', 'python3-pyscard', why);

export const requireCommand = (name: string) => requireCommands(name);
