import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ConfigError } from "../core/config.ts";
import {
  type Command,
  configSummary,
  formatConfigError,
  helpText,
  loadConfig,
  type LoadIo,
  type LoadResult,
  parseArgs,
  quickConfig,
  type RunOptions,
} from "../shell/process/cli.ts";
import {
  applyOverrides,
  CONFIG_ENV,
  dotEnvPath,
  ENV_VARS,
  envOverrides,
  parseDotEnv,
} from "../shell/process/env.ts";
import { jsonFormatter, resolveLogFormat } from "../shell/process/logging.ts";
import { validateConfig } from "../core/config.ts";

/** The run/check options of a command line, failing on anything else. */
function options(argv: string[]): RunOptions {
  const c = parseArgs(argv);
  if (c.kind !== "run" && c.kind !== "check") assert.fail(`expected run/check, got ${JSON.stringify(c)}`);
  return c.options;
}

function usageError(argv: string[]): string {
  const c: Command = parseArgs(argv);
  if (c.kind !== "usage-error") assert.fail(`expected a usage error, got ${JSON.stringify(c)}`);
  return c.message;
}

/** A LoadIo over an in-memory file system and environment. */
function io(files: Record<string, string>, env: Record<string, string> = {}): LoadIo {
  return {
    readTextFile: (path) => {
      if (path in files) return Promise.resolve(files[path]);
      return Promise.reject(Object.assign(new Error(`no such file: ${path}`), { code: "ENOENT" }));
    },
    env: (name) => env[name],
  };
}

function ok(r: LoadResult) {
  if (!r.ok) assert.fail(`expected a valid config, got ${JSON.stringify(r.errors)}`);
  return r.config;
}

function errors(r: LoadResult): ConfigError[] {
  if (r.ok) assert.fail("expected errors");
  return r.errors;
}

const FILE = `
[relay]
log_level = "error"
[[listeners]]
name = "a"
address = "127.0.0.1:7000"
cluster = "c"
[clusters.c]
backends = [{ address = "127.0.0.1:7001" }]
`;

describe("parseArgs", () => {
  test("no arguments runs the default config", () => {
    assert.deepEqual(parseArgs([]), {
      kind: "run",
      options: {
        config: undefined,
        quick: undefined,
        admin: undefined,
        logLevel: undefined,
        logFormat: undefined,
        seed: undefined,
      },
    });
  });

  test("commands, help and version", () => {
    assert.equal(parseArgs(["--help"]).kind, "help");
    assert.equal(parseArgs(["check", "-h"]).kind, "help");
    assert.equal(parseArgs(["help"]).kind, "help");
    assert.equal(parseArgs(["--version"]).kind, "version");
    assert.equal(parseArgs(["-V"]).kind, "version");
    assert.equal(parseArgs(["print-default-config"]).kind, "print-default-config");
    assert.match(usageError(["frobnicate"]), /unknown command "frobnicate"/);
    assert.match(usageError(["print-default-config", "x"]), /takes no arguments/);
    assert.match(usageError(["run", "x"]), /unexpected argument "x"/);
  });

  test("--config in every spelling, and check FILE", () => {
    assert.equal(options(["--config", "a.toml"]).config, "a.toml");
    assert.equal(options(["--config=b.toml"]).config, "b.toml");
    assert.equal(options(["-c", "c.toml"]).config, "c.toml");
    const check = parseArgs(["check", "d.toml"]);
    assert.equal(check.kind, "check");
    assert.equal(options(["check", "d.toml"]).config, "d.toml");
    assert.equal(options(["check", "--config", "e.toml"]).config, "e.toml");
  });

  test("bad flags are usage errors", () => {
    assert.match(usageError(["--bogus"]), /unknown option --bogus/);
    assert.match(usageError(["--config"]), /--config needs a value/);
    assert.match(usageError(["--log-level", "loud"]), /--log-level must be one of/);
    assert.match(usageError(["--log-format", "xml"]), /--log-format must be one of/);
    assert.match(usageError(["--seed", "-1"]), /--seed/);
    assert.match(usageError(["--seed", "4294967296"]), /--seed/);
    assert.match(usageError(["--seed", "1.5"]), /--seed/);
  });

  test("log flags and the seed", () => {
    const o = options([
      "--log-level",
      "debug",
      "--log-format=json",
      "--seed",
      "42",
      "--admin",
      "127.0.0.1:0",
    ]);
    assert.equal(o.logLevel, "debug");
    assert.equal(o.logFormat, "json");
    assert.equal(o.seed, 42);
    assert.equal(o.admin, "127.0.0.1:0");
    assert.equal(options(["--seed", "4294967295"]).seed, 4294967295);
  });

  test("quick mode", () => {
    const o = options([
      "--udp",
      "0.0.0.0:7000",
      "--to",
      "10.0.0.5:7000, 10.0.0.6:7000",
      "--balancer",
      "maglev",
    ]);
    assert.deepEqual(o.quick, {
      protocol: "udp",
      address: "0.0.0.0:7000",
      to: ["10.0.0.5:7000", "10.0.0.6:7000"],
      balancer: "maglev",
    });
    const t = options(["--tcp=[::1]:80", "--to", "[::1]:81", "--to", "[::1]:82"]);
    assert.deepEqual(t.quick, {
      protocol: "tcp",
      address: "[::1]:80",
      to: ["[::1]:81", "[::1]:82"],
      balancer: undefined,
    });
    assert.match(usageError(["--udp", "0.0.0.0:7000"]), /--udp needs --to/);
    assert.match(usageError(["--to", "10.0.0.1:1"]), /--to needs --udp/);
    assert.match(usageError(["--balancer", "maglev"]), /--balancer needs --udp/);
    assert.match(usageError(["--udp", "a:1", "--tcp", "a:1", "--to", "b:1"]), /cannot be combined/);
    assert.match(usageError(["--udp", "a:1", "--to", "b:1", "-c", "f.toml"]), /--config cannot be combined/);
  });
});

describe("quick mode config", () => {
  test("one listener and one cluster named quick", () => {
    const r = validateConfig(
      quickConfig({
        protocol: "udp",
        address: "0.0.0.0:7000",
        to: ["10.0.0.5:7000", "10.0.0.6:7000"],
        balancer: "maglev",
      }),
    );
    if (!r.ok) assert.fail(JSON.stringify(r.errors));
    assert.equal(r.config.listeners.length, 1);
    assert.equal(r.config.listeners[0].name, "quick");
    assert.equal(r.config.listeners[0].cluster, "quick");
    assert.equal(r.config.clusters[0].balancer, "maglev");
    assert.equal(r.config.clusters[0].backends.length, 2);
    assert.equal(configSummary(r.config), "1 listener, 1 cluster, 2 backends");
  });

  test("mistakes are reported at key paths, like a file's", async () => {
    const r = await loadConfig(
      options(["--tcp", "1.2.3:80", "--to", "10.0.0.1:1,nope", "--balancer", "magelv"]),
      io({}),
    );
    const paths = errors(r).map((e) => e.path);
    assert.deepEqual(paths, [
      "listeners[0].address",
      "clusters.quick.balancer",
      "clusters.quick.backends[1].address",
    ]);
    assert.match(
      formatConfigError(errors(r)[1]),
      /^clusters\.quick\.balancer: "magelv" is not one of .*did you mean "maglev"/,
    );
  });

  test("no admin API unless asked for", async () => {
    const quick = ["--udp", "127.0.0.1:7000", "--to", "127.0.0.1:7001"];
    assert.equal((await loadConfig(options(quick), io({}))).adminEnabled, false);
    const flag = await loadConfig(options([...quick, "--admin", "127.0.0.1:9999"]), io({}));
    assert.equal(flag.adminEnabled, true);
    assert.equal(ok(flag).admin.listen.port, 9999);
    const env = await loadConfig(options(quick), io({}, { FERRY_ADMIN_LISTEN: "127.0.0.1:9998" }));
    assert.equal(env.adminEnabled, true);
    assert.equal((await loadConfig(options([]), io({}))).adminEnabled, true);
  });
});

describe("loadConfig", () => {
  test("no file: the built-in default", async () => {
    const r = await loadConfig(options([]), io({}));
    assert.equal(r.source, "built-in default");
    assert.equal(r.file, null);
    assert.equal(ok(r).listeners[0].name, "echo-demo");
  });

  test("--config wins over FERRY_CONFIG; quick mode ignores FERRY_CONFIG", async () => {
    const files = { "/etc/a.toml": FILE, "/etc/b.toml": "nonsense = [" };
    const viaEnv = await loadConfig(options([]), io(files, { [CONFIG_ENV]: "/etc/a.toml" }));
    assert.equal(viaEnv.file, "/etc/a.toml");
    assert.equal(ok(viaEnv).listeners[0].name, "a");
    const viaFlag = await loadConfig(
      options(["-c", "/etc/a.toml"]),
      io(files, { [CONFIG_ENV]: "/etc/b.toml" }),
    );
    assert.equal(viaFlag.source, "file /etc/a.toml");
    const quick = await loadConfig(
      options(["--udp", "127.0.0.1:7000", "--to", "127.0.0.1:7001"]),
      io(files, { [CONFIG_ENV]: "/etc/b.toml" }),
    );
    assert.equal(quick.file, null);
    assert.equal(ok(quick).listeners[0].name, "quick");
  });

  test("unreadable file and TOML syntax errors", async () => {
    const missing = errors(await loadConfig(options(["-c", "/nope.toml"]), io({})));
    assert.equal(missing.length, 1);
    assert.equal(missing[0].path, "");
    assert.match(missing[0].message, /cannot read \/nope\.toml/);
    const syntax = errors(await loadConfig(options(["-c", "/x.toml"]), io({ "/x.toml": "a = [" })));
    assert.match(syntax[0].message, /TOML syntax error at line 1/);
  });

  test("precedence: flags > process environment > .env > file", async () => {
    const files = { "/cfg/ferry.toml": FILE, "/cfg/.env": "FERRY_LOG_LEVEL=warning\nFERRY_WORKERS=3\n" };
    const level = async (argv: string[], env: Record<string, string>) =>
      ok(await loadConfig(options(["-c", "/cfg/ferry.toml", ...argv]), io(files, env))).relay.logLevel;
    assert.equal(
      ok(await loadConfig(options(["-c", "/cfg/ferry.toml"]), io({ "/cfg/ferry.toml": FILE }))).relay
        .logLevel,
      "error",
    );
    assert.equal(await level([], {}), "warning");
    assert.equal(await level([], { FERRY_LOG_LEVEL: "debug" }), "debug");
    assert.equal(await level([], { FERRY_LOG_LEVEL: "" }), "warning"); // empty counts as unset
    assert.equal(await level(["--log-level", "info"], { FERRY_LOG_LEVEL: "debug" }), "info");
    const r = await loadConfig(
      options(["-c", "/cfg/ferry.toml", "--log-level", "info"]),
      io(files, { FERRY_LOG_LEVEL: "debug" }),
    );
    assert.equal(ok(r).relay.workers, 3);
    assert.deepEqual(r.overrides, ["FERRY_LOG_LEVEL (environment)", "FERRY_WORKERS (.env)", "--log-level"]);
  });

  test("every override variable reaches its key", async () => {
    const env = {
      FERRY_ADMIN_LISTEN: "127.0.0.1:9000",
      FERRY_ADMIN_TOKEN: "s3cret",
      FERRY_LOG_LEVEL: "debug",
      FERRY_LOG_FORMAT: "json",
      FERRY_GRACE_PERIOD: "1500",
      FERRY_WORKERS: "2",
    };
    const c = ok(await loadConfig(options(["-c", "f.toml"]), io({ "f.toml": FILE }, env)));
    assert.equal(c.admin.listen.port, 9000);
    assert.equal(c.admin.token, "s3cret");
    assert.equal(c.relay.logLevel, "debug");
    assert.equal(c.relay.logFormat, "json");
    assert.equal(c.relay.gracePeriod, 1500);
    assert.equal(c.relay.workers, 2);
    const grace = ok(
      await loadConfig(options(["-c", "f.toml"]), io({ "f.toml": FILE }, { FERRY_GRACE_PERIOD: "2s" })),
    );
    assert.equal(grace.relay.gracePeriod, 2000);
  });

  test("bad override values are reported at their key paths", async () => {
    const env = { FERRY_ADMIN_LISTEN: "x", FERRY_WORKERS: "many", FERRY_GRACE_PERIOD: "soon" };
    const errs = errors(await loadConfig(options([]), io({}, env)));
    assert.deepEqual(errs.map((e) => e.path).sort(), ["admin.listen", "relay.grace_period", "relay.workers"]);
  });

  test(".env problems name the file and line", async () => {
    const files = { "conf/f.toml": FILE, "conf/.env": "# ok\nFERRY_LOG_LEVEL=debug\nnot a line\n" };
    const errs = errors(await loadConfig(options(["-c", "conf/f.toml"]), io(files)));
    assert.deepEqual(errs, [{ path: "conf/.env:3", message: "expected KEY=VALUE" }]);
  });
});

describe(".env and overrides", () => {
  test("parseDotEnv reads comments, quotes, export and inline comments", () => {
    const r = parseDotEnv(
      [
        "# comment",
        "",
        "A=1",
        "export B = two words # trailing",
        `C="quoted # not a comment\\n"`,
        "D='single $x'",
        "E=",
        "F=a#b",
        "  G = spaced  ",
      ].join("\n"),
    );
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.vars, {
      A: "1",
      B: "two words",
      C: "quoted # not a comment\n",
      D: "single $x",
      E: "",
      F: "a#b",
      G: "spaced",
    });
  });

  test("parseDotEnv reports bad lines", () => {
    const r = parseDotEnv('OK=1\n=x\n1A=2\nnoequals\nQ="open\n');
    assert.deepEqual(r.problems.map((p) => p.line), [2, 3, 4, 5]);
    assert.deepEqual(r.vars, { OK: "1" });
  });

  test("dotEnvPath is beside the config file", () => {
    assert.equal(dotEnvPath("/etc/ferry/ferry.toml"), "/etc/ferry/.env");
    assert.equal(dotEnvPath("ferry.toml"), ".env");
    assert.equal(dotEnvPath("conf/ferry.toml"), "conf/.env");
  });

  test("envOverrides: process wins over .env; numbers for numeric keys only", () => {
    const o = envOverrides(
      (n) => ({ FERRY_WORKERS: "4", FERRY_ADMIN_TOKEN: "123" } as Record<string, string>)[n],
      {
        FERRY_WORKERS: "2",
        FERRY_LOG_FORMAT: "text",
      },
    );
    assert.deepEqual(o.map((x) => [x.path.join("."), x.value, x.source]), [
      ["admin.token", "123", "FERRY_ADMIN_TOKEN (environment)"],
      ["relay.log_format", "text", "FERRY_LOG_FORMAT (.env)"],
      ["relay.workers", 4, "FERRY_WORKERS (environment)"],
    ]);
  });

  test("applyOverrides copies, and leaves non-table sections to validation", () => {
    const raw = { relay: { workers: 1 }, admin: "oops" };
    const out = applyOverrides(raw, [
      { path: ["relay", "workers"], value: 2, source: "t" },
      { path: ["admin", "listen"], value: "127.0.0.1:1", source: "t" },
    ]);
    assert.deepEqual(out, { relay: { workers: 2 }, admin: "oops" });
    assert.deepEqual(raw, { relay: { workers: 1 }, admin: "oops" });
  });
});

describe("help and logging", () => {
  test("--help lists every flag and environment variable", () => {
    const help = helpText();
    for (const v of ENV_VARS) assert.ok(help.includes(v.name), v.name);
    assert.ok(help.includes(CONFIG_ENV));
    for (
      const flag of [
        "--config",
        "--udp",
        "--tcp",
        "--to",
        "--balancer",
        "--admin",
        "--log-level",
        "--log-format",
        "--seed",
        "--version",
        "--help",
        "check",
        "print-default-config",
        "SIGHUP",
        "SIGTERM",
      ]
    ) {
      assert.ok(help.includes(flag), flag);
    }
  });

  test("log format: auto is text on a terminal, JSON otherwise", () => {
    assert.equal(resolveLogFormat("auto", true), "text");
    assert.equal(resolveLogFormat("auto", false), "json");
    assert.equal(resolveLogFormat("json", true), "json");
    assert.equal(resolveLogFormat("text", false), "text");
  });

  test("JSON lines are flat, with a bare rendered message", () => {
    const line = jsonFormatter({
      category: ["ferry"],
      level: "info",
      message: ["listening ", "quick", " on ", 7000, ""],
      rawMessage: "listening {listener} on {port}",
      timestamp: 0,
      properties: { listener: "quick", port: 7000, error: new Error("boom") },
    });
    assert.ok(line.endsWith("\n"));
    assert.deepEqual(JSON.parse(line), {
      time: "1970-01-01T00:00:00.000Z",
      level: "info",
      logger: "ferry",
      message: "listening quick on 7000",
      listener: "quick",
      port: 7000,
      error: "boom",
    });
  });
});
