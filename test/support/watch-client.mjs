// A WatchVms client as a process of its own, so a test can stop it (SIGSTOP) the way a hung
// controller stops reading: its socket fills and the daemon's writes queue. Prints one JSON line
// per milestone: {"ready":true} on the first event, then {"events":N,"code":C,"details":D} at the end.
/* global process, console */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const protoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../proto');
const def = protoLoader.loadSync('vmlet/v1/vm.proto', { includeDirs: [protoRoot] });
const { VmService } = grpc.loadPackageDefinition(def).vmlet.v1;
const client = new VmService(process.argv[2], grpc.credentials.createInsecure());
const stream = client.watchVms({});
let events = 0;
stream.on('data', () => {
  if (events++ === 0) console.log(JSON.stringify({ ready: true }));
});
stream.on('error', (err) => {
  console.log(JSON.stringify({ events, code: err.code, details: err.details }));
  process.exit(0);
});
stream.on('end', () => {
  console.log(JSON.stringify({ events, code: 0 }));
  process.exit(0);
});
