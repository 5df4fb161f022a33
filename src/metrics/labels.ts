/** Label sets of per-VM series, as KubeVirt's virt-handler makes them. Pure. */
import type { Labels } from './exposition.js';

const VMI_LABEL_PREFIX = 'kubernetes_vmi_label_';

/**
 * A VM label key → the suffix of a Prometheus label name: every character outside
 * `[a-zA-Z0-9_]` becomes `_` (`app.kubernetes.io/name` → `app_kubernetes_io_name`). The prefix
 * `kubernetes_vmi_label_` makes a leading digit legal.
 */
export function sanitizeLabelKey(key: string): string {
  return key.replace(/[^a-zA-Z0-9_]/g, '_');
}

/**
 * VM labels as `kubernetes_vmi_label_<key>` labels. Two keys that sanitise to the same name
 * (`a.b` and `a/b`) would make an invalid series: the first in sorted key order wins.
 */
export function vmiLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(labels).sort()) {
    const name = VMI_LABEL_PREFIX + sanitizeLabelKey(key);
    if (!(name in out)) out[name] = labels[key]!;
  }
  return out;
}

/** The VM label that says which Kubernetes namespace a VM's series belong to. */
export const NAMESPACE_LABEL = 'vmlet.io/namespace';
/** The namespace of VMs without that label when the daemon is not told otherwise (`--metrics-namespace`). */
export const DEFAULT_METRICS_NAMESPACE = 'default';

/** A VM's `namespace` label: its `vmlet.io/namespace` label, else the daemon's default. */
export function vmNamespace(labels: Readonly<Record<string, string>>, fallback: string): string {
  return labels[NAMESPACE_LABEL] || fallback;
}

/**
 * The labels every per-VM series carries: `name` (VM id), `namespace`, `node`, then the VM's
 * labels (after them, so that a VM label cannot stand in for one of these).
 */
export function vmLabelSet(id: string, node: string, labels: Readonly<Record<string, string>>, namespace = vmNamespace(labels, DEFAULT_METRICS_NAMESPACE)): Labels {
  return { name: id, namespace, node, ...vmiLabels(labels) };
}
