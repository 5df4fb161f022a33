// Bundles the built CLI (dist/src/cli/main.js, the daemon with it) into dist/vmlet/: a restarted
// daemon on a busy node then reads a few files instead of resolving and linking ~500 modules,
// which is most of its time to the first answer (docs/adoption.md). Client verbs and HTTP stay
// in chunks loaded when used. Only node-pty, a native addon, stays external.
// Usage: node scripts/bundle.mjs   (after tsc; npm run build runs both)
import { build } from 'esbuild';
import { cp, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(repo, 'dist/vmlet');
const modules = join(repo, 'node_modules');

/**
 * Packages that find their .proto files from __dirname. Bundled, their __dirname becomes the
 * matching place under dist/vmlet/vendor/, where their proto dirs are copied. Left external,
 * each would load its own copy of grpc-js and protobufjs from node_modules, file by file, at
 * every start of the daemon.
 */
const PROTO_PACKAGES = [
  { name: '@grpc/reflection', protoDir: 'build/proto/grpc' },
];

const vendorDirname = {
  name: 'vendor-dirname',
  setup(b) {
    for (const pkg of PROTO_PACKAGES) {
      const root = join(modules, pkg.name);
      const filter = new RegExp(`^${root.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/build/src/.*\\.js$`);
      b.onLoad({ filter }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const dir = JSON.stringify(`/vendor/${pkg.name}/${relative(root, dirname(args.path))}`);
        return { contents: source.replaceAll('__dirname', `(__vmletDir + ${dir})`), loader: 'js', resolveDir: dirname(args.path) };
      });
    }
  },
};

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
  external: ['node-pty'],
  plugins: [vendorDirname],
  // Bundled CommonJS packages call require() for Node's own modules and optional ones.
  banner: {
    js: [
      "import { createRequire as __vmletCreateRequire } from 'node:module';",
      "import { fileURLToPath as __vmletFileURLToPath } from 'node:url';",
      'const require = __vmletCreateRequire(import.meta.url);',
      'const __vmletDir = __vmletFileURLToPath(new URL(".", import.meta.url)).replace(/\\/$/, "");',
    ].join(' '),
  },
  logLevel: 'warning',
});
for (const pkg of PROTO_PACKAGES) {
  await cp(join(modules, pkg.name, pkg.protoDir), join(outdir, 'vendor', pkg.name, pkg.protoDir), { recursive: true });
}
