// `deno task docs`: rewrites the README's generated blocks from their one source.
// - The configuration reference ("Every key, with its default") from core/default_config.ts REFERENCE_TOML.
// tests/readme.test.ts fails when the README and the sources disagree, naming this command.

import { readmeWithReference } from "../tests/support/readme.ts";

const path = new URL("../README.md", import.meta.url);
const before = await Deno.readTextFile(path);
const after = readmeWithReference(before);
if (after === before) console.log("README.md is up to date");
else {
  await Deno.writeTextFile(path, after);
  console.log("README.md: reference block rewritten");
}
