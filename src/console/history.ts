const NEWLINE = 0x0a;

/**
 * The history a client gets when it attaches: `before` (the end of console.log before vmlet's
 * connection, possibly with one extra leading byte) followed by `recent` (the bytes received
 * since), at most `maxBytes`. When `complete` (nothing came before `before`) and it fits, all of
 * it; otherwise the window was cut, and it starts after the first line break in the window (the
 * byte just before the window, when present, tells whether the window starts a line), so a client
 * does not begin in the middle of a line; a window without a line break is kept whole.
 */
export function joinHistory(before: Buffer, recent: Buffer, maxBytes: number, complete: boolean): Buffer {
  const all = before.length === 0 ? recent : Buffer.concat([before, recent]);
  if (complete && all.length <= maxBytes) return all;
  // The window, plus the byte before it when there is one.
  const withPrevious = all.subarray(Math.max(0, all.length - maxBytes - 1));
  const nl = withPrevious.indexOf(NEWLINE);
  if (nl === -1 || nl === withPrevious.length - 1) return all.subarray(Math.max(0, all.length - maxBytes));
  return withPrevious.subarray(nl + 1);
}
