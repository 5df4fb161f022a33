import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Wakes a waiter when a path is created, removed or renamed (inotify on its directory), so a
 * caller waiting for a file to appear does not have to poll. A change that happens while nobody
 * waits is remembered for the next wait. If the directory cannot be watched (inotify limits),
 * every wait simply runs to its timeout: the caller then degrades to polling.
 */
export class NameWatch {
  private readonly watcher: FSWatcher | undefined;
  private changed = false;
  private wake: (() => void) | undefined;

  constructor(path: string) {
    const name = basename(path);
    try {
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.signal();
      });
      this.watcher.on('error', () => this.signal());
    } catch {
      this.watcher = undefined;
    }
  }

  /** Resolves at the next change of the path (or at once if one happened since the last wait), or after timeoutMs. */
  next(timeoutMs: number): Promise<void> {
    if (this.changed) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        this.changed = false;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.wake = done;
    });
  }

  close(): void {
    this.watcher?.close();
    this.wake?.();
  }

  private signal(): void {
    if (this.wake) this.wake();
    else this.changed = true;
  }
}
