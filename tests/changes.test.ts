/**
 * The one change queue (shell/relay/changes.ts) over a fake relay: changes run one after another, each on the
 * config it applies to, so a reload racing PATCHes neither loses one nor is overwritten; stale If-Match is
 * refused; every change is described once; `persist` writes only the change onto the file as it is
 * (comments, layout, no overrides), atomically, and a file that cannot be written changes nothing.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { addBackend, patchBackend } from "../core/config_edits.ts";
import { configDiff, describeChanges } from "../core/config_diff.ts";
import { toRaw } from "../core/config_raw.ts";
import type { ConfigResult } from "../core/config.ts";
import type { FerryConfig } from "../core/types.ts";
import { ChangeQueue, type ChangeTarget } from "../shell/relay/changes.ts";
import { unknownEnvWarnings } from "../shell/process/env.ts";
import { loadConfig } from "../shell/process/cli.ts";
import { tempPathOf } from "../shell/relay/persist.ts";
import { configOf, FAKE_CONFIG_TOML, FakeControl } from "./support/fake_control.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A relay that takes a little while to apply (as workers do), so changes would interleave if they could. */
class SlowTarget extends FakeControl implements ChangeTarget {
  applied: FerryConfig[] = [];
  async apply(config: FerryConfig): Promise<void> {
    await sleep(1 + (this.applied.length % 3));
    this.current = config;
    this.applied.push(config);
  }
}

function queueOver(
  target: SlowTarget,
  load: () => Promise<ConfigResult>,
  configPath: string | null = "/nonexistent/ferry.toml",
) {
  const sources: string[] = [];
  const queue = new ChangeQueue(target, {
    version: "test",
    runtimeVersion: "test",
    configPath,
    load,
    now: () => 0,
    memory: () => ({ rss: 0, heapUsed: 0 }),
    onApplied: (_h, _p, config) => sources.push(config.listeners.map((l) => l.name).join(",")),
  });
  return { queue, sources };
}

const spareAddresses = (c: FerryConfig) =>
  c.clusters.find((cl) => cl.name === "spare")!.backends.map((b) => `${b.address.ip}:${b.address.port}`);

describe("one change queue", () => {
  test("a reload racing PATCHes: each applies on the config before it, none lost or overwritten", async () => {
    const target = new SlowTarget();
    // The file as the reload reads it: one more listener than the running config.
    const file = configOf(
      FAKE_CONFIG_TOML + '\n[[listeners]]\nname = "extra"\naddress = "127.0.0.1:7100"\ncluster = "spare"\n',
    );
    const { queue } = queueOver(target, async () => {
      await sleep(2); // reading the file takes time: PATCHes queued meanwhile must wait for it
      return { ok: true, config: file };
    });
    const patches = Array.from({ length: 12 }, (_, i) =>
      queue.change({
        source: "api",
        persist: false,
        edit: (c) => addBackend(c, "spare", { address: `10.0.9.${i + 1}:9000` }),
      }));
    const reload = queue.reload();
    const late = Array.from({ length: 12 }, (_, i) =>
      queue.change({
        source: "api",
        persist: false,
        edit: (c) => addBackend(c, "spare", { address: `10.0.8.${i + 1}:9000` }),
      }));
    const results = await Promise.all([...patches, reload, ...late]);
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
    // The applied sequence: 12 additions, the file, 12 additions, each on the config just before it.
    assert.equal(target.applied.length, 25);
    for (let k = 1; k < target.applied.length; k++) {
      const prev = spareAddresses(target.applied[k - 1]);
      const next = spareAddresses(target.applied[k]);
      if (k === 12) assert.deepEqual(target.applied[k], file, "the reload applies the file as it is");
      else assert.deepEqual(next.slice(0, prev.length), prev, `change ${k} kept what ran before it`);
    }
    const final = queue.config();
    assert.ok(final.listeners.some((l) => l.name === "extra"), "the reload was not overwritten");
    for (let i = 1; i <= 12; i++) assert.ok(spareAddresses(final).includes(`10.0.8.${i}:9000`));
  });

  test("drains wait their turn too, and a stale ifMatch changes nothing", async () => {
    const target = new SlowTarget();
    const { queue } = queueOver(target, () => Promise.resolve({ ok: true, config: target.current }));
    const hash = queue.configHash();
    const first = await queue.change({
      source: "api",
      persist: false,
      ifMatch: hash,
      edit: (c) => patchBackend(c, "game", "10.0.1.1:7001", { weight: 3 }),
    });
    assert.ok(first.ok);
    const before = queue.config();
    const stale = await queue.change({
      source: "api",
      persist: false,
      ifMatch: hash,
      edit: (c) => patchBackend(c, "game", "10.0.1.1:7001", { weight: 4 }),
    });
    assert.equal(stale.ok, false);
    assert.equal(!stale.ok && stale.failure, "stale");
    assert.equal(queue.config(), before);
    const order: string[] = [];
    const a = queue.change({
      source: "api",
      persist: false,
      edit: (c) => (order.push("edit"), c),
    });
    const d = Promise.resolve(queue.drain()).then(() => order.push("drain"));
    await Promise.all([a, d]);
    assert.deepEqual(order, ["edit", "drain"]);
  });

  test("a listener drain is undone in turn, and by a successful reload only", async () => {
    const target = new SlowTarget();
    let file: ConfigResult = { ok: false, errors: [{ path: "", message: "broken file" }] };
    const { queue } = queueOver(target, () => Promise.resolve(file));
    await queue.drain("game");
    assert.equal(target.drained.has("game"), true);
    assert.equal((await queue.reload()).ok, false);
    assert.equal(target.drained.has("game"), true, "an invalid file changes nothing, the drain included");
    file = { ok: true, config: target.current };
    assert.equal((await queue.reload()).ok, true);
    assert.equal(target.drained.has("game"), false, "the reload undid it");
    const order: string[] = [];
    await queue.drain("dns");
    const a = queue.change({ source: "api", persist: false, edit: (c) => (order.push("edit"), c) });
    const u = Promise.resolve(queue.undrain("dns")).then(() => order.push("undrain"));
    await Promise.all([a, u]);
    assert.deepEqual(order, ["edit", "undrain"]);
    assert.equal(target.drained.size, 0);
  });

  test("every change is described briefly, secrets hidden", () => {
    const a = configOf(FAKE_CONFIG_TOML);
    const b = addBackend(patchBackend(a, "game", "10.0.1.1:7001", { weight: 5 }), "spare", {
      address: "10.0.0.7:7000",
    });
    const c = { ...b, admin: { ...b.admin, token: "other" } };
    const lines = describeChanges(configDiff(toRaw(a), toRaw(c)));
    assert.deepEqual(lines.sort(), [
      "admin.token: changed",
      "clusters.game.backends: 10.0.1.1:7001 weight 1→5",
      "clusters.spare.backends: +10.0.0.7:7000",
    ]);
    assert.ok(!lines.join().includes("s3cret") && !lines.join().includes("other"));
  });
});

const FILE = `# Ferry at the edge. Comments matter.
[admin]
listen = "127.0.0.1:9901"   # loopback only

[[listeners]]
name = "game"
address = "127.0.0.1:7000"
cluster = "game"

# The game servers.
[clusters.game]
[[clusters.game.backends]]
address = "10.0.1.1:7001"

[clusters.game.health]
mode = "udp"
send_hex = "ff00"
`;

describe("persist", () => {
  function setup(text = FILE) {
    const dir = mkdtempSync(`${tmpdir()}/ferry-persist-`);
    dirs.push(dir);
    const path = `${dir}/ferry.toml`;
    writeFileSync(path, text, { mode: 0o644 });
    const target = new SlowTarget(configOf(text));
    // The running config has overrides the file must never get: a token and a log format.
    target.current = {
      ...target.current,
      admin: { ...target.current.admin, token: "from-env" },
      relay: { ...target.current.relay, logFormat: "json" },
    };
    const { queue } = queueOver(target, () => Promise.resolve({ ok: true, config: target.current }), path);
    return { dir, path, target, queue };
  }

  test("writes only the change, keeping comments and layout, never overrides; keeps FILE.bak", async () => {
    const { path, queue } = setup();
    const r = await queue.change({
      source: "api",
      persist: true,
      edit: (c) => addBackend(c, "game", { address: "10.0.1.2:7001", weight: 2 }),
    });
    assert.ok(r.ok, JSON.stringify(r));
    const text = readFileSync(path, "utf8");
    assert.ok(text.startsWith(FILE.split("\n[clusters.game.health]")[0].split("\n\n# The")[0]), text);
    for (
      const kept of ["# Ferry at the edge", "# loopback only", "# The game servers.", 'send_hex = "ff00"']
    ) {
      assert.ok(text.includes(kept), `${kept} kept:\n${text}`);
    }
    assert.match(text, /address = "10\.0\.1\.2:7001"\nweight = 2/);
    assert.ok(!text.includes("from-env") && !text.includes("log_format"), text);
    assert.equal(readFileSync(`${path}.bak`, "utf8"), FILE);
    assert.equal(statSync(path).mode & 0o777, 0o644);
    assert.ok(!existsSync(tempPathOf(path)));
  });

  test("a file that holds a token is written 0600", async () => {
    const { path, queue } = setup(FILE.replace("# loopback only", '\ntoken = "file-token"'));
    const r = await queue.change({
      source: "api",
      persist: true,
      edit: (c) => patchBackend(c, "game", "10.0.1.1:7001", { weight: 4 }),
    });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(`${path}.bak`).mode & 0o777, 0o600);
  });

  test("a full disk changes nothing and says so", async () => {
    const { path, queue, target } = setup();
    if (!existsSync("/dev/full")) return void console.log("skipped: no /dev/full to fill a disk with");
    symlinkSync("/dev/full", tempPathOf(path)); // the temp file's writes fail with ENOSPC
    const before = target.current;
    const r = await queue.change({
      source: "api",
      persist: true,
      edit: (c) => patchBackend(c, "game", "10.0.1.1:7001", { weight: 9 }),
    });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.failure, "not_saved");
    assert.match(!r.ok ? r.errors[0].message : "", /nothing was changed/);
    assert.equal(target.current, before, "not applied");
    assert.equal(target.applied.length, 0);
    assert.equal(readFileSync(path, "utf8"), FILE);
  });
});

describe("persist: a rename that fails after the apply", () => {
  test("rolls the relay back, so nothing was changed", async () => {
    const dir = mkdtempSync(`${tmpdir()}/ferry-persist-`);
    dirs.push(dir);
    const path = `${dir}/ferry.toml`;
    writeFileSync(path, FILE);
    const target = new SlowTarget(configOf(FILE));
    const before = target.current;
    const { queue } = queueOver(target, () => Promise.resolve({ ok: true, config: before }), path);
    // Between the temp file's write and the rename, the file becomes a directory: the rename must fail.
    queue.addHook(() => {
      rmSync(path);
      mkdirSync(`${path}/busy`, { recursive: true });
      return Promise.resolve(null);
    });
    const r = await queue.change({
      source: "api",
      persist: true,
      edit: (c) => patchBackend(c, "game", "10.0.1.1:7001", { weight: 7 }),
    });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.failure, "not_saved");
    assert.deepEqual(target.current, before, "the relay runs the previous config again");
    assert.equal(queue.config(), target.current);
    assert.ok(!existsSync(tempPathOf(path)), "no temp file left");
  });
});

describe("environment names", () => {
  test("loadConfig warns about unknown FERRY_* names in the environment and in .env", async () => {
    const files: Record<string, string> = {
      "/etc/ferry/ferry.toml": FAKE_CONFIG_TOML,
      "/etc/ferry/.env": "FERRY_WORKERZ=2\n",
    };
    const r = await loadConfig({ config: "/etc/ferry/ferry.toml" }, {
      readTextFile: (p) => p in files ? Promise.resolve(files[p]) : Promise.reject({ code: "ENOENT" }),
      env: () => undefined,
      envNames: () => ["HOME", "FERRY_GRACE_PERIDO"],
    });
    assert.ok(r.ok);
    assert.equal(r.warnings.length, 2);
    assert.match(r.warnings[0], /FERRY_GRACE_PERIDO \(environment\).*did you mean FERRY_GRACE_PERIOD\?/);
    assert.match(r.warnings[1], /FERRY_WORKERZ \(\.env\).*did you mean FERRY_WORKERS\?/);
  });

  test("an unknown FERRY_* name is warned about with a did-you-mean", () => {
    const w = unknownEnvWarnings(
      ["PATH", "FERRY_LOG_LEVLE", "FERRY_WORKERS", "FERRY_WHATEVER"],
      "environment",
    );
    assert.equal(w.length, 2);
    assert.match(
      w[0],
      /^FERRY_LOG_LEVLE \(environment\) is not a Ferry variable; did you mean FERRY_LOG_LEVEL\?/,
    );
    assert.doesNotMatch(w[1], /did you mean/);
  });
});
