/**
 * The systemd side of the `ferry` command: `ferry service` (print a unit for the config) and the notifier
 * main.ts opens when NOTIFY_SOCKET is set.
 *
 * @module
 */

import process from "node:process";
import { Exit, formatConfigError, loadConfig, type LoadIo, type RunOptions } from "./cli.ts";
import { getEnv, readTextFile, writeStderr, writeStdout } from "./platform.ts";
import { monotonicFromUptime, SystemdNotifier } from "./sd_notify.ts";
import { DEFAULT_UNIT_PATHS, systemdUnit } from "./systemd_unit.ts";

/**
 * `ferry service [--config FILE]`: validates the config like `ferry check` and prints its unit. The unit
 * runs `/usr/local/bin/ferry --config <FILE as an absolute path>` (default /etc/ferry/ferry.toml).
 * Returns the exit code.
 */
export async function serviceCommand(options: RunOptions, io: LoadIo): Promise<number> {
  const result = await loadConfig(options, io);
  if (!result.ok) {
    writeStderr(`${result.errors.map(formatConfigError).join("\n")}\n${result.source} is not valid\n`);
    return Exit.Failure;
  }
  const file = result.file;
  const config = file === null
    ? DEFAULT_UNIT_PATHS.config
    : file.startsWith("/")
    ? file
    : `${process.cwd()}/${file.replace(/^\.\//, "")}`;
  writeStdout(systemdUnit(result.config, { ...DEFAULT_UNIT_PATHS, config }));
  return Exit.Ok;
}

/** The notifier for NOTIFY_SOCKET, or null when not run as a Type=notify service. */
export function openNotifier(warn: (message: string) => void): Promise<SystemdNotifier | null> {
  return SystemdNotifier.open({
    env: getEnv,
    pid: process.pid,
    warn,
    monotonicUsec: async () => {
      try {
        return monotonicFromUptime(await readTextFile("/proc/uptime"));
      } catch {
        return 0;
      }
    },
  });
}
