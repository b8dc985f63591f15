#!/usr/bin/env node
// `scard`: the workbench's engine on the command line (built by `npm run build`).
require('../out/cli.js');
