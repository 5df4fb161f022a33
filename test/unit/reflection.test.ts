import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { fileDescriptorProtos, jsonName, mapEntryName } from '../../src/api/grpc/reflection.js';
import { PROTO_FILES, PROTO_ROOT } from '../../src/api/grpc/proto-options.js';

type Json = Record<string, unknown>;

/** What a reflection client reads from a file: everything but options, comments and source info. */
function essentials(file: Json): Json {
  const fields = (m: Json) =>
    ((m.field as Json[] | undefined) ?? []).map((f) => ({
      name: f.name, number: f.number, label: f.label, type: f.type, typeName: f.typeName, jsonName: f.jsonName, oneofIndex: f.oneofIndex,
    }));
  const message = (m: Json): Json => ({
    name: m.name,
    field: fields(m),
    nestedType: ((m.nestedType as Json[] | undefined) ?? []).map(message),
    mapEntry: (m.options as Json | undefined)?.mapEntry ?? false,
    enumType: ((m.enumType as Json[] | undefined) ?? []).map(enumType),
    oneofDecl: ((m.oneofDecl as Json[] | undefined) ?? []).map((o) => o.name),
  });
  const enumType = (e: Json): Json => ({ name: e.name, value: ((e.value as Json[] | undefined) ?? []).map((v) => [v.name, v.number]) });
  return {
    name: file.name,
    package: file.package,
    dependency: file.dependency ?? [],
    syntax: file.syntax ?? 'proto2',
    messageType: ((file.messageType as Json[] | undefined) ?? []).map(message),
    enumType: ((file.enumType as Json[] | undefined) ?? []).map(enumType),
    service: ((file.service as Json[] | undefined) ?? []).map((s) => ({
      name: s.name,
      method: ((s.method as Json[] | undefined) ?? []).map((m) => [m.name, m.inputType, m.outputType, m.clientStreaming ?? false, m.serverStreaming ?? false]),
    })),
  };
}

const decode = (buf: Uint8Array): Json => descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(buf), { defaults: false }) as Json;

describe('reflection descriptors', () => {
  it('are the files protoc compiles from proto/: names, imports, snake_case fields, JSON names, map entries, streaming', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmlet-protoc-'));
    try {
      const set = join(dir, 'set.bin');
      // /usr/include holds google/protobuf/*.proto (libprotobuf-dev, installed by scripts/setup.sh).
      execFileSync('protoc', [`-I${PROTO_ROOT}`, '-I/usr/include', '--include_imports', `--descriptor_set_out=${set}`, ...PROTO_FILES], { timeout: 30_000 });
      const fromProtoc = (descriptor.FileDescriptorSet.toObject(descriptor.FileDescriptorSet.decode(readFileSync(set)), { defaults: false }).file as Json[]).map(essentials);
      const ours = fileDescriptorProtos(PROTO_FILES.map((name) => ({ name, path: join(PROTO_ROOT, name) }))).map((b) => essentials(decode(b)));
      const byName = (files: Json[]) => Object.fromEntries(files.map((f) => [f.name, f]));
      expect(Object.keys(byName(ours)).sort()).toEqual(['google/protobuf/timestamp.proto', ...PROTO_FILES].sort());
      expect(byName(ours)).toEqual(byName(fromProtoc));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('name JSON fields and map entries as protoc does', () => {
    expect(jsonName('memory_mib')).toBe('memoryMib');
    expect(jsonName('grace_period_seconds')).toBe('gracePeriodSeconds');
    expect(jsonName('id')).toBe('id');
    expect(mapEntryName('labels')).toBe('LabelsEntry');
    expect(mapEntryName('node_labels')).toBe('NodeLabelsEntry');
  });
});
