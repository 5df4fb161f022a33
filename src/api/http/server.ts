import { readFileSync } from 'node:fs';
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
  /** HTTPS; with `ca`, clients are asked for a certificate (optional: /metrics needs none). */
  tls?: { cert: string; key: string; ca?: string };
  /** More routes (the console websocket), registered before the server listens. */
  register?: (app: FastifyInstance) => Promise<void>;
}

/** Metrics and health over HTTP: `/metrics`, `/healthz` (the process is up), `/readyz`. */
export async function startHttpServer(options: HttpOptions): Promise<{ app: FastifyInstance; address: string }> {
  const tls = options.tls;
  const app = (
    tls
      ? Fastify({
          logger: false,
          https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ...(tls.ca ? { ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: false } : {}) },
        })
      : Fastify({ logger: false })
  ) as FastifyInstance;
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
