/**
 * What `/readyz` checks: the state dir is writable, gRPC really answers (a grpc.health.v1 Check
 * over one of the daemon's own listeners), and the QEMU binary is still there and executable.
 * State being loaded is implied: the HTTP server starts after the manager has loaded and adopted.
 */
import { access, constants } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../model/errors.js';
import { resolveBinary } from '../host/binary-path.js';

/**
 * The listener a health self-check can use without credentials: the first unix socket, else the
 * first TCP listener when there is no TLS (a wildcard host is called on loopback). Undefined when
 * every listener needs a client certificate.
 */
export function selfCheckTarget(addresses: readonly string[], tls: boolean): string | undefined {
  const unix = addresses.find((a) => a.startsWith('unix://'));
  if (unix !== undefined || tls) return unix;
  const tcp = addresses[0];
  if (tcp === undefined) return undefined;
  const i = tcp.lastIndexOf(':');
  const host = tcp.slice(0, i);
  const port = tcp.slice(i + 1);
  if (host === '0.0.0.0' || host === '') return `127.0.0.1:${port}`;
  if (host === '[::]') return `[::1]:${port}`;
  return tcp;
}

interface HealthClient extends grpc.Client {
  Check(req: { service: string }, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
}

type HealthClientCtor = new (target: string, creds: grpc.ChannelCredentials) => HealthClient;

export interface ReadinessOptions {
  stateDir: string;
  /** As configured (`--qemu`): resolved once, then checked for X_OK on every probe. */
  qemuBinary: string;
  /** From selfCheckTarget; undefined: rely on grpcServing. */
  grpcTarget?: string;
  /** True between "health set to SERVING" and shutdown; the only gRPC check when there is no target. */
  grpcServing: () => boolean;
  /** grpc.health.v1.Health's definition, for the self-check's client. */
  healthService: grpc.ServiceDefinition;
  /** Deadline of the self-check. Default 1000 ms. */
  grpcTimeoutMs?: number;
}

export class Readiness {
  private client: HealthClient | undefined;
  private qemuPath: Promise<string | undefined>;

  constructor(private readonly options: ReadinessOptions) {
    this.qemuPath = resolveBinary(options.qemuBinary);
  }

  /** Null when ready, else every reason it is not. */
  notReady = async (): Promise<string | null> => {
    const problems = (await Promise.all([this.checkStateDir(), this.checkGrpc(), this.checkQemu()])).filter((p): p is string => p !== null);
    return problems.length ? problems.join('; ') : null;
  };

  close(): void {
    this.client?.close();
    this.client = undefined;
  }

  private async checkStateDir(): Promise<string | null> {
    try {
      await access(this.options.stateDir, constants.W_OK);
      return null;
    } catch {
      return `state dir ${this.options.stateDir} is not writable`;
    }
  }

  private async checkQemu(): Promise<string | null> {
    const resolved = await this.qemuPath;
    if (resolved === undefined) {
      // Installed since? Look again next time.
      this.qemuPath = resolveBinary(this.options.qemuBinary);
      return `QEMU binary ${this.options.qemuBinary} not found or not executable`;
    }
    try {
      await access(resolved, constants.X_OK);
      return null;
    } catch (err) {
      return `QEMU binary ${resolved} is not executable: ${errorMessage(err)}`;
    }
  }

  private async checkGrpc(): Promise<string | null> {
    if (!this.options.grpcServing()) return 'gRPC is not serving';
    const target = this.options.grpcTarget;
    if (target === undefined) return null;
    if (!this.client) {
      const Client = grpc.makeGenericClientConstructor(this.options.healthService, 'Health') as unknown as HealthClientCtor;
      this.client = new Client(target, grpc.credentials.createInsecure());
    }
    const timeoutMs = this.options.grpcTimeoutMs ?? 1000;
    const status = await new Promise<string>((resolve) => {
      this.client!.Check({ service: '' }, { deadline: Date.now() + timeoutMs }, (err, res) => resolve(err ? `error: ${err.details || err.message}` : (res?.status ?? 'UNKNOWN')));
    });
    return status === 'SERVING' ? null : `gRPC health check on ${target}: ${status}`;
  }
}
