/**
 * Which addresses may be a backend: a unicast destination with a real port. Used for configured backends
 * and for addresses an external resolver (Redis) hands us, which may be anything.
 *
 * @module
 */

import { classifyIp, parseIp, type SocketAddress } from "./address.ts";

/** Returns null when `address` can be a backend, else why not. */
export function checkBackendAddress(address: SocketAddress): string | null {
  if (address.port < 1 || address.port > 65535 || !Number.isInteger(address.port)) {
    return `port ${address.port} is not a destination port`;
  }
  const ip = parseIp(address.ip);
  if (ip === null) return `"${address.ip}" is not an IP address`;
  const cls = classifyIp(ip);
  if (cls === "unspecified" || cls === "multicast" || cls === "broadcast") return `${cls} address`;
  return null;
}
