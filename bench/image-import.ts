/**
 * image-import: ImportImage of a 1 GiB-virtual streamOptimized VMDK through a daemon (from the
 * call to the last message: conversion, qemu-img check, rename) against the same qemu-img convert
 * run by hand on the same file, and against the plain `qemu-img convert -f vmdk -O qcow2` a person
 * would type. Runs alternate so the page cache treats each side alike.
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
import { ms, summarise } from './stats.js';
import { benchDir } from './util.js';

const execFileP = promisify(execFile);
const VIRTUAL_MIB = 1024;
/** Random data in the disk: what streamOptimized cannot compress away, so qemu-img has real work. */
const DATA_MIB = 256;

async function makeVmdk(dir: string): Promise<string> {
  const raw = join(dir, 'disk.raw');
  const file = await open(raw, 'w');
  const chunk = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < DATA_MIB / 4; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    // Spread over the disk: every fourth 4 MiB holds data.
    await file.write(chunk, 0, chunk.length, i * 4 * chunk.length);
  }
  await file.truncate(VIRTUAL_MIB * 1024 * 1024);
  await file.close();
  const vmdk = join(dir, 'disk.vmdk');
  await execFileP('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk], { timeout: 600_000 });
  await rm(raw);
  return vmdk;
}

async function byHand(args: string[], target: string): Promise<number> {
  await rm(target, { force: true });
  const t0 = performance.now();
  await execFileP('qemu-img', [...args, target], { timeout: 600_000 });
  const elapsed = performance.now() - t0;
  await rm(target, { force: true });
  return elapsed;
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const root = await benchDir('/var/tmp', 'vmlet-bench-import-');
  ctx.cleanup.defer('remove bench dir', () => rm(root, { recursive: true, force: true }));
  const src = join(root, 'import');
  const images = join(root, 'images');
  await mkdir(src, { recursive: true });
  await mkdir(images, { recursive: true });
  ctx.log(`image-import: making a ${VIRTUAL_MIB} MiB-virtual streamOptimized VMDK with ${DATA_MIB} MiB of data`);
  const vmdk = await makeVmdk(src);
  const daemon = await BenchDaemon.start({
    repo: ctx.repo,
    root: join(root, 'daemon'),
    qemuBinary: await whichBinary('qemu-system-x86_64'),
    imageRoots: [images],
    imageRootsFirst: true,
    extraArgs: ['--import-root', src, '--accel', 'tcg'],
  });
  ctx.cleanup.defer('stop daemon', () => daemon.stop());
  const client = daemon.clients.images;
  const viaVmlet = async (): Promise<number> => {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const call = client.importImage({ sourcePath: vmdk, name: 'bench' });
      call.on('data', (_m: ImportProgress__Output) => undefined);
      call.on('end', () => resolve());
      call.on('error', reject);
    });
    const elapsed = performance.now() - t0;
    await unary(client.deleteImage.bind(client), { name: 'bench' });
    return elapsed;
  };
  const sameArgs = ['convert', '-p', '-m', '16', '-f', 'vmdk', '-O', 'qcow2', vmdk];
  const plainArgs = ['convert', '-f', 'vmdk', '-O', 'qcow2', vmdk];
  const target = join(images, 'by-hand.qcow2');
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
    ctx.log(`image-import: run ${i + 1}/${ctx.runs}: vmlet ${ms(vmlet.at(-1)!)}, same qemu-img ${ms(same.at(-1)!)}, plain qemu-img ${ms(plain.at(-1)!)}`);
  }
  const v = summarise(vmlet);
  const s = summarise(same);
  const p = summarise(plain);
  return {
    result: { virtualMib: VIRTUAL_MIB, dataMib: DATA_MIB, vmlet: v, sameQemuImg: s, plainQemuImg: p, ratioToSame: v.median / s.median, ratioToPlain: v.median / p.median },
    summary: [
      `ImportImage (convert -p -m 16, check, rename): median ${ms(v.median)}`,
      `qemu-img convert -p -m 16 by hand: median ${ms(s.median)} (ratio ${(v.median / s.median).toFixed(3)}, target ≤ 1.05)`,
      `qemu-img convert -f vmdk -O qcow2 by hand: median ${ms(p.median)} (ratio ${(v.median / p.median).toFixed(3)})`,
    ],
  };
}

export const imageImportBenchmark: Benchmark = {
  name: 'image-import',
  description: 'ImportImage of a 1 GiB-virtual streamOptimized VMDK vs qemu-img convert by hand',
  defaultRuns: 5,
  run,
};
