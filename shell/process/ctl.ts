/**
 * `ferry ctl`: a command-line client for the admin API, so operators need not hand-write curl. It finds
 * the API the way the server does (`--config FILE`, FERRY_CONFIG, the `.env` beside the file,
 * FERRY_ADMIN_LISTEN, FERRY_ADMIN_TOKEN; `--admin` and `--token` win), prints a short table, or the API's
 * JSON with `--json`.
 *
 * Exit codes: 0 ok, 1 the API refused the request (its error is printed), 2 a bad command line or config,
 * 3 the admin API cannot be reached, 4 the token is missing or wrong.
 *
 * @module
 */

import { formatConfigError, loadConfig, type LoadIo } from "./cli.ts";
import { formatSocketAddress } from "../../core/address.ts";
import { writeStderr, writeStdout } from "./platform.ts";

/** Exit codes of `ferry ctl`. */
export const CtlExit = { Ok: 0, Refused: 1, Usage: 2, Unreachable: 3, Unauthorized: 4 } as const;

/** One request of a command. */
interface Call {
  readonly method: "GET" | "POST" | "PATCH" | "DELETE";
  readonly path: string;
  readonly body?: unknown;
  /** How to print the answer without --json. */
  readonly show: (body: unknown) => string;
}

/** The subcommands: their argument names (for usage) and the request they make. */
const COMMANDS: Record<string, { readonly args: readonly string[]; readonly call: (a: string[]) => Call }> = {
  status: { args: [], call: () => get("/api/v1/status", showStatus) },
  listeners: {
    args: [],
    call: () => get("/api/v1/listeners", (b) => table(field(b, "listeners"), LISTENER)),
  },
  clusters: { args: [], call: () => get("/api/v1/clusters", (b) => table(field(b, "clusters"), CLUSTER)) },
  backends: {
    args: ["CLUSTER"],
    call: ([c]) => get(`/api/v1/clusters/${enc(c)}/backends`, (b) => table(field(b, "backends"), BACKEND)),
  },
  drain: { args: ["CLUSTER", "ADDR"], call: ([c, a]) => patch(c, a, { state: "draining" }) },
  undrain: { args: ["CLUSTER", "ADDR"], call: ([c, a]) => patch(c, a, { state: "up" }) },
  down: { args: ["CLUSTER", "ADDR"], call: ([c, a]) => patch(c, a, { state: "down" }) },
  weight: {
    args: ["CLUSTER", "ADDR", "N"],
    call: ([c, a, w]) => patch(c, a, { weight: /^\d+$/.test(w) ? Number(w) : w }),
  },
  flows: {
    args: ["[LISTENER]"],
    call: ([l]) =>
      get(`/api/v1/flows?limit=1000${l === undefined ? "" : `&listener=${enc(l)}`}`, (b) => {
        const total = field(b, "total");
        return `${table(field(b, "flows"), FLOW)}${total} flows\n`;
      }),
  },
  disconnect: {
    args: ["CLIENT"],
    call: ([client]) => ({
      method: "DELETE",
      path: `/api/v1/flows?client=${enc(client)}`,
      show: (b) => `closed ${field(b, "closed")} flows and connections\n`,
    }),
  },
  "drain-relay": {
    args: ["[LISTENER]"],
    call: ([l]) => ({
      method: "POST",
      path: "/api/v1/drain",
      body: l === undefined ? {} : { listener: l },
      show: () => `draining ${l ?? "every listener"}\n`,
    }),
  },
  "undrain-relay": {
    args: ["LISTENER"],
    call: ([l]) => ({
      method: "PATCH",
      path: `/api/v1/listeners/${enc(l)}`,
      body: { draining: false },
      show: () => `${l} admits again\n`,
    }),
  },
  reload: {
    args: [],
    call: () => ({
      method: "POST",
      path: "/api/v1/reload",
      show: (b) => `reloaded: config ${String(field(b, "configHash")).slice(0, 12)}\n`,
    }),
  },
};

const enc = encodeURIComponent;
const get = (path: string, show: (b: unknown) => string): Call => ({ method: "GET", path, show });
const patch = (cluster: string, address: string, body: unknown): Call => ({
  method: "PATCH",
  path: `/api/v1/clusters/${enc(cluster)}/backends/${enc(address)}`,
  body,
  show: (b) => table([field(b, "backend")], BACKEND),
});

/** Column name → the field of each row it shows. */
type Columns = Readonly<Record<string, (row: Record<string, unknown>) => unknown>>;
const LISTENER: Columns = {
  name: (r) => r.name,
  protocol: (r) => r.protocol,
  address: (r) => r.bound ?? r.address,
  cluster: (r) => r.cluster,
  active: (r) => r.active,
  draining: (r) => r.draining,
};
const CLUSTER: Columns = {
  name: (r) => r.name,
  balancer: (r) => r.balancer,
  backends: (r) => (Array.isArray(r.backends) ? r.backends.length : 0),
  fail_open: (r) => r.failOpenEvents,
};
const BACKEND: Columns = {
  address: (r) => r.address,
  state: (r) => r.effectiveState,
  configured: (r) => r.state,
  weight: (r) => r.weight ?? 1,
  health: (r) => (r.health as { status?: string } | null)?.status ?? "-",
  flows: (r) => r.activeFlows,
  total: (r) => r.flowsTotal,
};
/** A UDP flow or a TCP connection (`protocol`): a connection has bytes up and down, no datagram figures. */
const FLOW: Columns = {
  id: (r) => r.id,
  listener: (r) => r.listener,
  client: (r) => r.client,
  backend: (r) => r.backend ?? "-",
  proto: (r) => r.protocol,
  age_s: (r) => Math.round(Number(r.ageSeconds)),
  bytes_in: (r) => r.bytesIn ?? r.bytesUp,
  bytes_out: (r) => r.bytesOut ?? r.bytesDown,
  dgrams_in: (r) => r.datagramsIn,
  dgrams_out: (r) => r.datagramsOut,
  rtt_ms: (r) => (typeof r.latencyMs === "number" ? r.latencyMs.toFixed(1) : "-"),
  loss: (r) => r.lossPermille,
};

function field(body: unknown, name: string): unknown {
  return body !== null && typeof body === "object" ? (body as Record<string, unknown>)[name] : undefined;
}

/** Rows as aligned columns, with a header line. */
export function table(rows: unknown, columns: Columns): string {
  const list = Array.isArray(rows) ? rows as Record<string, unknown>[] : [];
  const names = Object.keys(columns);
  const cells = [names, ...list.map((r) => names.map((n) => String(columns[n](r) ?? "-")))];
  const widths = names.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  return cells.map((row) => row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n") + "\n";
}

function showStatus(b: unknown): string {
  const s = b as Record<string, unknown>;
  const head = `ferry ${s.version} on ${s.runtime} ${s.runtimeVersion}, up ${
    Math.round(Number(s.uptimeSeconds))
  } s, ${s.workers} worker(s), config ${String(s.configHash).slice(0, 12)}${
    s.draining ? ", DRAINING" : ""
  }\n`;
  return head + table(s.listeners, LISTENER);
}

/** The `ferry ctl --help` text. */
export function ctlHelp(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ferry ctl ${[name, ...c.args].join(" ")}`);
  return `ferry ctl: the admin API from the command line

Usage:
${lines.join("\n")}

Options (before or after the command):
  -c, --config FILE   read admin.listen and admin.token from this config (as the server: FERRY_CONFIG,
                      the .env beside it, FERRY_ADMIN_LISTEN and FERRY_ADMIN_TOKEN apply too)
  --admin ADDR        the admin API as ip:port or http://host:port (overrides the config)
  --token TOKEN       the bearer token (overrides the config)
  --json              print the API's JSON answer as is

Exit codes: 0 ok, 1 the API refused the request, 2 bad command line or config, 3 the admin API cannot
be reached, 4 missing or wrong token.
`;
}

/** The parsed command line of `ferry ctl`. */
export interface CtlArgs {
  readonly command: string;
  readonly args: string[];
  readonly config?: string;
  readonly admin?: string;
  readonly token?: string;
  readonly json: boolean;
}

/** Parses the words after `ferry ctl`; a string is a usage error. */
export function parseCtlArgs(argv: readonly string[]): CtlArgs | "help" | string {
  const words: string[] = [];
  const values: Record<string, string> = {};
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") return "help";
    if (a === "--json") json = true;
    else if (a === "-c" || a === "--config" || a === "--admin" || a === "--token") {
      if (i + 1 >= argv.length) return `${a} needs a value`;
      values[a === "-c" ? "--config" : a] = argv[++i];
    } else if (a.startsWith("--") && a.includes("=")) {
      const [k, v] = [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)];
      if (k !== "--config" && k !== "--admin" && k !== "--token") return `unknown option ${k}`;
      values[k] = v;
    } else if (a.startsWith("-") && a !== "-") return `unknown option ${a}`;
    else words.push(a);
  }
  const [command, ...args] = words;
  if (command === undefined) return "help";
  const spec = COMMANDS[command];
  if (spec === undefined) return `unknown ctl command "${command}"`;
  const required = spec.args.filter((n) => !n.startsWith("[")).length;
  if (args.length < required || args.length > spec.args.length) {
    return `usage: ferry ctl ${[command, ...spec.args].join(" ")}`;
  }
  return {
    command,
    args,
    config: values["--config"],
    admin: values["--admin"],
    token: values["--token"],
    json,
  };
}

/** Where the admin API is and the token, from the flags or the server's own config sources. */
async function endpoint(a: CtlArgs, io: LoadIo): Promise<{ url: string; token: string } | string> {
  let base = a.admin;
  let token = a.token;
  if (base === undefined || token === undefined) {
    const r = await loadConfig({ config: a.config }, io);
    if (!r.ok) return `${r.errors.map(formatConfigError).join("\n")}\n(${r.source})`;
    base ??= formatSocketAddress(r.config.admin.listen).replace(/^0\.0\.0\.0:/, "127.0.0.1:")
      .replace(/^\[::\]:/, "[::1]:");
    token ??= r.config.admin.token;
  }
  return { url: /^https?:\/\//.test(base) ? base.replace(/\/+$/, "") : `http://${base}`, token };
}

/** Runs `ferry ctl ARGS`; returns the exit code. */
export async function runCtl(argv: readonly string[], io: LoadIo): Promise<number> {
  const parsed = parseCtlArgs(argv);
  if (parsed === "help") {
    writeStdout(ctlHelp());
    return CtlExit.Ok;
  }
  if (typeof parsed === "string") {
    writeStderr(`ferry ctl: ${parsed}\nRun "ferry ctl --help" for usage.\n`);
    return CtlExit.Usage;
  }
  const where = await endpoint(parsed, io);
  if (typeof where === "string") {
    writeStderr(`ferry ctl: invalid config:\n${where}\n`);
    return CtlExit.Usage;
  }
  const call = COMMANDS[parsed.command].call(parsed.args);
  const headers: Record<string, string> = { accept: "application/json" };
  if (where.token !== "") headers.authorization = `Bearer ${where.token}`;
  if (call.body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(`${where.url}${call.path}`, {
      method: call.method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    writeStderr(`ferry ctl: cannot reach the admin API at ${where.url}: ${why}\n`);
    return CtlExit.Unreachable;
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = typeof field(body, "error") === "string" ? field(body, "error") : text.slice(0, 200);
    const errors = field(body, "errors");
    const detail = Array.isArray(errors)
      ? errors.map((e) => `  ${e.path === "" ? "" : `${e.path}: `}${e.message}`).join("\n")
      : "";
    writeStderr(`ferry ctl: ${response.status}: ${message}\n${detail === "" ? "" : `${detail}\n`}`);
    if (parsed.json && body !== null) writeStdout(`${JSON.stringify(body, null, 2)}\n`);
    return response.status === 401 ? CtlExit.Unauthorized : CtlExit.Refused;
  }
  writeStdout(parsed.json ? `${JSON.stringify(body, null, 2)}\n` : call.show(body));
  return CtlExit.Ok;
}
