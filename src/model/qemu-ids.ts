/**
 * Every id vmlet gives QEMU: node names, device and netdev ids, block-job ids, NBD export ids,
 * chardev ids and the `-name` marker. Made here only, so the command line, QMP commands, event
 * filters and metrics agree. These strings outlive a vmlet process (a restarted vmlet adopts the
 * QEMU, its devices and its jobs), so changing one breaks adoption of running VMs.
 *
 * QEMU ids and node names: a letter first, then letters, digits, '-', '.', '_' (node names ≤ 31).
 * Disk names are ≤ 20 and NIC names ≤ 15 characters (vm/validate.ts), so these all fit.
 */

/** The chardev of vmlet's QMP monitor socket. */
export const QMP_CHARDEV_ID = 'qmp';
/** The chardev of the guest's serial console socket. */
export const SERIAL_CHARDEV_ID = 'serial0';
/** The virtio balloon: `query-balloon` reports the guest's memory (kubevirt_vmi_memory_actual_balloon_bytes). */
export const BALLOON_DEVICE_ID = 'balloon0';
/** Its QOM path, where `guest-stats` holds what the guest last reported about its memory. */
export const BALLOON_QOM_PATH = `/machine/peripheral/${BALLOON_DEVICE_ID}`;
/**
 * How often the guest's balloon driver reports its memory statistics (seconds); libvirt's
 * memballoon `stats period` as KubeVirt sets it.
 */
export const BALLOON_STATS_INTERVAL_SECONDS = 10;

/** The `file` protocol node of a disk. */
export const diskFileNodeName = (disk: string): string => `file-${disk}`;
/** The format node of a disk: what the guest device reads, what mirrors and exports start from. */
export const diskNodeName = (disk: string): string => `drive-${disk}`;
/** The device of a disk (virtio-blk-pci, scsi-hd, ide-hd or ide-cd). */
export const diskDeviceId = (disk: string): string => `disk-${disk}`;
/** The virtio-scsi-pci controller of a VM's scsi disks; its bus is `${SCSI_CONTROLLER_ID}.0`. */
export const SCSI_CONTROLLER_ID = 'scsi0';
/** The pcie-root-port the scsi controller sits on (not a hotplug port: no NIC goes there). */
export const SCSI_PORT_ID = 'scsi0-port';
/** The tap netdev of a NIC. */
export const netdevId = (nic: string): string => `net-${nic}`;
/** The virtio-net-pci device of a NIC. */
export const nicDeviceId = (nic: string): string => `nic-${nic}`;
/** The index-th spare pcie-root-port that NICs are hot-plugged into. */
export const hotplugPortId = (index: number): string => `hotplug-${index}`;

/** Node names of the UEFI flash images: OVMF's code and the VM's variables store. */
export const FIRMWARE_CODE_NODE = 'fw-code';
export const FIRMWARE_VARS_NODE = 'fw-vars';
/**
 * The name under which a UEFI VM's variables store travels among the mirrored disks of a
 * migration (export, mirror job, NBD node). Disk names are DNS labels: none can be this.
 */
export const EFI_VARS_MIRROR = 'efi_vars';
/** The node a migration mirrors from (source) or exports (target) for a mirrored disk name. */
export const mirroredNode = (disk: string): string => (disk === EFI_VARS_MIRROR ? FIRMWARE_VARS_NODE : diskNodeName(disk));

/** The migration source's mirror job of a disk (BLOCK_JOB_* events name it as `device`). */
export const mirrorJobId = (disk: string): string => `mig-${disk}`;
/** The migration source's NBD client node that a disk is mirrored into. */
export const mirrorTargetNode = (disk: string): string => `mig-${disk}`;
/** The migration target's NBD block export of a disk. */
export const nbdExportId = (disk: string): string => `mig-${disk}`;
/** The name under which the migration target's NBD server exports a disk (what the source connects to). */
export const nbdExportName = (disk: string): string => disk;

/** The `-name guest=<id>,…` value that identifies a VM's QEMU in /proc/<pid>/cmdline. */
/** The tls-creds-x509 object of a migration's streams. */
export const MIGRATION_TLS_ID = 'mig-tls';

/** The authz-list object that names who may connect to a migration target's streams. */
export const MIGRATION_AUTHZ_ID = 'mig-authz';

export const nameArg = (id: string): string => `guest=${id},debug-threads=on`;
