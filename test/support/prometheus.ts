/**
 * Debian's `prometheus` package for tests: `promtool check metrics` on an exposition, and a real
 * Prometheus server with its own config and TSDB in a temp dir, scraping given targets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** Pipes `text` into `promtool check metrics`; `problems` is everything it printed. Clean means code 0 and no output. */
export function promtoolCheckMetrics(text: string): Promise<{ code: number | null; problems: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, problems: out.trim() }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(text);
  });
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A Prometheus server of the test's own. */
export class TestPrometheus {
  private constructor(
    readonly dir: string,
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<number | null>,
  ) {}

  /**
   * targets: `host:port` of HTTP servers with /metrics; scraped every second. rules: the YAML of a
   * rule file (recording and alerting rules), evaluated every second.
   */
  static async start(targets: string[], options: { job?: string; rules?: string } = {}): Promise<TestPrometheus> {
    const dir = await mkdtemp(join(tmpdir(), 'vmlet-prom-'));
    if (options.rules !== undefined) await writeFile(join(dir, 'rules.yml'), options.rules);
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      ...(options.rules === undefined ? [] : ['rule_files:', `  - ${join(dir, 'rules.yml')}`]),
      'scrape_configs:',
      `  - job_name: ${options.job ?? 'vmlet'}`,
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n');
    await writeFile(join(dir, 'prometheus.yml'), config);
    const port = await freePort();
    const log = createWriteStream(join(dir, 'prometheus.log'));
    const child = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const p = new TestPrometheus(dir, `http://127.0.0.1:${port}`, child, exited);
    await p.waitReady(30_000);
    return p;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let code: number | null | undefined;
    void this.exited.then((c) => (code = c));
    for (;;) {
      if (code !== undefined) throw new Error(`prometheus exited with ${code}; see ${this.dir}/prometheus.log`);
      const ok = await fetch(`${this.url}/-/ready`).then((r) => r.ok, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`prometheus not ready within ${timeoutMs} ms; see ${this.dir}/prometheus.log`);
      await delay(100);
    }
  }

  /** An instant query; throws on an API error. */
  async query(expr: string): Promise<PromSample[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? res.status}`);
    return body.data!.result;
  }

  /** Polls a query until `accept` likes its result, within a deadline. */
  async waitFor(expr: string, accept: (r: PromSample[]) => boolean = (r) => r.length > 0, timeoutMs = 60_000): Promise<PromSample[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = await this.query(expr);
      if (accept(last)) return last;
      if (Date.now() > deadline) throw new Error(`Prometheus: ${expr} gave ${JSON.stringify(last)} for ${timeoutMs} ms`);
      await delay(250);
    }
  }

  /** Health of the scrape targets (`up`, last error). */
  async targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    const body = (await res.json()) as { data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] } };
    return body.data.activeTargets;
  }

  /** Every rule loaded from the rule file, with its health and, for an alert, its state. */
  async rules(): Promise<{ name: string; type: string; health: string; lastError?: string; state?: string }[]> {
    const res = await fetch(`${this.url}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: { rules: { name: string; type: string; health: string; lastError?: string; state?: string }[] }[] } };
    return body.data.groups.flatMap((g) => g.rules);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
