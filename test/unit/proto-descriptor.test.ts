import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { proto } from '../../src/api/grpc/proto.js';
import { PROTO_FILES, PROTO_LOADER_OPTIONS, PROTO_ROOT } from '../../src/api/grpc/proto-options.js';

type Services = Record<string, { service?: grpc.ServiceDefinition }>;

/** The protos parsed from their text, as the runtime did before it read the build's JSON. */
const fromText = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_FILES, { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] })) as unknown as { vmlet: { v1: Services } };
const fromJson = (proto as unknown as { vmlet: { v1: Services } }).vmlet.v1;

const services = (ns: Services): string[] => Object.keys(ns).filter((k) => ns[k]?.service).sort();

describe('the build-time proto descriptor (generated/descriptor.ts)', () => {
  it('serves the same services and methods as the .proto files say', () => {
    expect(services(fromJson)).toEqual(services(fromText.vmlet.v1));
    expect(services(fromJson)).toContain('VmService');
    for (const name of services(fromText.vmlet.v1)) {
      const text = fromText.vmlet.v1[name]!.service!;
      const json = fromJson[name]!.service!;
      expect(Object.values(json).map((m) => [m.path, m.requestStream, m.responseStream])).toEqual(Object.values(text).map((m) => [m.path, m.requestStream, m.responseStream]));
    }
  });

  it('encodes and decodes a VM with labels, enums, a oneof and timestamps to the same bytes', () => {
    const vm = {
      spec: {
        id: 'web-1',
        labels: { app: 'web' },
        vcpus: 2,
        memoryMib: 512,
        disks: [{ name: 'root', imagePath: '/var/lib/vmlet/images/a.qcow2', overlay: true, format: 'qcow2', bus: 'DISK_BUS_SATA' }],
        nics: [{ name: 'net0', bridge: 'br0', model: 'NIC_MODEL_E1000E' }],
      },
      status: { phase: 'PHASE_RUNNING', pid: 42, createdAt: { seconds: 1700000000, nanos: 5 } },
    };
    const method = (ns: Services) => ns.VmService!.service!.GetVm!;
    const bytes = method(fromJson).responseSerialize(vm);
    expect(bytes).toEqual(method(fromText.vmlet.v1).responseSerialize(vm));
    expect(bytes.length).toBeGreaterThan(40);
    expect(method(fromJson).responseDeserialize(bytes)).toEqual(method(fromText.vmlet.v1).responseDeserialize(bytes));
  });
});
