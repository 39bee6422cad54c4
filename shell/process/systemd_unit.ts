/**
 * `ferry service`: a hardened systemd unit for the config it is given. Pure: the config and the paths come
 * in, the unit's text goes out (main.ts prints it).
 *
 * What the config decides:
 * - `AmbientCapabilities=CAP_NET_BIND_SERVICE` only when a listener (or the admin API) binds a port below
 *   1024, such as DNS on 53; otherwise the service keeps no capability at all.
 * - `LimitNOFILE` from the flows the config allows: each UDP flow holds one upstream socket, each TCP
 *   connection two, `max_flows` is per worker, plus a reserve for listeners, the admin API, Redis and logs.
 *   With `max_flows = 0` (automatic: half the descriptor limit) the limit is the fixed AUTO_NOFILE, so the
 *   automatic figure comes out at about half of it.
 *
 * @module
 */

import type { FerryConfig } from "../../core/types.ts";

/** Descriptors kept for everything that is not a flow: sockets of listeners, admin, Redis, log files. */
export const NOFILE_RESERVE = 1024;
/** LimitNOFILE when some listener sizes itself from the limit (max_flows = 0). */
export const AUTO_NOFILE = 262144;

/** Where the unit says the pieces live. */
export interface UnitPaths {
  /** Absolute path of the ferry binary. */
  readonly binary: string;
  /** Absolute path of the config file. */
  readonly config: string;
  /** The dedicated system user (and group) the service runs as. */
  readonly user: string;
}

/** The defaults of `ferry service`: the layout the README's "Deploying on an edge VM" uses. */
export const DEFAULT_UNIT_PATHS: UnitPaths = {
  binary: "/usr/local/bin/ferry",
  config: "/etc/ferry/ferry.toml",
  user: "ferry",
};

/** The LimitNOFILE the config needs (see the module doc). */
export function descriptorLimit(config: FerryConfig): number {
  let flows = 0;
  for (const l of config.listeners) {
    if (l.maxFlows === 0) return AUTO_NOFILE;
    flows += l.maxFlows * (l.protocol === "tcp" ? 2 : 1);
  }
  return flows * config.relay.workers + NOFILE_RESERVE;
}

/** Whether anything in the config binds a privileged port (below 1024). */
export function needsBindCapability(config: FerryConfig): boolean {
  return config.listeners.some((l) => l.address.port > 0 && l.address.port < 1024) ||
    (config.admin.listen.port > 0 && config.admin.listen.port < 1024);
}

/**
 * The unit lines that let Ferry write its session records under ProtectSystem=strict: a file under
 * /var/log/NAME gets `LogsDirectory=NAME` (systemd creates it, owned by the service user); another absolute
 * path gets its directory as ReadWritePaths (the "-" tolerates its absence). Ends with a newline, or "".
 */
export function recordsAccess(file: string): string {
  if (file === "") return "";
  const logs = /^\/var\/log\/([^/]+)\/[^/]+$/.exec(file);
  if (logs !== null) return `# Session records go to ${file}.\nLogsDirectory=${logs[1]}\n`;
  const dir = file.startsWith("/") ? file.slice(0, Math.max(1, file.lastIndexOf("/"))) : null;
  return dir === null
    ? `# records.file is relative (${file}): it resolves against WorkingDirectory=, which must be writable.\n`
    : `# Session records go to ${file}.\nReadWritePaths=-${dir}\n`;
}

/** The unit file text for `config` (ends with a newline). */
export function systemdUnit(config: FerryConfig, paths: UnitPaths = DEFAULT_UNIT_PATHS): string {
  const caps = needsBindCapability(config)
    ? [
      "# A listener binds a port below 1024: that one capability, nothing else.",
      "AmbientCapabilities=CAP_NET_BIND_SERVICE",
      "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    ]
    : ["# Every port is 1024 or above: no capability at all.", "CapabilityBoundingSet="];
  const nofile = descriptorLimit(config);
  const grace = Math.ceil(config.relay.gracePeriod / 1000) + 15;
  const dir = paths.config.slice(0, Math.max(1, paths.config.lastIndexOf("/")));
  const records = recordsAccess(config.records.file);
  return `# Written by \`ferry service\`; install as /etc/systemd/system/ferry.service.
[Unit]
Description=Ferry UDP/TCP edge relay
Documentation=https://github.com/ferry-relay/ferry#deploying-on-an-edge-vm
Wants=network-online.target
After=network-online.target

[Service]
# Ferry sends READY=1 once every listener is bound, RELOADING=1/READY=1 around reloads, STOPPING=1 on drain.
Type=notify
NotifyAccess=main
ExecStart=${paths.binary} --config ${paths.config}
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains for relay.grace_period (${config.relay.gracePeriod} ms); leave it that long and a margin.
KillSignal=SIGTERM
TimeoutStopSec=${grace}
Restart=on-failure
RestartSec=2
# The watchdog: Ferry pings at half this interval while its event loop runs.
WatchdogSec=30
User=${paths.user}
Group=${paths.user}
# Each UDP flow holds one socket, each TCP connection two (max_flows per listener, per worker).
LimitNOFILE=${nofile}
${caps.join("\n")}
NoNewPrivileges=yes
ProtectSystem=strict
# For PUT /config?persist=true, let it rewrite its config (and FILE.bak):
# ReadWritePaths=${dir}
${records}ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
`;
}
