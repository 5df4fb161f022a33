#!/usr/bin/env node
// First: sizes libuv's thread pool before anything can start it.
import '../host/threadpool.js';
import '../host/compile-cache.js';
import { runCli } from './cli.js';
import { processIo } from './io.js';

const code = await runCli(process.argv.slice(2), processIo());
// Let piped output drain before exiting.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(code);
