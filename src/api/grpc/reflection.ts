/**
 * What server reflection serves: one FileDescriptorProto per .proto file, named and linked the way
 * protoc compiles them (`vmlet/v1/vm.proto` imports `google/protobuf/timestamp.proto`), with the
 * field names as written and protoc's JSON names. proto-loader's own descriptors group types by
 * package under made-up file names without imports, and carry the runtime's camelCase field
 * names: grpcurl then rejects `memory_mib` or cannot load the service at all.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';

/** A .proto file: the name it is imported by, and where it is on disk. */
export interface ProtoSource {
  name: string;
  path: string;
}

// FieldDescriptorProto.Type and .Label numbers (google/protobuf/descriptor.proto).
const SCALAR_TYPES: Record<string, number> = {
  double: 1, float: 2, int64: 3, uint64: 4, int32: 5, fixed64: 6, fixed32: 7, bool: 8, string: 9,
  bytes: 12, uint32: 13, sfixed32: 15, sfixed64: 16, sint32: 17, sint64: 18,
};
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const LABEL_OPTIONAL = 1;
const LABEL_REPEATED = 3;

/** protoc's default json_name: each underscore dropped and the character after it upper-cased. */
export function jsonName(fieldName: string): string {
  let out = '';
  let upper = false;
  for (const c of fieldName) {
    if (c === '_') upper = true;
    else {
      out += upper ? c.toUpperCase() : c;
      upper = false;
    }
  }
  return out;
}

/** The message protoc generates for a map field: `labels` → `LabelsEntry`. */
export function mapEntryName(fieldName: string): string {
  const camel = jsonName(fieldName);
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

interface FieldProto {
  name: string;
  number: number;
  label: number;
  type: number;
  typeName?: string;
  jsonName: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
}

function typeRef(type: string, resolved: protobuf.ReflectionObject | null): Pick<FieldProto, 'type' | 'typeName'> {
  if (resolved instanceof protobuf.Type) return { type: TYPE_MESSAGE, typeName: resolved.fullName };
  if (resolved instanceof protobuf.Enum) return { type: TYPE_ENUM, typeName: resolved.fullName };
  const scalar = SCALAR_TYPES[type];
  if (scalar === undefined) throw new Error(`reflection: field type ${type} is not supported`);
  return { type: scalar };
}

function enumProto(e: protobuf.Enum): object {
  return { name: e.name, value: Object.entries(e.values).map(([name, number]) => ({ name, number })) };
}

function messageProto(type: protobuf.Type): object {
  const nestedType: object[] = [];
  const field = type.fieldsArray.map((f): FieldProto => {
    const base = { name: f.name, number: f.id, jsonName: jsonName(f.name) };
    if (f instanceof protobuf.MapField) {
      const entry = mapEntryName(f.name);
      nestedType.push({
        name: entry,
        field: [
          { name: 'key', number: 1, label: LABEL_OPTIONAL, jsonName: 'key', ...typeRef(f.keyType, null) },
          { name: 'value', number: 2, label: LABEL_OPTIONAL, jsonName: 'value', ...typeRef(f.type, f.resolvedType) },
        ],
        options: { mapEntry: true },
      });
      return { ...base, label: LABEL_REPEATED, type: TYPE_MESSAGE, typeName: `${type.fullName}.${entry}` };
    }
    const proto: FieldProto = { ...base, label: f.repeated ? LABEL_REPEATED : LABEL_OPTIONAL, ...typeRef(f.type, f.resolvedType) };
    if (f.partOf) proto.oneofIndex = type.oneofsArray.indexOf(f.partOf);
    if ((f.options as { proto3_optional?: boolean } | undefined)?.proto3_optional) proto.proto3Optional = true;
    return proto;
  });
  const enumType: object[] = [];
  for (const nested of type.nestedArray) {
    if (nested instanceof protobuf.Type) nestedType.push(messageProto(nested));
    else if (nested instanceof protobuf.Enum) enumType.push(enumProto(nested));
  }
  return { name: type.name, field, nestedType, enumType, oneofDecl: type.oneofsArray.map((o) => ({ name: o.name })) };
}

function serviceProto(service: protobuf.Service): object {
  return {
    name: service.name,
    method: service.methodsArray.map((m) => ({
      name: m.name,
      inputType: m.resolvedRequestType!.fullName,
      outputType: m.resolvedResponseType!.fullName,
      ...(m.requestStream ? { clientStreaming: true } : {}),
      ...(m.responseStream ? { serverStreaming: true } : {}),
    })),
  };
}

/** The bundled file (protobufjs ships google/protobuf/*.proto as JSON) that declares fullName. */
function bundledFile(fullName: string): string {
  const path = fullName.slice(1).split('.');
  for (const [file, json] of Object.entries(protobuf.common as unknown as Record<string, protobuf.INamespace>)) {
    let ns: protobuf.INamespace | undefined = json;
    for (const part of path) ns = (ns?.nested as Record<string, protobuf.INamespace> | undefined)?.[part];
    if (ns) return file;
  }
  throw new Error(`reflection: no file declares ${fullName}`);
}

interface FileProto {
  name: string;
  package: string;
  dependency: string[];
  messageType: object[];
  enumType: object[];
  service: object[];
  syntax: 'proto3';
}

/** FileDescriptorProtos (encoded) of `sources` and of the bundled files they import. */
export function fileDescriptorProtos(sources: readonly ProtoSource[]): Buffer[] {
  const byName = new Map(sources.map((s) => [s.name, s.path]));
  const nameOfPath = new Map(sources.map((s) => [s.path, s.name]));
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => byName.get(target) ?? join(dirname(origin), target);
  root.loadSync(sources.map((s) => s.name), { keepCase: true });
  root.resolveAll();

  const files = new Map<string, FileProto>();
  const fileFor = (name: string, pkg: string): FileProto => {
    let file = files.get(name);
    if (!file) {
      const source = byName.get(name);
      const dependency = source ? protobuf.parse(readFileSync(source, 'utf8'), { keepCase: true }).imports ?? [] : [];
      files.set(name, (file = { name, package: pkg, dependency, messageType: [], enumType: [], service: [], syntax: 'proto3' }));
    }
    return file;
  };
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      if (!(obj instanceof protobuf.Type || obj instanceof protobuf.Enum || obj instanceof protobuf.Service)) {
        if (obj instanceof protobuf.Namespace) visit(obj);
        continue;
      }
      const name = obj.filename ? nameOfPath.get(obj.filename) : bundledFile(obj.fullName);
      if (!name) throw new Error(`reflection: ${obj.fullName} comes from ${obj.filename}, which is not a known source`);
      const file = fileFor(name, ns.fullName.slice(1));
      if (obj instanceof protobuf.Type) file.messageType.push(messageProto(obj));
      else if (obj instanceof protobuf.Enum) file.enumType.push(enumProto(obj));
      else file.service.push(serviceProto(obj));
    }
  };
  visit(root);
  return [...files.values()].map((f) => Buffer.from(descriptor.FileDescriptorProto.encode(descriptor.FileDescriptorProto.fromObject(f)).finish()));
}
