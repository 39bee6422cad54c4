/**
 * The bind setup of a native UDP listener (control path: once per bind, never per datagram): its socket
 * with the listener's options, its batch buffers and its place in the epoll set, as one `NativeListener`;
 * whatever was made before a failing step is closed or freed again, and the error thrown.
 *
 * @module
 */

import type { Listener } from "../../../core/listener.ts";
import type { ListenerConfig } from "../../../core/types.ts";
import { Batches } from "./batches.ts";
import { type EpollLoop, LISTENER_TAG } from "./epoll_loop.ts";
import { NativeError } from "./errno.ts";
import type { Libc } from "./ffi.ts";
import { DEFAULT_SOCKET_BUFFER, NativeListener, type NativeListenerKnobs } from "./native_records.ts";
import { isWildcard, openListenerSocket, type Scratch } from "./sockets.ts";

/** What binding a listener needs of its driver. */
export interface ListenerOpenContext {
  readonly libc: Libc;
  readonly scratch: Scratch;
  readonly loop: EpollLoop;
  /** The driver's PKTINFO choice: "auto" turns it on for wildcard listeners only. */
  readonly pktinfo: "auto" | "always" | "never";
  /** Whether replies may go out as UDP GSO sends. */
  readonly gso: boolean;
}

/**
 * Opens `listener`'s socket (SO_REUSEPORT if `reusePort`), its batches, and adds it to the epoll set
 * under slot `index`. Throws (a NativeError, or the batches' allocation error) with nothing left open.
 */
export function openNativeListener(
  c: ListenerOpenContext,
  listener: Listener,
  reusePort: boolean,
  index: number,
): NativeListener {
  const cfg = listener.config as ListenerConfig & NativeListenerKnobs;
  const pktinfo = c.pktinfo === "always" || (c.pktinfo === "auto" && isWildcard(cfg.address.ip));
  const info = openListenerSocket(c.scratch, cfg.address, {
    reusePort,
    recvBuffer: cfg.recvBuffer ?? DEFAULT_SOCKET_BUFFER,
    sendBuffer: cfg.sendBuffer ?? DEFAULT_SOCKET_BUFFER,
    pktinfo,
  });
  let b: Batches;
  try {
    b = new Batches(c.libc, cfg.maxDatagramSize, info.local.family);
  } catch (e) {
    c.libc.close(info.fd);
    throw e;
  }
  const nl = new NativeListener(listener, info, b, index, reusePort, c.gso);
  const e = c.loop.add(info.fd, LISTENER_TAG + index);
  if (e !== 0) {
    c.libc.close(info.fd);
    b.free();
    throw new NativeError("epoll_ctl", e);
  }
  return nl;
}
