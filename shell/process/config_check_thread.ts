/**
 * A config-checking thread (a worker; started by shell/process/config_check.ts, never run directly):
 * parses and validates a whole config sent to `PUT /api/v1/config`, and hashes it, off the thread that
 * forwards datagrams. Posts the config (or the refusal) once.
 *
 * @module
 */

import { EditError, replaceConfig, replaceConfigToml } from "../../core/config_edits.ts";
import type { FerryConfig } from "../../core/types.ts";
import { configHash } from "../relay/config_hash.ts";
import type { CheckReply, CheckRequest } from "./config_check.ts";

/** The parts of a worker's global scope used here (typed locally: the project compiles as a window). */
interface WorkerScope {
  postMessage(message: CheckReply): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

const scope = globalThis as unknown as WorkerScope;

scope.addEventListener("message", (event: MessageEvent) => {
  const m = event.data as CheckRequest;
  // Only the running token matters to a replacement (one sent back as "<redacted>" keeps it).
  const current = { admin: { token: m.token } } as FerryConfig;
  try {
    const config = "toml" in m
      ? replaceConfigToml(m.toml, current)
      : replaceConfig(m.json, undefined, current);
    scope.postMessage({ ok: true, config, hash: configHash(config) });
  } catch (e) {
    if (e instanceof EditError) {
      scope.postMessage({ ok: false, kind: e.kind, message: e.message, errors: [...e.errors] });
    } else scope.postMessage({ ok: false, kind: null, message: e instanceof Error ? e.message : String(e) });
  }
});
