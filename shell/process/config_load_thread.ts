/**
 * A config-loading thread (a worker; started by shell/process/config_load.ts, never run directly): reads,
 * parses and validates the config as `loadConfig` does, and hashes it, off the thread that forwards
 * datagrams (a 1 MB valid config takes ~400 ms to load and ~400 ms to hash). Posts the result once.
 *
 * @module
 */

import { loadConfig, type LoadIo, type RunOptions } from "./cli.ts";
import { envNames, getEnv, readTextFile } from "./platform.ts";
import { configHash } from "../relay/config_hash.ts";

/** The parts of a worker's global scope used here (typed locally: the project compiles as a window). */
interface WorkerScope {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

const scope = globalThis as unknown as WorkerScope;
const io: LoadIo = { readTextFile, env: getEnv, envNames };

scope.addEventListener("message", async (event: MessageEvent) => {
  const options = event.data as RunOptions;
  try {
    const result = await loadConfig(options, io);
    scope.postMessage({ result, hash: result.ok ? configHash(result.config) : null });
  } catch (e) {
    scope.postMessage({ error: e instanceof Error ? e.message : String(e) });
  }
});
