import * as grpc from '@grpc/grpc-js';
import { connectClients, normaliseEndpoint, unary, type VmletClients } from '../api/grpc/client.js';
import type { VmServiceClient } from '../api/grpc/generated/vmlet/v1/VmService.js';
import type { MigrationServiceClient } from '../api/grpc/generated/vmlet/v1/MigrationService.js';
import type { ImageServiceClient } from '../api/grpc/generated/vmlet/v1/ImageService.js';
import type { GlobalOptions } from './args.js';

type UnaryMethod<Req, Res> = (req: Req, metadata: grpc.Metadata, options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

/** A client verb's connection to the daemon: connects lazily, applies the deadline, closes once. */
export class Session {
  private clients?: VmletClients;

  constructor(readonly globals: GlobalOptions) {}

  get endpoint(): string {
    return normaliseEndpoint(this.globals.endpoint);
  }

  private connected(): VmletClients {
    this.clients ??= connectClients({
      endpoint: this.globals.endpoint,
      tlsCa: this.globals.tlsCa,
      tlsCert: this.globals.tlsCert,
      tlsKey: this.globals.tlsKey,
    });
    return this.clients;
  }

  get vms(): VmServiceClient {
    return this.connected().vms;
  }

  get migrations(): MigrationServiceClient {
    return this.connected().migrations;
  }

  get images(): ImageServiceClient {
    return this.connected().images;
  }

  /** `await session.callImages((c) => c.listImages.bind(c), {})` */
  callImages<Req, Res>(pick: (client: ImageServiceClient) => UnaryMethod<Req, Res>, request: Req, minSeconds = 0): Promise<Res> {
    return unary(pick(this.images), request, this.callOptions(minSeconds));
  }

  /** Call options with the --timeout deadline, or `minSeconds` when that is longer and --timeout was not given. */
  callOptions(minSeconds = 0): grpc.CallOptions {
    const { timeoutSeconds, timeoutExplicit } = this.globals;
    const seconds = timeoutExplicit ? timeoutSeconds : Math.max(timeoutSeconds, minSeconds);
    return seconds > 0 ? { deadline: new Date(Date.now() + seconds * 1000) } : {};
  }

  /** `await session.callMigration((c) => c.getMigration.bind(c), { id })` */
  callMigration<Req, Res>(pick: (client: MigrationServiceClient) => UnaryMethod<Req, Res>, request: Req, minSeconds = 0): Promise<Res> {
    return unary(pick(this.migrations), request, this.callOptions(minSeconds));
  }

  /** `await session.call((c) => c.getVm.bind(c), { id })` */
  call<Req, Res>(pick: (client: VmServiceClient) => UnaryMethod<Req, Res>, request: Req, minSeconds = 0): Promise<Res> {
    return unary(pick(this.vms), request, this.callOptions(minSeconds));
  }

  /** Whether the channel ever reached the daemon (READY now); false when no call was made. */
  isConnected(): boolean {
    return this.clients?.vms.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  close(): void {
    this.clients?.close();
    this.clients = undefined;
  }
}
