/**
 * Kubernetes label syntax and equality-based label selectors (`a=b,c!=d,e,!f`). Pure.
 */
import { invalidArgument } from '../model/errors.js';
import { MAX_LABEL_SELECTOR_BYTES, boundExceeded } from '../model/bounds.js';

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

const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;

/**
 * `key op value` of a trimmed term, in one pass: the key runs to the first '=' or '!', which must
 * start `==`, `!=` or `=`; whitespace around the operator is dropped. The same split the former
 * regular expression made, whose lazy key against `\s*` backtracked quadratically on long terms.
 */
function splitOperator(term: string): { key: string; op: string; value: string } | undefined {
  let i = 0;
  while (i < term.length && term[i] !== '=' && term[i] !== '!') i++;
  if (i === term.length) return undefined;
  let op: string;
  if (term.startsWith('==', i)) op = '==';
  else if (term.startsWith('!=', i)) op = '!=';
  else if (term[i] === '=') op = '=';
  else return undefined;
  const value = term.slice(i + op.length).trimStart();
  // The regular expression's `.` stopped at line terminators: such a term had no operator.
  if (LINE_TERMINATOR.test(value)) return undefined;
  return { key: term.slice(0, i).trimEnd(), op, value };
}

function parseTerm(raw: string): Requirement {
  const term = raw.trim();
  if (term === '') throw invalidArgument(FIELD, 'empty requirement: requirements are separated by single commas, e.g. "a=b,c!=d"');
  if (term.includes('(') || /\s(in|notin)\s/.test(term)) {
    throw invalidArgument(FIELD, `"${term}": set-based requirements (in, notin) are not supported; use a=b, a==b, a!=b, a or !a`);
  }
  const m = splitOperator(term);
  if (m) {
    const { key, op, value } = m;
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
  // Each UTF-16 unit is at least one UTF-8 byte: a long string is refused before it is encoded.
  if (s.length > MAX_LABEL_SELECTOR_BYTES || Buffer.byteLength(s) > MAX_LABEL_SELECTOR_BYTES) {
    throw boundExceeded('label_selector_size', 'INVALID_ARGUMENT', `${FIELD}: is ${Buffer.byteLength(s)} bytes long: at most ${MAX_LABEL_SELECTOR_BYTES}`);
  }
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
