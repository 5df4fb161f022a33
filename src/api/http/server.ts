import Fastify, { type FastifyInstance } from 'fastify';
import { hostOf } from '../../host/addresses.js';

export interface HttpOptions {
  /** HOST:PORT. */
  listen: string;
  /** The Prometheus exposition, read on demand. */
  metrics: () => Promise<string>;
  metricsContentType: string;
  /** Null when ready, else why not. */
  notReady: () => Promise<string | null>;
  /** More routes (the console websocket), registered before the server listens. */
  register?: (app: FastifyInstance) => Promise<void>;
}

/** Metrics and health over HTTP: `/metrics`, `/healthz` (the process is up), `/readyz`. */
export async function startHttpServer(options: HttpOptions): Promise<{ app: FastifyInstance; address: string }> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const why = await options.notReady();
    if (why) return reply.code(503).send({ status: 'not ready', reason: why });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    const body = await options.metrics();
    return reply.header('content-type', options.metricsContentType).send(body);
  });
  await options.register?.(app);
  const host = (hostOf(options.listen) ?? options.listen).replace(/^\[(.*)\]$/, '$1');
  const port = Number(options.listen.slice(options.listen.lastIndexOf(':') + 1));
  const address = await app.listen({ host, port });
  return { app, address };
}
