/** TCP listen addresses (`HOST:PORT`, `[v6]:PORT`) and the TLS files that go with them. */

/** PEM files of a node's identity: its certificate and key, and the CA that signs its peers. */
export interface TlsConfig {
  cert: string;
  key: string;
  ca: string;
}

/** The host of `HOST:PORT` (IPv4, names and [v6]); undefined when there is no port. */
export function hostOf(address: string): string | undefined {
  const i = address.lastIndexOf(':');
  return i <= 0 ? undefined : address.slice(0, i);
}

const isLoopbackHost = (host: string): boolean =>
  host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** True when `HOST:PORT` names a loopback host. */
export function isLoopbackAddress(address: string): boolean {
  const host = hostOf(address);
  return host !== undefined && isLoopbackHost(host);
}
