import * as grpc from '@grpc/grpc-js';
import type { HealthHandlers } from './generated/grpc/health/v1/Health.js';
import type { HealthListResponse } from './generated/grpc/health/v1/HealthListResponse.js';
import { proto } from './proto.js';

/** A service's status as grpc.health.v1 names it (SERVICE_UNKNOWN is Watch's answer for a name never set). */
export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN';

/** List answers RESOURCE_EXHAUSTED beyond this many services, as the health protocol asks of a server. */
const LIST_LIMIT = 100;

type Watcher = (status: ServingStatus) => void;

/**
 * The standard grpc.health.v1.Health service: Check, Watch and List over a status per service
 * name ("" the server as a whole). Its definition comes from the descriptor made at build time,
 * so a start parses no .proto for it.
 */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<Watcher>>();

  constructor(initial: Record<string, ServingStatus> = {}) {
    for (const [name, status] of Object.entries(initial)) this.statuses.set(name, status);
  }

  setStatus(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    for (const watcher of this.watchers.get(service) ?? []) watcher(status);
  }

  addToServer(server: grpc.Server): void {
    server.addService(healthDefinition(), this.handlers());
  }

  private handlers(): HealthHandlers {
    return {
      Check: (call, callback) => {
        const status = this.statuses.get(call.request.service);
        if (status) callback(null, { status });
        else callback({ code: grpc.status.NOT_FOUND, details: `health status unknown for service "${call.request.service}"` });
      },
      Watch: (call) => {
        const name = call.request.service;
        const watcher: Watcher = (status) => void call.write({ status });
        let set = this.watchers.get(name);
        if (!set) this.watchers.set(name, (set = new Set()));
        set.add(watcher);
        call.on('cancelled', () => {
          set.delete(watcher);
          if (set.size === 0 && this.watchers.get(name) === set) this.watchers.delete(name);
        });
        call.write({ status: this.statuses.get(name) ?? 'SERVICE_UNKNOWN' });
      },
      List: (_call, callback) => {
        if (this.statuses.size > LIST_LIMIT) return callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `more than ${LIST_LIMIT} services to list` });
        const statuses: HealthListResponse['statuses'] = {};
        for (const [name, status] of this.statuses) statuses[name] = { status };
        callback(null, { statuses });
      },
    };
  }
}

/** grpc.health.v1.Health's service definition, for a server or a client (e.g. the readiness self-check). */
export const healthDefinition = (): grpc.ServiceDefinition => proto.grpc.health.v1.Health.service;
