import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import type { INamespace } from 'protobufjs';
import type { ProtoGrpcType as VmProto } from './generated/vm.js';
import type { ProtoGrpcType as MigrationProto } from './generated/migration.js';
import type { ProtoGrpcType as ImageProto } from './generated/image.js';
import type { ProtoGrpcType as HealthProto } from './generated/health.js';
import { DESCRIPTOR_JSON } from './generated/descriptor.js';
import { PROTO_LOADER_OPTIONS } from './proto-options.js';
import { protoRoot, serviceDefinitions } from './service-definitions.js';

// The protos as parsed at build time (scripts/gen-proto-types.mjs): no .proto parse at start.
const root = protoRoot(JSON.parse(DESCRIPTOR_JSON) as INamespace);
const definitions = serviceDefinitions(root, PROTO_LOADER_OPTIONS);

/** A message type by its full name ("vmlet.v1.Vm"), for encoding outside a call (vm-wire.ts). */
export const messageType = (name: string): protobuf.Type => root.lookupType(name);

type Loaded = VmProto & MigrationProto & ImageProto & HealthProto;
/** The services' client constructors and definitions (the generated types also name messages, which are not here). */
export const proto = grpc.loadPackageDefinition(definitions) as unknown as Loaded;
export const vmletV1 = proto.vmlet.v1;
