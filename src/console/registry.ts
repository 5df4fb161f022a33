import type { VmManager } from '../vm/manager.js';
import { ConsoleHub } from './hub.js';

const hubs = new WeakMap<VmManager, ConsoleHub>();

/**
 * The console hub of a manager: one per manager, created and started on first use (by the gRPC
 * handlers or the daemon, whichever comes first), so every transport shares the same sessions.
 */
export function consoleHubFor(manager: VmManager): ConsoleHub {
  let hub = hubs.get(manager);
  if (!hub) {
    hub = new ConsoleHub(manager, manager.log.child({ component: 'console' })).start();
    hubs.set(manager, hub);
  }
  return hub;
}
