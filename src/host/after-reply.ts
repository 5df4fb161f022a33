import { setImmediate as nextLoopTurn } from 'node:timers/promises';

/**
 * Resolves once a gRPC reply given in the current loop turn is on the wire, trailers included.
 * grpc-js writes a unary reply's headers and message in this turn's check phase, and its trailers
 * (the status, which the client waits for) only in the next turn's, once the message's write has
 * completed. Native immediates run before JavaScript ones in a check phase, so the second
 * JavaScript immediate comes after the trailers. Work that the caller does not wait for (status
 * files) goes here, so that it does not hold up the reply's last frame.
 */
export async function afterReply(): Promise<void> {
  await nextLoopTurn();
  await nextLoopTurn();
}
