/** Parsers of cgroup control files. Pure. */

/** cgroup.procs (one pid a line) → pids, ascending. */
export function parseProcs(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b);
}

/** A flat-keyed file (`key value` lines: memory.events, memory.oom_control, memory.stat) → numbers by key. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(-?\d+)\s*$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** A space-separated controller list (cgroup.controllers, cgroup.subtree_control). */
export function parseControllers(text: string): Set<string> {
  return new Set(text.split(/\s+/).filter(Boolean));
}
