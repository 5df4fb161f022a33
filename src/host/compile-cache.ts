/**
 * V8's compile cache for vmlet's own modules and its dependencies: a restarted daemon (after a
 * crash or an upgrade, with its guests running and busy) reads compiled code instead of parsing
 * every module again, which is most of the time to its first answer. Node keeps the cache in
 * NODE_COMPILE_CACHE, else under the temp dir, keyed by file content and Node version; a stale
 * or unwritable cache only costs the speed-up. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
import module from 'node:module';

module.enableCompileCache?.();

/**
 * Writes what was compiled so far: Node does so only at a clean exit, and a daemon is often
 * ended by a kill that leaves it none. Called once the daemon serves, when its modules are loaded.
 */
export function saveCompileCache(): void {
  module.flushCompileCache?.();
}
