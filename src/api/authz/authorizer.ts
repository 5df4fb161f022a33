import { VmletError } from '../../model/errors.js';
import type { Logger } from '../../host/log.js';
import { describeIdentity, identityOf, type CallPeer, type CallerIdentity } from './identity.js';
import { roleByPolicy, type Policy } from './policy.js';
import { mayCall, type Role } from './roles.js';

export interface AuthorizerOptions {
  /** `--authz FILE`; without it, see roleOf. */
  policy: Policy | undefined;
  /** The group that owns the unix socket: its members are admin without a policy. */
  socketGid: number;
  /** `--insecure-tcp`: plaintext TCP callers are trusted as admin. */
  insecureTcp: boolean;
  logger: Logger;
  /** Told about every refused call: metrics hook. */
  onDenied?: (method: string, role: string) => void;
}

/**
 * Decides a caller's role and whether it may call a method. A unix socket caller is admin
 * when it is root or (without a policy) in the socket's group; root keeps admin under a policy
 * too, since it could read the node's keys anyway. A certificate caller has only the role a
 * policy gives it: TCP requires a policy.
 */
export class Authorizer {
  private readonly roles = new WeakMap<object, Role>();

  constructor(private readonly o: AuthorizerOptions) {}

  roleOf(id: CallerIdentity): Role | undefined {
    const byPolicy = this.o.policy ? roleByPolicy(this.o.policy, id) : undefined;
    if (byPolicy) return byPolicy;
    switch (id.kind) {
      case 'unix':
        return id.uid === 0 || (!this.o.policy && id.gids.includes(this.o.socketGid)) ? 'admin' : undefined;
      case 'plaintext-tcp':
        return this.o.insecureTcp ? 'admin' : undefined;
      case 'unknown':
        // A unix socket caller whose credentials could not be read: only the socket's file
        // mode let it in, which is the whole rule without a policy.
        return this.o.policy ? undefined : 'admin';
      default:
        return undefined;
    }
  }

  /** The caller's role if it may call `method`; else PERMISSION_DENIED, logged and counted. */
  authorize(method: string, call: CallPeer): Role {
    const id = identityOf(call);
    const role = this.roleOf(id);
    if (role && mayCall(role, method)) {
      this.roles.set(call, role);
      return role;
    }
    const who = describeIdentity(id);
    this.o.onDenied?.(method, role ?? 'none');
    this.o.logger.warn({ method, caller: who, role: role ?? 'none' }, 'gRPC call denied');
    const why = role ? `role ${role} may not call ${method}` : this.o.policy ? 'no rule of the --authz policy matches it' : 'callers over TCP need a role from an --authz policy';
    throw new VmletError('PERMISSION_DENIED', `${who}: ${why}`);
  }

  /** The role authorize gave this call. */
  roleOfCall(call: object): Role | undefined {
    return this.roles.get(call);
  }
}
