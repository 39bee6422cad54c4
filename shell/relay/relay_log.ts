/**
 * The relay hooks that only log. One definition for the main thread and for every worker thread, so a
 * relay logs the same lines whichever thread runs it (a worker's logger adds its `worker` index).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { formatSocketAddress } from "../../core/address.ts";
import type { UdpRelayHooks } from "../datapath/udp_relay.ts";

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Logs an error of the native data path's loop (a failed epoll_wait, say): the loop itself carries on. */
export function nativeErrorLogger(logger: Logger): (error: unknown) => void {
  return (error) =>
    logger.error("native data path: {error}", { event: "native_error", error: reason(error) });
}

/** Hooks that log relay events through `logger`. */
export function relayLogHooks(logger: Logger): UdpRelayHooks {
  return {
    upstreamFailed: (flow, error) =>
      logger.debug("upstream socket for flow {flow} to {backend} failed: {error}", {
        flow: flow.id,
        backend: flow.backend ? formatSocketAddress(flow.backend.address) : "(none)",
        error: reason(error),
      }),
    failOpen: (cluster) =>
      logger.warning(
        "cluster {cluster} has no usable backend: failing open (new flows go to down backends)",
        {
          event: "fail_open",
          cluster,
        },
      ),
    fdLimit: (budget) =>
      logger.warning(
        "descriptor budget full: {budget} for flows and connections; new ones are refused (fd_limit) until some close",
        { event: "fd_limit", budget },
      ),
    health: (cluster, backend, change) => {
      const level = change.to === "down" ? "warning" : "info";
      logger[level]("backend {backend} of {cluster} is {to}: {reason}", {
        event: "backend_health",
        cluster,
        backend,
        from: change.from,
        to: change.to,
        reason: change.reason,
      });
    },
  };
}
