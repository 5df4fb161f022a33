import { createServer } from 'node:net';

/** A TCP port free on `host` right now (the kernel picks it); QEMU binds it moments later. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
