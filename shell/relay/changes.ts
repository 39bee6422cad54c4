/**
 * The one path of every change: API edits, reloads (SIGHUP, `POST /reload`), fleet messages from Redis and
 * drains all wait their turn in one queue, and each edit is computed on the config running when its turn
 * comes, so a PATCH made while a reload runs lands on the reloaded config instead of overwriting it.
 *
 * {@link ChangeQueue} is the {@link Control} the rest of the process gets; the relay (or the worker pool)
 * behind it is a {@link ChangeTarget} nobody else holds, so nothing reaches the relay around the queue.
 * Every applied change is logged once, with who asked and what changed.
 *
 * @module
 */

import type { ProtectionControl } from "../../core/protection_api.ts";
import type { ConfigError } from "../../core/config.ts";
import { configDiff, describeChanges } from "../../core/config_diff.ts";
import { type BackendDelta, backendDelta } from "../../core/backend_delta.ts";
import { toRaw } from "../../core/config_raw.ts";
import type {
  ApplyResult,
  Awaitable,
  ChangeRequest,
  ChangeResult,
  ChangeSource,
  Control,
  FlowFilter,
  FlowInfo,
  MetricsSnapshot,
  StatusInfo,
} from "../../core/control_api.ts";
import type { FerryConfig } from "../../core/types.ts";
import { configHash, type RelayControlOptions } from "./change_target.ts";
import { log } from "../process/logging.ts";
import { setImmediate } from "node:timers";
import { type PendingWrite, persistedText, prepareWrite, readConfigFile } from "./persist.ts";

/**
 * What runs the relay: the Control's reads and runtime actions (the queue passes them through; drains it
 * takes in turn), and applying a whole config. Only the queue holds one.
 */
export type ChangeTarget =
  & Pick<
    Control,
    | "status"
    | "config"
    | "drain"
    | "undrain"
    | "metrics"
    | "flows"
    | "disconnect"
    | "closeBackendFlows"
    | "ready"
    | "protection"
  >
  & {
    /** Applies `config` everywhere, all or nothing; throws to refuse (the previous config keeps running). */
    apply(config: FerryConfig): Promise<void>;
    /**
     * Applies a change of backends only (core/backend_delta.ts) everywhere, all or nothing, as `apply` of
     * the config it leads to would: the queue's way of delivering such a change small. Absent: `apply`.
     */
    applyBackends?(deltas: readonly BackendDelta[]): Promise<void>;
    /** Why `config` cannot be applied here, before trying (e.g. a listener workers cannot share). */
    refusals?(config: FerryConfig): Promise<ConfigError[]>;
  };

/** What a hook does once a change it prepared for is applied, or abandoned. */
export interface PreparedHook {
  commit(): void;
  abort(): void;
}

/**
 * A part of the process outside the relay that a change concerns (the admin server, for `[admin]`):
 * `prepare` runs before the change is applied and throws to refuse it (nothing changes), or returns what
 * to do once it is applied or abandoned (null: nothing to do).
 */
export type ChangeHook = (prev: FerryConfig, next: FerryConfig) => Promise<PreparedHook | null>;

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function failed(failure: "refused" | "stale" | "not_saved", message: string): ChangeResult {
  return { ok: false, failure, errors: [{ path: "", message }] };
}

/**
 * `config` cut down to the clusters a change of backends named (the rest is the same on both sides), so
 * the change's log line is worked out on those alone; the whole config when it was not such a change.
 */
function only(config: FerryConfig, deltas: readonly BackendDelta[] | null): FerryConfig {
  if (deltas === null) return config;
  const named = new Set(deltas.map((d) => d.cluster));
  return { ...config, clusters: config.clusters.filter((c) => named.has(c.name)) };
}

/** One turn of the event loop (setImmediate: after pending I/O, as the data path yields). */
const yieldTurn = () => new Promise<void>((r) => setImmediate(r));

/** The serialised Control over a relay or a worker pool. */
export class ChangeQueue implements Control {
  readonly #target: ChangeTarget;
  readonly #opts: RelayControlOptions;
  readonly #hooks: ChangeHook[] = [];
  #tail: Promise<unknown> = Promise.resolve();
  #hash: string;

  /** The queue in front of `target`. */
  constructor(target: ChangeTarget, options: RelayControlOptions) {
    this.#target = target;
    this.#opts = options;
    this.#hash = configHash(target.config());
  }
  /** The target's bans and top talkers (see {@link ChangeTarget.protection}). */
  get protection(): ProtectionControl | undefined {
    return this.#target.protection;
  }

  /** Adds a hook every later change runs through (see {@link ChangeHook}). */
  addHook(hook: ChangeHook): void {
    this.#hooks.push(hook);
  }

  /** Runs `task` after every task queued before it. */
  #turn<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }

  /** Waits until every change queued so far is done (for tests and shutdown). */
  settled(): Promise<void> {
    return this.#turn(() => Promise.resolve());
  }

  change(request: ChangeRequest): Promise<ChangeResult> {
    return this.#turn(async () => {
      const prev = this.#target.config();
      if (request.ifMatch !== undefined && request.ifMatch !== this.#hash) {
        return failed(
          "stale",
          `the config changed since ${request.ifMatch.slice(0, 12)} (now ${this.#hash.slice(0, 12)}); ` +
            "read it again and retry; nothing was changed",
        );
      }
      const r = await this.#commit(prev, request.edit(prev), request.persist, request.source);
      if (r.ok) await request.after?.(r);
      return r;
    });
  }

  reload(): Promise<ApplyResult> {
    return this.#turn(async (): Promise<ApplyResult> => {
      if (this.#opts.configPath === null) {
        return failed("refused", "no config file to reload (started without --config)");
      }
      await this.#opts.reloading?.();
      let ok = false;
      try {
        const loaded = await this.#opts.load();
        if (!loaded.ok) return { ok: false, errors: loaded.errors, failure: "refused" };
        const r = await this.#commit(this.#target.config(), loaded.config, false, "reload");
        if (!r.ok) return r;
        // The file is the whole truth again: a listener drained by hand admits again (not a shutdown).
        await this.#target.undrain();
        ok = true;
        this.#opts.onReloaded?.();
        return { ok: true, configHash: r.configHash, persisted: false };
      } finally {
        this.#opts.reloadDone?.(ok);
      }
    });
  }

  drain(listener?: string): Promise<void> {
    return this.#turn(async () => {
      await this.#target.drain(listener);
      log.info("drain by {source}: {what}", {
        event: "config_changed",
        source: "drain" satisfies ChangeSource,
        what: listener === undefined ? "every listener" : `listener ${listener}`,
      });
    });
  }

  undrain(listener?: string): Promise<void> {
    return this.#turn(async () => {
      await this.#target.undrain(listener);
      log.info("drain undone by {source}: {what}", {
        event: "config_changed",
        source: "drain" satisfies ChangeSource,
        what: listener === undefined ? "every listener" : `listener ${listener}`,
      });
    });
  }

  /** Writes (persist), prepares the hooks, applies; anything failing leaves everything as it was. */
  async #commit(
    prev: FerryConfig,
    next: FerryConfig,
    persist: boolean,
    source: ChangeSource,
  ): Promise<ChangeResult> {
    const path = this.#opts.configPath;
    if (persist && path === null) {
      return failed("refused", "no config file to persist to (started without --config)");
    }
    // A turn first: the next config may just have arrived from a worker (a large one takes a while to
    // receive), and applying it is another stretch of work.
    await yieldTurn();
    const refused = await this.#target.refusals?.(next) ?? [];
    if (refused.length > 0) return { ok: false, errors: refused, failure: "refused" };
    // A change of backends only: delivered as its edits, and described (for the file and the log) on the
    // clusters it names alone.
    const deltas = this.#target.applyBackends === undefined ? null : backendDelta(prev, next);
    let pending: PendingWrite | null = null;
    if (persist) {
      try {
        const text = persistedText(await readConfigFile(path!), only(prev, deltas), only(next, deltas));
        pending = await prepareWrite(path!, text);
      } catch (e) {
        return failed("not_saved", `could not write ${path}: ${reason(e)}; nothing was changed`);
      }
    }
    const hooks: PreparedHook[] = [];
    const undo = async () => {
      for (const h of hooks) h.abort();
      await pending?.discard();
    };
    try {
      for (const hook of this.#hooks) {
        const h = await hook(prev, next);
        if (h !== null) hooks.push(h);
      }
      await this.#deliver(next, deltas);
    } catch (e) {
      await undo();
      return failed("refused", `could not apply: ${reason(e)}`);
    }
    if (pending !== null) {
      try {
        await pending.commit();
      } catch (e) {
        // The file could not take it: the relay goes back to what it ran, so file and relay agree.
        await this.#target.apply(prev).catch(() => {});
        await undo();
        return failed("not_saved", `could not write ${path}: ${reason(e)}; nothing was changed`);
      }
    }
    for (const h of hooks) h.commit();
    this.#hash = configHash(next);
    // The rest is bookkeeping (a large config's diff takes ~90 ms, the hook ~50 ms): the event loop, so
    // forwarding, gets a turn between the pieces instead of one long stall.
    await yieldTurn();
    const lines = describeChanges(configDiff(toRaw(only(prev, deltas)), toRaw(only(next, deltas))));
    log.info("config changed by {source} ({hash}): {diff}", {
      event: "config_changed",
      source,
      hash: this.#hash.slice(0, 12),
      diff: lines.length === 0 ? "no change" : lines.join("; "),
      persisted: persist,
    });
    await yieldTurn();
    this.#opts.onApplied?.(this.#hash, persist, next);
    return { ok: true, config: next, configHash: this.#hash, persisted: persist };
  }

  /**
   * Hands the applied change to the target: as its backend edits when that is all it changes (a few
   * hundred bytes to each worker; only those clusters' balancers rebuild), else as the whole config.
   */
  async #deliver(next: FerryConfig, deltas: readonly BackendDelta[] | null): Promise<void> {
    if (deltas === null) await this.#target.apply(next);
    else if (deltas.length > 0) await this.#target.applyBackends!(deltas);
  }

  status(): Awaitable<StatusInfo> {
    return this.#target.status();
  }

  config(): FerryConfig {
    return this.#target.config();
  }

  configHash(): string {
    return this.#hash;
  }

  metrics(): Awaitable<MetricsSnapshot> {
    return this.#target.metrics();
  }

  flows(filter: FlowFilter): Awaitable<FlowInfo[]> {
    return this.#target.flows(filter);
  }

  disconnect(client: string, listener?: string): Awaitable<number> {
    return this.#target.disconnect(client, listener);
  }

  closeBackendFlows(cluster: string, backend: string): Awaitable<number> {
    return this.#target.closeBackendFlows(cluster, backend);
  }

  ready(): Awaitable<boolean> {
    return this.#target.ready();
  }
}
