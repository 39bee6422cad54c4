// `deno task docs`: rewrites the README's generated parts from their one source each (the config
// declaration, the metric list, the environment variables; see tests/support/readme.ts), then formats it.
// tests/readme.test.ts fails when the README and the sources disagree, naming this command.

import { regenerate } from "../tests/support/readme.ts";

const path = new URL("../README.md", import.meta.url).pathname;
const before = await Deno.readTextFile(path);
await Deno.writeTextFile(path, regenerate(before));
const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", path] }).output();
if (!fmt.success) throw new Error(`deno fmt ${path} failed`);
console.log((await Deno.readTextFile(path)) === before ? "README.md is up to date" : "README.md rewritten");
