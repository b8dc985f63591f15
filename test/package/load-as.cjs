// Run as `node load-as.cjs EXTENSION_DIR PLATFORM ARCH LIBC`: loads koffi and usb from an
// unpacked package the way its helper does (require by name from the package's
// node_modules), with process.platform / process.arch (and, for napi-rs's musl check,
// /usr/bin/ldd) answering as that target would. Native modules are not dlopen'ed (they
// are another machine's code): each .node file koffi's and usb's own loaders pick is
// recorded and replaced by a stand-in. Prints the picked files as JSON.
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');

const [dir, platform, arch, libc] = process.argv.slice(2);
Object.defineProperty(process, 'platform', { value: platform });
Object.defineProperty(process, 'arch', { value: arch });
const readFileSync = fs.readFileSync;
fs.readFileSync = function (file, ...rest) {
  if (file === '/usr/bin/ldd' && platform === 'linux') return libc === 'musl' ? 'musl libc (stand-in for the test)' : 'GNU C Library (stand-in for the test)';
  return readFileSync.call(this, file, ...rest);
};

const koffiVersion = JSON.parse(readFileSync(path.join(dir, 'node_modules/koffi/package.json'), 'utf8')).version;
const picked = [];
Module._extensions['.node'] = (module, filename) => {
  picked.push(path.relative(dir, filename).split(path.sep).join('/'));
  const target = function StandIn() {};
  module.exports = new Proxy(target, {
    get: (t, k) => (k === 'version' ? koffiVersion : k in t ? t[k] : function StandIn() {}),
  });
};
const from = Module.createRequire(path.join(dir, 'out', 'server.js'));
from('koffi');
from('usb');
process.stdout.write(JSON.stringify(picked));
