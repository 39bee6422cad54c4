// systemd: the unit `ferry service` prints (systemd-analyze verify accepts it) and the notify protocol
// (READY, RELOADING/READY, STOPPING, WATCHDOG) against a fake NOTIFY_SOCKET the test binds.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { validateConfig } from "../core/config.ts";
import type { FerryConfig } from "../core/types.ts";
import { monotonicFromUptime } from "../shell/process/sd_notify.ts";
import { AUTO_NOFILE, descriptorLimit, NOFILE_RESERVE, systemdUnit } from "../shell/process/systemd_unit.ts";
import { FerryProcess, ferryTargets, freePorts, killAll, ROOT } from "./support/ferry_process.ts";
import { FakeNotifySocket } from "./support/notify_socket.ts";

after(killAll);
const T = { timeout: 30_000 };

function config(raw: Record<string, unknown>): FerryConfig {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

const clusters = { game: { backends: [{ address: "127.0.0.1:9" }] } };

function hasSystemdAnalyze(): boolean {
  return spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
}

describe("systemd unit", () => {
  test("binds below 1024 only with CAP_NET_BIND_SERVICE, and LimitNOFILE follows max_flows", () => {
    const dns = config({
      relay: { workers: 2 },
      listeners: [
        { name: "dns", protocol: "udp", address: "0.0.0.0:53", cluster: "game", max_flows: 1000 },
        { name: "web", protocol: "tcp", address: "0.0.0.0:8443", cluster: "game", max_flows: 500 },
      ],
      clusters,
    });
    const unit = systemdUnit(dns);
    assert.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    assert.match(unit, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
    // (1000 UDP × 1 + 500 TCP × 2) per worker × 2 workers + the reserve.
    assert.equal(descriptorLimit(dns), 4000 + NOFILE_RESERVE);
    assert.match(unit, new RegExp(`^LimitNOFILE=${4000 + NOFILE_RESERVE}$`, "m"));
    for (const line of ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes"]) {
      assert.ok(unit.split("\n").includes(line), line);
    }

    const high = config({
      listeners: [{ name: "g", protocol: "udp", address: "0.0.0.0:7000", cluster: "game" }],
      clusters,
    });
    const plain = systemdUnit(high);
    assert.doesNotMatch(plain, /AmbientCapabilities/);
    assert.match(plain, /^CapabilityBoundingSet=$/m);
    assert.equal(descriptorLimit(high), AUTO_NOFILE); // max_flows = 0 sizes itself from the limit
  });

  test("RELOADING's MONOTONIC_USEC is /proc/uptime rounded up", () => {
    assert.equal(monotonicFromUptime("12.34 56.78\n"), 12_350_000);
  });

  for (const target of ferryTargets()) {
    test(`${target.name}: ferry service prints a unit systemd-analyze verify accepts`, T, (t) => {
      if (!hasSystemdAnalyze()) return t.skip("systemd-analyze is missing (Debian package systemd)");
      const dir = mkdtempSync(`${tmpdir()}/ferry-unit-`);
      try {
        const file = `${dir}/ferry.toml`;
        writeFileSync(
          file,
          `[[listeners]]\nname = "dns"\nprotocol = "udp"\naddress = "127.0.0.1:53"\ncluster = "dns"\n` +
            `max_flows = 100\n[clusters.dns]\nbackends = [{ address = "127.0.0.1:5353" }]\n`,
        );
        const unit = execFileSync(target.command, [...target.args, "service", "--config", file], {
          cwd: ROOT,
          encoding: "utf8",
        });
        assert.match(unit, new RegExp(`^ExecStart=/usr/local/bin/ferry --config ${file}$`, "m"));
        assert.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
        assert.match(unit, new RegExp(`^LimitNOFILE=${100 + NOFILE_RESERVE}$`, "m"));
        // verify checks that ExecStart's program exists: point it at one that does.
        writeFileSync(`${dir}/ferry.service`, unit.replace("/usr/local/bin/ferry", process.execPath));
        const r = spawnSync("systemd-analyze", ["verify", `${dir}/ferry.service`], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr.trim(), "", "no warnings");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("sd_notify", () => {
  for (const target of ferryTargets()) {
    test(
      `${target.name}: READY, WATCHDOG, RELOADING/READY (SIGHUP and POST /reload) and STOPPING reach NOTIFY_SOCKET`,
      T,
      async () => {
        const dir = mkdtempSync(`${tmpdir()}/ferry-notify-`);
        const socket = await FakeNotifySocket.bind(`${dir}/notify`);
        try {
          const [udp] = await freePorts("udp", 1);
          const f = await FerryProcess.start(
            target,
            `[admin]\nlisten = "127.0.0.1:0"\n[[listeners]]\nname = "g"\nprotocol = "udp"\n` +
              `address = "127.0.0.1:${udp}"\ncluster = "g"\n[clusters.g]\n` +
              `backends = [{ address = "127.0.0.1:9" }]\n`,
            { env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: "200000" } },
          );
          const ready = await socket.waitFor((m) => m.startsWith("READY=1"));
          assert.match(ready, /^STATUS=serving 1 listeners$/m);
          // The admin API answers by the time READY is sent, and the listener is bound.
          assert.equal((await f.api("/readyz")).status, 200);
          await socket.waitFor((m) => m === "WATCHDOG=1");
          const pings = socket.messages().filter((m) => m === "WATCHDOG=1").length;
          await new Promise((r) => setTimeout(r, 450)); // 100 ms apart: at least 3 more
          assert.ok(socket.messages().filter((m) => m === "WATCHDOG=1").length >= pings + 3);

          process.kill(f.child.pid!, "SIGHUP");
          const reloading = await socket.waitFor((m) => m.startsWith("RELOADING=1"));
          assert.match(reloading, /^MONOTONIC_USEC=\d+$/m);
          const at = socket.received.indexOf(reloading);
          await socket.waitFor((m) => m.startsWith("READY=1") && socket.received.indexOf(m) > at);

          // POST /reload is a reload too: systemd hears of it the same way.
          const count = (p: string) => socket.messages().filter((m) => m.startsWith(p)).length;
          const reloads = count("RELOADING=1"), readies = count("READY=1");
          const r = await f.api("/api/v1/reload", { method: "POST" });
          assert.equal(r.status, 200, await r.text());
          await socket.waitFor(() => count("RELOADING=1") > reloads && count("READY=1") > readies);

          assert.equal(await f.stop(), 0);
          assert.ok(socket.messages().includes("STOPPING=1"));
        } finally {
          socket.close();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  }

  test("a NOTIFY_SOCKET nobody listens on is reported once and the relay runs on", T, async () => {
    const dir = mkdtempSync(`${tmpdir()}/ferry-notify-`);
    try {
      const [udp] = await freePorts("udp", 1);
      const f = await FerryProcess.start(
        ferryTargets()[0],
        `[admin]\nlisten = "127.0.0.1:0"\n[[listeners]]\nname = "g"\nprotocol = "udp"\n` +
          `address = "127.0.0.1:${udp}"\ncluster = "g"\n[clusters.g]\nbackends = [{ address = "127.0.0.1:9" }]\n`,
        { env: { NOTIFY_SOCKET: `${dir}/nobody` } },
      );
      await f.waitLog((l) => l.event === "sd_notify");
      assert.equal((await f.api("/readyz")).status, 200);
      assert.equal(await f.stop(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
