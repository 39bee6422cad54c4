/**
 * Kernel receive-queue drops of a runtime-path UDP listener, from Linux's /proc/net/udp (udp6): the
 * runtimes' socket APIs give no file descriptor and no drop count, but the kernel lists every UDP socket
 * of the network namespace with its `drops` column (sk_drops, what SO_RXQ_OVFL reports). Read when the
 * status or metrics ask, never per datagram. Elsewhere than Linux, or when several sockets share the port
 * (SO_REUSEPORT: workers), the count is not attributable and is reported as unknown (null).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import type { SocketAddress } from "../../core/address.ts";

/** The /proc/net/udp hex form of an IPv4 address (host byte order: little-endian on x86 and arm64). */
function hexIpv4(ip: string): string {
  return ip.split(".").reverse().map((o) => Number(o).toString(16).padStart(2, "0")).join("").toUpperCase();
}

/**
 * The drops of the one unconnected UDP socket bound to `local` (its bound address and port), or null when
 * there is not exactly one such socket or /proc cannot be read.
 */
export function procUdpDrops(local: SocketAddress): number | null {
  let text: string;
  try {
    text = readFileSync(local.family === 4 ? "/proc/net/udp" : "/proc/net/udp6", "utf8");
  } catch {
    return null;
  }
  const port = local.port.toString(16).toUpperCase().padStart(4, "0");
  const ip = local.family === 4 ? hexIpv4(local.ip) : null;
  let found: number | null = null;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const [addr, lport] = f[1].split(":");
    if (lport !== port || !f[2].endsWith(":0000")) continue;
    if (ip !== null && addr !== ip && addr !== "00000000") continue;
    if (found !== null) return null; // shared port (SO_REUSEPORT): not this socket's alone
    const drops = Number(f[f.length - 1]);
    if (!Number.isFinite(drops)) return null;
    found = drops;
  }
  return found;
}
