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

/** The labels every per-VM series carries: `name` (VM id), `node`, then the VM's labels. */
export function vmLabelSet(id: string, node: string, labels: Readonly<Record<string, string>>): Labels {
  return { name: id, node, ...vmiLabels(labels) };
}
