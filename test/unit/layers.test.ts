import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/** What scripts/check-layers.mjs exports (a plain .mjs: no declaration file for tsc to read). */
interface Violation {
  kind: 'layer' | 'cycle' | 'unknown-layer' | 'unresolved' | 'cycles-truncated';
  files: string[];
  rule: string;
}
interface Checker {
  checkLayers(srcRoot: string): Violation[];
  formatViolation(violation: Violation): string;
}

const script = fileURLToPath(new URL('../../scripts/check-layers.mjs', import.meta.url));
const { checkLayers, formatViolation } = (await import(script)) as Checker;

describe('check-layers', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'vmlet-layers-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** Writes a fixture src tree: src-relative name → file text. */
  const tree = (files: Record<string, string>) => {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, name)), { recursive: true });
      writeFileSync(join(root, name), text);
    }
  };
  const lines = () => checkLayers(root).map(formatViolation);

  it('passes a tree whose imports all point down the table', () => {
    tree({
      'model/vm.ts': 'export interface VmSpec { name: string }\n',
      'host/run.ts': "import type { VmSpec } from '../model/vm.js';\nexport const run = (s: VmSpec) => s;\n",
      'qemu/argv.ts': "import type { VmSpec } from '../model/vm.js';\nimport { run } from '../host/run.js';\nimport { x } from './x.js';\nexport { run, x };\nexport type { VmSpec };\n",
      'qemu/x.ts': 'export const x = 1;\n',
      'console/hub.ts': "export * from '../model/vm.js';\nexport { run } from '../host/run.js';\n",
      'vm/ports.ts': "import type { VmSpec } from '../model/vm.js';\nexport interface VmHost { launch(spec: VmSpec): Promise<void> }\n",
      'vm/manager.ts': "import type { VmHost } from './ports.js';\nexport class VmManager { constructor(readonly host: VmHost) {} }\n",
      'migration/source.ts': "import { VmManager } from '../vm/manager.js';\nexport { VmManager };\n",
      'api/grpc/server.ts': "import '../../vm/manager.js';\nimport '../../migration/source.js';\nimport './client.js';\n",
      'api/grpc/client.ts': "import type { Vm } from './generated/vmlet/v1/Vm.js';\nexport type { Vm };\n",
      'api/grpc/generated/vmlet/v1/Vm.ts': "import '../../../../../qemu/argv.js';\nexport interface Vm { name: string }\n",
      'metrics/collector.ts': "import '../vm/manager.js';\nimport '../migration/source.js';\nimport '../host/run.js';\n",
      'cli/main.ts': "import '../api/grpc/client.js';\nimport type { VmSpec } from '../model/vm.js';\nimport '../version.js';\nimport '../config.js';\nexport const main = async () => (await import('../main.js')).daemonMain as unknown as VmSpec;\n",
      'version.ts': "import '../package.json';\nexport const VERSION = '0';\n",
      'config.ts': "import type { Accel } from './qemu/accel.js';\nexport type { Accel };\n",
      'qemu/accel.ts': "export type Accel = 'kvm' | 'tcg';\n",
      'main.ts': "import { startDaemon } from './daemon.js';\nexport const daemonMain = startDaemon;\n",
      'daemon.ts': "import '../package.json';\nimport { VmManager } from './vm/manager.js';\nimport './qemu/argv.js';\nimport './api/grpc/server.js';\nexport const startDaemon = () => VmManager;\n",
    });
    expect(lines()).toEqual([]);
  });

  it('fails a driver that imports another driver, naming both files', () => {
    tree({
      'qemu/launcher.ts': "import { tapName } from '../net/names.js';\nexport const t = tapName;\n",
      'net/names.ts': 'export const tapName = () => "vml0";\n',
    });
    expect(lines()).toEqual([
      'src/qemu/launcher.ts → src/net/names.ts: sideways between drivers: src/qemu/ may import only src/model/, src/host/ (a driver never imports another driver, the domain or an adapter)',
    ]);
  });

  it('fails a driver that imports the domain, even for a type only', () => {
    tree({
      'net/wiring.ts': "import type { VmManager } from '../vm/manager.js';\nexport type M = VmManager;\n",
      'vm/manager.ts': 'export class VmManager {}\n',
    });
    const [violation, ...rest] = checkLayers(root);
    expect(rest).toEqual([]);
    expect(violation).toMatchObject({ kind: 'layer', files: ['src/net/wiring.ts', 'src/vm/manager.ts'] });
    expect(violation?.rule).toMatch(/^runs up the layers: src\/net\/ may import only src\/model\/, src\/host\//);
  });

  it('fails the domain reaching a driver instead of a port', () => {
    tree({
      'vm/lifecycle.ts': "import { launch } from '../qemu/launcher.js';\nexport const l = launch;\n",
      'qemu/launcher.ts': 'export const launch = () => undefined;\n',
    });
    expect(lines()).toEqual([expect.stringMatching(/^src\/vm\/lifecycle\.ts → src\/qemu\/launcher\.ts: not allowed: .*src\/vm\/ports\.ts/)]);
  });

  it('fails model importing anything of vmlet, but not node or npm modules', () => {
    tree({
      'model/vm.ts': "import { readFileSync } from 'node:fs';\nimport type { Logger } from 'pino';\nimport type { Run } from '../host/run.js';\nexport type R = [Run, Logger, typeof readFileSync];\n",
      'model/errors.ts': "export * from './vm.js';\n",
      'host/run.ts': 'export type Run = () => void;\n',
    });
    expect(lines()).toEqual([
      'src/model/vm.ts → src/host/run.ts: runs up the layers: src/model/ may import nothing of vmlet (the leaf: spec, status, phases, errors, events)',
    ]);
  });

  it('fails the CLI linking the domain or the daemon', () => {
    tree({
      'cli/verbs/ls.ts': "import '../../vm/manager.js';\nimport '../../daemon.js';\n",
      'vm/manager.ts': '',
      'daemon.ts': '',
    });
    expect(checkLayers(root).map((v) => v.files[1])).toEqual(['src/vm/manager.ts', 'src/daemon.ts']);
  });

  it('names a cycle of three files once, in import order from its first file', () => {
    tree({
      'vm/b.ts': "import './c.js';\n",
      'vm/c.ts': "import { a } from './a.js';\nexport const c = a;\n",
      'vm/a.ts': "export { b } from './b.js';\nexport const a = 1;\n",
      'vm/d.ts': "import './a.js';\n",
    });
    expect(lines()).toEqual(['src/vm/a.ts → src/vm/b.ts → src/vm/c.ts → src/vm/a.ts: import cycle of 3 files']);
  });

  it('fails a cycle made only of type imports and import() types', () => {
    tree({
      'model/spec.ts': "import type { Status } from './status.js';\nexport interface Spec { status?: Status }\n",
      'model/status.ts': "export type Status = { spec: import('./spec.js').Spec };\n",
    });
    expect(checkLayers(root)).toEqual([
      { kind: 'cycle', files: ['src/model/spec.ts', 'src/model/status.ts', 'src/model/spec.ts'], rule: 'import cycle of 2 files' },
    ]);
  });

  it('reports each of the cycles of one tangle, and a file importing itself', () => {
    tree({
      'host/a.ts': "import './b.js';\n",
      'host/b.ts': "import './a.js';\nimport './c.js';\n",
      'host/c.ts': "import './b.js';\nimport './c.js';\n",
    });
    expect(lines()).toEqual([
      'src/host/a.ts → src/host/b.ts → src/host/a.ts: import cycle of 2 files',
      'src/host/b.ts → src/host/c.ts → src/host/b.ts: import cycle of 2 files',
      'src/host/c.ts → src/host/c.ts: import cycle of 1 file',
    ]);
  });

  it('lists at most 50 cycles of one tangle, then names its files in one line', () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    tree(Object.fromEntries(names.map((n) => [`host/${n}.ts`, names.filter((m) => m !== n).map((m) => `import './${m}.js';\n`).join('')])));
    const violations = checkLayers(root);
    expect(violations.filter((v) => v.kind === 'cycle')).toHaveLength(50);
    expect(violations.at(-1)).toEqual({
      kind: 'cycles-truncated',
      files: names.map((n) => `src/host/${n}.ts`),
      rule: 'more than 50 import cycles among these 5 files; break the ones listed first',
    });
  });

  it('fails a file in a folder, or at the root, that the table does not know', () => {
    tree({
      'widgets/knob.ts': "import '../model/vm.js';\n",
      'helpers.ts': '',
      'model/vm.ts': '',
    });
    expect(lines()).toEqual([
      'src/helpers.ts: unknown layer src/helpers.ts: add it to the table in scripts/check-layers.mjs',
      'src/widgets/knob.ts: unknown layer src/widgets/: add it to the table in scripts/check-layers.mjs',
    ]);
  });

  it('sees a dynamic import()', () => {
    tree({
      'cli/cli.ts': "export const load = async () => (await import('../vm/manager.js')).VmManager;\n",
      'vm/manager.ts': 'export class VmManager {}\n',
    });
    expect(checkLayers(root)).toEqual([expect.objectContaining({ kind: 'layer', files: ['src/cli/cli.ts', 'src/vm/manager.ts'] })]);
  });

  it('counts an import of generated code as its folder, generated yet or not, and does not read it', () => {
    tree({
      'console/grpc.ts': "import type { VmService } from '../api/grpc/generated/vmlet/v1/VmService.js';\nexport type S = VmService;\n",
      'api/grpc/generated/vmlet/v1/Vm.ts': "import '../../../../../qemu/nothing-here.js';\n",
    });
    expect(checkLayers(root)).toEqual([
      expect.objectContaining({ kind: 'layer', files: ['src/console/grpc.ts', 'src/api/grpc/generated/vmlet/v1/VmService.ts'] }),
    ]);
  });

  it('fails a relative import that resolves to no file', () => {
    tree({ 'host/run.ts': "import './gone.js';\n" });
    expect(lines()).toEqual(['src/host/run.ts → ./gone.js: unresolved import: no such file under src/']);
  });

  describe('the CLI', () => {
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, [script, ...args]).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
      );

    it('prints one line per violation and exits 1', async () => {
      tree({ 'qemu/a.ts': "import '../net/b.js';\n", 'net/b.ts': "import '../qemu/a.js';\n" });
      const result = await run(root);
      expect(result.code).toBe(1);
      expect(result.stdout.trim().split('\n')).toEqual([
        expect.stringMatching(/^src\/net\/b\.ts → src\/qemu\/a\.ts: sideways between drivers: /),
        expect.stringMatching(/^src\/qemu\/a\.ts → src\/net\/b\.ts: sideways between drivers: /),
        'src/net/b.ts → src/qemu/a.ts → src/net/b.ts: import cycle of 2 files',
      ]);
    });

    it('prints nothing and exits 0 on a clean tree, and exits 2 on a missing one', async () => {
      tree({ 'model/vm.ts': '', 'host/run.ts': "import '../model/vm.js';\n" });
      expect(await run(root)).toEqual({ code: 0, stdout: '' });
      expect((await run(join(root, 'missing'))).code).toBe(2);
    });
  });
});
