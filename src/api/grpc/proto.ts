import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as VmProto } from './generated/vm.js';
import type { ProtoGrpcType as MigrationProto } from './generated/migration.js';
import type { ProtoGrpcType as ImageProto } from './generated/image.js';
import { PROTO_FILES, PROTO_LOADER_OPTIONS, PROTO_ROOT } from './proto-options.js';

const packageDefinition = protoLoader.loadSync(PROTO_FILES, { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });

type Loaded = VmProto & MigrationProto & ImageProto;
export const proto = grpc.loadPackageDefinition(packageDefinition) as unknown as Loaded;
export const vmletV1 = proto.vmlet.v1;
