/**
 * `PUT /api/v1/config`'s parse and validation off the data path's thread: a worker
 * (shell/process/config_check_thread.ts) turns the body into a config, or the refusal, and hashes it,
 * while this thread keeps forwarding (a 1 MB config takes ~400 ms to check and ~400 ms to hash). Should
 * the worker not start, the check runs here as before.
 *
 * @module
 */

import type { ConfigError } from "../../core/config.ts";
import { EditError, type EditErrorKind, replaceConfig, replaceConfigToml } from "../../core/config_edits.ts";
import type { FerryConfig } from "../../core/types.ts";
import { rememberConfigHash } from "../relay/config_hash.ts";

/** What is checked: TOML text, or the parsed JSON body; with the running admin token. */
export type CheckRequest = ({ readonly toml: string } | { readonly json: unknown }) & {
  readonly token: string;
};

/** The checking thread's answer. */
export type CheckReply =
  | { readonly ok: true; readonly config: FerryConfig; readonly hash: string }
  | {
    readonly ok: false;
    readonly kind: EditErrorKind | null;
    readonly message: string;
    readonly errors?: ConfigError[];
  };

/** The checking thread's entry module (from source, or at a `bun build --compile` bundle's root). */
export function configCheckThreadUrl(here: string = import.meta.url): URL {
  return new URL(
    here.endsWith("/shell/process/config_check.ts")
      ? "./config_check_thread.ts"
      : "./shell/process/config_check_thread.ts",
    here,
  );
}

function here(request: CheckRequest): FerryConfig {
  const current = { admin: { token: request.token } } as FerryConfig;
  return "toml" in request
    ? replaceConfigToml(request.toml, current)
    : replaceConfig(request.json, undefined, current);
}

/**
 * The config `request`'s body describes (as replaceConfigToml / replaceConfig make it), checked in a
 * worker; throws their EditError when it is refused.
 */
export function checkConfigOffThread(request: CheckRequest): Promise<FerryConfig> {
  let worker: Worker;
  try {
    worker = new Worker(configCheckThreadUrl(), { type: "module" });
  } catch {
    return Promise.resolve().then(() => here(request));
  }
  return new Promise<CheckReply | null>((resolve) => {
    worker.addEventListener("error", (event: ErrorEvent) => {
      event.preventDefault(); // unhandled, Deno would end the process
      resolve(null);
    });
    worker.addEventListener("message", (event: MessageEvent) => resolve(event.data as CheckReply));
    worker.postMessage(request);
  }).then((r) => {
    worker.terminate();
    if (r === null) return here(request);
    if (r.ok) {
      rememberConfigHash(r.config, r.hash);
      return r.config;
    }
    if (r.kind === null) throw new Error(r.message);
    throw new EditError(r.kind, r.message, r.errors ?? []);
  });
}
