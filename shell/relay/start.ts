/**
 * Starting the relay as `relay.workers` asks: one Relay in this thread (workers = 1, the default: no
 * threads, no messages), or a WorkerPool of N threads sharing the ports. Either way the caller gets a
 * change queue (the Control) for the admin API, SIGHUP and logs, and one way to stop.
 *
 * @module
 */

import type { FerryConfig } from "../../core/types.ts";
import { ChangeQueue } from "./changes.ts";
import { RelayControl, type RelayControlOptions } from "./change_target.ts";
import { log } from "../process/logging.ts";
import { type Platform, Relay } from "./relay.ts";
import { nativeErrorLogger, relayLogHooks } from "./relay_log.ts";
import type { RedisConnection } from "../redis/connection.ts";
import { mergeRedisMetrics } from "../redis/metrics.ts";
import { RedisRouter } from "../redis/router.ts";
import { WorkerPool } from "../workers/worker_pool.ts";
import type { WorkerLogOutput } from "../workers/worker_protocol.ts";

/** A started relay, whatever runs it. */
export interface Running {
  /** The one way to read and change the relay: every change goes through its queue. */
  readonly control: ChangeQueue;
  /** How many relay workers run (1: this thread). */
  readonly workers: number;
  /** Drains, waits up to `graceMs` for flows and connections to end, closes everything. */
  shutdown(graceMs: number): Promise<void>;
  /** Closes every socket now. */
  stop(): void;
}

/** How to start. */
export interface StartOptions {
  readonly seed: number;
  /** The flow limit for max_flows = 0, for the whole process. */
  readonly autoMaxFlows?: number;
  /** Descriptors flows and connections may hold, for the whole process (core/fd_budget.ts). */
  readonly descriptorBudget?: number;
  readonly control: RelayControlOptions;
  /** How the logs look, for worker threads' lines. */
  readonly log: WorkerLogOutput;
  /** A worker thread died (workers > 1 only). */
  readonly onWorkerDeath?: (error: Error) => void;
  /**
   * The main thread's Redis connection ([redis] url set): a relay in this thread routes through it; worker
   * threads open their own (each worker's core resolves its own flows).
   */
  readonly redis?: RedisConnection | null;
}

/** Binds every listener of `config` on `config.relay.workers` workers, or throws with nothing left bound. */
export async function startRelay(
  config: FerryConfig,
  platform: Platform,
  options: StartOptions,
): Promise<Running> {
  if (config.relay.workers > 1) {
    const pool = await WorkerPool.start(config, platform, { ...options, workers: config.relay.workers });
    return {
      control: new ChangeQueue(pool, options.control),
      workers: pool.size,
      shutdown: (graceMs) => pool.shutdown(graceMs),
      stop: () => pool.stop(),
    };
  }
  const relay = await Relay.start(config, platform, {
    seed: options.seed,
    autoMaxFlows: options.autoMaxFlows,
    descriptorBudget: options.descriptorBudget,
    hooks: relayLogHooks(log),
    nativeError: nativeErrorLogger(log),
  });
  const redis = options.redis ?? null;
  const router = redis === null ? null : new RedisRouter(config.redis, { shared: redis }, log);
  if (router !== null) relay.loop.setResolver((flow) => router.resolve(flow));
  const control = router === null ? options.control : {
    ...options.control,
    redis: () => mergeRedisMetrics([router.metrics(), options.control.redis?.()]),
  };
  return {
    control: new ChangeQueue(new RelayControl(relay, control), control),
    workers: 1,
    shutdown: (graceMs) => relay.shutdown(graceMs),
    stop: () => relay.stop(),
  };
}
