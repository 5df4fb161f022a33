import * as grpc from '@grpc/grpc-js';
import type { ConsoleInput } from '../../api/grpc/generated/vmlet/v1/ConsoleInput.js';
import type { ConsoleOutput__Output } from '../../api/grpc/generated/vmlet/v1/ConsoleOutput.js';

/** Ctrl-]: leaves the console, as in telnet and virsh. */
export const ESCAPE_BYTE = 0x1d;
/** After Ctrl-] the daemon is given this long to end the stream before the call is cancelled. */
const LEAVE_GRACE_MS = 2000;

/** The local terminal, as the console verb uses it. */
export interface Terminal {
  input: NodeJS.ReadableStream;
  isTTY: boolean;
  setRaw(raw: boolean): void;
  /** Guest output, byte for byte. */
  output(data: Buffer): void;
  /** vmlet's own messages (stderr). */
  notice(text: string): void;
}

export function processTerminal(): Terminal {
  const stdin = process.stdin;
  return {
    input: stdin,
    isTTY: stdin.isTTY === true,
    setRaw: (raw) => {
      if (stdin.isTTY) stdin.setRawMode(raw);
    },
    output: (data) => void process.stdout.write(data),
    notice: (text) => void process.stderr.write(text),
  };
}

/** Input up to the escape byte, and whether it was there. */
export function splitAtEscape(chunk: Buffer): { data: Buffer; escape: boolean } {
  const at = chunk.indexOf(ESCAPE_BYTE);
  return at === -1 ? { data: chunk, escape: false } : { data: chunk.subarray(0, at), escape: true };
}

type ConsoleCall = grpc.ClientDuplexStream<ConsoleInput, ConsoleOutput__Output>;

/**
 * Joins a Console call and the terminal: raw mode once the daemon accepted the attach, output to
 * the terminal, keystrokes to the guest, Ctrl-] (or `interrupted`) to leave. Resolves 0 when the
 * user left or the VM stopped; rejects with the call's error otherwise. The terminal is always
 * restored before it settles.
 */
export function joinTerminal(call: ConsoleCall, id: string, term: Terminal, interrupted: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    let attached = false;
    let leaving = false;
    let restored = false;
    let cancelTimer: NodeJS.Timeout | undefined;
    const restore = (): void => {
      if (restored) return;
      restored = true;
      term.input.off('data', onInput);
      term.input.off('end', leave);
      term.input.pause();
      if (attached) term.setRaw(false);
      interrupted.removeEventListener('abort', leave);
    };
    const settle = (fn: () => void): void => {
      clearTimeout(cancelTimer);
      restore();
      fn();
    };
    function leave(): void {
      if (leaving) return;
      leaving = true;
      restore();
      call.end();
      cancelTimer = setTimeout(() => call.cancel(), LEAVE_GRACE_MS);
    }
    function onInput(chunk: Buffer | string): void {
      const { data, escape } = splitAtEscape(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      if (data.length > 0) call.write({ data });
      if (escape) leave();
    }

    call.on('metadata', () => {
      if (restored) return;
      attached = true;
      term.setRaw(true);
      term.notice(`Connected to the console of ${id}. Ctrl-] leaves (the guest keeps running).\r\n`);
      term.input.on('data', onInput);
      term.input.on('end', leave);
      term.input.resume();
    });
    call.on('data', (out: ConsoleOutput__Output) => term.output(out.data));
    call.on('error', (err: grpc.ServiceError) => settle(() => (leaving && err.code === grpc.status.CANCELLED ? resolve(0) : reject(err))));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code !== grpc.status.OK) return;
      const done = (): void =>
        settle(() => {
          term.notice(leaving ? '\r\n' : `\r\n[${id} stopped: console closed]\r\n`);
          resolve(0);
        });
      // Output still buffered in the stream comes first.
      if (call.readableEnded) done();
      else call.once('end', done);
    });
    interrupted.addEventListener('abort', leave, { once: true });
    call.write({ id });
  });
}
