import type { Options } from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** Shared by the runtime loader and scripts/gen-proto-types.mjs, so generated types match decoded messages. */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const PROTO_FILES = ['vmlet/v1/vm.proto', 'vmlet/v1/migration.proto', 'vmlet/v1/image.proto', 'grpc/health/v1/health.proto'];

/** The repo's proto/ folder, found from this module whether it runs from src/ (vitest) or dist/src/ (built). */
function findProtoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, PROTO_FILES[0]!))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('proto/vmlet/v1 not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const PROTO_ROOT = findProtoRoot();
