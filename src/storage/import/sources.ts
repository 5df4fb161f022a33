import { open, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CommandError, run } from '../../host/run.js';
import { invalidArgument, VmletError } from '../../model/errors.js';
import type { ImportRequest, StoredImage } from '../../model/image.js';
import type { VmSpec } from '../../model/vm.js';
import { checkQcow2Chain } from '../chain.js';
import type { ImageRoots } from '../image-roots.js';
import { detectFormat, readHead, SOURCE_FORMATS, type SourceFormat } from './detect.js';
import { digestOf, ManifestError, parseManifest } from './manifest.js';
import { OvfError, parseOvf, type OvfDescriptor } from './ovf.js';
import { QemuImgProgress } from './progress.js';
import { proposeSpec } from './propose.js';
import { listTar, TarError, type TarMember } from './tar.js';
import { embeddedDescriptor, hasCompressedGrains, vmdkReferences } from './vmdk.js';

/** One disk to convert. */
export interface SourceDisk {
  /** What it is, for progress and the image's `source`: the file, or `ova:member`. */
  label: string;
  /** Its share of the progress: the bytes qemu-img reads. */
  weightBytes: number;
  /** Converts it to `target` (format `ext`), telling `report` the percentage as it goes. */
  convert(target: string, ext: 'qcow2' | 'raw', report: (percent: number) => void): Promise<void>;
}

export interface ImportPlan {
  disks: SourceDisk[];
  warnings: string[];
  /** For a descriptor: the VM on the images made (in disk order). */
  propose?: (images: StoredImage[]) => VmSpec;
}

export interface SourceContext {
  importRoots: ImageRoots;
  qemuImg: string;
  signal: AbortSignal;
}

/** Conversions run for hours at most; beyond that something hangs. */
const CONVERT_DEADLINE_MS = 12 * 3600_000;
/** In-flight requests of qemu-img convert (its default is 8). */
const CONVERT_COROUTINES = '16';

/**
 * How qemu-img convert runs for a source: more requests in flight, and out-of-order writes (`-W`)
 * except from deflated VMDK grains, which qemu-img inflates in order on one thread: there `-W`
 * only scatters the clusters it writes, and the conversion was slower with it
 * (docs/image-import.md).
 */
function convertTuning(head: Buffer): string[] {
  return hasCompressedGrains(head) ? ['-m', CONVERT_COROUTINES] : ['-W', '-m', CONVERT_COROUTINES];
}

/** The disk formats qemu-img is told (never probed) for a detected source format. */
const QEMU_DRIVER: Partial<Record<SourceFormat, string>> = { vmdk: 'vmdk', qcow2: 'qcow2', raw: 'raw', vhdx: 'vhdx', vdi: 'vdi' };

/**
 * What an import reads: the source resolved under the import roots, its format detected from its
 * header (and held to the requested one), every file it makes qemu-img open checked to be under
 * the import roots too, an OVA's manifest verified. INVALID_ARGUMENT for anything wrong with the
 * source; nothing is written.
 */
export async function importSources(request: ImportRequest, ctx: SourceContext): Promise<ImportPlan> {
  const path = await ctx.importRoots.resolve(request.sourcePath, 'source_path');
  const head = await readHead(path);
  const detected = detectFormat(head);
  const asked = request.format?.toLowerCase();
  if (asked) {
    if (!(SOURCE_FORMATS as readonly string[]).includes(asked)) throw invalidArgument('format', `"${request.format}" is not one of ${SOURCE_FORMATS.join(', ')}`);
    if (asked !== detected) throw invalidArgument('format', `${request.sourcePath} is ${detected} by its header, not ${asked}`);
  }
  try {
    if (detected === 'ova') return await ovaPlan(path, request, ctx);
    if (detected === 'ovf') return await ovfPlan(path, request, ctx);
    await checkReferences(path, detected, head, 0, ctx, 'source_path');
    const size = (await stat(path)).size;
    return { disks: [fileDisk(ctx, path, detected, head, size, path)], warnings: [] };
  } catch (err) {
    if (err instanceof OvfError || err instanceof TarError || err instanceof ManifestError) throw invalidArgument('source_path', `${request.sourcePath}: ${err.message}`);
    throw err;
  }
}

/** A disk qemu-img reads as `filename` (a path, or a json: pseudo-file) with driver `format`; `head` is its first bytes. */
function fileDisk(ctx: SourceContext, filename: string, format: SourceFormat, head: Buffer, weightBytes: number, label: string): SourceDisk {
  const driver = QEMU_DRIVER[format];
  if (!driver) throw invalidArgument('source_path', `${label} is ${format}, which is not a disk`);
  const tuning = convertTuning(head);
  return {
    label,
    weightBytes,
    async convert(target, ext, report) {
      const progress = new QemuImgProgress();
      const args = ['convert', '-p', ...tuning, '-f', driver, '-O', ext, filename, target];
      try {
        await run(ctx.qemuImg, args, {
          timeoutMs: CONVERT_DEADLINE_MS,
          signal: ctx.signal,
          onStdout: (text) => {
            const percent = progress.push(text);
            if (percent !== undefined) report(percent);
          },
        });
      } catch (err) {
        throw conversionError(err, label);
      }
      report(100);
    },
  };
}

/**
 * What a failed conversion tells the caller: a full disk is RESOURCE_EXHAUSTED; otherwise the
 * source is what qemu-img could not read (INVALID_ARGUMENT with its message). Cancels stay CANCELLED.
 */
function conversionError(err: unknown, label: string): unknown {
  if (!(err instanceof CommandError)) return err;
  const detail = err.stderr.trim() || err.message;
  if (/No space left on device/i.test(detail)) return new VmletError('RESOURCE_EXHAUSTED', `the image store is full while converting ${label}: ${detail}`);
  return invalidArgument('source_path', `qemu-img could not convert ${label} (a damaged or unsupported disk?): ${detail}`);
}

/**
 * Holds the files a source makes qemu-img open to the import roots: a VMDK's extents and parent
 * (from its descriptor, in its own file or embedded), a qcow2's backing chain. `head` is the
 * source's first bytes (at `offset`, inside an OVA), as detection read them.
 */
async function checkReferences(path: string, format: SourceFormat, head: Buffer, offset: number, ctx: SourceContext, field: string): Promise<void> {
  if (format === 'qcow2') {
    if (offset !== 0) throw invalidArgument(field, 'a qcow2 image inside an OVA is not supported; the OVA must hold VMDKs');
    await checkQcow2Chain(path, await readHead(path, 2 * 1024 * 1024 + 1024), { roots: ctx.importRoots, field, imagePath: path, when: 'create' });
    return;
  }
  if (format !== 'vmdk') return;
  const descriptor = head.toString('latin1', 0, 4) === 'KDMV' ? await embeddedDescriptor(path, offset) : await readFile(path, 'utf8');
  const refs = vmdkReferences(descriptor);
  const dir = dirname(path);
  if (refs.parent !== undefined) {
    throw invalidArgument(field, `${path} is a VMDK delta disk (its parent is ${refs.parent}); import the consolidated disk (vmkfstools -i or a clone) instead`);
  }
  if (head.toString('latin1', 0, 4) === 'KDMV') return; // a hosted sparse file's extent is itself
  if (offset !== 0) throw invalidArgument(field, 'a VMDK descriptor inside an OVA is not supported; the OVA must hold streamOptimized VMDKs');
  if (refs.extents.length === 0) throw invalidArgument(field, `${path} is a VMDK descriptor that names no extent file`);
  for (const extent of refs.extents) {
    await ctx.importRoots.resolve(extent.startsWith('/') ? extent : join(dir, extent), `${field} (extent ${extent})`);
  }
}

/** The import of an OVA: its descriptor and manifest read from the tar, its disks read where they lie in it. */
async function ovaPlan(path: string, request: ImportRequest, ctx: SourceContext): Promise<ImportPlan> {
  const members = await listTar(path);
  const byName = new Map(members.map((m) => [m.name.replace(/^\.\//, ''), m]));
  const ovfMember = members.find((m) => m.name.toLowerCase().endsWith('.ovf'));
  if (!ovfMember) throw invalidArgument('source_path', `${request.sourcePath} holds no .ovf descriptor (members: ${members.map((m) => m.name).join(', ') || 'none'})`);
  const ovf = parseOvf(await readMember(path, ovfMember));
  const mfMember = members.find((m) => m.name.toLowerCase().endsWith('.mf'));
  const warnings = [...ovf.warnings];
  if (mfMember) {
    await verifyManifest(await readMember(path, mfMember), request.sourcePath, (file) => {
      const m = byName.get(file);
      return m && { path, offset: m.offset, size: m.size };
    }, ctx.signal);
  } else {
    warnings.push('the OVA has no manifest; its files were not checked against digests');
  }
  const disks: SourceDisk[] = [];
  for (const disk of ovf.disks) {
    const member = byName.get(disk.href);
    if (!member) throw invalidArgument('source_path', `${request.sourcePath}: the descriptor's disk ${disk.href} is not in the archive`);
    disks.push(await memberDisk(path, member, request.sourcePath, ctx));
  }
  return planOf(ovf, disks, warnings, request);
}

async function memberDisk(path: string, member: TarMember, label: string, ctx: SourceContext): Promise<SourceDisk> {
  const head = await readMemberHead(path, member);
  if (head.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))) {
    throw invalidArgument('source_path', `${label}: ${member.name} is gzip-compressed (ovf:compression); unpack the OVA with tar and gunzip it, then import the .ovf`);
  }
  const format = detectFormat(head);
  if (format !== 'vmdk' && format !== 'raw') throw invalidArgument('source_path', `${label}: ${member.name} is ${format}; an OVA's disks must be VMDKs`);
  await checkReferences(path, format, head, member.offset, ctx, 'source_path');
  // qemu-img reads the member where it lies in the archive: no copy out of the tar.
  const filename = `json:${JSON.stringify({ driver: QEMU_DRIVER[format], file: { driver: 'raw', offset: member.offset, size: member.size, file: { driver: 'file', filename: path } } })}`;
  return fileDisk(ctx, filename, format, head, member.size, `${label}:${member.name}`);
}

/** The import of a loose .ovf: its disks are files next to it, its manifest the .mf of the same name. */
async function ovfPlan(path: string, request: ImportRequest, ctx: SourceContext): Promise<ImportPlan> {
  const ovf = parseOvf(await readFile(path, 'utf8'));
  const dir = dirname(path);
  const warnings = [...ovf.warnings];
  const mf = join(dir, basename(path).replace(/\.ovf$/i, '') + '.mf');
  const manifest = await readFile(mf, 'utf8').catch(() => undefined);
  const resolveFile = async (href: string): Promise<string> => ctx.importRoots.resolve(href.startsWith('/') ? href : join(dir, href), `source_path (file ${href})`);
  if (manifest !== undefined) {
    const located = new Map<string, { path: string; offset: number; size: number }>();
    for (const entry of parseManifest(manifest)) {
      if (entry.file === basename(path)) {
        located.set(entry.file, { path, offset: 0, size: (await stat(path)).size });
        continue;
      }
      const file = await resolveFile(entry.file).catch(() => undefined);
      if (file) located.set(entry.file, { path: file, offset: 0, size: (await stat(file)).size });
    }
    await verifyManifest(manifest, request.sourcePath, (f) => located.get(f), ctx.signal);
  } else {
    warnings.push(`no manifest ${basename(mf)} next to the descriptor; its files were not checked against digests`);
  }
  const disks: SourceDisk[] = [];
  for (const disk of ovf.disks) {
    const file = await resolveFile(disk.href);
    const head = await readHead(file);
    const format = detectFormat(head);
    await checkReferences(file, format, head, 0, ctx, `source_path (file ${disk.href})`);
    disks.push(fileDisk(ctx, file, format, head, (await stat(file)).size, file));
  }
  return planOf(ovf, disks, warnings, request);
}

function planOf(ovf: OvfDescriptor, disks: SourceDisk[], warnings: string[], request: ImportRequest): ImportPlan {
  if (disks.length === 0) throw invalidArgument('source_path', `${request.sourcePath}: the descriptor names no disk to import`);
  return { disks, warnings, propose: (images) => proposeSpec(ovf, images, { fallbackId: request.name, bridge: request.bridge, warnings }) };
}

/** Every digest of the manifest checked; a file it names that is missing, or a digest that differs, is INVALID_ARGUMENT. */
async function verifyManifest(
  text: string,
  source: string,
  locate: (file: string) => { path: string; offset: number; size: number } | undefined,
  signal: AbortSignal,
): Promise<void> {
  for (const entry of parseManifest(text)) {
    const where = locate(entry.file);
    if (!where) throw invalidArgument('source_path', `${source}: the manifest names ${entry.file}, which is not there`);
    const actual = await digestOf(where.path, where.offset, where.size, entry.algorithm, signal);
    if (actual !== entry.digest) {
      throw invalidArgument('source_path', `${source}: ${entry.file} does not match its ${entry.algorithm.toUpperCase()} digest in the manifest (the file is damaged or was changed); nothing was imported`);
    }
  }
}

const MAX_TEXT_MEMBER = 16 * 1024 * 1024;

async function readMember(path: string, member: TarMember): Promise<string> {
  if (member.size > MAX_TEXT_MEMBER) throw new VmletError('INVALID_ARGUMENT', `source_path: ${member.name} is too large for a descriptor or manifest`);
  const file = await open(path, 'r');
  try {
    const buf = Buffer.alloc(member.size);
    await file.read(buf, 0, member.size, member.offset);
    return buf.toString('utf8');
  } finally {
    await file.close();
  }
}

async function readMemberHead(path: string, member: TarMember): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buf = Buffer.alloc(Math.min(4096, member.size));
    const { bytesRead } = await file.read(buf, 0, buf.length, member.offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}
