import { VmletError, failedPrecondition, notFound } from '../model/errors.js';
import { hotplugPortId, netdevId, nicDeviceId, nicDeviceProps, tapNetdevProps } from '../qemu/argv.js';
import { deleteTap } from '../net/tap.js';
import { wireNic } from '../net/wiring.js';
import { validateSpec } from './validate.js';
import type { VmManager, VmRecord } from './manager.js';
import type { NicSpec, NicStatus, VmSpec } from '../model/vm.js';

/** How long a guest gets to release an unplugged NIC (PCIe hotplug waits ~5 s for the attention button). */
const DEVICE_DELETED_TIMEOUT_MS = 30_000;
const HOTPLUG_PHASES = new Set(['Running', 'Paused']);

/**
 * Adds a NIC. On a running (or paused) VM: TAP, `netdev_add`, `device_add` on a free root
 * port; on a stopped one, only the spec. Persisted in the spec either way, so the NIC is there
 * after a restart of the VM or the daemon. All or nothing.
 */
export async function attachNic(m: VmManager, record: VmRecord, raw: NicSpec): Promise<void> {
  const { spec, status } = record;
  if (spec.nics.some((n) => n.name === raw.name)) {
    throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already has a NIC named ${raw.name}`);
  }
  const newSpec = validateAttached(spec, raw);
  const nic = newSpec.nics[newSpec.nics.length - 1]!;
  const field = () => 'nic';
  m.checkMacsFree(spec.id, [nic], field);
  await m.checkBridges([nic], field);
  if (!HOTPLUG_PHASES.has(status.phase) || !record.instance) {
    if (status.phase !== 'Stopped' && status.phase !== 'Pending' && status.phase !== 'Failed') {
      throw failedPrecondition(`VM ${spec.id} is ${status.phase}; NICs can be attached when it is Running, Paused or Stopped`);
    }
    await m.replaceSpec(record, newSpec);
    m.update(record, { reason: `NIC ${nic.name} added; it is plugged in at the next start` });
    return;
  }
  const port = freePort(status.nics, status.pciPorts ?? 0);
  if (port === undefined) {
    throw new VmletError('RESOURCE_EXHAUSTED', `VM ${spec.id} has no free PCIe hotplug port; stop and start it to plug in more NICs`);
  }
  const qmp = record.instance.qmp;
  const wired = await wireNic(m.options.ip, nic, port, { vmId: spec.id, vcpus: spec.vcpus, taken: m.tapsInUse() });
  let netdevAdded = false;
  try {
    await qmp.execute('netdev_add', { type: 'tap', ...tapNetdevProps(wired, spec.vcpus, m.options.vhostNet ?? false) });
    netdevAdded = true;
    await qmp.execute('device_add', { driver: 'virtio-net-pci', ...nicDeviceProps(wired, spec.vcpus, hotplugPortId(port)) });
  } catch (err) {
    if (netdevAdded) await qmp.execute('netdev_del', { id: netdevId(nic.name) }).catch(() => undefined);
    await deleteTap(m.options.ip, wired.tap).catch(() => undefined);
    throw err;
  }
  await m.replaceSpec(record, newSpec);
  m.update(record, { nics: [...status.nics, wired], reason: `NIC ${nic.name} attached` });
  record.log.info({ nic: nic.name, tap: wired.tap, port }, 'NIC attached');
}

/**
 * Removes a NIC: `device_del`, then waits for the guest to release it (DEVICE_DELETED), then
 * `netdev_del` and the TAP. The spec loses the NIC only once it is really gone.
 */
export async function detachNic(m: VmManager, record: VmRecord, name: string): Promise<void> {
  const { spec, status } = record;
  if (!spec.nics.some((n) => n.name === name)) throw notFound(`NIC ${name} of VM ${spec.id}`);
  const newSpec = { ...spec, nics: spec.nics.filter((n) => n.name !== name) };
  const plugged = status.nics.find((n) => n.name === name);
  if (!HOTPLUG_PHASES.has(status.phase) || !record.instance || !plugged) {
    if (status.phase !== 'Stopped' && status.phase !== 'Pending' && status.phase !== 'Failed') {
      throw failedPrecondition(`VM ${spec.id} is ${status.phase}; NICs can be detached when it is Running, Paused or Stopped`);
    }
    await m.replaceSpec(record, newSpec);
    m.update(record, { reason: `NIC ${name} removed` });
    return;
  }
  const qmp = record.instance.qmp;
  const id = nicDeviceId(name);
  const deleted = qmp.waitForEvent('DEVICE_DELETED', { timeoutMs: DEVICE_DELETED_TIMEOUT_MS, predicate: (e) => e.data.device === id });
  deleted.catch(() => undefined);
  await qmp.execute('device_del', { id });
  try {
    await deleted;
  } catch (err) {
    throw new VmletError('DEADLINE_EXCEEDED', `the guest did not release NIC ${name} within ${DEVICE_DELETED_TIMEOUT_MS / 1000} s; it stays attached (the unplug request is still pending in the guest)`, { cause: err });
  }
  await qmp.execute('netdev_del', { id: netdevId(name) });
  await deleteTap(m.options.ip, plugged.tap);
  await m.replaceSpec(record, newSpec);
  m.update(record, { nics: status.nics.filter((n) => n.name !== name), reason: `NIC ${name} detached` });
  record.log.info({ nic: name }, 'NIC detached');
}

/** The spec with the NIC added, validated; errors name `nic.<field>` as the request does. */
function validateAttached(spec: VmSpec, nic: NicSpec): VmSpec {
  const prefix = `spec.nics[${spec.nics.length}]`;
  try {
    return validateSpec({ ...spec, nics: [...spec.nics, nic] });
  } catch (err) {
    if (err instanceof VmletError && err.message.startsWith(prefix)) throw new VmletError(err.code, 'nic' + err.message.slice(prefix.length));
    throw err;
  }
}

function freePort(nics: readonly NicStatus[], total: number): number | undefined {
  const used = new Set(nics.map((n) => n.port));
  for (let p = 0; p < total; p++) if (!used.has(p)) return p;
  return undefined;
}
