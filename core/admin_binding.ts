/**
 * The one rule about where the admin API may listen: without a token, only on loopback. It is part of the
 * config's validation (core/config/build.ts), so `ferry check`, a reload and every API edit refuse what the
 * shell would refuse to start with; the shell checks it again before binding.
 *
 * @module
 */

import { classifyIp, formatSocketAddress, parseIp, type SocketAddress } from "./address.ts";

/**
 * Why the admin API must not listen on `listen` with `token`, or null when it may: an empty token (auth off)
 * is allowed only on a loopback address (127.0.0.0/8, ::1, or IPv4-mapped loopback).
 */
export function checkAdminBinding(listen: SocketAddress, token: string): string | null {
  if (token !== "") return null;
  const ip = parseIp(listen.ip);
  if (ip !== null && classifyIp(ip) === "loopback") return null;
  return `the admin API would listen on ${formatSocketAddress(listen)} with no token: ` +
    "set admin.token, or listen on a loopback address (127.0.0.1 or [::1])";
}
