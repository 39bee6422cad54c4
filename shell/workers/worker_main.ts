/**
 * A relay worker thread: runs one Relay (its own core, its own sockets bound with SO_REUSEPORT next to
 * the other workers') and answers the main thread's requests (shell/workers/worker_protocol.ts). Started by
 * shell/workers/worker_pool.ts; never run directly.
 *
 * Reads go through a RelayControl over this worker's relay, so a worker's snapshot is exactly what the
 * single-relay admin API shows, and the pool only has to add them up.
 *
 * @module
 */

import { protectionCall } from "../relay/protection_control.ts";
import type { FerryConfig } from "../../core/types.ts";
import { RelayControl } from "../relay/change_target.ts";
import { log, setupLogging } from "../process/logging.ts";
import { detectPlatform, memoryUsage, runtimeVersion, writeStderr } from "../process/platform.ts";
import { Relay } from "../relay/relay.ts";
import { nativeErrorLogger, relayLogHooks } from "../relay/relay_log.ts";
import { RedisConnection } from "../redis/connection.ts";
import { RedisRouter } from "../redis/router.ts";
import { VERSION } from "../process/version.ts";
import type {
  WorkerCalls,
  WorkerInit,
  WorkerLogOutput,
  WorkerMethod,
  WorkerPassive,
  WorkerReply,
  WorkerRequest,
  WorkerStarted,
} from "./worker_protocol.ts";

/** The parts of a worker's global scope used here (typed locally: the project compiles as a window). */
interface WorkerScope {
  postMessage(message: WorkerStarted | WorkerReply | WorkerPassive): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

const scope = globalThis as unknown as WorkerScope;

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Logs like the main thread: same level, format and stream (stderr, written synchronously per line). */
function configureLogs(config: FerryConfig, output: WorkerLogOutput): void {
  setupLogging({ level: config.relay.logLevel, format: config.relay.logFormat }, {
    write: writeStderr,
    ...output,
  });
}

type Handlers = { [M in WorkerMethod]: (...args: Parameters<WorkerCalls[M]>) => unknown };

/** True when `config` routes some cluster through Redis. */
function routesThroughRedis(config: FerryConfig): boolean {
  return config.clusters.some((c) => c.balancer === "external");
}

/**
 * This worker's routing for `balancer = "redis"` clusters (each worker's core resolves its own flows): its
 * own Redis connection, opened at once when a cluster routes through Redis, else at the first such flow.
 * The main thread logs Redis's state; a worker's connection only at debug level, not once per worker.
 */
function routing(relay: Relay, init: WorkerInit): RedisRouter | null {
  const settings = init.config.redis;
  if (settings.url === "") return null;
  const logger = log.with({ worker: init.index });
  const router = new RedisRouter(settings, {
    connect: () => {
      const c = new RedisConnection(settings.url, settings.timeout);
      c.onState((up) => logger.debug("routing connection {state}", { state: up ? "up" : "down" }));
      return c;
    },
  }, logger);
  if (routesThroughRedis(init.config)) router.connect();
  relay.loop.setResolver((flow) => router.resolve(flow));
  return router;
}

/** The request handlers over a started relay. */
function handlers(relay: Relay, init: WorkerInit): Handlers {
  const router = routing(relay, init);
  const control = new RelayControl(relay, {
    version: VERSION,
    runtimeVersion: runtimeVersion(),
    configPath: null, // the main thread owns the file: reload and persist happen there
    load: () => Promise.reject(new Error("workers do not read the config file")),
    now: Date.now,
    memory: memoryUsage,
    redis: () => router?.metrics(),
  });
  const logger = log.with({ worker: init.index });
  return {
    apply: async (config) => {
      await relay.apply(config);
      configureLogs(config, init.log);
      if (routesThroughRedis(config)) router?.connect();
      logger.debug("applied a whole config", { event: "worker_applied", delivery: "config" });
    },
    applyBackends: (deltas) => {
      relay.applyBackends(deltas);
      logger.debug("applied backend edits to {clusters}", {
        event: "worker_applied",
        delivery: "backends",
        clusters: deltas.map((d) => d.cluster).join(", "),
        edits: deltas.reduce((n, d) => n + d.edits.length, 0),
      });
    },
    adoptHealth: (verdicts) => {
      const now = relay.platform.clock();
      // A down verdict may close flows: their events wake the relay's core loop, nothing to pump.
      for (const v of verdicts) relay.core.adoptHealth(v.cluster, v.backend, v.status, now);
    },
    drain: (listener) => relay.drain(listener),
    undrain: (listener) => control.undrain(listener),
    shutdown: async (graceMs) => {
      await relay.shutdown(graceMs);
      router?.close();
    },
    status: () => control.status(),
    metrics: () => control.metrics(),
    flows: (filter) => control.flows(filter),
    disconnect: (client, listener) => control.disconnect(client, listener),
    closeBackendFlows: (cluster, backend) => control.closeBackendFlows(cluster, backend),
    ready: () => control.ready(),
    protection: (op) => protectionCall(relay.core, { clock: relay.platform.clock, wall: Date.now }, op),
  };
}

async function start(init: WorkerInit): Promise<Handlers | null> {
  configureLogs(init.config, init.log);
  try {
    const relay = await Relay.start(init.config, detectPlatform(), {
      seed: init.seed,
      autoMaxFlows: init.autoMaxFlows,
      descriptorBudget: init.descriptorBudget,
      reusePort: true,
      worker: init.index,
      hooks: relayLogHooks(log.with({ worker: init.index })),
      nativeError: nativeErrorLogger(log.with({ worker: init.index })),
      // The main thread probes and judges; this worker only tells it what its flows saw.
      reportPassive: (cluster, backend, error) =>
        scope.postMessage({ type: "passive", cluster, backend, error }),
    });
    scope.postMessage({ type: "started", ok: true });
    return handlers(relay, init);
  } catch (e) {
    scope.postMessage({ type: "started", ok: false, error: reason(e) });
    return null;
  }
}

let running: Promise<Handlers | null> | null = null;

scope.addEventListener("message", (event) => {
  const message = event.data as WorkerInit | WorkerRequest;
  if (message.type === "init") {
    running ??= start(message);
    return;
  }
  const { id, method, args } = message;
  (async () => {
    const h = await running;
    if (h === null) throw new Error("this worker's relay is not running");
    const call = h[method] as (...a: unknown[]) => unknown;
    return await call(...args);
  })().then(
    (value) => scope.postMessage({ type: "reply", id, ok: true, value }),
    (e) => scope.postMessage({ type: "reply", id, ok: false, error: reason(e) }),
  );
});
