import { isDeepStrictEqual } from 'node:util';
import type { GuestInfo } from '../../model/vm.js';
import type { Machine } from '../ports.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';

/** status.guest follows what the guest agent of `machine` reports; watchers see each change as MODIFIED. */
export function followGuest(env: OpEnv, record: VmRecord, machine: Machine): void {
  machine.watchGuest((info: GuestInfo) => {
    if (record.machine !== machine) return;
    const before = record.status.guest;
    if (isDeepStrictEqual(before, info) || (!before && !info.agentConnected)) return;
    if (before?.agentConnected !== info.agentConnected) record.log.info({ agentConnected: info.agentConnected }, info.agentConnected ? 'guest agent connected' : 'guest agent lost');
    env.vms.update(record, { guest: info });
  });
}
