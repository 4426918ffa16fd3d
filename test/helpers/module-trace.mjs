// Records every module URL the process resolves, one a line, into the file
// named by MODULE_TRACE_FILE: `node --import ./test/helpers/module-trace.mjs …`.
// The start-up test reads it to see which packages a command loaded.
import { register } from 'node:module';

register('./module-trace-hooks.mjs', import.meta.url, { data: { file: process.env.MODULE_TRACE_FILE } });
