/** The roles of ../shared/API.md ("Callers and roles"). */
export const ROLES = ['admin', 'operator', 'viewer', 'peer'] as const;
export type Role = (typeof ROLES)[number];

const VIEWER_METHODS = ['GetVm', 'ListVms', 'WatchVms', 'GetNodeInfo', 'GetMigration', 'WatchMigration', 'ListImages', 'GetImage', 'GetConsoleLog'];
const OPERATOR_METHODS = [
  ...VIEWER_METHODS,
  'CreateVm', 'StartVm', 'StopVm', 'PauseVm', 'ResumeVm', 'RebootVm', 'DeleteVm', 'AttachNic', 'DetachNic', 'Console',
  'MigrateVm', 'CancelMigration',
  'ImportImage', 'CancelImport', 'DeleteImage',
];
const PEER_METHODS = ['PrepareIncoming', 'FinishIncoming', 'AbortIncoming'];

const ALLOWED: Record<Role, ReadonlySet<string> | 'all'> = {
  admin: 'all',
  operator: new Set(OPERATOR_METHODS),
  viewer: new Set(VIEWER_METHODS),
  peer: new Set(PEER_METHODS),
};

/** Whether `role` may call `method` (the RPC's name, e.g. "StopVm"). */
export function mayCall(role: Role, method: string): boolean {
  const allowed = ALLOWED[role];
  return allowed === 'all' || allowed.has(method);
}
