/**
 * A relay worker thread: runs one Relay (its own core, its own sockets bound with SO_REUSEPORT next to
 * the other workers') and answers the main thread's requests (shell/worker_protocol.ts). Started by
 * shell/worker_pool.ts; never run directly.
 *
 * Reads go through a RelayControl over this worker's relay, so a worker's snapshot is exactly what the
 * single-relay admin API shows, and the pool only has to add them up.
 *
 * @module
 */

import type { FerryConfig } from "../core/types.ts";
import { RelayControl } from "./control.ts";
import { log, setupLogging } from "./logging.ts";
import { detectPlatform, memoryUsage, runtimeVersion, writeStderr } from "./platform.ts";
import { Relay } from "./relay.ts";
import { relayLogHooks } from "./relay_log.ts";
import { VERSION } from "./version.ts";
import type {
  WorkerCalls,
  WorkerInit,
  WorkerLogOutput,
  WorkerMethod,
  WorkerReply,
  WorkerRequest,
  WorkerStarted,
} from "./worker_protocol.ts";

/** The parts of a worker's global scope used here (typed locally: the project compiles as a window). */
interface WorkerScope {
  postMessage(message: WorkerStarted | WorkerReply): void;
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

/** The request handlers over a started relay. */
function handlers(relay: Relay, init: WorkerInit): Handlers {
  const control = new RelayControl(relay, {
    version: VERSION,
    runtimeVersion: runtimeVersion(),
    configPath: null, // the main thread owns the file: reload and persist happen there
    load: () => Promise.reject(new Error("workers do not read the config file")),
    now: Date.now,
    memory: memoryUsage,
  });
  return {
    apply: async (config) => {
      await relay.apply(config);
      configureLogs(config, init.log);
    },
    drain: (listener) => relay.drain(listener),
    shutdown: (graceMs) => relay.shutdown(graceMs),
    status: () => control.status(),
    metrics: () => control.metrics(),
    flows: (filter) => control.flows(filter),
    disconnect: (client, listener) => control.disconnect(client, listener),
    closeBackendFlows: (cluster, backend) => control.closeBackendFlows(cluster, backend),
    ready: () => control.ready(),
  };
}

async function start(init: WorkerInit): Promise<Handlers | null> {
  configureLogs(init.config, init.log);
  try {
    const relay = await Relay.start(init.config, detectPlatform(), {
      seed: init.seed,
      autoMaxFlows: init.autoMaxFlows,
      reusePort: true,
      hooks: relayLogHooks(log.with({ worker: init.index })),
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
