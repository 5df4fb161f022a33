import { performance } from 'node:perf_hooks';
import { specToProto } from '../src/api/grpc/convert.js';
import { unary, type VmletClients } from '../src/api/grpc/client.js';
import { isAlive, waitForExit } from '../src/host/process.js';
import type { CreateVmRequest } from '../src/api/grpc/generated/vmlet/v1/CreateVmRequest.js';
import type { GetNodeInfoRequest } from '../src/api/grpc/generated/vmlet/v1/GetNodeInfoRequest.js';
import type { NodeInfo__Output } from '../src/api/grpc/generated/vmlet/v1/NodeInfo.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { VmSpec } from '../src/model/vm.js';

const CALL_TIMEOUT_MS = 60_000;

/** CreateVm{spec, start: true}, timed from the client until the reply; it must say PHASE_RUNNING. */
export async function createRunning(clients: VmletClients, spec: VmSpec): Promise<{ ms: number; pid: number }> {
  const vms = clients.vms;
  const t0 = performance.now();
  const vm = await unary<CreateVmRequest, Vm__Output>(vms.createVm.bind(vms), { spec: specToProto(spec), start: true }, { deadline: Date.now() + CALL_TIMEOUT_MS });
  const ms = performance.now() - t0;
  const phase = vm.status?.phase;
  if (phase !== 'PHASE_RUNNING') throw new Error(`CreateVm ${spec.id} returned ${String(phase)}, not PHASE_RUNNING: ${vm.status?.reason ?? ''}`);
  const pid = Number(vm.status?.pid ?? 0);
  if (!pid) throw new Error(`CreateVm ${spec.id} returned no QEMU pid`);
  return { ms, pid };
}

/** DeleteVm, timed from the client; then makes sure the QEMU is gone (not timed). */
export async function deleteGone(clients: VmletClients, id: string, pid: number, force: boolean): Promise<number> {
  const vms = clients.vms;
  const t0 = performance.now();
  await unary(vms.deleteVm.bind(vms), { id, force }, { deadline: Date.now() + CALL_TIMEOUT_MS });
  const ms = performance.now() - t0;
  if ((await isAlive(pid)) && !(await waitForExit(pid, 10_000))) throw new Error(`QEMU ${pid} of ${id} still alive after DeleteVm`);
  return ms;
}

/** GetNodeInfo round trip from the client: the floor any vmlet call pays for gRPC over the unix socket. */
export async function nodeInfoRoundTrip(clients: VmletClients): Promise<number> {
  const vms = clients.vms;
  const t0 = performance.now();
  await unary<GetNodeInfoRequest, NodeInfo__Output>(vms.getNodeInfo.bind(vms), {}, { deadline: Date.now() + CALL_TIMEOUT_MS });
  return performance.now() - t0;
}
