/**
 * Bun's UDP sockets for the UDP driver: Bun.udpSocket for listeners (SO_REUSEPORT with `flags: 4`) and a
 * connected Bun.udpSocket per flow, so the kernel filters replies to the flow's backend.
 *
 * Bun sends synchronously (the datagram is in the kernel when `send` returns), so the buffer Bun hands
 * the data callback can be forwarded as is. Every send may throw: an ICMP port unreachable arrives as
 * ECONNREFUSED on a later send.
 *
 * @module
 */

import type { SocketAddress } from "../../../core/address.ts";
import { type SendResult, Sent, type UdpSockets, type UpstreamEvents } from "../udp_sockets.ts";
import { bun } from "./bun_api.ts";

/** Maps a thrown send error to a SendResult. */
export function sendErrorCode(error: unknown): SendResult {
  const code = (error as { code?: string })?.code ?? "";
  const msg = (error as { message?: string })?.message ?? "";
  return code === "ECONNREFUSED" || msg.includes("ECONNREFUSED") || msg.includes("refused")
    ? Sent.Refused
    : Sent.Error;
}

/** A reusable reply destination. */
interface Peer {
  readonly ip: string;
  readonly port: number;
}

function wildcard(family: 4 | 6): string {
  return family === 6 ? "::" : "0.0.0.0";
}

/** Bun's UdpSockets. */
export const bunUdpSockets: UdpSockets = {
  name: "bun",
  reusePort: true,

  async bindListener(address, options, onDatagram) {
    const sock = await bun().udpSocket({
      hostname: address.ip,
      port: address.port,
      flags: options.reusePort ? 4 : 0,
      binaryType: "uint8array",
      socket: {
        data(_s, data, port, ip) {
          onDatagram(data, ip, port);
        },
        // A client that closed its socket answers our reply with ICMP port unreachable, which Bun reports
        // here (ECONNREFUSED, "errqueue"). Without a handler Bun throws it uncaught and the process dies.
        // That reply was sent and counted out: count the refusal apart, not as a send error.
        error(first, second) {
          if (sendErrorCode(second ?? first) === Sent.Refused) options.clientUnreachable();
          else options.sendFailed();
        },
      },
    });
    const local: SocketAddress = { ip: address.ip, port: sock.port, family: address.family };
    return {
      local,
      peer: (ip: string, port: number): Peer => ({ ip, port }),
      sendTo(data: Uint8Array, peer: unknown): SendResult {
        const p = peer as Peer;
        try {
          return sock.send(data, p.port, p.ip) ? Sent.Ok : Sent.Error;
        } catch (e) {
          return sendErrorCode(e);
        }
      },
      close: () => sock.close(),
    };
  },

  async openUpstream(backend: SocketAddress, _maxReply: number, events: UpstreamEvents) {
    const sock = await bun().udpSocket({
      hostname: wildcard(backend.family),
      port: 0,
      binaryType: "uint8array",
      connect: { hostname: backend.ip, port: backend.port },
      socket: {
        data(_s, data) {
          events.reply(data);
        },
        error(first, second) {
          events.error(sendErrorCode(second ?? first) === Sent.Refused);
        },
      },
    });
    return {
      send(data: Uint8Array): SendResult {
        try {
          return sock.send(data) ? Sent.Ok : Sent.Error;
        } catch (e) {
          return sendErrorCode(e);
        }
      },
      close: () => sock.close(),
    };
  },
};
