/**
 * The admin API's side of a config change: it hands an edit to the Control's one queue of changes (where
 * it runs on the config running at its turn) and turns the outcome into a response or an {@link ApiError}.
 * `If-Match` (an ETag of `GET /api/v1/config`) makes a write conditional: 412 when the config changed since.
 *
 * @module
 */

import type { Context } from "hono";
import type { Applied, Control } from "../core/control_api.ts";
import type { FerryConfig } from "../core/types.ts";
import { ApiError } from "./errors.ts";
import { badField } from "./errors.ts";

export type { Applied } from "../core/control_api.ts";

/** The ETag of a config hash (a strong one: the hash is of the config's whole text). */
export function etagOf(hash: string): string {
  return `"${hash}"`;
}

/** The config hash an `If-Match` header asks for; undefined when absent or `*` (any config). */
export function ifMatchOf(c: Context): string | undefined {
  const header = c.req.header("if-match")?.trim();
  if (header === undefined || header === "*") return undefined;
  const m = /^"([0-9a-f]{1,128})"$/i.exec(header);
  if (m === null) throw badField("If-Match", 'expected one ETag as GET /api/v1/config gives it: "<hash>"');
  return m[1].toLowerCase();
}

/** Config changes over a Control, made by the API. */
export class Changes {
  readonly #control: Control;

  /** Changes applied through `control`. */
  constructor(control: Control) {
    this.#control = control;
  }

  /**
   * Queues `edit` (it throws an EditError to refuse) on the running config and applies the result; a
   * relay that cannot apply it (a bind failure, say) is a 409, a stale `If-Match` a 412, a config file that
   * cannot be written a 500, and in each case nothing changes. `after` runs once the change is applied,
   * still in turn; if it throws, the change stays applied and its error is this call's.
   */
  async apply(
    c: Context,
    edit: (config: FerryConfig) => FerryConfig,
    persist: boolean,
    after?: (applied: Applied) => Promise<void>,
  ): Promise<Applied> {
    const ifMatch = ifMatchOf(c);
    const r = await this.#control.change({ source: "api", edit, persist, ifMatch, after });
    if (r.ok) return r;
    if (r.failure === "stale") throw new ApiError(412, r.errors[0]?.message ?? "config changed", r.errors);
    if (r.failure === "not_saved") {
      throw new ApiError(500, r.errors[0]?.message ?? "the config file could not be written", r.errors);
    }
    throw new ApiError(409, "the relay could not apply the config; nothing was changed", r.errors);
  }
}
