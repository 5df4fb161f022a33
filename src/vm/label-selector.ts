/**
 * Kubernetes label syntax and equality-based label selectors (`a=b,c!=d,e,!f`). Pure.
 */
import { invalidArgument } from '../model/errors.js';

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_NAME = 63;
const MAX_PREFIX = 253;

/** Why `key` is not a valid label key (`[prefix/]name`), or undefined when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined) {
    if (prefix.length === 0 || prefix.length > MAX_PREFIX || !prefix.split('.').every((l) => l.length <= 63 && DNS_LABEL_RE.test(l))) {
      return `key prefix "${prefix}" must be a DNS subdomain (lowercase labels of [a-z0-9-] joined by '.', at most ${MAX_PREFIX} characters)`;
    }
  }
  if (name.length === 0 || name.length > MAX_NAME || !NAME_RE.test(name)) {
    return `key name "${name}" must be 1-${MAX_NAME} characters of [A-Za-z0-9-_.], starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined when it is. */
export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > MAX_NAME || !NAME_RE.test(value)) {
    return `value "${value}" must be empty or 1-${MAX_NAME} characters of [A-Za-z0-9-_.], starting and ending with a letter or digit`;
  }
  return undefined;
}

export type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'exists' | 'notexists' };

/** All requirements must hold; no requirements selects everything. */
export interface LabelSelector {
  readonly requirements: readonly Requirement[];
}

const FIELD = 'label_selector';

function checkKey(key: string): string {
  const problem = labelKeyProblem(key);
  if (problem !== undefined) throw invalidArgument(FIELD, problem);
  return key;
}

function parseTerm(raw: string): Requirement {
  const term = raw.trim();
  if (term === '') throw invalidArgument(FIELD, 'empty requirement: requirements are separated by single commas, e.g. "a=b,c!=d"');
  if (term.includes('(') || /\s(in|notin)\s/.test(term)) {
    throw invalidArgument(FIELD, `"${term}": set-based requirements (in, notin) are not supported; use a=b, a==b, a!=b, a or !a`);
  }
  const m = /^([^=!]*?)\s*(==|!=|=)\s*(.*)$/.exec(term);
  if (m) {
    const [, key = '', op, value = ''] = m;
    if (key === '') throw invalidArgument(FIELD, `"${term}": missing key before "${op}"`);
    const problem = labelValueProblem(value);
    if (problem !== undefined) throw invalidArgument(FIELD, problem);
    return { key: checkKey(key), op: op === '!=' ? 'neq' : 'eq', value };
  }
  if (term.startsWith('!')) return { key: checkKey(term.slice(1).trim()), op: 'notexists' };
  return { key: checkKey(term), op: 'exists' };
}

/**
 * Parses an equality-based selector: comma-separated requirements `a=b`, `a==b`, `a!=b`
 * (label absent or different), `a` (label present), `!a` (label absent). Whitespace around
 * keys, operators and values is ignored; an empty or blank string selects everything.
 */
export function parseLabelSelector(s: string): LabelSelector {
  if (s.trim() === '') return { requirements: [] };
  return { requirements: s.split(',').map(parseTerm) };
}

export function matchesSelector(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return sel.requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'eq':
        return has && labels[r.key] === r.value;
      case 'neq':
        return !has || labels[r.key] !== r.value;
    }
  });
}
