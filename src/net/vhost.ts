import { open } from 'node:fs/promises';

/** vhost-net moves virtio-net into the kernel; only used when the device really opens. */
export async function vhostNetWorks(): Promise<boolean> {
  try {
    const f = await open('/dev/vhost-net', 'r+');
    await f.close();
    return true;
  } catch {
    return false;
  }
}
