/**
 * Benchmark "nic": the time to wire and unwire one NIC, through vmlet's own code path
 * (src/net/wiring.ts: wireNic = bridge lookup, free TAP name, `ip tuntap add … vnet_hdr`,
 * `ip link set … master br0 up`; unwireNics = `ip link del`), inside a network namespace of the
 * benchmark's own with a bridge br0, so the host's interfaces are never touched. Also the floor
 * of one `ip` call, and, end to end, AttachNic + DetachNic through a daemon running a booted
 * guest (DetachNic also waits for the guest to release the device, so it is reported apart).
 */
import { randomBytes } from 'node:crypto';
import { specToProto } from '../src/api/grpc/convert.js';
import { execFile } from 'node:child_process';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { unary } from '../src/api/grpc/client.js';
import type { AttachNicRequest } from '../src/api/grpc/generated/vmlet/v1/AttachNicRequest.js';
import type { CreateVmRequest } from '../src/api/grpc/generated/vmlet/v1/CreateVmRequest.js';
import type { DetachNicRequest } from '../src/api/grpc/generated/vmlet/v1/DetachNicRequest.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import { IpTool } from '../src/net/ip.js';
import { createTap, deleteTap, getBridge, linkExists, listTaps, type BridgeInfo } from '../src/net/tap.js';
import { tapName } from '../src/net/names.js';
import { unwireNics, wireNic } from '../src/net/wiring.js';
import { vmPaths } from '../src/state/paths.js';
import type { NicStatus } from '../src/model/vm.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { BenchDaemon } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import { killStrayQemus, whichBinary } from './procs.js';
import { ms, summarise } from './stats.js';
import { benchDir } from './util.js';

const execFileP = promisify(execFile);
const READY_LINE = 'VMLET-GUEST-READY';
const BOOT_TIMEOUT_MS = 180_000;
/** After AttachNic, before DetachNic (not timed): the guest enumerates the new device first, as a real one would have. */
const ATTACH_SETTLE_MS = 1000;
const CALL_TIMEOUT_MS = 60_000;

const ipHost = (args: string[]): Promise<unknown> => execFileP('ip', args, { timeout: 15_000 });

/**
 * Where the time goes: the steps of wireNic/unwireNics (src/net/tap.ts), timed one by one in
 * separate runs (not the measured path itself), plus one bare `ip` read as the spawn floor.
 */
async function stepBreakdown(ip: IpTool, runs: number, live: Map<string, NicStatus>): Promise<Record<string, number[]>> {
  const steps: Record<string, number[]> = { getBridge: [], linkExistsTapName: [], createTap: [], deleteTap: [], ipReadFloor: [] };
  const time = async (name: string, record: boolean, fn: () => Promise<unknown>): Promise<void> => {
    const t0 = performance.now();
    await fn();
    if (record) steps[name]!.push(performance.now() - t0);
  };
  for (let i = 0; i <= runs; i++) {
    const rec = i > 0;
    const tap = tapName(`bench-nic-steps-${i}`, 'eth0');
    let bridge: BridgeInfo | undefined;
    await time('getBridge', rec, async () => (bridge = await getBridge(ip, 'br0')));
    await time('linkExistsTapName', rec, () => linkExists(ip, tap));
    live.set(tap, { name: 'eth0', tap, bridge: 'br0', mac: '' });
    await time('createTap', rec, () => createTap(ip, tap, bridge!, false));
    await time('deleteTap', rec, () => deleteTap(ip, tap));
    live.delete(tap);
    await time('ipReadFloor', rec, () => ip.exec(['link', 'show', 'dev', 'br0']));
  }
  return steps;
}

async function waitForText(file: string, text: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await readFile(file, 'utf8').catch(() => '')).includes(text)) return performance.now() - t0;
    if (Date.now() > deadline) throw new Error(`${text} not in ${file} within ${timeoutMs} ms`);
    await delay(200);
  }
}

interface E2eSamples {
  attachMs: number[];
  detachMs: number[];
  guestBootMs: number;
}

async function endToEnd(ctx: BenchContext, netns: string, root: string, qemuBinary: string): Promise<{ samples: E2eSamples; daemonLog: string }> {
  const daemon = await BenchDaemon.start({ repo: ctx.repo, root: join(root, 'vmlet'), qemuBinary, extraArgs: ['--netns', netns] });
  const daemonLog = join(ctx.resultsDir, 'nic-daemon.log');
  ctx.cleanup.defer('keep the daemon log', () => copyFile(daemon.logFile, daemonLog));
  ctx.cleanup.defer('stop the daemon', () => daemon.stop());
  ctx.cleanup.defer('delete VMs', () => daemon.deleteAllVms());
  const vms = daemon.clients.vms;
  const id = 'bench-nic';
  ctx.cleanup.checkOpen();
  const vm = await unary<CreateVmRequest, Vm__Output>(vms.createVm.bind(vms), { spec: specToProto(demoGuestSpec(ctx.repo, id)), start: true }, { deadline: Date.now() + CALL_TIMEOUT_MS });
  if (vm.status?.phase !== 'PHASE_RUNNING') throw new Error(`${id}: ${vm.status?.phase} ${vm.status?.reason}`);
  const guestBootMs = await waitForText(vmPaths(daemon.stateDir, daemon.runDir, id).consoleLog, READY_LINE, BOOT_TIMEOUT_MS);
  ctx.log(`nic: guest booted; AttachNic + DetachNic ${ctx.runs} times + 1 warm-up`);
  const samples: E2eSamples = { attachMs: [], detachMs: [], guestBootMs };
  for (let i = 0; i <= ctx.runs; i++) {
    ctx.cleanup.checkOpen();
    const t0 = performance.now();
    const attached = await unary<AttachNicRequest, Vm__Output>(vms.attachNic.bind(vms), { id, nic: { name: 'eth1', bridge: 'br0', mac: '' } }, { deadline: Date.now() + CALL_TIMEOUT_MS });
    const t1 = performance.now();
    if (!attached.status?.nics.some((n) => n.name === 'eth1' && n.tap)) throw new Error('AttachNic returned no TAP for eth1');
    await delay(ATTACH_SETTLE_MS);
    const t2 = performance.now();
    const detached = await unary<DetachNicRequest, Vm__Output>(vms.detachNic.bind(vms), { id, nicName: 'eth1' }, { deadline: Date.now() + CALL_TIMEOUT_MS });
    const t3 = performance.now();
    if (detached.status?.nics.some((n) => n.name === 'eth1')) throw new Error('DetachNic left eth1 in the status');
    if (i > 0) {
      samples.attachMs.push(t1 - t0);
      samples.detachMs.push(t3 - t2);
    }
    ctx.log(`AttachNic/DetachNic ${i === 0 ? 'warm-up' : `${i}/${ctx.runs}`}: ${ms(t1 - t0)} / ${ms(t3 - t2)}`);
  }
  await daemon.deleteAllVms();
  await daemon.stop();
  return { samples, daemonLog };
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const { runs, cleanup, log } = ctx;
  const withE2e = process.env.BENCH_NIC_E2E !== '0';
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const root = await benchDir(tmpdir(), 'vmlet-bench-n-');
  cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));

  // Deleting the namespace deletes the bridge and every TAP left in it.
  const netns = `vmlet-bench-${randomBytes(3).toString('hex')}`;
  await ipHost(['netns', 'add', netns]);
  cleanup.defer('delete the network namespace', async () => void (await ipHost(['netns', 'delete', netns])));
  // Before the namespace goes: a guest QEMU would keep it (and its TAPs) alive.
  cleanup.defer('kill stray QEMUs', async () => {
    const killed = await killStrayQemus(root);
    if (killed.length > 0) log(`killed stray QEMU pids ${killed.join(', ')}`);
  });
  await ipHost(['-n', netns, 'link', 'add', 'name', 'br0', 'type', 'bridge']);
  await ipHost(['-n', netns, 'link', 'set', 'dev', 'br0', 'up']);
  const ip = new IpTool(netns);
  const live = new Map<string, NicStatus>();
  cleanup.defer('remove TAPs', async () => void (await unwireNics(ip, [...live.values()])));

  log(`nic: ${runs} wire/unwire runs + 1 warm-up in netns ${netns}`);
  const loadBefore = loadavg();
  const wireMs: number[] = [];
  const unwireMs: number[] = [];
  for (let i = 0; i <= runs; i++) {
    cleanup.checkOpen();
    const vmId = `bench-nic-${String(i).padStart(3, '0')}`;
    const t0 = performance.now();
    const status = await wireNic(ip, { name: 'eth0', bridge: 'br0', mac: '' }, 0, { vmId, vcpus: 1, taken: new Set() });
    const t1 = performance.now();
    live.set(status.tap, status);
    const t2 = performance.now();
    await unwireNics(ip, [status]);
    const t3 = performance.now();
    live.delete(status.tap);
    if (i > 0) {
      wireMs.push(t1 - t0);
      unwireMs.push(t3 - t2);
    }
  }
  const leftover = await listTaps(ip, () => true);
  if (leftover.length > 0) throw new Error(`TAPs left in ${netns} after unwireNics: ${leftover.join(', ')}`);
  const loadAfter = loadavg();
  const steps = Object.fromEntries(Object.entries(await stepBreakdown(ip, runs, live)).map(([k, v]) => [k, summarise(v)]));
  const wire = summarise(wireMs);
  const unwire = summarise(unwireMs);
  const floor = steps.ipReadFloor!;
  log(`wire median ${ms(wire.median)}, unwire median ${ms(unwire.median)}, one ip call ${ms(floor.median)}`);

  const e2e = withE2e ? await endToEnd(ctx, netns, root, qemuBinary) : undefined;
  const attach = e2e ? summarise(e2e.samples.attachMs) : undefined;
  const detach = e2e ? summarise(e2e.samples.detachMs) : undefined;

  const result = {
    benchmark: 'nic',
    timestamp: new Date().toISOString(),
    node: process.version,
    runs,
    warmupRuns: 1,
    hostLoad: { before: loadBefore, after: loadAfter },
    method: {
      netns: 'a namespace of the benchmark (vmlet-bench-<rand>) with bridge br0 up; deleted at the end',
      wire: "wireNic(new IpTool(ns), {name: 'eth0', bridge: 'br0', mac: ''}, 0, {vmId, vcpus: 1, taken: new Set()}): ip -json -details link show br0, ip -json link show <tap> (free name), ip tuntap add … mode tap vnet_hdr, ip link set … mtu … master br0 up",
      unwire: 'unwireNics(ip, [status]): ip link del dev <tap>',
      stepsMs: 'the steps of wireNic/unwireNics from src/net/tap.ts timed one by one in separate runs (getBridge and linkExists are `ip -json` reads, createTap is `ip tuntap add` + `ip link set … master br0 up`, deleteTap is `ip link del`); ipReadFloor is a bare `ip -n <ns> link show dev br0`: the cost of spawning ip',
      vmIds: 'a new VM id (so a new TAP name) per run',
    },
    wireMs: wire,
    unwireMs: unwire,
    wirePlusUnwireMedianMs: Math.round((wire.median + unwire.median) * 1000) / 1000,
    stepsMs: steps,
    endToEnd: e2e
      ? {
          what: `a daemon with --netns ${netns} runs the demo guest (1 vCPU, 128 MiB, booted to ${READY_LINE}); AttachNic{eth1 on br0} then, ${ATTACH_SETTLE_MS} ms later (not timed), DetachNic{eth1}; client-side times`,
          attachNicMs: attach,
          detachNicMs: detach,
          detachNote: 'DetachNic returns only once the guest released the device (QMP DEVICE_DELETED), then netdev_del and the TAP removal: its time is mostly the guest acknowledging the unplug, not vmlet',
          guestBootMs: Math.round(e2e.samples.guestBootMs),
          daemonLog: 'bench/results/nic-daemon.log',
        }
      : { skipped: 'BENCH_NIC_E2E=0' },
  };
  const summary = [
    `wireNic (median of ${runs}): ${ms(wire.median)} (p90 ${ms(wire.p90)}); unwireNics: ${ms(unwire.median)} (p90 ${ms(unwire.p90)})`,
    `steps (medians): ${Object.entries(steps).map(([k, v]) => `${k} ${ms(v.median)}`).join(', ')}; wire = getBridge + linkExists + createTap (4 ip calls), unwire = deleteTap (1)`,
    ...(attach && detach
      ? [`AttachNic through the daemon: ${ms(attach.median)} (p90 ${ms(attach.p90)}); DetachNic (waits for the guest's PCIe unplug): ${ms(detach.median)} (p90 ${ms(detach.p90)})`]
      : []),
  ];
  return { result, summary };
}

export const nicBenchmark: Benchmark = {
  name: 'nic',
  description: 'the time to wire and unwire one NIC (median); AttachNic/DetachNic through a daemon',
  run,
};
