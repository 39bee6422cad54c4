/**
 * Ferry's Redis connection: one client for commands and one for subscriptions (a subscribed connection
 * can issue nothing else), reconnecting with capped exponential backoff, with the figures the metrics
 * show: connection state, errors, commands and their latency. Nothing here may throw into the data path:
 * while Redis is away, commands fail fast (no offline queue) and callers fall back.
 *
 * @module
 */

import { Redis, type RedisOptions } from "ioredis";

/** Redis figures for /metrics. */
export interface RedisStats {
  /** True while the command connection is ready. */
  connected: boolean;
  /** Times the connection was (re)established. */
  connects: number;
  errors: number;
  commands: number;
  /** Commands that failed or timed out. */
  failures: number;
  /** EWMA of command round trips, ms (NaN before the first). */
  latencyMs: number;
}

/** Reconnect delay after `attempt` failures: 100 ms doubling to 5 s. */
export function backoff(attempt: number): number {
  return Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
}

/** A command that took longer than its caller allows. */
export class RedisTimeout extends Error {
  /** A timeout after `ms`. */
  constructor(ms: number) {
    super(`Redis did not answer within ${ms} ms`);
  }
}

/** A Redis client pair with stats. */
export class RedisConnection {
  /** Live figures for /metrics. */
  readonly stats: RedisStats = {
    connected: false,
    connects: 0,
    errors: 0,
    commands: 0,
    failures: 0,
    latencyMs: NaN,
  };
  /** The command connection (use run(), which times and bounds each command). */
  readonly client: Redis;
  readonly #url: string;
  readonly #options: RedisOptions;
  readonly #timeout: number;
  #subscriber: Redis | null = null;
  #onReady: (() => void)[] = [];
  #onError: ((e: Error) => void) | null = null;
  #onState: ((connected: boolean) => void)[] = [];
  /** Last state told to onState listeners: null before the first (so an unreachable start is told once). */
  #told: boolean | null = null;
  #closed = false;

  /** Connects to `url` (redis://host:port[/db]); `timeout` bounds each command, in ms, unless run() says. */
  constructor(url: string, timeout: number) {
    this.#url = url;
    this.#timeout = timeout;
    this.#options = {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // run() bounds each command itself (callers ask for different bounds); this only reaps strays.
      commandTimeout: Math.max(timeout, 10_000),
      connectTimeout: Math.max(1000, timeout * 5),
      retryStrategy: (attempt: number) => backoff(attempt),
    };
    this.client = new Redis(url, this.#options);
    this.client.on("ready", () => {
      this.stats.connected = true;
      this.stats.connects++;
      this.#tell(true);
      for (const f of this.#onReady) f();
    });
    this.client.on("close", () => {
      this.stats.connected = false;
      if (!this.#closed) this.#tell(false);
    });
    this.#watchErrors(this.client);
  }

  /**
   * The subscription connection, opened on first use: a relay that only routes never needs it. It queues
   * SUBSCRIBE until connected and resubscribes after reconnects (ioredis does both).
   */
  get subscriber(): Redis {
    if (this.#subscriber === null) {
      this.#subscriber = new Redis(this.#url, {
        ...this.#options,
        enableOfflineQueue: true,
        commandTimeout: undefined,
      });
      this.#watchErrors(this.#subscriber);
      if (this.#closed) this.#subscriber.disconnect();
    }
    return this.#subscriber;
  }

  #watchErrors(c: Redis): void {
    c.on("error", (e: Error) => {
      this.stats.errors++;
      this.#onError?.(e);
      // A connection that never came up is told "down" once, at its first error.
      if (!this.stats.connected && !this.#closed) this.#tell(false);
    });
  }

  #tell(connected: boolean): void {
    if (this.#told === connected) return;
    this.#told = connected;
    for (const f of this.#onState) f(connected);
  }

  /** Runs `f` at every (re)connect, so state is reloaded after an outage. */
  onReady(f: () => void): void {
    this.#onReady.push(f);
    if (this.stats.connected) f();
  }

  /** Reports connection errors (ioredis emits many while Redis is down: the caller rate-limits logs). */
  onError(f: (e: Error) => void): void {
    this.#onError = f;
  }

  /**
   * Tells `f` each change of the command connection's state, once per transition (not per retry): false
   * when an established connection is lost or the first attempt fails, true when it is (re)established;
   * and at once the state known so far, if any.
   */
  onState(f: (connected: boolean) => void): void {
    this.#onState.push(f);
    // A listener that comes late (the connection was made before its user) still hears the state.
    if (this.#told !== null) f(this.#told);
  }

  /**
   * Runs a command, timing it and counting failures. Rejects on failure, and with {@link RedisTimeout}
   * after `timeoutMs` (default: the connection's timeout); never hangs past that.
   */
  async run<T>(command: (c: Redis) => Promise<T>, timeoutMs: number = this.#timeout): Promise<T> {
    const start = performance.now();
    this.stats.commands++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const pending = command(this.client);
      // The command may still settle after the timeout: its result is not wanted, nor its rejection.
      pending.catch(() => {});
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RedisTimeout(timeoutMs)), timeoutMs);
      });
      const out = await Promise.race([pending, late]);
      const ms = performance.now() - start;
      const l = this.stats.latencyMs;
      this.stats.latencyMs = l === l ? l + (ms - l) / 8 : ms;
      return out;
    } catch (e) {
      this.stats.failures++;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes both connections; nothing reconnects afterwards. */
  close(): void {
    this.#closed = true;
    this.client.disconnect();
    this.#subscriber?.disconnect();
  }
}
