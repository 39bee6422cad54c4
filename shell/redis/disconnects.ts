/**
 * The disconnect channel (`[redis] disconnect_channel`, default `ferry:disconnect`; udp-gate's is
 * `udp_gate:disconnect`): every instance subscribes, and a message naming a client ("ip:port", or "ip" for
 * all its ports) closes that client's flows on every listener and worker. The client's next datagram opens
 * a new flow, routed afresh. Anything else is counted as ignored and changes nothing.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { formatIp, formatSocketAddress, parseIp, parseSocketAddress } from "../../core/address.ts";
import type { RedisConnection } from "./connection.ts";

/** The canonical client ("ip:port" or "ip") a message names, or null when it names none. */
export function parseDisconnect(message: string): string | null {
  const text = message.trim();
  // An address is at most 47 characters ("[v6]:port"); anything longer is not one.
  if (text === "" || text.length > 64) return null;
  const address = parseSocketAddress(text);
  if (typeof address !== "string") return formatSocketAddress(address);
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const ip = parseIp(bare);
  return ip === null ? null : formatIp(ip);
}

/** Minimum time between two warnings about ignored messages. */
const WARN_EVERY_MS = 60_000;

/** A subscription to the disconnect channel. */
export class DisconnectChannel {
  /** Messages: a client (its flows closed), or ignored. */
  readonly counts = { closed: 0, ignored: 0 };
  readonly #channel: string;
  readonly #disconnect: (client: string) => Promise<number>;
  readonly #log: Logger;
  #warnedAt = -Infinity;

  /**
   * Subscribes `connection` to `channel`; each client named is passed to `disconnect`, which closes its
   * flows everywhere (the Control reaches every worker) and says how many.
   */
  constructor(
    connection: RedisConnection,
    channel: string,
    disconnect: (client: string) => Promise<number>,
    logger: Logger,
  ) {
    this.#channel = channel;
    this.#disconnect = disconnect;
    this.#log = logger;
    const sub = connection.subscriber;
    sub.on("message", (ch: string, message: string) => {
      if (ch === channel) this.handle(message);
    });
    // Queued until connected; ioredis subscribes again after each reconnect.
    sub.subscribe(channel).catch(() => {});
  }

  /** Acts on one message. Resolves once the flows are closed; never rejects. */
  async handle(message: string): Promise<void> {
    const client = parseDisconnect(message);
    if (client === null) {
      this.counts.ignored++;
      const now = performance.now();
      if (now - this.#warnedAt >= WARN_EVERY_MS) {
        this.#warnedAt = now;
        this.#log.warning("ignored a message on {channel}: not ip or ip:port", {
          event: "redis_disconnect_ignored",
          channel: this.#channel,
          message: message.slice(0, 100),
        });
      }
      return;
    }
    this.counts.closed++;
    try {
      const closed = await this.#disconnect(client);
      this.#log.debug("disconnect {client} from {channel}: {closed} flows closed", {
        event: "redis_disconnect",
        client,
        channel: this.#channel,
        closed,
      });
    } catch (e) {
      this.#log.error("disconnect {client} failed: {error}", {
        event: "redis_disconnect_failed",
        client,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
}
