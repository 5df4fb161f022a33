/** Reading `--authz FILE`: YAML, checked rule by rule. Loaded only when a policy is given. */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { ROLES, type Role } from './roles.js';
import type { Match, Policy } from './policy.js';

const MATCH_KEYS: Record<string, keyof Match> = { cn: 'cn', san_dns: 'sanDns', san_uri: 'sanUri', uid: 'uid', gid: 'gid' };

export class PolicyError extends Error {}

/** Parses and checks a policy; every mistake is reported with the rule's index. */
export function parsePolicy(text: string, source = 'policy'): Policy {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new PolicyError(`${source}: not YAML: ${(err as Error).message}`);
  }
  const rules = (doc as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(rules) || rules.length === 0) throw new PolicyError(`${source}: needs a non-empty "rules:" list`);
  return {
    rules: rules.map((r: unknown, i) => {
      const where = `${source}: rules[${i}]`;
      const { role, match, ...rest } = (r ?? {}) as { role?: unknown; match?: unknown };
      if (Object.keys(rest).length) throw new PolicyError(`${where}: unknown field ${Object.keys(rest).join(', ')} (a rule has role and match)`);
      if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw new PolicyError(`${where}: role must be one of ${ROLES.join(', ')}`);
      if (!match || typeof match !== 'object' || Object.keys(match).length === 0) throw new PolicyError(`${where}: match must name at least one of ${Object.keys(MATCH_KEYS).join(', ')}`);
      const m: Match = {};
      for (const [key, value] of Object.entries(match)) {
        const field = MATCH_KEYS[key];
        if (!field) throw new PolicyError(`${where}: unknown match field ${key} (one of ${Object.keys(MATCH_KEYS).join(', ')})`);
        if (field === 'uid' || field === 'gid') {
          if (!Number.isInteger(value) || (value as number) < 0) throw new PolicyError(`${where}: ${key} must be a non-negative integer`);
          m[field] = value as number;
        } else {
          if (typeof value !== 'string' || value === '') throw new PolicyError(`${where}: ${key} must be a non-empty string`);
          m[field] = value;
        }
      }
      if ((m.uid !== undefined || m.gid !== undefined) && (m.cn !== undefined || m.sanDns !== undefined || m.sanUri !== undefined)) {
        throw new PolicyError(`${where}: uid/gid match unix socket callers and cn/san_* certificate callers; one rule cannot need both`);
      }
      return { role: role as Role, match: m };
    }),
  };
}

export async function loadPolicy(file: string): Promise<Policy> {
  return parsePolicy(await readFile(file, 'utf8'), file);
}
