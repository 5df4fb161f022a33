import type { Vm__Output } from '../../api/grpc/generated/vmlet/v1/Vm.js';
import type { GetVmRequest } from '../../api/grpc/generated/vmlet/v1/GetVmRequest.js';
import { UsageError } from '../args.js';
import type { CliIo } from '../io.js';
import { actionLine, timestampToDate, toJson } from '../format.js';
import { buildSpec, type SpecFlags } from '../spec-input.js';
import { positionals, runClientVerb, type Verb } from '../verb.js';

async function readSpecFile(io: CliIo, path: string): Promise<string> {
  try {
    return await io.readFile(path);
  } catch (err) {
    throw new Error(`cannot read ${path === '-' ? 'standard input' : path}: ${(err as Error).message}`, { cause: err });
  }
}

const OPTIONS = {
  file: { type: 'string', short: 'f' },
  id: { type: 'string' },
  vcpus: { type: 'string' },
  memory: { type: 'string' },
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  cmdline: { type: 'string' },
  disk: { type: 'string', multiple: true },
  nic: { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
  firmware: { type: 'string' },
  'cloud-init-user-data': { type: 'string' },
  start: { type: 'boolean' },
} as const;

export const createVerb: Verb = {
  name: 'create',
  summary: 'create a VM from a spec file and/or flags',
  usage: `Usage: vmlet create [-f FILE] [flags] [--start]
Creates a VM. Idempotent: the same id with the same spec returns the existing VM (and says so;
with --start, starts it if it is not running).
  -f, --file FILE          VmSpec as YAML or JSON ("-": standard input); keys in snake_case
                           (memory_mib) or camelCase (memoryMib); \`vmlet get -o json\` output works too
  --id ID                  VM id (lowercase DNS-1123 label)
  --vcpus N
  --memory MIB             memory in MiB; 512M and 2G work too
  --kernel PATH --initrd PATH --cmdline TEXT   direct kernel boot
  --disk name=NAME,image=PATH[,overlay][,readonly][,format=raw|qcow2]   repeatable;
                           no format: the daemon reads it from the image's header
  --nic name=NAME,bridge=BRIDGE[,mac=MAC]            repeatable
  --label KEY=VALUE        repeatable
  --firmware bios|uefi|uefi-secure-boot   default bios
  --cloud-init-user-data FILE   a NoCloud seed with this user-data (at most 64 KiB)
  --start                  start the VM once created (waits until it runs)
Flags override the file: scalars replace, labels merge, disks and NICs replace by name.`,
  run: (argv, io) =>
    runClientVerb(createVerb, argv, io, OPTIONS, ({ values, positionals: rest }) => {
      positionals(rest, []);
      const { id, vcpus, memory, kernel, initrd, cmdline, disk, nic, label, firmware } = values;
      const userDataFile = values['cloud-init-user-data'];
      const flags: SpecFlags = { id, vcpus, memory, kernel, initrd, cmdline, disk, nic, label, firmware };
      if (!values.file && userDataFile === undefined && Object.values(flags).every((v) => v === undefined)) {
        throw new UsageError('give a spec file (-f FILE) or flags (at least --id)');
      }
      return async ({ io, globals, session }) => {
        const file = values.file ? { name: values.file, text: await readSpecFile(io, values.file) } : undefined;
        if (userDataFile !== undefined) flags.cloudInitUserData = await readSpecFile(io, userDataFile);
        const spec = buildSpec({ file, flags });
        const start = values.start ?? false;
        // CreateVm answers a repeat of the same spec like a create; only a look first tells them
        // apart (as kubectl apply says "unchanged"): the same VM if its creation time is the same.
        // Any error of that look is left to CreateVm to report.
        const before = spec.id ? await session.call<GetVmRequest, Vm__Output>((c) => c.getVm.bind(c), { id: spec.id }).catch(() => undefined) : undefined;
        const vm: Vm__Output = await session.call((c) => c.createVm.bind(c), { spec, start });
        const createdBefore = timestampToDate(before?.status?.createdAt)?.getTime();
        const existed = createdBefore !== undefined && createdBefore === timestampToDate(vm.status?.createdAt)?.getTime();
        const done = existed ? 'already exists with this spec' : start ? 'created and started' : 'created';
        io.stdout(globals.output === 'json' ? toJson(vm) : actionLine(vm.spec?.id ?? spec.id ?? '', done, vm));
        return 0;
      };
    }),
};
