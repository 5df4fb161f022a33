/**
 * The series vmlet shares with KubeVirt: KubeVirt's name, type and help text (as in its
 * `docs/observability/metrics.md`), and the label names its collectors give them. A unit test
 * holds this table against KubeVirt's documentation. Pure data.
 */

export type SeriesType = 'counter' | 'gauge' | 'histogram';

export interface KubevirtSeries {
  name: string;
  type: SeriesType;
  help: string;
  /**
   * KubeVirt's own label names, beyond which vmlet adds nothing but `kubernetes_vmi_label_*` on
   * per-VM series that KubeVirt's virt-handler gives them too.
   */
  labels: readonly string[];
  /**
   * The TYPE vmlet writes when it differs from KubeVirt's: KubeVirt declares its
   * `*_status_last_transition_timestamp_seconds` counters, which `promtool check metrics` rejects
   * without a `_total` suffix; they are timestamps, so vmlet says gauge. Queries read the same.
   */
  exposedType?: 'gauge';
}

/** virt-handler's labels of every per-VM series; each VM label adds `kubernetes_vmi_label_<key>`. */
const VMI = ['node', 'namespace', 'name'] as const;
/** virt-controller's labels of the VM family. */
const VM = ['name', 'namespace'] as const;

const guestLoadHelp = (over: string): string =>
  `Guest system load average over ${over} as reported by the guest agent. Load is defined as the number of processes in the runqueue or waiting for disk I/O. ` +
  'Requires qemu-guest-agent version 10.0.0 or above.';

const series = <K extends string>(table: Record<K, KubevirtSeries>): Record<K, KubevirtSeries> => table;

export const KUBEVIRT_SERIES = series({
  // ---- virt-controller: every VM (the VirtualMachine object) ----
  vmInfo: {
    name: 'kubevirt_vm_info',
    type: 'gauge',
    help: 'Information about Virtual Machines.',
    labels: [...VM, 'os', 'workload', 'flavor', 'machine_type', 'instance_type', 'preference', 'status', 'status_group'],
  },
  vmResourceRequests: {
    name: 'kubevirt_vm_resource_requests',
    type: 'gauge',
    help: 'Resources requested by Virtual Machine. Reports memory and CPU requests.',
    labels: [...VM, 'resource', 'unit', 'source'],
  },
  vmResourceLimits: {
    name: 'kubevirt_vm_resource_limits',
    type: 'gauge',
    help: 'Resource limits set for a Virtual Machine. Reports CPU and memory limits only when they are defined.',
    labels: [...VM, 'resource', 'unit'],
  },
  vmStartingSince: {
    name: 'kubevirt_vm_starting_status_last_transition_timestamp_seconds',
    type: 'counter',
    exposedType: 'gauge',
    help: 'Virtual Machine last transition timestamp to starting status.',
    labels: VM,
  },
  vmRunningSince: {
    name: 'kubevirt_vm_running_status_last_transition_timestamp_seconds',
    type: 'counter',
    exposedType: 'gauge',
    help: 'Virtual Machine last transition timestamp to running status.',
    labels: VM,
  },
  vmMigratingSince: {
    name: 'kubevirt_vm_migrating_status_last_transition_timestamp_seconds',
    type: 'counter',
    exposedType: 'gauge',
    help: 'Virtual Machine last transition timestamp to migrating status.',
    labels: VM,
  },
  vmNonRunningSince: {
    name: 'kubevirt_vm_non_running_status_last_transition_timestamp_seconds',
    type: 'counter',
    exposedType: 'gauge',
    help: 'Virtual Machine last transition timestamp to paused/stopped status.',
    labels: VM,
  },
  vmErrorSince: {
    name: 'kubevirt_vm_error_status_last_transition_timestamp_seconds',
    type: 'counter',
    exposedType: 'gauge',
    help: 'Virtual Machine last transition timestamp to error status.',
    labels: VM,
  },
  vmCreated: { name: 'kubevirt_vm_create_date_timestamp_seconds', type: 'gauge', help: 'Virtual Machine creation timestamp.', labels: VM },
  vmDiskAllocated: {
    name: 'kubevirt_vm_disk_allocated_size_bytes',
    type: 'gauge',
    help:
      'Allocated disk size of a Virtual Machine in bytes, based on its PersistentVolumeClaim. Includes persistentvolumeclaim (PVC name), ' +
      'volume_mode (disk presentation mode: Filesystem or Block), and device (disk name).',
    labels: [...VM, 'persistentvolumeclaim', 'volume_mode', 'device'],
  },

  // ---- virt-controller: every VMI (a VM with a QEMU) ----
  vmiInfo: {
    name: 'kubevirt_vmi_info',
    type: 'gauge',
    help: 'Information about VirtualMachineInstances.',
    labels: [
      ...VMI,
      'phase',
      'os',
      'workload',
      'flavor',
      'instance_type',
      'preference',
      'guest_os_kernel_release',
      'guest_os_machine',
      'guest_os_arch',
      'guest_os_name',
      'guest_os_version_id',
      'evictable',
      'outdated',
      'vmi_pod',
    ],
  },
  statusAddresses: {
    name: 'kubevirt_vmi_status_addresses',
    type: 'gauge',
    help:
      "The addresses of a VirtualMachineInstance. This metric provides the address of an available network interface associated with the VMI in the 'address' label, " +
      "and about the type of address, such as internal IP, in the 'type' label.",
    labels: [...VMI, 'vnic_name', 'interface_name', 'address', 'type'],
  },
  launcherOverhead: {
    name: 'kubevirt_vmi_launcher_memory_overhead_bytes',
    type: 'gauge',
    help: "Estimation of the memory amount required for virt-launcher's infrastructure components (e.g. libvirt, QEMU).",
    labels: ['namespace', 'name'],
  },
  nonEvictable: {
    name: 'kubevirt_vmi_non_evictable',
    type: 'gauge',
    help: 'Indication for a VirtualMachine that its eviction strategy is set to Live Migration but is not migratable.',
    labels: VMI,
  },
  phaseTransition: {
    name: 'kubevirt_vmi_phase_transition_time_seconds',
    type: 'histogram',
    help: 'Histogram of VM phase transitions duration between different phases in seconds.',
    labels: ['phase', 'last_phase'],
  },
  phaseTransitionFromCreation: {
    name: 'kubevirt_vmi_phase_transition_time_from_creation_seconds',
    type: 'histogram',
    help: 'Histogram of VM phase transitions duration from creation time in seconds.',
    labels: ['phase'],
  },
  migrationStart: {
    name: 'kubevirt_vmi_migration_start_time_seconds',
    type: 'gauge',
    help: 'The time at which the migration started.',
    labels: [...VMI, 'migration_name'],
  },
  migrationEnd: {
    name: 'kubevirt_vmi_migration_end_time_seconds',
    type: 'gauge',
    help: 'The time at which the migration ended.',
    labels: [...VMI, 'migration_name', 'status'],
  },
  migrationSucceeded: {
    name: 'kubevirt_vmi_migration_succeeded',
    type: 'gauge',
    help: 'Indicates if the VMI migration succeeded.',
    labels: ['vmi', 'vmim', 'namespace'],
  },
  migrationFailed: {
    name: 'kubevirt_vmi_migration_failed',
    type: 'gauge',
    help: 'Indicates if the VMI migration failed.',
    labels: ['vmi', 'vmim', 'namespace'],
  },

  // ---- virt-handler: per running VM, from the hypervisor ----
  cpuUsage: {
    name: 'kubevirt_vmi_cpu_usage_seconds_total',
    type: 'counter',
    help: 'Total CPU time spent in all modes (sum of both vcpu and hypervisor usage).',
    labels: VMI,
  },
  cpuUser: { name: 'kubevirt_vmi_cpu_user_usage_seconds_total', type: 'counter', help: 'Total CPU time spent in user mode.', labels: VMI },
  cpuSystem: { name: 'kubevirt_vmi_cpu_system_usage_seconds_total', type: 'counter', help: 'Total CPU time spent in system mode.', labels: VMI },
  vcpuSeconds: {
    name: 'kubevirt_vmi_vcpu_seconds_total',
    type: 'counter',
    help:
      'Total amount of time spent in each state by each vcpu (cpu_time excluding hypervisor time). Where `id` is the vcpu identifier ' +
      'and `state` can be one of the following: [`OFFLINE`, `RUNNING`, `BLOCKED`].',
    labels: [...VMI, 'id', 'state'],
  },
  vcpuWait: { name: 'kubevirt_vmi_vcpu_wait_seconds_total', type: 'counter', help: 'Amount of time spent by each vcpu while waiting on I/O.', labels: [...VMI, 'id'] },
  vcpuDelay: {
    name: 'kubevirt_vmi_vcpu_delay_seconds_total',
    type: 'counter',
    help: 'Amount of time spent by each vcpu waiting in the queue instead of running.',
    labels: [...VMI, 'id'],
  },
  memResident: { name: 'kubevirt_vmi_memory_resident_bytes', type: 'gauge', help: 'Resident set size of the process running the domain.', labels: VMI },
  memAvailable: {
    name: 'kubevirt_vmi_memory_available_bytes',
    type: 'gauge',
    help:
      'Amount of usable memory as seen by the domain. This value may not be accurate if a balloon driver is in use ' +
      'or if the guest OS does not initialize all assigned pages',
    labels: VMI,
  },
  memUnused: {
    name: 'kubevirt_vmi_memory_unused_bytes',
    type: 'gauge',
    help: 'The amount of memory left completely unused by the system. Memory that is available but used for reclaimable caches should NOT be reported as free.',
    labels: VMI,
  },
  memCached: {
    name: 'kubevirt_vmi_memory_cached_bytes',
    type: 'gauge',
    help: 'The amount of memory that is being used to cache I/O and is available to be reclaimed, corresponds to the sum of `Buffers` + `Cached` + `SwapCached` in `/proc/meminfo`.',
    labels: VMI,
  },
  memSwapIn: { name: 'kubevirt_vmi_memory_swap_in_traffic_bytes', type: 'gauge', help: 'The total amount of data read from swap space of the guest in bytes.', labels: VMI },
  memSwapOut: { name: 'kubevirt_vmi_memory_swap_out_traffic_bytes', type: 'gauge', help: 'The total amount of memory written out to swap space of the guest in bytes.', labels: VMI },
  memMajorFaults: {
    name: 'kubevirt_vmi_memory_pgmajfault_total',
    type: 'counter',
    help:
      'The number of page faults when disk IO was required. Page faults occur when a process makes a valid access to virtual memory that is not available. ' +
      'When servicing the page fault, if disk IO is required, it is considered as major fault.',
    labels: VMI,
  },
  memMinorFaults: {
    name: 'kubevirt_vmi_memory_pgminfault_total',
    type: 'counter',
    help:
      'The number of other page faults, when disk IO was not required. Page faults occur when a process makes a valid access to virtual memory that is not available. ' +
      'When servicing the page fault, if disk IO is NOT required, it is considered as minor fault.',
    labels: VMI,
  },
  memBalloon: { name: 'kubevirt_vmi_memory_actual_balloon_bytes', type: 'gauge', help: 'Current balloon size in bytes.', labels: VMI },
  memUsable: {
    name: 'kubevirt_vmi_memory_usable_bytes',
    type: 'gauge',
    help: "The amount of memory which can be reclaimed by balloon without pushing the guest system to swap, corresponds to 'Available' in /proc/meminfo.",
    labels: VMI,
  },
  memDomain: {
    name: 'kubevirt_vmi_memory_domain_bytes',
    type: 'gauge',
    help: 'The amount of memory in bytes allocated to the domain. The `memory` value in domain xml file.',
    labels: VMI,
  },
  rxBytes: { name: 'kubevirt_vmi_network_receive_bytes_total', type: 'counter', help: 'Total network traffic received in bytes.', labels: [...VMI, 'interface'] },
  rxPackets: { name: 'kubevirt_vmi_network_receive_packets_total', type: 'counter', help: 'Total network traffic received packets.', labels: [...VMI, 'interface'] },
  rxErrors: { name: 'kubevirt_vmi_network_receive_errors_total', type: 'counter', help: 'Total network received error packets.', labels: [...VMI, 'interface'] },
  rxDropped: {
    name: 'kubevirt_vmi_network_receive_packets_dropped_total',
    type: 'counter',
    help: 'The total number of rx packets dropped on vNIC interfaces.',
    labels: [...VMI, 'interface'],
  },
  txBytes: { name: 'kubevirt_vmi_network_transmit_bytes_total', type: 'counter', help: 'Total network traffic transmitted in bytes.', labels: [...VMI, 'interface'] },
  txPackets: { name: 'kubevirt_vmi_network_transmit_packets_total', type: 'counter', help: 'Total network traffic transmitted packets.', labels: [...VMI, 'interface'] },
  txErrors: { name: 'kubevirt_vmi_network_transmit_errors_total', type: 'counter', help: 'Total network transmitted error packets.', labels: [...VMI, 'interface'] },
  txDropped: {
    name: 'kubevirt_vmi_network_transmit_packets_dropped_total',
    type: 'counter',
    help: 'The total number of tx packets dropped on vNIC interfaces.',
    labels: [...VMI, 'interface'],
  },
  iopsRead: { name: 'kubevirt_vmi_storage_iops_read_total', type: 'counter', help: 'Total number of I/O read operations.', labels: [...VMI, 'drive'] },
  iopsWrite: { name: 'kubevirt_vmi_storage_iops_write_total', type: 'counter', help: 'Total number of I/O write operations.', labels: [...VMI, 'drive'] },
  readBytes: { name: 'kubevirt_vmi_storage_read_traffic_bytes_total', type: 'counter', help: 'Total number of bytes read from storage.', labels: [...VMI, 'drive'] },
  writeBytes: { name: 'kubevirt_vmi_storage_write_traffic_bytes_total', type: 'counter', help: 'Total number of written bytes.', labels: [...VMI, 'drive'] },
  readTimes: { name: 'kubevirt_vmi_storage_read_times_seconds_total', type: 'counter', help: 'Total time spent on read operations.', labels: [...VMI, 'drive'] },
  writeTimes: { name: 'kubevirt_vmi_storage_write_times_seconds_total', type: 'counter', help: 'Total time spent on write operations.', labels: [...VMI, 'drive'] },
  flushRequests: { name: 'kubevirt_vmi_storage_flush_requests_total', type: 'counter', help: 'Total storage flush requests.', labels: [...VMI, 'drive'] },
  flushTimes: { name: 'kubevirt_vmi_storage_flush_times_seconds_total', type: 'counter', help: 'Total time spent on cache flushing.', labels: [...VMI, 'drive'] },
  fsCapacity: {
    name: 'kubevirt_vmi_filesystem_capacity_bytes',
    type: 'gauge',
    help: 'Total VM filesystem capacity in bytes.',
    labels: [...VMI, 'disk_name', 'mount_point', 'file_system_type'],
  },
  fsUsed: {
    name: 'kubevirt_vmi_filesystem_used_bytes',
    type: 'gauge',
    help: 'Used VM filesystem capacity in bytes.',
    labels: [...VMI, 'disk_name', 'mount_point', 'file_system_type'],
  },
  guestLoad1m: { name: 'kubevirt_vmi_guest_load_1m', type: 'gauge', help: guestLoadHelp('1 minute'), labels: VMI },
  guestLoad5m: { name: 'kubevirt_vmi_guest_load_5m', type: 'gauge', help: guestLoadHelp('5 minutes'), labels: VMI },
  guestLoad15m: { name: 'kubevirt_vmi_guest_load_15m', type: 'gauge', help: guestLoadHelp('15 minutes'), labels: VMI },
  migDataTotal: { name: 'kubevirt_vmi_migration_data_bytes_total', type: 'counter', help: 'The total Guest OS data to be migrated to the new VM.', labels: VMI },
  migProcessed: {
    name: 'kubevirt_vmi_migration_data_processed_bytes',
    type: 'gauge',
    help: 'The total Guest OS data processed and migrated to the new VM.',
    labels: VMI,
  },
  migRemaining: { name: 'kubevirt_vmi_migration_data_remaining_bytes', type: 'gauge', help: 'The remaining guest OS data to be migrated to the new VM.', labels: VMI },
  guestPanics: {
    name: 'kubevirt_vmi_guest_os_panic_total',
    type: 'counter',
    help: 'Total number of guest OS panic events detected, partitioned by VMI and panic type.',
    labels: ['namespace', 'name', 'type', 'bugcheck_code'],
  },
});

export type SeriesKey = keyof typeof KUBEVIRT_SERIES;

/** KubeVirt's buckets of the phase transition histograms (virt-controller's PhaseTransitionTimeBuckets). */
export const PHASE_TRANSITION_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600];
