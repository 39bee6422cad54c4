import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { Ajv } from "ajv";
import { loadConfig } from "../shell/process/cli.ts";
import { configJsonSchema } from "../core/config/json_schema.ts";
import { DEFAULT_CONFIG_TOML, REFERENCE_TOML } from "../core/default_config.ts";
import { codeBlocks, partNames, staleParts } from "./support/readme.ts";
import { readFileSync } from "node:fs";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const blocks = codeBlocks(readme, "toml");

/** `ferry check` on a text, exactly as the CLI runs it (no environment). */
async function check(text: string) {
  return await loadConfig({ config: "block.toml" }, {
    readTextFile: (path) =>
      path === "block.toml" ? Promise.resolve(text) : Promise.reject({ code: "ENOENT" }),
    env: () => undefined,
  });
}

describe("README", () => {
  test("its generated parts (config reference, metrics, environment) match their sources", () => {
    assert.deepEqual(partNames(readme).sort(), ["env", "metrics", "reference"]);
    assert.deepEqual(staleParts(readme), [], "README.md is stale: run `deno task docs`");
  });

  test("has TOML blocks to check", () => {
    assert.ok(blocks.length >= 3, `only ${blocks.length} toml blocks found`);
  });

  for (const block of blocks) {
    test(`the TOML block at README.md line ${block.line} passes ferry check`, async () => {
      const r = await check(block.text);
      if (!r.ok) assert.fail(r.errors.map((e) => `${e.path} (line ${e.line}): ${e.message}`).join("\n"));
    });
  }
});

describe("the JSON Schema for editors (ferry schema)", () => {
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validate = ajv.compile(configJsonSchema("test"));
  const samples = [...blocks.map((b) => b.text), DEFAULT_CONFIG_TOML, REFERENCE_TOML];

  test("accepts every config the validator accepts (README blocks, the default, the reference)", () => {
    for (const text of samples) {
      assert.ok(validate(parse(text)), JSON.stringify(validate.errors));
    }
  });

  test("refuses what the validator refuses, key by key", async () => {
    const bad: [string, string][] = [
      ["unknown key", "[relay]\nworkrs = 2\n"],
      ["out of range", "[relay]\nworkers = 65\n"],
      ["not a choice", '[relay]\nlog_level = "loud"\n'],
      ["bad duration", '[relay]\ngrace_period = "30 seconds"\n'],
      ["bad name", '[[listeners]]\nname = "Game"\naddress = "127.0.0.1:1"\ncluster = "c"\n[clusters.c]\n'],
      ["missing address", '[[listeners]]\nname = "g"\ncluster = "c"\n[clusters.c]\n'],
      ["bad cluster name", "[clusters.Bad]\n"],
      ["weight", '[clusters.c]\nbackends = [{ address = "127.0.0.1:1", weight = 0 }]\n'],
      ["hex", '[clusters.c.health]\nsend_hex = "zz"\n'],
    ];
    for (const [what, text] of bad) {
      assert.equal(validate(parse(text)), false, `the schema accepts ${what}`);
      assert.equal((await check(text)).ok, false, `the validator accepts ${what}`);
    }
  });

  test("carries each key's default and doc line", () => {
    const s = configJsonSchema("test") as {
      properties: { relay: { properties: Record<string, { default: unknown; description: string }> } };
    };
    assert.equal(s.properties.relay.properties.workers.default, 1);
    assert.match(s.properties.relay.properties.workers.description, /workers/);
    assert.doesNotMatch(JSON.stringify(s), /x-check/);
  });
});
