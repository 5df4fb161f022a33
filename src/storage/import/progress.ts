/**
 * Reads `qemu-img convert -p` output: it rewrites one line, `    (12.34/100%)\r`, as it goes.
 * Feed it stdout as it comes (pieces may split a figure); it says each new percentage once.
 */
export class QemuImgProgress {
  private pending = '';
  private last = -1;

  /** The latest complete percentage in `text` (with what came before), or undefined when none is new. */
  push(text: string): number | undefined {
    this.pending += text;
    let found: number | undefined;
    for (const m of this.pending.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)) found = Number(m[1]);
    const cut = this.pending.lastIndexOf(')');
    if (cut >= 0) this.pending = this.pending.slice(cut + 1);
    if (this.pending.length > 64) this.pending = this.pending.slice(-64);
    if (found === undefined || found === this.last) return undefined;
    this.last = found;
    return found;
  }
}
