// The helper's entry, built as out/server.js (the module the extension forks): it runs the helper's
// bundle, out/helper.js (main.ts), with V8's code cache (codeCache.ts).
import { boot } from './codeCache';

boot();
