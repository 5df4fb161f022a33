/** The fields of the daemon's JSON log lines that the benchmarks' breakdowns read. */
export interface LogLine {
  time?: string;
  msg?: string;
  vm?: string;
  method?: string;
  durationMs?: number;
}

/** The JSON lines of a daemon log; anything else (a line cut short by a kill) is skipped. */
export function parseLogLines(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(raw) as LogLine);
    } catch {
      // cut short: skip it
    }
  }
  return lines;
}

/** When a line was logged (ms since the epoch). */
export const loggedAt = (line: LogLine | undefined): number | undefined => (line?.time ? Date.parse(line.time) : undefined);
