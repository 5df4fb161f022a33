/**
 * image-import: ImportImage of a 1 GiB-virtual streamOptimized VMDK through a daemon (from the
 * call to the last message: conversion, qemu-img check, rename) against the same qemu-img convert
 * run by hand on the same file, and against the plain `qemu-img convert -f vmdk -O qcow2` a person
 * would type. Runs alternate so the page cache treats each side alike. Two disks: one as a guest
 * leaves it (an ext4 filesystem full of an operating system's files), and one of random data,
 * which deflate cannot shrink, so its conversion is short and vmlet's fixed part weighs most.
 */
import { execFile } from 'node:child_process';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { unary } from '../src/api/grpc/client.js';
import type { ImportProgress__Output } from '../src/api/grpc/generated/vmlet/v1/ImportProgress.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { BenchDaemon } from './daemon.js';
import { whichBinary } from './procs.js';
import { ms, summarise, type Stats } from './stats.js';
import { benchDir } from './util.js';

const execFileP = promisify(execFile);
const VIRTUAL_MIB = 1024;
/** Random data in the second disk: spread over it, every fourth 4 MiB. */
const RANDOM_MIB = 256;
/** The files of the first disk: shared libraries and their data, as an OS disk holds them. */
const FILES_DIR = process.env.IMAGE_IMPORT_FILES_DIR ?? '/usr/lib/x86_64-linux-gnu';

interface SourceDisk {
  name: string;
  vmdk: string;
  dataMib: number;
  description: string;
}

async function toStreamOptimized(raw: string, vmdk: string): Promise<void> {
  await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk], { timeout: 600_000 });
  await rm(raw);
}

/** An ext4 filesystem made by mke2fs from FILES_DIR, as a guest's disk holds its files. */
async function makeFilesVmdk(dir: string): Promise<SourceDisk> {
  const raw = join(dir, 'files.raw');
  await execFileP('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', FILES_DIR, raw, `${VIRTUAL_MIB}M`], { timeout: 600_000 });
  // What the filesystem allocated: the data the VMDK carries.
  const { stdout } = await execFileP('du', ['-sm', raw], { timeout: 60_000 });
  const dataMib = Number(stdout.split('\t')[0]);
  const vmdk = join(dir, 'files.vmdk');
  await toStreamOptimized(raw, vmdk);
  return { name: 'files', vmdk, dataMib, description: `ext4 holding ${FILES_DIR}` };
}

async function makeRandomVmdk(dir: string): Promise<SourceDisk> {
  const raw = join(dir, 'random.raw');
  const file = await open(raw, 'w');
  const chunk = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < RANDOM_MIB / 4; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    await file.write(chunk, 0, chunk.length, i * 4 * chunk.length);
  }
  await file.truncate(VIRTUAL_MIB * 1024 * 1024);
  await file.close();
  const vmdk = join(dir, 'random.vmdk');
  await toStreamOptimized(raw, vmdk);
  return { name: 'random', vmdk, dataMib: RANDOM_MIB, description: 'random data, every fourth 4 MiB' };
}

async function byHand(args: string[], target: string): Promise<number> {
  await rm(target, { force: true });
  const t0 = performance.now();
  await execFileP('qemu-img', [...args, target], { timeout: 600_000 });
  const elapsed = performance.now() - t0;
  await rm(target, { force: true });
  return elapsed;
}

interface DiskFigures {
  disk: string;
  dataMib: number;
  vmlet: Stats;
  sameQemuImg: Stats;
  plainQemuImg: Stats;
  ratioToSame: number;
  ratioToPlain: number;
  /** Median of each run's ImportImage minus the same qemu-img by hand right after it: vmlet's own part. */
  pairedExtraMs: number;
}

/** Alternating runs of ImportImage, vmlet's qemu-img convert by hand, and the plain one, on one disk. */
async function measure(ctx: BenchContext, client: BenchDaemon['clients']['images'], disk: SourceDisk, target: string): Promise<DiskFigures> {
  const viaVmlet = async (): Promise<number> => {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const call = client.importImage({ sourcePath: disk.vmdk, name: 'bench' });
      call.on('data', (_m: ImportProgress__Output) => undefined);
      call.on('end', () => resolve());
      call.on('error', reject);
    });
    const elapsed = performance.now() - t0;
    await unary(client.deleteImage.bind(client), { name: 'bench' });
    return elapsed;
  };
  const sameArgs = ['convert', '-p', '-m', '16', '-f', 'vmdk', '-O', 'qcow2', disk.vmdk];
  const plainArgs = ['convert', '-f', 'vmdk', '-O', 'qcow2', disk.vmdk];
  // One warm-up of each side: the VMDK in the page cache for all.
  await viaVmlet();
  await byHand(sameArgs, target);
  const vmlet: number[] = [];
  const same: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < ctx.runs; i++) {
    ctx.cleanup.checkOpen();
    vmlet.push(await viaVmlet());
    same.push(await byHand(sameArgs, target));
    plain.push(await byHand(plainArgs, target));
    ctx.log(`image-import (${disk.name}): run ${i + 1}/${ctx.runs}: vmlet ${ms(vmlet.at(-1)!)}, same qemu-img ${ms(same.at(-1)!)}, plain qemu-img ${ms(plain.at(-1)!)}`);
  }
  const v = summarise(vmlet);
  const s = summarise(same);
  const p = summarise(plain);
  const pairedExtraMs = summarise(vmlet.map((t, i) => t - same[i]!)).median;
  return { disk: disk.description, dataMib: disk.dataMib, vmlet: v, sameQemuImg: s, plainQemuImg: p, ratioToSame: v.median / s.median, ratioToPlain: v.median / p.median, pairedExtraMs };
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const root = await benchDir('/var/tmp', 'vmlet-bench-import-');
  ctx.cleanup.defer('remove bench dir', () => rm(root, { recursive: true, force: true }));
  const src = join(root, 'import');
  const images = join(root, 'images');
  await mkdir(src, { recursive: true });
  await mkdir(images, { recursive: true });
  ctx.log(`image-import: making two ${VIRTUAL_MIB} MiB-virtual streamOptimized VMDKs (${FILES_DIR} in ext4; ${RANDOM_MIB} MiB of random data)`);
  const disks = [await makeFilesVmdk(src), await makeRandomVmdk(src)];
  const daemon = await BenchDaemon.start({
    repo: ctx.repo,
    root: join(root, 'daemon'),
    qemuBinary: await whichBinary('qemu-system-x86_64'),
    imageRoots: [images],
    imageRootsFirst: true,
    extraArgs: ['--import-root', src, '--accel', 'tcg'],
  });
  ctx.cleanup.defer('stop daemon', () => daemon.stop());
  const target = join(images, 'by-hand.qcow2');
  const figures: DiskFigures[] = [];
  for (const disk of disks) figures.push(await measure(ctx, daemon.clients.images, disk, target));
  return {
    result: { virtualMib: VIRTUAL_MIB, disks: figures },
    summary: figures.flatMap((f) => [
      `${f.disk} (${f.dataMib} MiB of data):`,
      `  ImportImage (convert -p -m 16, check, rename): median ${ms(f.vmlet.median)}`,
      `  qemu-img convert -p -m 16 by hand: median ${ms(f.sameQemuImg.median)} (ratio ${f.ratioToSame.toFixed(3)}, target ≤ 1.05; vmlet's part, run by run: median ${ms(f.pairedExtraMs)})`,
      `  qemu-img convert -f vmdk -O qcow2 by hand: median ${ms(f.plainQemuImg.median)} (ratio ${f.ratioToPlain.toFixed(3)})`,
    ]),
  };
}

export const imageImportBenchmark: Benchmark = {
  name: 'image-import',
  description: 'ImportImage of 1 GiB-virtual streamOptimized VMDKs (OS files; random data) vs qemu-img convert by hand',
  defaultRuns: 5,
  run,
};
