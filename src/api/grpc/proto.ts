import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as VmProto } from './generated/vm.js';
import type { ProtoGrpcType as MigrationProto } from './generated/migration.js';
import type { ProtoGrpcType as ImageProto } from './generated/image.js';
import { DESCRIPTOR_JSON } from './generated/descriptor.js';
import { PROTO_LOADER_OPTIONS } from './proto-options.js';

// The protos as parsed at build time (scripts/gen-proto-types.mjs): no .proto parse at start.
const packageDefinition = protoLoader.fromJSON(JSON.parse(DESCRIPTOR_JSON) as Parameters<typeof protoLoader.fromJSON>[0], PROTO_LOADER_OPTIONS);

type Loaded = VmProto & MigrationProto & ImageProto;
export const proto = grpc.loadPackageDefinition(packageDefinition) as unknown as Loaded;
export const vmletV1 = proto.vmlet.v1;
