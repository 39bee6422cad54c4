/**
 * The `ferry` command: `deno run -A main.ts`, `bun main.ts`, or a `bun build --compile` binary.
 *
 * Wiring only: argument parsing and config loading live in shell/process/cli.ts, runtime differences in
 * shell/process/platform.ts, the relay in shell/relay/relay.ts. See `ferry --help` for the surface.
 *
 * @module
 */

import { descriptorBudget } from "./core/fd_budget.ts";
import { formatSocketAddress } from "./core/address.ts";
import { DEFAULT_CONFIG_TOML } from "./core/default_config.ts";
import { configJsonSchema } from "./core/config/json_schema.ts";
import { restartChanges } from "./core/config/restart.ts";
import type { FerryConfig, LogLevel } from "./core/types.ts";
import {
  configSummary,
  Exit,
  formatConfigError,
  helpText,
  loadConfig,
  type LoadIo,
  type LoadResult,
  parseArgs,
  type RunOptions,
} from "./shell/process/cli.ts";
import { loadConfigOffThread } from "./shell/process/config_load.ts";
import { checkConfigOffThread } from "./shell/process/config_check.ts";
import { log, setupLogging } from "./shell/process/logging.ts";
import {
  commandArgs,
  detectPlatform,
  envNames,
  exit,
  fileDescriptorLimit,
  getEnv,
  isTerminal,
  memoryUsage,
  onSignal,
  readTextFile,
  runtimeName,
  runtimeVersion,
  type Signal,
  writeStderr,
  writeStdout,
} from "./shell/process/platform.ts";
import { type Running, startRelay } from "./shell/relay/start.ts";
import type { ChangeHook } from "./shell/relay/changes.ts";
import { adminLimits, type HttpServer, serve } from "./shell/process/serve.ts";
import { BODY_LIMIT, checkAdminBinding, createAdminApp } from "./admin/app.ts";
import type { StatusInfo } from "./core/control_api.ts";
import { removeStaleTemp } from "./shell/relay/persist.ts";
import { VERSION } from "./shell/process/version.ts";
import { RedisConnection } from "./shell/redis/connection.ts";
import { RedisPlane } from "./shell/redis/plane.ts";
import { openNotifier, serviceCommand } from "./shell/process/service_command.ts";
import { runCtl } from "./shell/process/ctl.ts";
import { LagMonitor, processFacts } from "./shell/process/process_stats.ts";

const io: LoadIo = { readTextFile, env: getEnv, envNames };

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function configureLogs(level: LogLevel, format: "auto" | "text" | "json"): void {
  setupLogging({ level, format }, {
    write: writeStderr,
    terminal: isTerminal("stderr"),
    noColor: (getEnv("NO_COLOR") ?? "") !== "",
  });
}

/** Logging before the config is known: flags, else the environment, else info/auto. */
function configureEarlyLogs(options: RunOptions): void {
  const pick = <T extends string>(
    flag: T | undefined,
    name: string,
    allowed: readonly T[],
    fallback: T,
  ): T => {
    const env = getEnv(name) as T | undefined;
    return flag ?? (env !== undefined && allowed.includes(env) ? env : fallback);
  };
  configureLogs(
    pick(options.logLevel, "FERRY_LOG_LEVEL", ["debug", "info", "warning", "error"], "info"),
    pick(options.logFormat, "FERRY_LOG_FORMAT", ["auto", "text", "json"], "auto"),
  );
}

function logConfigErrors(result: LoadResult & { ok: false }): void {
  for (const e of result.errors) {
    log.error("invalid config ({source}): {error}", {
      event: "config_error",
      source: result.source,
      path: e.path,
      error: formatConfigError(e),
    });
  }
}

/** Logs a "listening" line per listener (all of them, or those not in `before`). */
function logListeners(status: StatusInfo, before: ReadonlySet<string> = new Set()): void {
  for (const l of status.listeners) {
    const address = l.address ?? "(unbound)";
    const { name: listener, protocol, cluster } = l;
    if (before.has(`${listener} ${protocol} ${address}`)) continue;
    const dp = l.datapath ?? null;
    // UDP: which data path serves it, why "auto" fell back, and what the kernel granted on the native path.
    const path = dp === null ? "" : ` (${dp.datapath}${dp.reason === null ? "" : `: ${dp.reason}`})`;
    log.info(
      `listening {listener} {protocol} {address} → {cluster}${
        path.replaceAll("{", "(").replaceAll("}", ")")
      }`,
      {
        event: "listening",
        listener,
        protocol,
        address,
        cluster,
        ...(dp === null ? {} : {
          datapath: dp.datapath,
          requested: dp.requested,
          fallback: dp.reason,
          recvBuffer: dp.recvBuffer,
          sendBuffer: dp.sendBuffer,
        }),
      },
    );
  }
}

function listenerKeys(status: StatusInfo): Set<string> {
  return new Set(status.listeners.map((l) => `${l.name} ${l.protocol} ${l.address ?? "(unbound)"}`));
}

/**
 * The process's descriptor budget from RLIMIT_NOFILE (core/fd_budget.ts): what flows and connections of
 * every listener and worker may hold together, after the reserve and the admin API's room; also the flow
 * limit of max_flows = 0 listeners (one listener may use it all, but all of them together no more).
 */
async function descriptorLimits(
  config: FerryConfig,
): Promise<{ autoMaxFlows?: number; descriptorBudget?: number }> {
  const limit = await fileDescriptorLimit();
  if (limit === undefined || !Number.isFinite(limit)) return {};
  const b = descriptorBudget(limit, config.listeners.length, config.relay.workers);
  return { autoMaxFlows: Math.min(1_000_000, b.relay), descriptorBudget: b.relay };
}

/**
 * The change hook that keeps `[admin]` live: a change of `admin.listen` binds the new address before the
 * change is applied (a bind failure refuses the change) and closes the old server once it is; a binding
 * the shell would not start with (no token off loopback) is refused. The token needs nothing: the app
 * reads it from the running config at every request.
 */
function adminRebinder(
  app: { fetch(request: Request): Response | Promise<Response> },
  current: () => HttpServer | null,
  replace: (server: HttpServer) => void,
): ChangeHook {
  return (prev, next) => {
    const refused = checkAdminBinding(next.admin.listen, next.admin.token);
    if (refused !== null) return Promise.reject(new Error(refused));
    const was = formatSocketAddress(prev.admin.listen);
    const address = formatSocketAddress(next.admin.listen);
    if (address === was) return Promise.resolve(null);
    return serve(app, next.admin.listen, adminLimits(BODY_LIMIT)).then((fresh) => ({
      commit: () => {
        const old = current();
        replace(fresh);
        // Gracefully: the request that asked for the move still gets its answer from the old server.
        old?.close(true).catch(() => {});
        log.info("admin API moved from {was} to http://{address}", {
          event: "admin_listening",
          was,
          address: formatSocketAddress({ ...next.admin.listen, port: fresh.port }),
        });
      },
      abort: () => void fresh.close().catch(() => {}),
    }));
  };
}

async function run(options: RunOptions): Promise<void> {
  configureEarlyLogs(options);
  const load = () => loadConfig(options, io);
  const first = await load();
  if (!first.ok) {
    logConfigErrors(first);
    return exit(Exit.Failure);
  }
  let config: FerryConfig = first.config;
  /** systemd's notify socket (Type=notify), open once every listener is bound. */
  let notify: Awaited<ReturnType<typeof openNotifier>> = null;
  /** What was started: keys the declaration marks x-restart keep these values until the next start. */
  const started = first.config;
  // A temp file a crash left mid-persist is not a config: remove it.
  if (first.file !== null) await removeStaleTemp(first.file);
  configureLogs(config.relay.logLevel, config.relay.logFormat);
  log.info("ferry {version} on {runtime} {runtimeVersion}, config: {source}", {
    event: "starting",
    version: VERSION,
    runtime: runtimeName(),
    runtimeVersion: runtimeVersion(),
    source: first.source,
  });
  for (const warning of first.warnings) log.warning("{warning}", { event: "env_unknown", warning });
  if (first.overrides.length > 0) {
    log.info("overrides: {list}", { event: "overrides", list: first.overrides.join(", ") });
  }

  // Reloads (SIGHUP, POST /reload) and admin changes all go through the control, one after another.
  let running: Running;
  // One connection for this thread's Redis duties: routing (workers = 1), disconnects, the fleet.
  const redis = config.redis.url === "" ? null : new RedisConnection(config.redis.url, config.redis.timeout);
  let plane: RedisPlane | null = null;
  try {
    running = await startRelay(config, detectPlatform(), {
      seed: options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
      ...(await descriptorLimits(config)),
      log: { terminal: isTerminal("stderr"), noColor: (getEnv("NO_COLOR") ?? "") !== "" },
      redis,
      onWorkerDeath: (e) => {
        // Its sockets may stay open unread, so part of every port would go unserved: let a supervisor
        // restart the whole process instead.
        log.error("relay worker failed, exiting: {error}", { event: "worker_failed", error: reason(e) });
        exit(Exit.Failure);
      },
      control: {
        version: VERSION,
        runtimeVersion: runtimeVersion(),
        configPath: first.file,
        // Off this thread: a large config would stall forwarding while it is parsed, checked and hashed.
        load: async () => {
          const r = await loadConfigOffThread(options, load);
          if (!r.ok) logConfigErrors(r);
          return r;
        },
        now: Date.now,
        memory: memoryUsage,
        processFacts: processFacts(new LagMonitor().start()),
        redis: () => plane?.metrics(),
        onReloaded: () => plane?.reloaded(),
        // SIGHUP and POST /reload alike tell systemd (once it has been told READY).
        reloading: () => notify?.reloading(),
        reloadDone: (ok) => notify?.reloaded(ok ? "reloaded" : "reload failed; running the previous config"),
        // The change queue logs each change once, with who asked and what changed.
        onApplied: (_hash, _persisted, applied) => {
          config = applied;
          plane?.configApplied(applied);
          configureLogs(config.relay.logLevel, config.relay.logFormat);
          const waiting = restartChanges(started, applied);
          if (waiting.length > 0) {
            log.warning("{keys} changed: takes effect at the next start", {
              event: "restart_needed",
              keys: waiting.join(", "),
            });
          }
        },
      },
    });
  } catch (e) {
    const wanted = config.listeners.map((l) => `${l.protocol} ${formatSocketAddress(l.address)}`).join(", ");
    log.error("cannot start: {error} (listeners: {wanted})", {
      event: "start_failed",
      error: reason(e),
      wanted,
    });
    redis?.close();
    return exit(Exit.Failure);
  }
  // Every change (API, reload, fleet, drain) takes its turn in this control's one queue.
  const control = running.control;
  if (redis !== null) plane = new RedisPlane(config, redis, { control, logger: log });
  // Automatic bans are logged (and shared) by the fleet; outside one, they are logged here.
  const protection = control.protection;
  if (plane?.bans == null && protection !== undefined) {
    const timer = setInterval(() => {
      Promise.resolve(protection.takeAutoBans()).then((bans) => {
        for (const b of bans) {
          log.warning("source {cidr} banned automatically: {reason}", {
            event: "auto_ban",
            cidr: b.cidr,
            reason: b.reason,
            ttl: b.ttlSeconds,
          });
        }
      }).catch(() => {});
    }, 1000);
    (timer as { unref?: () => void }).unref?.();
  }
  if (running.workers > 1) {
    log.info("{workers} relay workers share each listening port", {
      event: "workers",
      workers: running.workers,
    });
  }
  logListeners(await control.status());

  let admin: HttpServer | null = null;
  // Signals are handled from here on: a SIGHUP or SIGTERM while the admin API starts must not end the process.
  let stopping = false;
  const stop = (signal: Signal) => {
    if (stopping) {
      log.warning("{signal} again: exiting now", { event: "forced_exit", signal });
      return exit(signal === "SIGINT" ? Exit.ForcedSigint : Exit.ForcedSigterm);
    }
    stopping = true;
    notify?.stopping();
    const grace = control.config().relay.gracePeriod;
    // The admin API stays up while draining (readyz answers 503), so operators can watch the drain.
    Promise.resolve(control.status()).then((status) => {
      log.info("{signal}: draining {active} flows and connections for up to {grace} ms", {
        event: "draining",
        signal,
        active: status.listeners.reduce((n, l) => n + l.active, 0),
        grace,
      });
    }).catch(() => {}).then(() => running.shutdown(grace)).then(() => plane?.close()).then(
      () => log.info("stopped", { event: "stopped" }),
      (e) => log.error("shutdown failed: {error}", { error: reason(e) }),
    ).then(() => admin?.close()).finally(() => exit(Exit.Ok));
  };

  let reloads = Promise.resolve();
  const reload = async () => {
    if (stopping) return;
    if (first.file === null) {
      log.warning("SIGHUP: no config file to reload ({source})", {
        event: "reload_skipped",
        source: first.source,
      });
      return;
    }
    log.info("SIGHUP: reloading {file}", { event: "reloading", file: first.file });
    const before = listenerKeys(await control.status());
    const result = await control.reload();
    if (!result.ok) {
      for (const e of result.errors.filter((e) => e.path === "")) {
        log.error("reload failed: {error}", { event: "reload_failed", error: e.message });
      }
      log.error("reload failed: {count} errors; the running config is unchanged", {
        event: "reload_failed",
        count: result.errors.length,
      });
      return;
    }
    log.info("reloaded {file}", { event: "reloaded", file: first.file });
    logListeners(await control.status(), before);
  };

  onSignal("SIGINT", () => stop("SIGINT"));
  onSignal("SIGTERM", () => stop("SIGTERM"));
  onSignal("SIGHUP", () => {
    reloads = reloads.then(reload).catch((e) => log.error("reload failed: {error}", { error: reason(e) }));
  });
  if (first.adminEnabled) {
    const refused = checkAdminBinding(config.admin.listen, config.admin.token);
    if (refused !== null) {
      log.error("cannot start the admin API: {error}", { event: "start_failed", error: refused });
      running.stop();
      return exit(Exit.Failure);
    }
    // The token of the running config, asked at every request: a reload or PUT that changes it is live.
    const app = createAdminApp(control, {
      token: () => control.config().admin.token,
      fleet: plane?.fleet ?? null,
      ...(plane?.bans == null ? {} : { protection: plane.bans.shared() }),
      onError: (e) => log.error("admin API error: {error}", { error: reason(e) }),
      checkConfig: checkConfigOffThread,
    });
    control.addHook(adminRebinder(app, () => admin, (next) => (admin = next)));
    try {
      admin = await serve(app, config.admin.listen, adminLimits(BODY_LIMIT));
    } catch (e) {
      log.error("cannot start the admin API on {address}: {error}", {
        event: "start_failed",
        address: formatSocketAddress(config.admin.listen),
        error: reason(e),
      });
      running.stop();
      return exit(Exit.Failure);
    }
    log.info("admin API on http://{address}", {
      event: "admin_listening",
      address: formatSocketAddress({ ...config.admin.listen, port: admin.port }),
    });
  }

  // systemd (Type=notify): everything is bound now.
  notify = await openNotifier((m) => log.warning(m, { event: "sd_notify" }));
  notify?.ready(`serving ${config.listeners.length} listeners`);
  notify?.startWatchdog();
}

async function check(options: RunOptions): Promise<void> {
  const result = await loadConfig(options, io);
  for (const w of result.warnings) writeStderr(`warning: ${w}\n`);
  if (!result.ok) {
    const lines = result.errors.map(formatConfigError);
    const n = result.errors.length;
    writeStderr(`${lines.join("\n")}\n${n} error${n === 1 ? "" : "s"} in ${result.source}\n`);
    return exit(Exit.Failure);
  }
  writeStdout(`ok: ${result.source}: ${configSummary(result.config)}\n`);
  return exit(Exit.Ok);
}

async function main(): Promise<void> {
  const command = parseArgs(commandArgs());
  switch (command.kind) {
    case "usage-error":
      writeStderr(`ferry: ${command.message}\nRun "ferry --help" for usage.\n`);
      return exit(Exit.Usage);
    case "help":
      writeStdout(helpText());
      return exit(Exit.Ok);
    case "version":
      writeStdout(`ferry ${VERSION} (${runtimeName()} ${runtimeVersion()})\n`);
      return exit(Exit.Ok);
    case "print-default-config":
      writeStdout(DEFAULT_CONFIG_TOML);
      return exit(Exit.Ok);
    case "schema":
      writeStdout(`${JSON.stringify(configJsonSchema(VERSION), null, 2)}\n`);
      return exit(Exit.Ok);
    case "check":
      return await check(command.options);
    case "service":
      return exit(await serviceCommand(command.options, io));
    case "ctl":
      return exit(await runCtl(command.args, io));
    case "run":
      return await run(command.options);
  }
}

if (import.meta.main) {
  main().catch((e) => {
    writeStderr(`ferry: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    exit(Exit.Failure);
  });
}
