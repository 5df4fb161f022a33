import * as grpc from '@grpc/grpc-js';
import type { ImportProgress__Output } from '../../api/grpc/generated/vmlet/v1/ImportProgress.js';
import type { ListImagesResponse__Output } from '../../api/grpc/generated/vmlet/v1/ListImagesResponse.js';
import { UsageError } from '../args.js';
import { toJson } from '../format.js';
import { formatImageList, ProgressMeter, specYaml } from '../image-format.js';
import type { CliIo } from '../io.js';
import { isServiceError } from '../report.js';
import { positionals, runClientVerb, type ClientVerbContext, type Verb } from '../verb.js';
import { resolve } from 'node:path';

const USAGE = `Usage: vmlet image import FILE [--name NAME] [--format F] [--output-format qcow2|raw] [--bridge BR]
       vmlet image ls
       vmlet image rm NAME
import  converts FILE (a path the daemon reads, under its --import-root) into the image store,
        showing progress; for an OVA or OVF, prints the VM it describes as YAML for vmlet create -f.
        Ctrl-C cancels the import: nothing of it is left in the store.
  --name NAME            the image's name (default: from the file name); an OVA's further disks are NAME-disk2, …
  --format F             vmdk, ova, ovf, qcow2, raw, vhdx or vdi; must match the file's header (default: detected)
  --output-format F      qcow2 (default) or raw
  --bridge BR            the bridge of the proposed VM's NICs
ls      lists the store's images and the VMs that use them
rm      deletes an image no VM uses`;

const OPTIONS = {
  name: { type: 'string' },
  format: { type: 'string' },
  'output-format': { type: 'string' },
  bridge: { type: 'string' },
} as const;

export const imageVerb: Verb = {
  name: 'image',
  summary: 'import OVA/VMDK/… images into the store, list and delete them',
  usage: USAGE,
  run: (argv, io) =>
    runClientVerb(imageVerb, argv, io, OPTIONS, ({ values, positionals: rest }) => {
      const [sub = '', ...args] = rest;
      switch (sub) {
        case 'import': {
          const [file = ''] = positionals(args, ['FILE']);
          const request = { sourcePath: resolve(file), name: values.name ?? '', format: values.format ?? '', outputFormat: values['output-format'] ?? '', bridge: values.bridge ?? '' };
          return (ctx) => importImage(ctx, io, request);
        }
        case 'ls':
          positionals(args, []);
          return async ({ globals, session }) => {
            const res: ListImagesResponse__Output = await session.callImages((c) => c.listImages.bind(c), {});
            if (globals.output === 'json') io.stdout(toJson(res));
            else if (res.images.length === 0) io.stderr('No images.\n');
            else io.stdout(formatImageList(res.images, io.now()));
            return 0;
          };
        case 'rm': {
          const [name = ''] = positionals(args, ['NAME']);
          return async ({ session }) => {
            await session.callImages((c) => c.deleteImage.bind(c), { name }, 60);
            io.stdout(`${name}: deleted\n`);
            return 0;
          };
        }
        default:
          throw new UsageError(sub ? `unknown image command "${sub}" (import, ls, rm)` : 'missing command: import, ls or rm');
      }
    }),
};

/** Streams the import: a bar on a terminal, lines otherwise, JSON messages with -o json; the spec as YAML at the end. */
async function importImage(ctx: ClientVerbContext, io: CliIo, request: { sourcePath: string; name: string; format: string; outputFormat: string; bridge: string }): Promise<number> {
  const { globals, session } = ctx;
  const signal = io.interrupted();
  if (signal.aborted) return 130;
  // No deadline: a conversion takes as long as the disk is large; Ctrl-C ends it.
  const call = session.images.importImage(request);
  const onAbort = (): void => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  const tty = io.stderrIsTty === true && globals.output !== 'json';
  const meter = new ProgressMeter(() => io.now().getTime());
  let last: ImportProgress__Output | undefined;
  try {
    for await (const chunk of call) {
      const m = chunk as ImportProgress__Output;
      last = m;
      if (globals.output === 'json') {
        io.stdout(toJson(m, false));
        continue;
      }
      const line = meter.line(m.percent, Number(m.bytesDone), Number(m.bytesTotal), m.current, tty);
      io.stderr(tty ? `\r${line}\x1b[K` : `${line}\n`);
    }
  } catch (err) {
    if (tty) io.stderr('\n');
    if (signal.aborted && isServiceError(err) && err.code === grpc.status.CANCELLED) {
      io.stderr('vmlet image import: cancelled; nothing was kept\n');
      return 130;
    }
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (tty) io.stderr('\n');
  if (globals.output === 'json' || !last) return last ? 0 : 1;
  for (const image of last.images) io.stderr(`${image.name}: imported to ${image.path} (${image.format})\n`);
  for (const warning of last.warnings) io.stderr(`warning: ${warning}\n`);
  if (last.proposedSpec) {
    io.stderr('# the VM the descriptor describes; save it and run: vmlet create -f FILE\n');
    io.stdout(specYaml(last.proposedSpec));
  }
  return 0;
}
