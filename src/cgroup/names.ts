/** Names of vmlet's cgroups: the parent (`--cgroup-parent`) and one `vmlet-<id>.scope` per VM. */
import { invalidArgument } from '../model/errors.js';

/** The default parent of the VMs' cgroups, at the top of each hierarchy like systemd's slices. */
export const DEFAULT_CGROUP_PARENT = 'vmlet.slice';

const VM_ID_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SCOPE_RE = /^vmlet-([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\.scope$/;
const COMPONENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$/;

/** The cgroup (and systemd scope unit) name of a VM. */
export function scopeName(vmId: string): string {
  if (!VM_ID_RE.test(vmId)) throw invalidArgument('id', `"${vmId}" cannot name a cgroup: a DNS-1123 label is needed`);
  return `vmlet-${vmId}.scope`;
}

/** The VM id of a scope name, or undefined for any other name. */
export function vmIdOfScope(name: string): string | undefined {
  return SCOPE_RE.exec(name)?.[1];
}

/** Normalizes a parent such as `vmlet.slice` or `/machine.slice/vmlet.slice` to a relative path; rejects `..` and odd names. */
export function normalizeParent(parent: string): string {
  const parts = parent.split('/').filter((p) => p !== '');
  if (parts.length === 0 || !parts.every((p) => COMPONENT_RE.test(p) && p !== '..' && p !== '.')) {
    throw invalidArgument('cgroup-parent', `"${parent}" is not a cgroup path below the hierarchy's root (e.g. vmlet.slice)`);
  }
  return parts.join('/');
}

/** The relative path of a VM's cgroup under `parent`. */
export function scopePath(parent: string, vmId: string): string {
  return `${parent}/${scopeName(vmId)}`;
}

/** The VM id of a path made by scopePath under this parent; throws for any other path (nothing else is ever removed). */
export function vmIdOfScopePath(parent: string, path: string): string {
  const prefix = `${parent}/`;
  const id = path.startsWith(prefix) ? vmIdOfScope(path.slice(prefix.length)) : undefined;
  if (id === undefined) throw invalidArgument('cgroup', `"${path}" is not a VM cgroup of vmlet under ${parent}`);
  return id;
}
