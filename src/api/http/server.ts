import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { listenHost } from '../../config.js';

export interface HttpOptions {
  listen: string;
  registry: Registry;
  /** Null when ready, else why not. */
  notReady: () => Promise<string | null>;
}

/** Metrics and health over HTTP. */
export async function startHttpServer(options: HttpOptions): Promise<{ app: FastifyInstance; address: string }> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const why = await options.notReady();
    if (why) return reply.code(503).send({ status: 'not ready', reason: why });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', options.registry.contentType);
    return options.registry.metrics();
  });
  const host = listenHost(options.listen).replace(/^\[(.*)\]$/, '$1');
  const port = Number(options.listen.slice(options.listen.lastIndexOf(':') + 1));
  const address = await app.listen({ host, port });
  return { app, address };
}
