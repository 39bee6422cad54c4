// Every command and config block of the README's operations sections runs here: "Deploying on an edge VM",
// "Session records", "`ferry ctl`" and "Standard metrics and flow histograms". A line the test cannot run
// (sudo install, useradd, systemctl: they change the host) must be on the HOST_ONLY list, so a new
// command added to those blocks fails this test until it is exercised.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { parse } from "smol-toml";
import { validateConfig } from "../core/config.ts";
import { RelayCore } from "../core/relay_core.ts";
import { FlowRecorder, type SessionRecord, textRecord } from "../shell/records/recorder.ts";
import { descriptorLimit, systemdUnit } from "../shell/process/systemd_unit.ts";
import { cluster, config as fixtureConfig, listener } from "./support/fixtures.ts";
import { FerryProcess, ferryTargets, freePorts, killAll, ROOT } from "./support/ferry_process.ts";
import { EchoBackend } from "./support/udp.ts";

after(killAll);
const T = { timeout: 60_000 };
const README = readFileSync(`${ROOT}README.md`, "utf8");
const HOST_ONLY = [
  /^sudo install /,
  /^sudo useradd --system /,
  /^sudo systemctl (daemon-reload|enable|reload) ?/,
];

/** The text of the section under `heading` (up to the next heading of the same or a higher level). */
function section(heading: string): string {
  const level = heading.indexOf(" ");
  const start = README.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no ${heading}`);
  const rest = README.slice(start + heading.length + 2);
  const next = rest.search(new RegExp(`^#{1,${level}} `, "m"));
  return next < 0 ? rest : rest.slice(0, next);
}

/** The fenced blocks of a section, with their language. */
function blocks(text: string): { lang: string; body: string }[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }));
}

/** The command lines of a sh block, comments stripped. */
function commands(body: string): string[] {
  return body.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l !== "");
}

/** A directory with a `ferry` that runs this checkout under the runtime running the tests. */
function ferryOnPath(dir: string): string {
  const t = ferryTargets()[0];
  writeFileSync(
    `${dir}/ferry`,
    `#!/bin/sh\ncd ${ROOT} && exec ${[t.command, ...t.args].map((a) => `'${a}'`).join(" ")} "$@"\n`,
  );
  chmodSync(`${dir}/ferry`, 0o755);
  return `${dir}:${process.env.PATH}`;
}

function bash(line: string, env: Record<string, string>): { status: number | null; out: string } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FERRY_")));
  const r = spawnSync("bash", ["-o", "pipefail", "-c", line], {
    encoding: "utf8",
    env: { ...clean, ...env },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const has = (tool: string) => spawnSync(tool, ["--version"], { stdio: "ignore" }).status === 0;

describe("README: Deploying on an edge VM", () => {
  const text = section("## Deploying on an edge VM");
  const [sh, toml] = blocks(text);

  test("the example config is valid and its unit is what the text says", () => {
    assert.equal(toml.lang, "toml");
    const r = validateConfig(parse(toml.body));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const limit = descriptorLimit(r.config);
    assert.ok(text.includes(`${limit} here`), `the README should say LimitNOFILE is ${limit}`);
    const unit = systemdUnit(r.config);
    assert.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    assert.match(unit, /^LogsDirectory=ferry$/m);
  });

  test("every command runs (ferry check, ferry service → systemd-analyze verify) or changes only the host", (t) => {
    assert.equal(sh.lang, "sh");
    const dir = mkdtempSync(`${tmpdir()}/ferry-readme-`);
    try {
      writeFileSync(`${dir}/ferry.toml`, toml.body);
      const PATH = ferryOnPath(dir);
      let ran = 0;
      for (const line of commands(sh.body)) {
        if (HOST_ONLY.some((re) => re.test(line))) continue;
        assert.match(line, /^ferry (check|service) /, `a README command this test does not run: ${line}`);
        const local = line.replaceAll("/etc/ferry/ferry.toml", `${dir}/ferry.toml`)
          .replace("| sudo tee /etc/systemd/system/ferry.service", `> ${dir}/ferry.service`);
        const r = bash(local, { PATH });
        assert.equal(r.status, 0, `${line}\n${r.out}`);
        ran++;
      }
      assert.equal(ran, 2);
      if (!has("systemd-analyze")) return t.skip("systemd-analyze is missing (Debian package systemd)");
      const unit = readFileSync(`${dir}/ferry.service`, "utf8");
      writeFileSync(`${dir}/ferry.service`, unit.replace("/usr/local/bin/ferry", process.execPath));
      const v = spawnSync("systemd-analyze", ["verify", `${dir}/ferry.service`], { encoding: "utf8" });
      assert.equal(v.status, 0, v.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("README: Session records", () => {
  const [toml, json, text] = blocks(section("## Session records"));

  test("the [records] block is exactly the defaults", () => {
    assert.equal(toml.lang, "toml");
    const r = validateConfig(parse(toml.body));
    const d = validateConfig({});
    assert.ok(r.ok && d.ok);
    assert.deepEqual(r.config.records, d.config.records);
  });

  test("the JSON sample has a real record's keys, and the text sample is its text form", () => {
    const core = new RelayCore(fixtureConfig([cluster({}, 1)], [listener({})]), { seed: 1 });
    const l = core.listener("l")!;
    const lines: string[] = [];
    const d = validateConfig({ records: { mode: "all" } });
    assert.ok(d.ok);
    const recorder = new FlowRecorder(d.config.records, () => 5, {
      openSink: () => ({ write: (line) => lines.push(line), flush() {}, close() {} }),
    });
    const flow = core.fromClient(l, "198.51.100.7", 51234, new Uint8Array(10), 1);
    assert.ok(typeof flow !== "number");
    core.fromBackend(flow, 10, 2);
    core.close(flow, "idle");
    recorder.flowClosed(flow);
    const real = JSON.parse(lines[0]) as SessionRecord;
    const sample = JSON.parse(json.body) as SessionRecord;
    assert.deepEqual(Object.keys(sample), Object.keys(real));
    assert.equal(text.lang, "text");
    assert.equal(textRecord(sample), text.body);
  });
});

describe("README: ferry ctl and metrics", () => {
  test("every ferry ctl line and the promtool line run against a spawned Ferry", T, async (t) => {
    const [ctl] = blocks(section("## `ferry ctl`"));
    const [metrics] = blocks(section("### Standard metrics and flow histograms"));
    const backend = await new EchoBackend().start();
    const [admin] = await freePorts("tcp", 1);
    const [udp] = await freePorts("udp", 1);
    const dir = mkdtempSync(`${tmpdir()}/ferry-readme-`);
    const f = await FerryProcess.start(
      ferryTargets()[0],
      `[admin]\nlisten = "127.0.0.1:${admin}"\ntoken = "readme"\n[[listeners]]\nname = "game"\n` +
        `address = "127.0.0.1:${udp}"\ncluster = "game"\n[clusters.game]\n` +
        `backends = [{ address = "127.0.0.1:${backend.port}" }]\n`,
      { token: "readme" },
    );
    try {
      const PATH = ferryOnPath(dir);
      const env = { PATH, FERRY_CONFIG: f.configPath, FERRY_ADMIN_TOKEN: "readme" };
      const lines = commands(ctl.body);
      assert.equal(lines[0], "export FERRY_CONFIG=/etc/ferry/ferry.toml");
      for (const line of lines.slice(1)) {
        assert.match(line, /^ferry ctl /);
        const r = bash(line.replaceAll("10.0.0.5:7000", `127.0.0.1:${backend.port}`), env);
        assert.equal(r.status, 0, `${line}\n${r.out}`);
      }
      const [promLine] = commands(metrics.body);
      if (!has("promtool") || !has("curl")) {
        return t.skip("promtool or curl is missing (Debian prometheus, curl)");
      }
      const r = bash(promLine.replace("127.0.0.1:9901", `127.0.0.1:${admin}`), env);
      assert.equal(r.status, 0, `${promLine}\n${r.out}`);
    } finally {
      await f.stop();
      backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
