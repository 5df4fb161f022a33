/** Chooses and builds the host's cgroup driver: systemd scopes when systemd is PID 1, else cgroupfs v2 or v1. */
import { run } from '../host/run.js';
import type { CgroupDriver } from './driver.js';
import { hostCgroupFiles, type CgroupFiles } from './files.js';
import { readCgroupLayout, type CgroupLayout } from './layout.js';
import { DEFAULT_CGROUP_PARENT } from './names.js';
import { isSystemdBooted, sliceOfParent, SystemdCgroupDriver, type CommandRunner, type SystemdDriverOptions } from './systemd.js';
import { V1CgroupDriver } from './v1.js';
import { V2CgroupDriver } from './v2.js';

/** How to build the driver; every field has a default. */
export interface OpenCgroupOptions {
  /** `--cgroup-parent`; default vmlet.slice. */
  parent?: string;
  /** `auto`: systemd's D-Bus API when systemd is PID 1; `never`: cgroupfs even then. */
  systemd?: 'auto' | 'never';
  files?: CgroupFiles;
  runner?: CommandRunner;
  systemdOptions?: SystemdDriverOptions;
}

/** The cgroupfs driver for a layout: v2 on a unified-only host, else v1 (hybrid hosts keep their controllers in v1). */
export function cgroupfsDriver(files: CgroupFiles, layout: CgroupLayout, parent: string): CgroupDriver {
  if (layout.kind === 'v2') return new V2CgroupDriver(files, layout.unified!, parent, layout.self['']);
  // A hybrid host's cgroup2 mount carries no controller here, but systemd tracks units in it.
  const companions = { ...layout.companions, ...(layout.unified ? { '': layout.unified } : {}) };
  return new V1CgroupDriver(files, layout.v1, parent, layout.self, companions);
}

/** Reads the host's cgroup layout and returns the driver to use. */
export async function openCgroupDriver(options: OpenCgroupOptions = {}): Promise<CgroupDriver> {
  const files = options.files ?? hostCgroupFiles();
  const parent = options.parent ?? DEFAULT_CGROUP_PARENT;
  const layout = await readCgroupLayout(files);
  if (options.systemd !== 'never' && (await isSystemdBooted(files))) {
    const reader = cgroupfsDriver(files, layout, sliceOfParent(parent).path);
    return new SystemdCgroupDriver(reader, files, options.runner ?? run, parent, options.systemdOptions);
  }
  return cgroupfsDriver(files, layout, parent);
}
