/**
 * Regressions (issue 12, finding 4): the control plane's work on the data path's thread is bounded. A
 * config over 1 MiB is refused unread by SIGHUP / POST /reload / `ferry check` (loadConfig), as PUT
 * /config already refused it (the admin app's 1 MiB body limit: 413). The admin API's own bounds (requests
 * in flight, connections, timeouts) are tested in tests/admin_thread.test.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAdminApp } from "../admin/app.ts";
import { MAX_CONFIG_BYTES } from "../core/limits.ts";
import { loadConfig, type LoadIo, parseArgs } from "../shell/process/cli.ts";
import { FAKE_CONFIG_TOML, FakeControl } from "./support/fake_control.ts";

/** A TOML text over the limit: valid up front, padded with a comment. */
const HUGE = FAKE_CONFIG_TOML + "\n#" + "x".repeat(MAX_CONFIG_BYTES) + "\n";

describe("config size limit", () => {
  test("a file over 1 MiB is refused before parsing, with the limit named", async () => {
    const c = parseArgs(["check", "--config", "big.toml"]);
    if (c.kind !== "check") assert.fail(`unexpected ${c.kind}`);
    const io: LoadIo = {
      readTextFile: (p) =>
        p === "big.toml"
          ? Promise.resolve(HUGE)
          : Promise.reject(Object.assign(new Error("no such file"), { code: "ENOENT" })),
      env: () => undefined,
    };
    const r = await loadConfig(c.options, io);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0].message, /over the 1048576-byte \(1 MiB\) limit/);
  });

  test("PUT /config over 1 MiB is a 413 and changes nothing", async () => {
    const control = new FakeControl();
    const app = createAdminApp(control, { token: "t" });
    const before = await (await app.request("/api/v1/config", { headers: { authorization: "Bearer t" } }))
      .text();
    const res = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { authorization: "Bearer t", "content-type": "text/plain" },
      body: HUGE,
    });
    assert.equal(res.status, 413);
    assert.match((await res.json()).error, /1048576 bytes/);
    const after = await (await app.request("/api/v1/config", { headers: { authorization: "Bearer t" } }))
      .text();
    assert.equal(after, before);
  });
});
