/**
 * Applies config edits through the Control, one at a time: each edit reads the running config when its
 * turn comes, so two concurrent PATCHes never lose one another's change.
 *
 * @module
 */

import type { FerryConfig } from "../core/types.ts";
import type { Control } from "./control.ts";
import { ApiError } from "./errors.ts";

/** The outcome of an applied change, as the API returns it. */
export interface Applied {
  /** The config after the change. */
  readonly config: FerryConfig;
  readonly configHash: string;
  /** True when written to the config file (`?persist=true`). */
  readonly persisted: boolean;
}

/** Serialises config changes over a Control. */
export class Changes {
  readonly #control: Control;
  #tail: Promise<unknown> = Promise.resolve();

  /** Changes applied to `control`. */
  constructor(control: Control) {
    this.#control = control;
  }

  /**
   * Runs `edit` on the running config (it throws an ApiError to refuse) and applies the result; a relay
   * that cannot apply it (a bind failure, say) is a 409 and nothing changes. `after` runs once the change
   * is applied, still in turn (so, e.g., fleet updates are written to Redis in the order they were made);
   * if it throws, the change stays applied and its error is this call's.
   */
  apply(
    edit: (config: FerryConfig) => FerryConfig,
    persist: boolean,
    after?: (applied: Applied) => Promise<void>,
  ): Promise<Applied> {
    const run = async (): Promise<Applied> => {
      const config = edit(this.#control.config());
      const r = await this.#control.applyConfig(config, persist);
      if (!r.ok) {
        throw new ApiError(409, "the relay could not apply the config; nothing was changed", r.errors);
      }
      const applied = { config, configHash: r.configHash, persisted: r.persisted };
      await after?.(applied);
      return applied;
    };
    const result = this.#tail.then(run);
    this.#tail = result.catch(() => {});
    return result;
  }
}
