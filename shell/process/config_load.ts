/**
 * `loadConfig` off the data path's thread, for reloads (SIGHUP, POST /reload): a worker reads, parses,
 * validates and hashes the file (shell/process/config_load_thread.ts) while this thread keeps forwarding;
 * only the result crosses over (a structured clone: the config is plain data). Should the worker not
 * start (a build without its entrypoint, say), the load runs here as before.
 *
 * @module
 */

import type { LoadResult, RunOptions } from "./cli.ts";
import { rememberConfigHash } from "../relay/config_hash.ts";

/**
 * The loading thread's entry module. Run from source, it sits next to this file; in a `bun build --compile`
 * binary (built with it as an entrypoint) this code runs at the bundle's root, where Bun maps the name.
 */
export function configLoadThreadUrl(here: string = import.meta.url): URL {
  return new URL(
    here.endsWith("/shell/process/config_load.ts")
      ? "./config_load_thread.ts"
      : "./shell/process/config_load_thread.ts",
    here,
  );
}

/** Longest a load may take in its thread before it is given up for one here. */
const LOAD_TIMEOUT_MS = 30_000;

/**
 * Loads the config as `fallback` (loadConfig with `options`) would, in a worker; runs `fallback` here
 * when the worker cannot start or fails.
 */
export function loadConfigOffThread(
  options: RunOptions,
  fallback: () => Promise<LoadResult>,
): Promise<LoadResult> {
  let worker: Worker;
  try {
    worker = new Worker(configLoadThreadUrl(), { type: "module" });
  } catch {
    return fallback();
  }
  return new Promise<LoadResult | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), LOAD_TIMEOUT_MS);
    const done = (r: LoadResult | null) => {
      clearTimeout(timer);
      resolve(r);
    };
    worker.addEventListener("error", (event: ErrorEvent) => {
      event.preventDefault(); // unhandled, Deno would end the process
      done(null);
    });
    worker.addEventListener("message", (event: MessageEvent) => {
      const m = event.data as { result?: LoadResult; hash?: string | null };
      if (m.result === undefined) return done(null);
      if (m.result.ok && typeof m.hash === "string") rememberConfigHash(m.result.config, m.hash);
      done(m.result);
    });
    worker.postMessage(options);
  }).then((r) => {
    worker.terminate();
    return r ?? fallback();
  });
}
