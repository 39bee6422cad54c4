/**
 * Regression (issue 12, finding 4): a reload loads the config off the data path's thread
 * (shell/process/config_load.ts) with the same outcome as loadConfig there: the same config (and its hash
 * remembered, so it is not serialised again here), the same errors for a bad file; and PUT /config's check
 * (shell/process/config_check.ts) gives what replaceConfigToml / replaceConfig give, refusals included.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type LoadIo, parseArgs, type RunOptions } from "../shell/process/cli.ts";
import { loadConfigOffThread } from "../shell/process/config_load.ts";
import { configHash } from "../shell/relay/config_hash.ts";
import { checkConfigOffThread } from "../shell/process/config_check.ts";
import { EditError, REDACTED, replaceConfig, replaceConfigToml } from "../core/config_edits.ts";
import type { FerryConfig } from "../core/types.ts";
import { envNames, getEnv, readTextFile } from "../shell/process/platform.ts";

const io: LoadIo = { readTextFile, env: getEnv, envNames };

function optionsFor(text: string): { options: RunOptions; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), "ferry-load-"));
  writeFileSync(join(dir, "ferry.toml"), text);
  const c = parseArgs(["check", "--config", join(dir, "ferry.toml")]);
  if (c.kind !== "check") assert.fail(c.kind);
  return { options: c.options, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const VALID = `[admin]\nlisten = "127.0.0.1:0"\n[[listeners]]\nname = "u"\naddress = "127.0.0.1:5353"\n` +
  `cluster = "c"\n[clusters.c]\nbackends = [{ address = "127.0.0.1:53", weight = 2 }]\n` +
  `[clusters.c.health]\nsend_hex = "0a0b"\nexpect_regex = "^ok"\n`;

describe("config load off the thread", () => {
  test("a valid file: the same config as loadConfig here, its hash remembered", async () => {
    const { options, done } = optionsFor(VALID);
    try {
      let fellBack = false;
      const here = await loadConfig(options, io);
      const there = await loadConfigOffThread(options, () => {
        fellBack = true;
        return loadConfig(options, io);
      });
      assert.equal(fellBack, false, "loaded in the worker");
      assert.equal(there.ok, true);
      assert.deepEqual(there, here);
      if (!there.ok || !here.ok) return;
      const t = performance.now();
      assert.equal(configHash(there.config), configHash(here.config));
      assert.ok(performance.now() - t < 1000);
    } finally {
      done();
    }
  });

  test("an invalid file: the same errors, nothing loaded", async () => {
    const { options, done } = optionsFor(VALID.replace("weight = 2", 'weight = "heavy"'));
    try {
      const there = await loadConfigOffThread(options, () => loadConfig(options, io));
      assert.equal(there.ok, false);
      assert.deepEqual(there, await loadConfig(options, io));
    } finally {
      done();
    }
  });
});

describe("PUT /config's check off the thread", () => {
  const current = { admin: { token: "running-token" } } as FerryConfig;
  const withToken = VALID.replace("[admin]\n", `[admin]\ntoken = "${REDACTED}"\n`);

  test("TOML: the config replaceConfigToml makes, the redacted token kept", async () => {
    const there = await checkConfigOffThread({ toml: withToken, token: "running-token" });
    assert.deepEqual(there, replaceConfigToml(withToken, current));
    assert.equal(there.admin.token, "running-token");
  });

  test("JSON: the config replaceConfig makes", async () => {
    const raw = {
      listeners: [{ name: "u", address: "127.0.0.1:5353", cluster: "c" }],
      clusters: { c: { backends: [{ address: "127.0.0.1:53" }] } },
    };
    assert.deepEqual(
      await checkConfigOffThread({ json: raw, token: "" }),
      replaceConfig(raw, undefined, current),
    );
  });

  test("a refusal is the same EditError", async () => {
    const bad = VALID.replace("weight = 2", 'weight = "heavy"');
    let expected: unknown;
    try {
      replaceConfigToml(bad, current);
    } catch (e) {
      expected = e;
    }
    await assert.rejects(checkConfigOffThread({ toml: bad, token: "" }), (e: unknown) => {
      assert.ok(e instanceof EditError);
      assert.ok(expected instanceof EditError);
      assert.equal(e.kind, expected.kind);
      assert.equal(e.message, expected.message);
      assert.deepEqual(e.errors, expected.errors);
      return true;
    });
  });
});
