import { describe, expect, it } from 'vitest';
import { ESCAPE_BYTE, splitAtEscape } from '../../src/cli/verbs/console-terminal.js';

describe('vmlet console: the escape key', () => {
  it('is Ctrl-] (0x1d)', () => {
    expect(ESCAPE_BYTE).toBe(0x1d);
  });

  it('passes input without it through whole', () => {
    expect(splitAtEscape(Buffer.from('ls -l\r'))).toEqual({ data: Buffer.from('ls -l\r'), escape: false });
  });

  it('sends what came before it, then leaves; what follows it is dropped', () => {
    expect(splitAtEscape(Buffer.from('exit\r\x1dmore'))).toEqual({ data: Buffer.from('exit\r'), escape: true });
    expect(splitAtEscape(Buffer.from('\x1d'))).toEqual({ data: Buffer.alloc(0), escape: true });
  });
});
