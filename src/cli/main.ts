#!/usr/bin/env node
// First: sizes libuv's thread pool before anything can start it.
import '../host/threadpool.js';
import '../host/compile-cache.js';
import { processIo } from './io.js';
import { localVerbOf } from './local-verbs.js';

const argv = process.argv.slice(2);
const local = localVerbOf(argv);
const code = local ? await local.run(argv.slice(1), processIo()) : await (await import('./cli.js')).runCli(argv, processIo());
// Let piped output drain before exiting.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(code);
