import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PHASES } from '../vm/types.js';
import type { VmManager } from '../vm/manager.js';

/** vmlet's own series: gRPC calls, QMP commands, operations, VMs by phase, build info. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly grpcRequests = new Counter({ name: 'vmlet_grpc_requests_total', help: 'gRPC calls served, by method and status code.', labelNames: ['method', 'code'], registers: [this.registry] });
  readonly grpcDuration = new Histogram({
    name: 'vmlet_grpc_request_duration_seconds',
    help: 'Time to serve a gRPC call.',
    labelNames: ['method'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly qmpDuration = new Histogram({
    name: 'vmlet_qmp_command_duration_seconds',
    help: 'Round trip of a QMP command.',
    labelNames: ['command'],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly phaseTransitions = new Histogram({
    name: 'kubevirt_vmi_phase_transition_time_seconds',
    help: 'Time a VM spent in a phase before moving to the next.',
    labelNames: ['phase'],
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600],
    registers: [this.registry],
  });
  readonly scrapeErrors = new Counter({ name: 'vmlet_scrape_errors_total', help: 'Per-VM figures that could not be read during a scrape.', registers: [this.registry] });
  readonly buildInfo = new Gauge({ name: 'vmlet_build_info', help: 'Always 1; labels say what runs.', labelNames: ['version', 'qemu_version', 'accelerator'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  watchManager(manager: VmManager): void {
    const registry = this.registry;
    new Gauge({
      name: 'vmlet_vms',
      help: 'VMs on this node by phase.',
      labelNames: ['phase'],
      registers: [registry],
      collect() {
        const counts = manager.phaseCounts();
        for (const phase of PHASES) this.set({ phase }, counts.get(phase) ?? 0);
      },
    });
    manager.on('transition', (t) => this.phaseTransitions.observe({ phase: t.from }, t.seconds));
  }

  observeGrpc = (method: string, code: string, seconds: number): void => {
    this.grpcRequests.inc({ method, code });
    this.grpcDuration.observe({ method }, seconds);
  };

  observeQmp = (command: string, seconds: number): void => {
    this.qmpDuration.observe({ command }, seconds);
  };
}
