import protobuf from 'protobufjs';

/**
 * A message already in wire form. The services' serializers send its bytes as they are
 * (service-definitions.ts), so a handler can answer with bytes it kept from an earlier call.
 */
export class EncodedMessage {
  constructor(readonly bytes: Buffer) {}

  /** This message where a handler's type wants the decoded shape: the serializer takes either. */
  as<T>(): T {
    return this as unknown as T;
  }
}

/** The wire form of a message whose one field is `repeated <message> = field`, from each element's wire form. */
export function repeatedMessage(field: number, elements: readonly Uint8Array[]): EncodedMessage {
  const writer = protobuf.Writer.create();
  for (const element of elements) writer.uint32((field << 3) | 2).bytes(element);
  // protobufjs writes into a Buffer on Node.
  return new EncodedMessage(writer.finish() as Buffer);
}
