// Bundles the built CLI (dist/src/cli/main.js, the daemon with it) into dist/vmlet/: a restarted
// daemon on a busy node then reads a few files instead of resolving and linking ~500 modules,
// which is most of its time to the first answer (docs/adoption.md). Client verbs and HTTP stay
// in chunks loaded when used. Packages that read files next to their own code stay external.
// Usage: node scripts/bundle.mjs   (after tsc; npm run build runs both)
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(repo, 'dist/vmlet');

await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: [join(repo, 'dist/src/cli/main.js'), join(repo, 'dist/src/qemu/spawner-main.js')],
  outdir,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  // node-pty: a native addon; grpc-health-check and @grpc/reflection read .proto files found from __dirname.
  external: ['node-pty', 'grpc-health-check', '@grpc/reflection'],
  // Bundled CommonJS packages call require() for Node's own modules and optional ones.
  banner: { js: "import { createRequire as __vmletCreateRequire } from 'node:module'; const require = __vmletCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
