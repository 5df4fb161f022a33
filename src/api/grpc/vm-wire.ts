import type { Vm, VmSpec, VmStatus } from '../../model/vm.js';
import { vmToProto } from './convert.js';
import { EncodedMessage, repeatedMessage } from './encoded.js';
import { messageType, vmletV1 } from './proto.js';

/**
 * Vm messages in wire form, kept per VM until its spec or status changes. A VM's spec and status
 * are frozen and replaced on every change (vm/registry.ts), so the status object is the key and
 * a ListVms or GetVm of an unchanged VM encodes nothing again: encoding is most of the work and
 * nearly all of the garbage of a list, which a controller may ask for often on a busy node.
 */
export class VmWire {
  private readonly cache = new WeakMap<VmStatus, { spec: VmSpec; bytes: Buffer }>();
  private readonly encode = vmletV1.VmService.service.GetVm.responseSerialize;
  private readonly listField: number = messageType('vmlet.v1.ListVmsResponse').fields['vms']!.id;

  /** `node`: VmStatus.node of every VM this agent reports. */
  constructor(private readonly node: string) {}

  /** A Vm message. */
  vm(vm: Vm): EncodedMessage {
    return new EncodedMessage(this.bytes(vm));
  }

  /** A ListVmsResponse of these VMs. */
  list(vms: readonly Vm[]): EncodedMessage {
    return repeatedMessage(this.listField, vms.map((vm) => this.bytes(vm)));
  }

  private bytes(vm: Vm): Buffer {
    const kept = this.cache.get(vm.status);
    if (kept?.spec === vm.spec) return kept.bytes;
    const bytes = this.encode(vmToProto(vm, this.node));
    this.cache.set(vm.status, { spec: vm.spec, bytes });
    return bytes;
  }
}
