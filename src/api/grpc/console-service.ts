import { Metadata, type ServerDuplexStream, type ServerWritableStream } from '@grpc/grpc-js';
import { invalidArgument } from '../../model/errors.js';
import type { VmServiceHandlers } from './generated/vmlet/v1/VmService.js';
import type { ConsoleInput__Output } from './generated/vmlet/v1/ConsoleInput.js';
import type { ConsoleOutput } from './generated/vmlet/v1/ConsoleOutput.js';
import type { GetConsoleLogRequest__Output } from './generated/vmlet/v1/GetConsoleLogRequest.js';
import { validateVmId } from '../../vm/validate.js';
import type { ConsoleSink } from '../../console/client.js';
import type { ConsoleHub } from '../../console/hub.js';
import { finishStreamingCall, type CallContext } from './observe.js';

type ConsoleCall = ServerDuplexStream<ConsoleInput__Output, ConsoleOutput>;
type ConsoleLogCall = ServerWritableStream<GetConsoleLogRequest__Output, ConsoleOutput>;

/** The Console and GetConsoleLog handlers of VmService, over the console hub. */
export function consoleHandlers(hub: ConsoleHub, ctx: CallContext): Pick<VmServiceHandlers, 'Console' | 'GetConsoleLog'> {
  return {
    Console: (call) => finishStreamingCall(ctx, 'Console', call, (setVm) => attachConsole(hub, call, setVm)),
    GetConsoleLog: (call) =>
      finishStreamingCall(ctx, 'GetConsoleLog', call, (setVm) => {
        setVm(call.request.id);
        return streamConsoleLog(hub, call);
      }),
  };
}

/** A sink over a gRPC stream; the promise settles when the client is done. */
function grpcSink(call: ConsoleCall | ConsoleLogCall, resolve: () => void, reject: (err: unknown) => void): ConsoleSink {
  return {
    write: (chunk, flushed) => void call.write({ data: chunk }, () => flushed()),
    end: resolve,
    fail: reject,
  };
}

/**
 * Console: the first input names the VM; the output is the history tail, then live output until
 * the VM stops (status OK). Later inputs go to the guest. A client that half-closes is done.
 */
function attachConsole(hub: ConsoleHub, call: ConsoleCall, setVm: (id: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = hub.client(grpcSink(call, resolve, reject));
    let session: ReturnType<ConsoleHub['attachable']> | undefined;
    let refused = false;
    const refuse = (err: unknown): void => {
      refused = true;
      client.detach();
      reject(err);
    };
    const leave = (): void => {
      client.detach();
      resolve();
    };
    call.on('cancelled', leave);
    call.on('error', () => client.detach());
    call.on('end', () => {
      if (!session) refuse(invalidArgument('id', 'the first ConsoleInput must name the VM'));
      else leave();
    });
    call.on('data', (input: ConsoleInput__Output) => {
      if (refused) return;
      if (!session) {
        try {
          setVm(input.id);
          session = hub.attachable(validateVmId(input.id, 'id'));
        } catch (err) {
          refuse(err);
          return;
        }
        // Headers now: the client knows it is attached before any output arrives.
        call.sendMetadata(new Metadata());
        session.attach(client).catch(refuse);
      }
      if (input.data.length > 0) session.input(input.data);
    });
  });
}

/** GetConsoleLog: the log (or its last lines), then with follow live output until the VM stops. */
function streamConsoleLog(hub: ConsoleHub, call: ConsoleLogCall): Promise<void> {
  const { id, tailLines, follow } = call.request;
  validateVmId(id, 'id');
  return new Promise((resolve, reject) => {
    const client = hub.client(grpcSink(call, resolve, reject));
    call.on('cancelled', () => {
      client.detach();
      resolve();
    });
    hub.streamLog({ id, tailLines, follow }, client).catch((err: unknown) => {
      client.detach();
      reject(err);
    });
  });
}
