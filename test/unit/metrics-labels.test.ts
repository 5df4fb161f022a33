import { describe, expect, it } from 'vitest';
import { sanitizeLabelKey, vmiLabels, vmLabelSet, vmNamespace } from '../../src/metrics/labels.js';
import { renderFamilies } from '../../src/metrics/exposition.js';
import { promtoolCheckMetrics } from '../support/prometheus.js';

describe('sanitizeLabelKey', () => {
  it.each([
    ['tier', 'tier'],
    ['app.kubernetes.io/name', 'app_kubernetes_io_name'],
    ['kubevirt.io/domain', 'kubevirt_io_domain'],
    ['9lives', '9lives'],
    ['a-b', 'a_b'],
    ['UPPER_case', 'UPPER_case'],
    ['ümlaut', '_mlaut'],
    ['', ''],
  ])('%j → %j', (key, out) => {
    expect(sanitizeLabelKey(key)).toBe(out);
  });
});

describe('vmiLabels / vmLabelSet', () => {
  it('prefixes every key with kubernetes_vmi_label_ and keeps values as they are', () => {
    expect(vmiLabels({ 'app.kubernetes.io/name': 'web "1"', tier: 'x\ny' })).toEqual({
      kubernetes_vmi_label_app_kubernetes_io_name: 'web "1"',
      kubernetes_vmi_label_tier: 'x\ny',
    });
  });

  it('keys that sanitise alike: the first in sorted order wins, whatever the insertion order', () => {
    expect(vmiLabels({ 'a/b': '2', 'a.b': '1' })).toEqual({ kubernetes_vmi_label_a_b: '1' });
    expect(vmiLabels({ 'a.b': '1', 'a/b': '2' })).toEqual({ kubernetes_vmi_label_a_b: '1' });
  });

  it('name, namespace and node come first; VM labels cannot override them', () => {
    expect(vmLabelSet('web-1', 'node-a', { name: 'other', node: 'x' })).toEqual({
      name: 'web-1',
      namespace: 'default',
      node: 'node-a',
      kubernetes_vmi_label_name: 'other',
      kubernetes_vmi_label_node: 'x',
    });
  });

  it('namespace: the VM label vmlet.io/namespace, else the daemon default', () => {
    expect(vmNamespace({ 'vmlet.io/namespace': 'team-a' }, 'default')).toBe('team-a');
    expect(vmNamespace({}, 'vms')).toBe('vms');
    expect(vmNamespace({ 'vmlet.io/namespace': '' }, 'vms')).toBe('vms');
    expect(vmLabelSet('web-1', 'n', { 'vmlet.io/namespace': 'team-a' })).toMatchObject({ namespace: 'team-a', kubernetes_vmi_label_vmlet_io_namespace: 'team-a' });
    expect(vmLabelSet('web-1', 'n', {}, 'vms')).toMatchObject({ namespace: 'vms' });
  });

  it('every label set made from awkward keys and values passes promtool', async () => {
    const labels = { 'app.kubernetes.io/name': 'a"b\\c', '0start': 'new\nline', 'x-y/z': '', 'ü': 'v' };
    const text = renderFamilies([{ name: 'kubevirt_vmi_info', help: 'test', type: 'gauge', samples: [{ labels: vmLabelSet('vm-1', 'n', labels), value: 1 }] }]);
    const result = await promtoolCheckMetrics(text);
    expect(result).toEqual({ code: 0, problems: '' });
  });
});
