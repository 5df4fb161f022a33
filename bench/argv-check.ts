/** Proof that the comparison is fair: vmlet's QEMU and the raw QEMU run one binary with one argv, paths aside. */

/** Replaces a VM's runtime directory and id, which differ by construction, with placeholders. */
export function normaliseArgv(argv: readonly string[], vmRunDir: string, id: string): string[] {
  return argv.map((a) => a.replaceAll(vmRunDir, '<vm-run-dir>').replaceAll(id, '<id>'));
}

/** undefined when equal; otherwise where they first differ. */
export function argvDifference(a: readonly string[], b: readonly string[]): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return `argument ${i}: vmlet ${JSON.stringify(a[i])} vs raw ${JSON.stringify(b[i])}`;
  }
  return undefined;
}
