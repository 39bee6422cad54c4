/**
 * Ferry's Redis connection: one client for commands and one for subscriptions (a subscribed connection
 * can issue nothing else), reconnecting with capped exponential backoff, with the figures the metrics
 * show: connection state, errors, commands and their latency. Nothing here may throw into the data path:
 * while Redis is away, commands fail fast (no offline queue) and callers fall back.
 *
 * @module
 */

import { Redis, type RedisOptions } from "ioredis";
import { Breaker } from "./breaker.ts";

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

/** A command refused at once because the circuit breaker is open (Redis hung on recent commands). */
export class RedisBreakerOpen extends Error {
  /** The refusal. */
  constructor() {
    super("Redis timed out repeatedly: not asked until a probe answers (circuit breaker open)");
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
  /**
   * Opens after consecutive command timeouts (a hung Redis whose connection stays up): commands then
   * fail at once and a PING probes Redis after each backoff.
   */
  readonly breaker: Breaker = new Breaker();
  /** The command connection (use run(), which times and bounds each command). */
  readonly client: Redis;
  #probe: ReturnType<typeof setTimeout> | null = null;
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
      // A (re)connect means Redis answered its handshake: it is not hung.
      this.breaker.success();
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
    this.stats.commands++;
    if (!this.breaker.allow()) {
      this.stats.failures++;
      throw new RedisBreakerOpen();
    }
    try {
      const out = await this.#timed(command, timeoutMs);
      this.breaker.success();
      return out;
    } catch (e) {
      this.stats.failures++;
      if (e instanceof RedisTimeout) {
        this.breaker.timeout(performance.now());
        if (this.breaker.state === "open") this.#opened();
      }
      throw e;
    }
  }

  /** `command`, bounded by `timeoutMs`, its round trip averaged into the latency. */
  async #timed<T>(command: (c: Redis) => Promise<T>, timeoutMs: number): Promise<T> {
    const start = performance.now();
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
    } finally {
      clearTimeout(timer);
    }
  }

  /** The breaker opened: tell listeners Redis is down, and probe it after the backoff. */
  #opened(): void {
    this.#tell(false);
    if (this.#probe !== null || this.#closed) return;
    this.#probe = setTimeout(() => {
      this.#probe = null;
      if (this.#closed || this.breaker.state !== "open") return;
      // A timer may fire a little early by this clock: wait out the rest.
      if (!this.breaker.probeDue(performance.now())) return this.#opened();
      this.stats.commands++;
      this.#timed((c) => c.ping(), this.#timeout).then(() => {
        this.breaker.success();
        if (this.stats.connected) this.#tell(true);
      }, () => {
        this.stats.failures++;
        this.breaker.probeFailed(performance.now());
        this.#opened();
      });
    }, Math.max(0, this.breaker.openUntil - performance.now()));
  }

  /** Closes both connections; nothing reconnects afterwards. */
  close(): void {
    this.#closed = true;
    if (this.#probe !== null) clearTimeout(this.#probe);
    this.#probe = null;
    this.client.disconnect();
    this.#subscriber?.disconnect();
  }
}
