import { describe, expect, it } from 'vitest';
import { ConsoleClient } from '../../src/console/client.js';
import { RecordingSink } from '../support/console-fakes.js';

describe('ConsoleClient', () => {
  it('passes chunks through in order', async () => {
    const sink = new RecordingSink();
    const client = new ConsoleClient(sink, 100);
    client.send(Buffer.from('ab'));
    client.send(Buffer.from('cd'));
    await client.drained();
    expect(sink.text).toBe('abcd');
    expect(client.pendingBytes).toBe(0);
  });

  it('drops a client whose transport does not take its output, with RESOURCE_EXHAUSTED', async () => {
    const sink = new RecordingSink(true);
    const client = new ConsoleClient(sink, 10);
    client.send(Buffer.from('12345'));
    client.send(Buffer.from('67890'));
    expect(client.closed).toBe(false);
    client.send(Buffer.from('x'));
    expect(client.closed).toBe(true);
    const end = await sink.ended;
    expect(end.kind).toBe('fail');
    if (end.kind === 'fail') {
      expect(end.error.code).toBe('RESOURCE_EXHAUSTED');
      expect(end.error.message).toMatch(/too slow: more than 10 bytes of output not taken/);
    }
    // Nothing more is written once dropped.
    client.send(Buffer.from('y'));
    expect(sink.text).toBe('1234567890');
  });

  it('holds live output until the history is released, history first', async () => {
    const sink = new RecordingSink();
    const client = new ConsoleClient(sink, 100);
    client.hold();
    client.send(Buffer.from('live1 '));
    client.send(Buffer.from('live2'));
    expect(sink.text).toBe('');
    client.release(Buffer.from('history '));
    await client.drained();
    expect(sink.text).toBe('history live1 live2');
  });

  it('counts held output against the bound', async () => {
    const sink = new RecordingSink();
    const client = new ConsoleClient(sink, 8);
    client.hold();
    client.send(Buffer.from('12345'));
    client.release(Buffer.from('abcd'));
    expect((await sink.ended).kind).toBe('fail');
  });

  it('tells close listeners once, and a detached client gets no end or failure', async () => {
    const sink = new RecordingSink();
    const client = new ConsoleClient(sink, 8);
    let closes = 0;
    client.whenClosed(() => closes++);
    client.detach();
    client.end();
    client.whenClosed(() => closes++);
    expect(closes).toBe(2);
    const raced = await Promise.race([sink.ended, Promise.resolve('open')]);
    expect(raced).toBe('open');
  });
});
