import { mkdirSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../model/errors.js';
import type { VmSpec, VmStatus } from '../model/vm.js';
import { json, replaceFileSync, writeFilesAtomic, writeJsonAtomic } from './atomic-file.js';
import { vmPaths } from './paths.js';

/** A VM's spec and status as found on disk; the status is missing when no copy could be read. */
export interface StoredVm {
  spec: VmSpec;
  status?: VmStatus;
}

/** Durable VM state: one directory per VM under <state-dir>/vms, every write atomic. */
export class StateStore {
  constructor(
    readonly stateDir: string,
    readonly runDir: string,
  ) {}

  paths(id: string) {
    return vmPaths(this.stateDir, this.runDir, id);
  }

  /** The vms/ dirs may be passed through (not listed) by every VM's QEMU user, to reach its own dir. */
  async init(): Promise<void> {
    for (const dir of [join(this.stateDir, 'vms'), join(this.runDir, 'vms')]) {
      await mkdir(dir, { recursive: true, mode: 0o711 });
      await chmod(dir, 0o711);
    }
  }

  /**
   * Creates the VM's directory and writes its first status and its spec, renamed into place in
   * that order: the spec file is the VM's existence. Synchronous up to the fsyncs, like the
   * writes themselves (see atomic-file.ts).
   */
  async create(spec: VmSpec, status: VmStatus): Promise<void> {
    const p = this.paths(spec.id);
    mkdirSync(p.disksDir, { recursive: true, mode: 0o750 });
    await writeFilesAtomic([
      { path: p.statusFile, data: json(status) },
      { path: p.specFile, data: json(spec) },
    ]);
  }

  saveSpec(spec: VmSpec): Promise<void> {
    return writeJsonAtomic(this.paths(spec.id).specFile, spec);
  }

  /** The durable copy of the status: rewritten at phase changes; no directory fsync (see AtomicWriteOptions.syncDir). */
  saveStatus(id: string, status: VmStatus): Promise<void> {
    return writeJsonAtomic(this.paths(id).statusFile, status, { syncDir: false });
  }

  /** The durable copy written as a commit point: the file and the directory's rename fsynced before it resolves. */
  commitStatus(id: string, status: VmStatus): Promise<void> {
    return writeJsonAtomic(this.paths(id).statusFile, status);
  }

  /**
   * The live copy of the status, in the VM's run dir: rewritten after every change with
   * synchronous calls (the run dir is a tmpfs, /run, so nothing here waits for a disk), renamed into
   * place but never fsynced. Like libvirt's status XML under /run/libvirt/qemu, it lives exactly
   * as long as the QEMU it describes can: a node reboot takes both. What must outlive a reboot is
   * in the durable copy; loadAll takes whichever copy is newer.
   */
  saveLiveStatus(id: string, status: VmStatus): void {
    replaceFileSync(this.paths(id).runtimeStatusFile, json(status));
  }

  /**
   * Every VM on disk. The spec file is written last on create and removed first on delete, so a
   * directory without one is a create or delete that never finished: returned as `unfinished`.
   * A spec file that is there but cannot be read or parsed (or names another id) is not a VM
   * vmlet can run, nor one it may throw away: returned as `unreadable`, with the status if one
   * copy of it reads. The status is the newer of the durable and the live copy (by generation;
   * the live one wins a tie). A VM whose status cannot be read gets `status: undefined` (the
   * caller decides what it is).
   */
  async loadAll(): Promise<{ vms: StoredVm[]; unfinished: string[]; unreadable: UnreadableVm[] }> {
    const vms: StoredVm[] = [];
    const unfinished: string[] = [];
    const unreadable: UnreadableVm[] = [];
    // Every VM's files at once: one VM after another, a start waited for hundreds of thread pool
    // round trips in turn.
    const ids = await readdir(join(this.stateDir, 'vms'));
    const read = await Promise.all(
      ids.map(async (id) => {
        const p = this.paths(id);
        return { id, files: await Promise.all([readSpec(p.specFile, id), readStatus(p.statusFile), readStatus(p.runtimeStatusFile)]) };
      }),
    );
    for (const { id, files } of read) {
      const [spec, durable, runtime] = files;
      const status = newer(durable, runtime);
      if (spec === undefined) unfinished.push(id);
      else if (typeof spec === 'string') unreadable.push({ id, reason: spec, ...(status ? { status } : {}) });
      else vms.push({ spec, ...(status ? { status } : {}) });
    }
    return { vms, unfinished, unreadable };
  }

  /**
   * Moves the VM's directory, overlays and all, to <state-dir>/quarantine/<id>-<time>/, for an
   * operator to look at; returns where. Nothing in it is deleted, and the VM is gone from vms/.
   */
  async quarantine(id: string, at: Date): Promise<string> {
    const dir = join(this.stateDir, 'quarantine');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    let target = join(dir, `${id}-${stamp}`);
    for (let n = 1; await exists(target); n++) target = join(dir, `${id}-${stamp}.${n}`);
    await rename(this.paths(id).stateDir, target);
    return target;
  }

  async removeRuntime(id: string): Promise<void> {
    await rm(this.paths(id).runDir, { recursive: true, force: true });
  }

  /** Removes every file of the VM, spec first: a crash mid-way leaves an `unfinished` directory, never a half VM. */
  async remove(id: string): Promise<void> {
    const p = this.paths(id);
    await rm(p.specFile, { force: true });
    await this.removeRuntime(id);
    await rm(p.stateDir, { recursive: true, force: true });
  }
}

function newer(durable: VmStatus | undefined, runtime: VmStatus | undefined): VmStatus | undefined {
  if (!durable || !runtime) return runtime ?? durable;
  return runtime.generation >= durable.generation ? runtime : durable;
}

/** A VM directory whose spec file is there but is not a VM's spec. */
export interface UnreadableVm {
  id: string;
  reason: string;
  status?: VmStatus;
}

/** The spec; undefined when there is no spec file; a string saying why when it cannot be used. */
async function readSpec(file: string, id: string): Promise<VmSpec | string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `spec.json cannot be read: ${errorMessage(err)}`;
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    return `spec.json is not valid JSON (${text.length} bytes): ${errorMessage(err)}`;
  }
  if (typeof spec !== 'object' || spec === null || (spec as VmSpec).id !== id) return `spec.json does not describe VM ${id}`;
  return spec as VmSpec;
}

/**
 * A status copy, or undefined when it cannot be read, parsed, or lacks what reconciling reads
 * (a phase, a generation, lists of NICs and disks): JSON of the wrong shape counts as lost.
 */
async function readStatus(file: string): Promise<VmStatus | undefined> {
  const s = await readJson<Partial<VmStatus> | null>(file);
  if (!s || typeof s !== 'object' || typeof s.phase !== 'string' || typeof s.generation !== 'number' || !Array.isArray(s.nics) || !Array.isArray(s.disks)) return undefined;
  return s as VmStatus;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
