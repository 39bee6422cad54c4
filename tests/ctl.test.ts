// `ferry ctl` against a spawned Ferry: it finds the admin API and token in the server's own config (or
// FERRY_ADMIN_* / flags), prints tables or --json, and exits 1/2/3/4 on refusals, usage, unreachable, auth.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import {
  FerryProcess,
  type FerryTarget,
  ferryTargets,
  freePorts,
  killAll,
  ROOT,
} from "./support/ferry_process.ts";

after(killAll);
const T = { timeout: 30_000 };
const TOKEN = "ctl-test-token";

/** Runs `ferry ctl ARGS` of `target`; resolves with its exit code and output. */
function ctl(
  target: FerryTarget,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FERRY_")));
  const child = spawn(target.command, [...target.args, "ctl", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...clean, NO_COLOR: "1", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

for (const target of ferryTargets()) {
  describe(`${target.name}: ferry ctl`, () => {
    test(
      "reads the admin address and token from the config; tables, --json, actions, errors",
      T,
      async () => {
        const [admin] = await freePorts("tcp", 1);
        const [udp] = await freePorts("udp", 1);
        const f = await FerryProcess.start(
          target,
          `[admin]\nlisten = "127.0.0.1:${admin}"\ntoken = "${TOKEN}"\n` +
            `[[listeners]]\nname = "game"\nprotocol = "udp"\naddress = "127.0.0.1:${udp}"\ncluster = "game"\n` +
            `[clusters.game]\nbackends = [{ address = "127.0.0.1:9" }, { address = "127.0.0.1:10" }]\n`,
          { token: TOKEN },
        );
        try {
          const c = ["--config", f.configPath];
          const status = await ctl(target, ["status", ...c]);
          assert.equal(status.code, 0, status.stderr);
          assert.match(status.stdout, /^ferry \S+ on (deno|bun) /);
          assert.match(status.stdout, new RegExp(`game\\s+udp\\s+127\\.0\\.0\\.1:${udp}\\s+game`));

          const drain = await ctl(target, ["drain", "game", "127.0.0.1:10", ...c]);
          assert.equal(drain.code, 0, drain.stderr);
          assert.match(drain.stdout, /127\.0\.0\.1:10\s+draining\s+draining/);
          const json = await ctl(target, ["backends", "game", "--json", ...c]);
          assert.equal(json.code, 0, json.stderr);
          const backends = JSON.parse(json.stdout).backends as { address: string; effectiveState: string }[];
          assert.deepEqual(backends.map((b) => b.effectiveState), ["up", "draining"]);
          assert.equal((await ctl(target, ["undrain", "game", "127.0.0.1:10", ...c])).code, 0);
          const after = await f.json<{ backends: { effectiveState: string }[] }>(
            "/api/v1/clusters/game/backends",
          );
          assert.deepEqual(after.backends.map((b) => b.effectiveState), ["up", "up"]);
          assert.equal((await ctl(target, ["weight", "game", "127.0.0.1:9", "5", ...c])).code, 0);

          const flows = await ctl(target, ["flows", ...c]);
          assert.equal(flows.code, 0, flows.stderr);
          assert.match(flows.stdout, /^id\s+listener\s+client/);
          const drained = await ctl(target, ["drain-relay", "game", ...c]);
          assert.equal(drained.code, 0, drained.stderr);
          const undrained = await ctl(target, ["undrain-relay", "game", ...c]);
          assert.equal(undrained.code, 0, undrained.stderr);
          assert.match(undrained.stdout, /^game admits again$/m);
          const listeners = await f.json<{ listeners: { draining: boolean }[] }>("/api/v1/listeners");
          assert.deepEqual(listeners.listeners.map((l) => l.draining), [false]);
          const reload = await ctl(target, ["reload", ...c]);
          assert.equal(reload.code, 0, reload.stderr);
          assert.match(reload.stdout, /^reloaded: config [0-9a-f]{12}$/m);

          // The environment is read as the server reads it.
          const env = await ctl(target, ["clusters"], {
            FERRY_ADMIN_LISTEN: `127.0.0.1:${admin}`,
            FERRY_ADMIN_TOKEN: TOKEN,
          });
          assert.equal(env.code, 0, env.stderr);

          const unknown = await ctl(target, ["backends", "nope", ...c]);
          assert.equal(unknown.code, 1);
          assert.match(unknown.stderr, /^ferry ctl: 404: /);
          const bad = await ctl(target, ["status", "--admin", `127.0.0.1:${admin}`, "--token", "wrong"]);
          assert.equal(bad.code, 4);
          assert.match(bad.stderr, /401/);
        } finally {
          await f.stop();
        }
        const [closed] = await freePorts("tcp", 1);
        const gone = await ctl(target, ["status", "--admin", `127.0.0.1:${closed}`, "--token", "x"]);
        assert.equal(gone.code, 3);
        assert.match(
          gone.stderr,
          new RegExp(`cannot reach the admin API at http://127\\.0\\.0\\.1:${closed}`),
        );
        const usage = await ctl(target, ["drain", "game"]);
        assert.equal(usage.code, 2);
        assert.match(usage.stderr, /usage: ferry ctl drain CLUSTER ADDR/);
        const help = await ctl(target, ["--help"]);
        assert.equal(help.code, 0);
        assert.match(help.stdout, /ferry ctl backends CLUSTER/);
      },
    );
  });
}
