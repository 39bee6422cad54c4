/**
 * The one rule about where the admin API may listen: without a token, only on loopback. The shell checks it
 * before binding, and config edits check it too, so the API never accepts a config the shell would refuse
 * to start with.
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
