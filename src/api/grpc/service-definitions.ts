/**
 * gRPC service definitions from the protos' JSON (made at build time), with protobufjs alone.
 * @grpc/proto-loader's fromJSON makes the same methods and also a descriptor of every message,
 * which only reflection would read and vmlet's reflection makes its own (reflection.ts): at every
 * start of the daemon, work that no call uses. Messages are encoded and decoded as proto-loader
 * does with the same options, so the generated types still describe them.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Options } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { EncodedMessage } from './encoded.js';

type Serialize = (value: object) => Buffer;
type Deserialize = (bytes: Buffer) => object;

/** grpc-js's name for a method's JavaScript handler: its rpc name with the first letter lowered. */
export function originalName(rpc: string): string {
  return rpc.charAt(0).toLowerCase() + rpc.slice(1);
}

function serializer(type: protobuf.Type): Serialize {
  return (value) => {
    if (value instanceof EncodedMessage) return value.bytes;
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    // protobufjs writes into a Buffer on Node.
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
}

function deserializer(type: protobuf.Type, options: Options): Deserialize {
  return (bytes) => type.toObject(type.decode(bytes), options);
}

function methodDefinition(service: string, method: protobuf.Method, options: Options): grpc.MethodDefinition<object, object> & { originalName: string } {
  const request = method.resolvedRequestType!;
  const response = method.resolvedResponseType!;
  return {
    path: `/${service}/${method.name}`,
    requestStream: method.requestStream === true,
    responseStream: method.responseStream === true,
    requestSerialize: serializer(request),
    requestDeserialize: deserializer(request, options),
    responseSerialize: serializer(response),
    responseDeserialize: deserializer(response, options),
    originalName: originalName(method.name),
  };
}

function* servicesOf(ns: protobuf.NamespaceBase): Generator<protobuf.Service> {
  for (const nested of ns.nestedArray) {
    // A Service is a Namespace too, but nests only its methods.
    if (nested instanceof protobuf.Service) yield nested;
    else if (nested instanceof protobuf.Namespace) yield* servicesOf(nested);
  }
}

/** The descriptor's types, every reference resolved. */
export function protoRoot(json: protobuf.INamespace): protobuf.Root {
  const root = protobuf.Root.fromJSON(json);
  root.resolveAll();
  return root;
}

/** Every service of the descriptor by its full name ("vmlet.v1.VmService"), as grpc.loadPackageDefinition takes them. */
export function serviceDefinitions(json: protobuf.INamespace | protobuf.Root, options: Options): Record<string, grpc.ServiceDefinition> {
  const root = json instanceof protobuf.Root ? json : protoRoot(json);
  const out: Record<string, grpc.ServiceDefinition> = {};
  for (const service of servicesOf(root)) {
    const name = service.fullName.replace(/^\./, '');
    out[name] = Object.fromEntries(service.methodsArray.map((m) => [m.name, methodDefinition(name, m, options)]));
  }
  return out;
}
