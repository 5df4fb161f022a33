import type { ServiceError } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { unary, type VmletClients } from '../../src/api/grpc/client.js';
import type { Vm__Output } from '../../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { VmEvent__Output } from '../../src/api/grpc/generated/vmlet/v1/VmEvent.js';
import type { VmSpec } from '../../src/api/grpc/generated/vmlet/v1/VmSpec.js';
import type { NodeInfo__Output } from '../../src/api/grpc/generated/vmlet/v1/NodeInfo.js';
import type { NicModel } from '../../src/api/grpc/generated/vmlet/v1/NicModel.js';

/** Promise-returning VmService calls for tests. */
export function rpc(c: VmletClients) {
  const v = c.vms;
  return {
    create: (spec: VmSpec, start = false): Promise<Vm__Output> => unary(v.createVm.bind(v), { spec, start }),
    get: (id: string): Promise<Vm__Output> => unary(v.getVm.bind(v), { id }),
    list: async (labelSelector = ''): Promise<Vm__Output[]> => (await unary<{ labelSelector: string }, { vms: Vm__Output[] }>(v.listVms.bind(v), { labelSelector })).vms,
    start: (id: string): Promise<Vm__Output> => unary(v.startVm.bind(v), { id }),
    stop: (id: string, gracePeriodSeconds = 0, force = false): Promise<Vm__Output> => unary(v.stopVm.bind(v), { id, gracePeriodSeconds, force }),
    pause: (id: string): Promise<Vm__Output> => unary(v.pauseVm.bind(v), { id }),
    resume: (id: string): Promise<Vm__Output> => unary(v.resumeVm.bind(v), { id }),
    reboot: (id: string): Promise<Vm__Output> => unary(v.rebootVm.bind(v), { id }),
    delete: (id: string, force = false): Promise<unknown> => unary(v.deleteVm.bind(v), { id, force }),
    node: (): Promise<NodeInfo__Output> => unary(v.getNodeInfo.bind(v), {}),
    attachNic: (id: string, nic: { name: string; bridge: string; mac: string; model?: NicModel }): Promise<Vm__Output> =>
      unary<{ id: string; nic: typeof nic }, Vm__Output>(v.attachNic.bind(v), { id, nic }),
    detachNic: (id: string, nicName: string): Promise<Vm__Output> => unary<{ id: string; nicName: string }, Vm__Output>(v.detachNic.bind(v), { id, nicName }),
  };
}

/** Collects WatchVms events; `until` resolves when a predicate matches one. */
export function watchVms(c: VmletClients, request: { id?: string; labelSelector?: string } = {}) {
  const events: VmEvent__Output[] = [];
  const waiters: { pred: (e: VmEvent__Output) => boolean; resolve: (e: VmEvent__Output) => void }[] = [];
  const stream = c.vms.watchVms({ id: request.id ?? '', labelSelector: request.labelSelector ?? '' });
  stream.on('data', (e: VmEvent__Output) => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  stream.on('error', () => undefined);
  return {
    events,
    until(pred: (e: VmEvent__Output) => boolean, timeoutMs = 60_000): Promise<VmEvent__Output> {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`watch: no matching event within ${timeoutMs} ms; got ${events.map((e) => `${e.type}:${e.vm?.spec?.id}:${e.vm?.status?.phase}`).join(', ')}`)), timeoutMs);
        waiters.push({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
    close: () => stream.cancel(),
  };
}

/** Settles when a server stream ends: resolves with its messages, rejects with its error. */
export function streamToEnd<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  const messages: T[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (m: T) => messages.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(messages));
  });
}

/** Runs `fn`, expects a gRPC error with `code`; returns its details. */
export async function expectCode(fn: () => Promise<unknown>, code: status): Promise<string> {
  try {
    await fn();
  } catch (err) {
    const e = err as ServiceError;
    if (e.code !== code) throw new Error(`expected ${status[code]}, got ${status[e.code] ?? e.code}: ${e.details}`, { cause: err });
    return e.details;
  }
  throw new Error(`expected ${status[code]}, but the call succeeded`);
}
