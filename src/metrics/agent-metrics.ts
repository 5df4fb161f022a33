import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorMessage } from '../model/errors.js';
import { BOUNDS, onBoundRejected } from '../model/bounds.js';
import { PHASES } from '../model/vm.js';
import type { VmManager } from '../vm/manager.js';
import type { ImageImports } from '../vm/images.js';
import type { Logger } from '../host/log.js';
import { VmiCollector, type MigrationFiguresSource, type VmiCollectorOptions } from './vmi-collector.js';
import { scrapeTargets } from './vm-targets.js';
import { KUBEVIRT_SERIES, PHASE_TRANSITION_BUCKETS, type SeriesKey } from './kubevirt-series.js';
import { panicLabels } from './guest-panic.js';
import { runPhase } from './kubevirt-status.js';
import type { PhaseTransition } from '../model/events.js';

/** How often the event-loop delay (nodejs_eventloop_lag_*) is sampled. */
const EVENT_LOOP_SAMPLE_MS = 100;

/** prom-client options of a series shared with KubeVirt: its name, help and label names. */
const kubevirtOpts = (key: SeriesKey) => ({ name: KUBEVIRT_SERIES[key].name, help: KUBEVIRT_SERIES[key].help, labelNames: [...KUBEVIRT_SERIES[key].labels] });

/**
 * prom-client's default gauges named `*_total`, which `promtool check metrics` rejects
 * ("non-counter metrics should not have _total suffix"); their per-type breakdowns
 * (`nodejs_active_handles{type}` …) stay.
 */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** A VM that keeps failing is logged once a minute, not on every scrape. */
const SCRAPE_ERROR_LOG_INTERVAL_MS = 60_000;

export type ScrapeOptions = Pick<VmiCollectorOptions, 'node'> &
  Partial<Pick<VmiCollectorOptions, 'namespace' | 'readNetDev' | 'concurrency' | 'vmDeadlineMs' | 'qmpTimeoutMs' | 'qmpPollMs' | 'memoryOverheadBytes'>>;

/** vmlet's own series (gRPC calls, QMP commands, operations, VMs by phase, build info) and, once a manager is watched, the per-VM series. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly grpcRequests = new Counter({ name: 'vmlet_grpc_requests_total', help: 'gRPC calls served, by method and status code.', labelNames: ['method', 'code'], registers: [this.registry] });
  readonly grpcDenied = new Counter({ name: 'vmlet_grpc_denied_total', help: 'gRPC calls refused with PERMISSION_DENIED, by method and the caller\'s role (none: no role).', labelNames: ['method', 'role'], registers: [this.registry] });
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
  readonly operationDuration = new Histogram({
    name: 'vmlet_operation_duration_seconds',
    help: 'Time of a VM operation (create, start, stop, pause, resume, reboot, delete), queueing included; result is ok or the error code.',
    labelNames: ['operation', 'result'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  /** KubeVirt's semantics: `phase` is the VMI phase entered, `last_phase` the one left, the value the time spent in it. */
  readonly phaseTransitions = new Histogram({
    ...kubevirtOpts('phaseTransition'),
    buckets: PHASE_TRANSITION_BUCKETS,
    registers: [this.registry],
  });
  readonly restarts = new Counter({ name: 'vmlet_vm_restarts_total', help: 'VMs restarted by their run strategy, by what ended the previous run (poweroff or failure).', labelNames: ['kind'], registers: [this.registry] });
  /** Time from the start of a run (the VM entering Starting, where KubeVirt creates a VMI) to each VMI phase of that run. */
  readonly phaseTransitionsFromCreation = new Histogram({
    ...kubevirtOpts('phaseTransitionFromCreation'),
    buckets: PHASE_TRANSITION_BUCKETS,
    registers: [this.registry],
  });
  readonly guestPanics = new Counter({ ...kubevirtOpts('guestPanics'), registers: [this.registry] });
  readonly inputRejected = new Counter({
    name: 'vmlet_input_rejected_total',
    help: 'Requests refused for going beyond a bound (INVALID_ARGUMENT or RESOURCE_EXHAUSTED), by bound.',
    labelNames: ['bound'],
    registers: [this.registry],
  });
  readonly scrapeErrors = new Counter({ name: 'vmlet_scrape_errors_total', help: 'Reads of a VM (QEMU and /proc figures, TAP counters, disk sizes) that failed during a scrape.', registers: [this.registry] });
  readonly quarantined = new Counter({
    name: 'vmlet_vm_quarantined_total',
    help: 'VM directories moved aside to <state-dir>/quarantine at startup because their spec could not be read.',
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({ name: 'vmlet_build_info', help: 'Always 1; labels say what runs.', labelNames: ['version', 'qemu_version', 'accelerator'], registers: [this.registry] });
  readonly imageImports = new Counter({ name: 'vmlet_image_imports_total', help: 'Image imports finished, by result (ok, error, cancelled).', labelNames: ['result'], registers: [this.registry] });
  readonly imageImportBytes = new Counter({ name: 'vmlet_image_import_bytes_total', help: 'Bytes of source files converted by successful image imports.', registers: [this.registry] });
  /** Ends the subscription to bound refusals (for tests that make many). */
  readonly stopCountingBounds: () => void;
  /** Per-VM series; set by watchManager. */
  vmi: VmiCollector | undefined;
  /** When a VM's failure was last logged. */
  private readonly scrapeErrorLogged = new Map<string, number>();
  /** Each VM's current run (a VMI in KubeVirt's terms): when it began, its VMI phase and since when (performance.now()). */
  private readonly runs = new Map<string, { started: number; phase: string; since: number }>();

  constructor() {
    // The event-loop delay histogram samples with a timer; prom-client's default (10 ms) woke an
    // idle daemon a hundred times a second.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // Every bound appears from the start at 0, so a rate() has a series before the first refusal.
    for (const bound of BOUNDS) this.inputRejected.inc({ bound }, 0);
    this.stopCountingBounds = onBoundRejected((bound) => this.inputRejected.inc({ bound }));
    for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Counts an import's end. */
  readonly observeImport = (result: string, bytesRead: number): void => {
    this.imageImports.inc({ result });
    if (bytesRead > 0) this.imageImportBytes.inc(bytesRead);
  };

  /** The image store's size, as of its last listing, import or removal. */
  watchImages(images: Pick<ImageImports, 'storeBytes'>): void {
    new Gauge({
      name: 'vmlet_image_store_bytes',
      help: 'Bytes the image store\'s images take on disk.',
      registers: [this.registry],
      collect() {
        this.set(images.storeBytes());
      },
    });
  }

  watchManager(manager: VmManager, scrape: ScrapeOptions): void {
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
    manager.on('transition', (t) => this.observeTransition(t));
    manager.on('restart', (r) => this.restarts.inc({ kind: r.kind }));
    manager.on('quarantine', () => this.quarantined.inc());
    manager.on('operation', (op) => this.operationDuration.observe({ operation: op.operation, result: op.result }, op.seconds));
    const collector = this.collectVms(
      {
        ...scrape,
        targets: () => scrapeTargets(manager),
      },
      manager.log,
    );
    manager.on('change', (c) => {
      if (c.type !== 'DELETED') return;
      this.scrapeErrorLogged.delete(c.vm.spec.id);
      this.runs.delete(c.vm.spec.id);
    });
    manager.on('panic', (p) => {
      const labels = manager.has(p.id) ? manager.record(p.id).spec.labels : {};
      this.guestPanics.inc(panicLabels(p, collector.namespaceOf(labels)));
    });
  }

  /**
   * Both phase histograms, with KubeVirt's semantics and phase names: a run of the VM is a VMI,
   * observed when its VMI phase changes (`phase` entered, `last_phase` left, the time in it; and
   * the time since the run began). `now` (performance.now()) for tests.
   */
  observeTransition(t: PhaseTransition, now = performance.now()): void {
    const next = runPhase(t.to);
    if (next === 'Scheduled') {
      this.runs.set(t.id, { started: now, phase: next, since: now });
      return;
    }
    const run = this.runs.get(t.id);
    if (!run) return;
    if (next === undefined) {
      this.runs.delete(t.id);
      return;
    }
    if (next === run.phase) return;
    this.phaseTransitions.observe({ phase: next, last_phase: run.phase }, (now - run.since) / 1000);
    this.phaseTransitionsFromCreation.observe({ phase: next }, (now - run.started) / 1000);
    if (next === 'Succeeded' || next === 'Failed') this.runs.delete(t.id);
    else Object.assign(run, { phase: next, since: now });
  }

  /**
   * Adds the per-VM series: every read that fails counts in vmlet_scrape_errors_total and is
   * logged (a VM that keeps failing once a minute).
   */
  collectVms(options: Omit<VmiCollectorOptions, 'onError'>, log?: Logger): VmiCollector {
    const lastLogged = this.scrapeErrorLogged;
    const collector = new VmiCollector({
      ...options,
      onError: (err, vm) => {
        this.scrapeErrors.inc();
        const now = Date.now();
        if (!log || now - (lastLogged.get(vm) ?? -Infinity) < SCRAPE_ERROR_LOG_INTERVAL_MS) return;
        lastLogged.set(vm, now);
        log.warn({ vm, error: errorMessage(err) }, 'metrics: could not read VM figures (logged at most once a minute)');
      },
    });
    this.vmi = collector;
    return collector;
  }

  /** Where `kubevirt_vmi_migration_*` come from, once migration exists. */
  setMigrationSource(source: MigrationFiguresSource | undefined): void {
    if (this.vmi) this.vmi.migrations = source;
  }

  /** The whole exposition: per-VM series first (they count scrape errors), then the registry. */
  async render(): Promise<string> {
    const vmi = this.vmi ? await this.vmi.render() : '';
    return (await this.registry.metrics()) + vmi;
  }

  observeGrpc = (method: string, code: string, seconds: number): void => {
    this.grpcRequests.inc({ method, code });
    this.grpcDuration.observe({ method }, seconds);
  };

  observeDenied = (method: string, role: string): void => {
    this.grpcDenied.inc({ method, role });
  };

  observeQmp = (command: string, seconds: number): void => {
    this.qmpDuration.observe({ command }, seconds);
  };
}
