import type { Role } from './roles.js';
import type { CallerIdentity } from './identity.js';

/** One rule of `--authz FILE`: every field of `match` must hold. */
export interface Match {
  cn?: string;
  sanDns?: string;
  sanUri?: string;
  uid?: number;
  gid?: number;
}
export interface Rule {
  role: Role;
  match: Match;
}
export interface Policy {
  rules: Rule[];
}

/** Whether the policy has rules for unix socket callers (which need SO_PEERCRED). */
export const needsPeerCredentials = (p: Policy): boolean => p.rules.some((r) => r.match.uid !== undefined || r.match.gid !== undefined);

function matches(m: Match, id: CallerIdentity): boolean {
  if (m.uid !== undefined || m.gid !== undefined) {
    if (id.kind !== 'unix') return false;
    return (m.uid === undefined || m.uid === id.uid) && (m.gid === undefined || id.gids.includes(m.gid));
  }
  if (id.kind !== 'certificate') return false;
  return (m.cn === undefined || m.cn === id.cn) && (m.sanDns === undefined || id.sanDns.includes(m.sanDns)) && (m.sanUri === undefined || id.sanUri.includes(m.sanUri));
}

/** The role of the first rule that matches, if any. */
export function roleByPolicy(p: Policy, id: CallerIdentity): Role | undefined {
  return p.rules.find((r) => matches(r.match, id))?.role;
}
