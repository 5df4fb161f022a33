import { describe, expect, it } from 'vitest';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { DESCRIPTOR_JSON } from '../../src/api/grpc/generated/descriptor.js';
import { PROTO_LOADER_OPTIONS } from '../../src/api/grpc/proto-options.js';
import { originalName, serviceDefinitions } from '../../src/api/grpc/service-definitions.js';
import type * as grpc from '@grpc/grpc-js';

const json = JSON.parse(DESCRIPTOR_JSON) as protobuf.INamespace;
const ours = serviceDefinitions(json, PROTO_LOADER_OPTIONS);
const theirs = protoLoader.fromJSON(json as Parameters<typeof protoLoader.fromJSON>[0], PROTO_LOADER_OPTIONS);
const root = protobuf.Root.fromJSON(json).resolveAll();

type Value = unknown;

function scalar(type: string, n: number): Value {
  switch (type) {
    case 'string':
      return `s${n}`;
    case 'bytes':
      return Buffer.from([n, n + 1]);
    case 'bool':
      return true;
    case 'double':
    case 'float':
      return n + 0.5;
    default:
      return n + 1; // every integer type, 64-bit ones read as Number (longs: Number)
  }
}

/** A message of `type` with every field set (oneofs: the first member), nested messages to `depth`. */
function filled(type: protobuf.Type, depth: number, n = 1): Record<string, Value> {
  const out: Record<string, Value> = {};
  const skipped = new Set(type.oneofsArray.flatMap((o) => o.fieldsArray.slice(1).map((f) => f.name)));
  for (const field of type.fieldsArray) {
    if (skipped.has(field.name)) continue;
    field.resolve();
    const one = (): Value => {
      if (field.resolvedType instanceof protobuf.Type) return depth > 0 ? filled(field.resolvedType, depth - 1, n + 1) : {};
      if (field.resolvedType instanceof protobuf.Enum) return Object.keys(field.resolvedType.values).at(-1);
      return scalar(field.type, n);
    };
    if (field instanceof protobuf.MapField) out[field.name] = { k1: one(), k2: one() };
    else out[field.name] = field.repeated ? [one(), one()] : one();
  }
  return out;
}

const methodsOf = (defs: Record<string, unknown>, service: string) => defs[service] as Record<string, grpc.MethodDefinition<object, object> & { originalName?: string }>;

describe('service definitions without proto-loader', () => {
  const services = Object.keys(ours);

  it('has every service proto-loader has, with the same methods, paths, streaming and handler names', () => {
    const loaderServices = Object.entries(theirs)
      .filter(([, d]) => !('format' in d))
      .map(([name]) => name);
    expect(services.sort()).toEqual(loaderServices.sort());
    expect(services).toContain('vmlet.v1.VmService');
    for (const service of services) {
      const a = methodsOf(ours, service);
      const b = methodsOf(theirs, service);
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      for (const [name, m] of Object.entries(a)) {
        const l = b[name]!;
        expect([m.path, m.requestStream, m.responseStream, m.originalName]).toEqual([l.path, l.requestStream, l.responseStream, l.originalName]);
      }
    }
  });

  it('encodes and decodes every request and response as proto-loader does', () => {
    let checked = 0;
    for (const service of services) {
      const svc = root.lookupService(service);
      for (const [name, m] of Object.entries(methodsOf(ours, service))) {
        const l = methodsOf(theirs, service)[name]!;
        const method = svc.methods[name]!;
        for (const [type, ourSer, ourDe, theirSer, theirDe] of [
          [method.resolvedRequestType!, m.requestSerialize, m.requestDeserialize, l.requestSerialize, l.requestDeserialize],
          [method.resolvedResponseType!, m.responseSerialize, m.responseDeserialize, l.responseSerialize, l.responseDeserialize],
        ] as const) {
          for (const value of [{}, filled(type, 3)]) {
            const bytes = ourSer(value);
            expect(Buffer.compare(bytes, theirSer(value))).toBe(0);
            expect(ourDe(bytes)).toEqual(theirDe(bytes));
          }
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('decodes with the runtime options: defaults filled in, enums by name, 64-bit integers as numbers', () => {
    const listVms = methodsOf(ours, 'vmlet.v1.VmService').ListVms!;
    const decoded = listVms.responseDeserialize(listVms.responseSerialize({ vms: [{ spec: { id: 'a', memoryMib: 2 ** 40 }, status: { phase: 'PHASE_RUNNING' } }] })) as {
      vms: { spec: { id: string; memoryMib: unknown; vcpus: unknown }; status: { phase: unknown } }[];
    };
    expect(decoded.vms[0]!.spec.id).toBe('a');
    expect(decoded.vms[0]!.spec.memoryMib).toBe(2 ** 40);
    expect(decoded.vms[0]!.spec.vcpus).toBe(0);
    expect(decoded.vms[0]!.status.phase).toBe('PHASE_RUNNING');
  });

  it('refuses an array where a message is due', () => {
    expect(() => methodsOf(ours, 'vmlet.v1.VmService').ListVms!.requestSerialize([] as unknown as object)).toThrow(/got array/);
  });

  it('lowers the first letter of a method name for its handler', () => {
    expect(originalName('ListVms')).toBe('listVms');
    expect(originalName('GetNodeInfo')).toBe('getNodeInfo');
  });
});
