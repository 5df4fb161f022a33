// Generates TypeScript types for the proto files into src/api/grpc/generated (not committed).
// The options must match PROTO_LOADER_OPTIONS in src/api/grpc/proto-options.ts.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = 'src/api/grpc/generated';
rmSync(out, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [
    'node_modules/@grpc/proto-loader/build/bin/proto-loader-gen-types.js',
    '--longs=Number', '--enums=String', '--defaults', '--oneofs',
    '--grpcLib=@grpc/grpc-js', '--includeComments',
    '-I', 'proto', '-O', out,
    'vmlet/v1/vm.proto', 'vmlet/v1/migration.proto', 'vmlet/v1/image.proto',
  ],
  { stdio: 'inherit' },
);

// The generator writes extension-less relative imports; NodeNext ESM resolution needs '.js'.
for (const entry of readdirSync(out, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
  const file = join(entry.parentPath, entry.name);
  const text = readFileSync(file, 'utf8').replace(/from '(\.{1,2}\/[^']+)'/g, "from '$1.js'");
  writeFileSync(file, text);
}
