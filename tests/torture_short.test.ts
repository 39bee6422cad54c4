/**
 * The torture suite's short form (scripts/torture.sh --short, issue 12) as one test of the suite: it
 * attacks Ferry over loopback for about a minute and fails on any row that crashed, went down, errored,
 * changed the running config or lost something in a fault case (a port, an uncounted oversized reply, a
 * flow aborted on EMFILE), or where a legit flow lost over 5% while the admin API was abused. It runs once, under
 * Deno: the script starts its Ferries under Deno itself, so a second run under Bun would repeat the same.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";

const underBun = "Bun" in globalThis;
const root = new URL("..", import.meta.url).pathname;

test("scripts/torture.sh --short: nothing crashed, went down or was lost", {
  skip: underBun ? "the torture suite runs once, under Deno (it starts its Ferries under Deno)" : false,
  timeout: 200_000,
}, () => {
  const r = spawnSync("bash", ["scripts/torture.sh", "--short"], {
    cwd: root,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const table = (r.stdout ?? "").trim();
  const bad = table.split("\n").filter((l) => /CRASH|LOST|DOWN|ERROR|CHANGED/.test(l));
  assert.deepEqual(bad, [], `rows that failed:\n${table}\n${(r.stderr ?? "").slice(-2000)}`);
  assert.equal(r.status, 0, `torture.sh exited ${r.status} (${r.signal ?? "no signal"}):\n${table}`);
  assert.match(table, /source flood/, "the table was printed");
});
