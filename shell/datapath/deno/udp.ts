/**
 * Deno's UDP sockets for the UDP driver: Deno.listenDatagram for listeners and for one upstream socket
 * per flow. Deno has no connected UDP sockets, so an upstream socket checks that each reply comes from its
 * backend (anything else is dropped: another host must not be able to inject into a flow), and ICMP
 * refusals are not visible on this path (the native path sees them).
 *
 * Receives go into reused buffers (Deno's default `receive()` allocates 64 KiB per datagram and measured
 * about 3.5× slower); `BufferRing` keeps a buffer out of reuse while sends of it are in flight. Sizes are
 * the listener's max_datagram_size + 1, so an oversized datagram shows up as one byte too long and is
 * dropped as Truncated instead of being forwarded cut short; that bound applies to replies too.
 *
 * @module
 */

import type { SocketAddress } from "../../../core/address.ts";
import { Sent, type UdpSockets, type UpstreamEvents } from "../udp_sockets.ts";
import { BufferRing, type Slot } from "./buffer_ring.ts";

/** The slot whose datagram is being dispatched right now (dispatch is synchronous). */
let dispatching: Slot | null = null;

/** Keeps the dispatching buffer out of reuse until `p` settles; reports a failure to `failed`. */
function track(p: Promise<number>, failed: (e: unknown) => void): void {
  const slot = dispatching;
  if (slot !== null) {
    slot.busy++;
    p.then(slot.release, slot.release);
  }
  p.catch(failed);
}

function wildcard(family: 4 | 6): string {
  return family === 6 ? "::" : "0.0.0.0";
}

/** Receives on `conn` until it closes, handing each datagram to `deliver`. */
async function receiveLoop(
  conn: Deno.DatagramConn,
  ring: BufferRing,
  isClosed: () => boolean,
  deliver: (data: Uint8Array, addr: Deno.NetAddr) => void,
): Promise<void> {
  for (;;) {
    const slot = ring.take();
    let got: [Uint8Array, Deno.Addr];
    try {
      got = await conn.receive(slot.buf);
    } catch {
      if (isClosed()) return;
      continue; // a receive error (e.g. a late ICMP report) must not stop the socket
    }
    dispatching = slot;
    try {
      deliver(got[0], got[1] as Deno.NetAddr);
    } finally {
      dispatching = null;
    }
  }
}

/** Deno's UdpSockets. */
export const denoUdpSockets: UdpSockets = {
  name: "deno",
  // Deno's listenDatagram has reuseAddress (which steals the port), not SO_REUSEPORT.
  reusePort: false,

  bindListener(address, options, onDatagram) {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: address.ip, port: address.port });
    let closed = false;
    const ring = new BufferRing(16, options.maxDatagramSize + 1);
    const bound = conn.addr as Deno.NetAddr;
    const failed = () => options.sendFailed();
    receiveLoop(conn, ring, () => closed, (data, addr) => onDatagram(data, addr.hostname, addr.port));
    const local: SocketAddress = { ip: address.ip, port: bound.port, family: address.family };
    return Promise.resolve({
      local,
      peer: (ip: string, port: number): Deno.NetAddr => ({ transport: "udp", hostname: ip, port }),
      sendTo(data: Uint8Array, peer: unknown) {
        try {
          track(conn.send(data, peer as Deno.NetAddr), failed);
          return Sent.Ok;
        } catch {
          return Sent.Error;
        }
      },
      close() {
        closed = true;
        conn.close();
      },
    });
  },

  openUpstream(backend: SocketAddress, maxReply: number, events: UpstreamEvents) {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: wildcard(backend.family), port: 0 });
    let closed = false;
    const target: Deno.NetAddr = { transport: "udp", hostname: backend.ip, port: backend.port };
    const ring = new BufferRing(2, maxReply + 1);
    const failed = (e: unknown) => {
      if (!closed) events.error(String((e as Error)?.message ?? e).includes("refused"));
    };
    receiveLoop(conn, ring, () => closed, (data, addr) => {
      if (addr.port !== backend.port || addr.hostname !== backend.ip) return;
      if (data.byteLength > maxReply) events.truncated();
      else events.reply(data);
    });
    return Promise.resolve({
      send(data: Uint8Array) {
        try {
          track(conn.send(data, target), failed);
          return Sent.Ok;
        } catch {
          return Sent.Error;
        }
      },
      close() {
        closed = true;
        conn.close();
      },
    });
  },
};
