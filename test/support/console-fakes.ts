/** Fakes for console unit tests: a VM source for ConsoleHub and sinks that record what a client got. */
import { EventEmitter } from 'node:events';
import { notFound, type VmletError } from '../../src/model/errors.js';
import type { ConsoleSink } from '../../src/console/client.js';
import type { ConsoleVmSource } from '../../src/console/hub.js';
import type { ConsolePaths } from '../../src/console/session.js';
import type { VmChange } from '../../src/model/events.js';
import type { Phase, Vm } from '../../src/model/vm.js';

/** VMs whose phase the test sets; emits 'change' like VmManager. */
export class FakeVms extends EventEmitter<{ change: [VmChange] }> implements ConsoleVmSource {
  private readonly vms = new Map<string, { vm: Vm; paths: ConsolePaths }>();

  set(id: string, paths: ConsolePaths, phase: Phase, pid = 4242): void {
    const vm: Vm = {
      spec: { id, labels: {}, vcpus: 1, memoryMib: 128, disks: [], nics: [] },
      status: { phase, reason: '', pid, nics: [], disks: [], accelerator: 'tcg', createdAt: '', lastTransitionAt: '', generation: 1 },
    };
    const known = this.vms.has(id);
    this.vms.set(id, { vm, paths });
    this.emit('change', { type: known ? 'MODIFIED' : 'ADDED', vm });
  }

  remove(id: string): void {
    const entry = this.vms.get(id);
    if (!entry) return;
    this.vms.delete(id);
    this.emit('change', { type: 'DELETED', vm: entry.vm });
  }

  record(id: string): { status: { phase: Phase; pid: number }; paths: ConsolePaths } {
    const entry = this.vms.get(id);
    if (!entry) throw notFound(`VM ${id}`);
    return { status: entry.vm.status, paths: entry.paths };
  }

  list(): Vm[] {
    return [...this.vms.values()].map((e) => e.vm);
  }
}

export type SinkEnd = { kind: 'end' } | { kind: 'fail'; error: VmletError };

/** A sink whose transport takes everything at once (or, with `stuck`, never takes anything). */
export class RecordingSink implements ConsoleSink {
  chunks: Buffer[] = [];
  readonly ended: Promise<SinkEnd>;
  private finish!: (end: SinkEnd) => void;
  private waiters: { pred: (text: string) => boolean; resolve: () => void }[] = [];

  constructor(private readonly stuck = false) {
    this.ended = new Promise((resolve) => (this.finish = resolve));
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  get text(): string {
    return this.bytes.toString('latin1');
  }

  write(chunk: Buffer, flushed: () => void): void {
    this.chunks.push(chunk);
    if (!this.stuck) flushed();
    const text = this.text;
    this.waiters = this.waiters.filter((w) => (w.pred(text) ? (w.resolve(), false) : true));
  }
  end(): void {
    this.finish({ kind: 'end' });
  }
  fail(error: VmletError): void {
    this.finish({ kind: 'fail', error });
  }

  /** Resolves once what arrived satisfies `pred`; rejects after `timeoutMs`. */
  until(pred: string | ((text: string) => boolean), timeoutMs = 10_000): Promise<void> {
    const test = typeof pred === 'string' ? (t: string) => t.includes(pred) : pred;
    if (test(this.text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sink: not seen within ${timeoutMs} ms; got ${JSON.stringify(this.text.slice(-300))}`)), timeoutMs);
      this.waiters.push({ pred: test, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

/** Numbered lines "L000001\n"… that a test can check for gaps and repeats. */
export const line = (n: number): string => `L${String(n).padStart(6, '0')}\n`;

/** The numbers of the lines in `text`; throws on anything that is not a whole numbered line. */
export function lineNumbers(text: string): number[] {
  const lines = text.split('\n');
  if (lines.pop() !== '') throw new Error(`text does not end with a line break: ${JSON.stringify(text.slice(-40))}`);
  return lines.map((l) => {
    const m = /^L(\d{6})$/.exec(l);
    if (!m) throw new Error(`not a numbered line: ${JSON.stringify(l)}`);
    return Number(m[1]);
  });
}

/** True when the numbers run from `first` to `last` by one, with no gap or repeat. */
export function isRun(numbers: number[], first: number, last: number): boolean {
  return numbers.length === last - first + 1 && numbers.every((n, i) => n === first + i);
}
