/**
 * Issue 10 end to end, on every target (deno main.ts and dist/ferry under Deno, bun main.ts under Bun), on
 * 127.0.0.1 only: a reload that adds `admin.token` is live at once; a change of `admin.listen` moves the
 * admin API; `?persist=true` writes only the change (comments kept, no environment or flag overrides);
 * kill -9 mid-persist leaves no temp files behind; a `.env` in the working directory is not read.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { FerryProcess, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";

/** Each test starts real processes (one waits for nine): more than bun test's 5 s default on a busy machine. */
const T = { timeout: 60_000 };

const dirs: string[] = [];
after(() => {
  killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tempDir(): string {
  const d = mkdtempSync(`${tmpdir()}/ferry-e2e10-`);
  dirs.push(d);
  return d;
}

/** A config with one UDP listener (to a backend nobody answers on: none of these tests forwards). */
function toml(port: number, admin = "", extra = ""): string {
  return `# Operator's notes: keep me.
[admin]
listen = "127.0.0.1:0"   # any free port
${admin}

[[listeners]]
name = "game"
address = "127.0.0.1:${port}"
cluster = "game"

# The game servers.
[clusters.game]
[[clusters.game.backends]]
address = "127.0.0.1:9"

[clusters.game.health]
mode = "off"
send_hex = "ff00"
${extra}`;
}

async function status(url: string, token?: string): Promise<number> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const r = await fetch(`${url}/api/v1/status`, { headers, signal: AbortSignal.timeout(5000) });
  await r.body?.cancel();
  return r.status;
}

for (const target of ferryTargets()) {
  describe(`issue 10 on ${target.name}`, () => {
    test("SIGHUP with a new admin.token applies it at once: requests without it are refused", T, async () => {
      const [port] = await freePorts("udp", 1);
      const f = await FerryProcess.start(target, toml(port), { timeoutMs: 20_000 });
      try {
        assert.equal(await status(f.adminUrl), 200);
        writeFileSync(f.configPath, toml(port, 'token = "reloaded-token"'));
        process.kill(f.child.pid!, "SIGHUP");
        await f.waitLog((l) => l.event === "reloaded");
        assert.equal(await status(f.adminUrl), 401, "no token: refused after the reload");
        assert.equal(await status(f.adminUrl, "wrong"), 401);
        assert.equal(await status(f.adminUrl, "reloaded-token"), 200);
        const changed = f.logs().find((l) => l.event === "config_changed" && l.source === "reload");
        assert.match(String(changed?.diff), /admin\.token: set/);
        const shown = await (await fetch(`${f.adminUrl}/api/v1/config`, {
          headers: { authorization: "Bearer reloaded-token" },
        })).text();
        assert.ok(!shown.includes("reloaded-token"), "GET /config redacts the token");
        assert.ok(!f.stderr.includes("reloaded-token"), "the token is never logged");
      } finally {
        await f.stop();
      }
    });

    test("a PUT that changes admin.listen moves the admin API to the new address", T, async () => {
      const [port] = await freePorts("udp", 1);
      const [adminPort] = await freePorts("tcp", 1);
      const f = await FerryProcess.start(target, toml(port), { timeoutMs: 20_000 });
      try {
        const old = f.adminUrl;
        const text = await (await fetch(`${old}/api/v1/config`)).text();
        const moved = text.replace(/listen = "127\.0\.0\.1:\d+"/, `listen = "127.0.0.1:${adminPort}"`);
        const r = await fetch(`${old}/api/v1/config`, { method: "PUT", body: moved });
        assert.equal(r.status, 200, await r.text());
        assert.equal(await status(`http://127.0.0.1:${adminPort}`), 200);
        await sleep(200);
        await assert.rejects(fetch(`${old}/api/v1/status`, { signal: AbortSignal.timeout(2000) }));
      } finally {
        await f.stop();
      }
    });

    test("a reload that would serve the admin API off loopback without a token is refused", T, async () => {
      const [port] = await freePorts("udp", 1);
      const f = await FerryProcess.start(target, toml(port), { timeoutMs: 20_000 });
      try {
        writeFileSync(f.configPath, toml(port).replace('listen = "127.0.0.1:0"', 'listen = "0.0.0.0:0"'));
        const r = await fetch(`${f.adminUrl}/api/v1/reload`, { method: "POST" });
        const body = await r.text();
        assert.equal(r.status, 422, body);
        assert.match(body, /no token/);
        assert.equal(await status(f.adminUrl), 200, "still served where it was");
      } finally {
        await f.stop();
      }
    });

    test(
      "?persist=true writes only the change: comments kept, no token from the environment, no flags",
      T,
      async () => {
        const [port] = await freePorts("udp", 1);
        const f = await FerryProcess.start(target, toml(port), {
          token: "env-token",
          env: { FERRY_ADMIN_TOKEN: "env-token" },
          args: ["--log-level", "debug"],
          timeoutMs: 20_000,
        });
        try {
          const original = readFileSync(f.configPath, "utf8");
          const r = await f.api("/api/v1/clusters/game/backends?persist=true", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ address: "127.0.0.1:10", weight: 2 }),
          });
          assert.equal(r.status, 201, await r.text());
          const text = readFileSync(f.configPath, "utf8");
          for (
            const kept of [
              "# Operator's notes: keep me.",
              "# any free port",
              "# The game servers.",
              'send_hex = "ff00"',
            ]
          ) {
            assert.ok(text.includes(kept), `${kept} kept:\n${text}`);
          }
          assert.match(text, /address = "127\.0\.0\.1:10"\nweight = 2/);
          assert.ok(!text.includes("env-token"), `no token from the environment:\n${text}`);
          assert.ok(!/log_level|log_format/.test(text), `no flag overrides:\n${text}`);
          assert.equal(readFileSync(`${f.configPath}.bak`, "utf8"), original);
          assert.ok(text.split("\n").length < original.split("\n").length + 6, "a small change stays small");
          const logged = f.logs().filter((l) => l.event === "config_changed");
          assert.equal(logged.length, 1, "logged once");
          assert.equal(logged[0].source, "api");
          assert.equal(logged[0].diff, "clusters.game.backends: +127.0.0.1:10");
        } finally {
          await f.stop();
        }
      },
    );

    test("kill -9 while persisting leaves no temp files behind (8 rounds)", T, async () => {
      const [port] = await freePorts("udp", 1);
      const dir = tempDir();
      for (let round = 0; round < 8; round++) {
        const f = await FerryProcess.start(target, toml(port), { dir, timeoutMs: 20_000 });
        const writes = Array.from(
          { length: 20 },
          (_, i) =>
            f.api("/api/v1/clusters/game/backends/127.0.0.1:9?persist=true", {
              method: "PATCH",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ weight: 1 + ((round + i) % 9) }),
            }).then((r) => r.body?.cancel()).catch(() => {}),
        );
        await sleep(5 + 7 * round);
        f.kill();
        await f.exited;
        await Promise.all(writes);
        const orphans = readdirSync(dir).filter((n) => n.includes(".tmp"));
        assert.ok(orphans.length <= 1 && orphans.every((n) => n === ".ferry.toml.tmp"), orphans.join(", "));
      }
      // The next start removes the one a crash may have left.
      const f = await FerryProcess.start(target, toml(port), { dir, timeoutMs: 20_000 });
      await f.stop();
      assert.deepEqual(readdirSync(dir).filter((n) => n.includes("tmp")), []);
    });

    test("a .env in the working directory, not beside the config, is not read", T, async () => {
      const [port] = await freePorts("udp", 1);
      const cwd = tempDir();
      writeFileSync(`${cwd}/.env`, "FERRY_ADMIN_TOKEN=from-the-cwd\nFERRY_LOG_LEVEL=error\n");
      const f = await FerryProcess.start(target, toml(port), { cwd, timeoutMs: 20_000 });
      try {
        assert.equal(await status(f.adminUrl), 200, "no token came from the working directory's .env");
      } finally {
        await f.stop();
      }
    });
  });
}
