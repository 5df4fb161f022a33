/** A GUEST_PANICKED event as the labels of kubevirt_vmi_guest_os_panic_total. Pure. */
import type { GuestPanic } from '../model/events.js';

/**
 * KubeVirt's labels: `type` is the panic information's type (`hyper-v`, `s390`, `tdx`) or
 * `unknown`; `bugcheck_code` its first argument in hex (Hyper-V's bugcheck code) or `unknown`.
 */
export function panicLabels(panic: GuestPanic, namespace: string): { namespace: string; name: string; type: string; bugcheck_code: string } {
  const info = panic.detail.info as { type?: unknown; arg1?: unknown } | undefined;
  const type = typeof info?.type === 'string' && info.type ? info.type : 'unknown';
  const arg1 = info?.arg1;
  const code = typeof arg1 === 'number' && Number.isFinite(arg1) && arg1 > 0 ? `0x${BigInt(Math.trunc(arg1)).toString(16)}` : 'unknown';
  return { namespace, name: panic.id, type, bugcheck_code: code };
}
