/**
 * What the QEMU guest agent reports for metrics only (guest-get-osinfo's `machine`,
 * guest-get-fsinfo, guest-get-load). It changes on every read, so it is kept beside the VM's
 * status, not in it: a watcher sees no event for a load average that moved.
 */
export interface GuestFigures {
  /** The guest kernel's architecture (`uname -m`, e.g. x86_64); '' when the agent does not tell. */
  arch: string;
  /** Mounted file systems with their sizes; empty when the agent lacks guest-get-fsinfo. */
  filesystems: GuestFilesystem[];
  /** Absent when the agent lacks guest-get-load (qemu-ga before 10.0). */
  load?: GuestLoad;
}

export interface GuestFilesystem {
  /** The guest's name of the device (vda1, dm-0, a Windows volume GUID). */
  device: string;
  mountPoint: string;
  type: string;
  totalBytes: number;
  usedBytes: number;
}

export interface GuestLoad {
  load1m: number;
  load5m: number;
  load15m: number;
}
