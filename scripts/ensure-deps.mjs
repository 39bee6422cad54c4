// Installs the pinned toolchain (deno and bun from npm) and the dependencies when a fresh clone lacks them,
// so `npm start` and `npm test` are each one command on a machine that has only Node and npm.
// Plain Node (no TypeScript): it runs before deno exists.
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";

const need = [
  "node_modules/.bin/deno",
  "node_modules/.bin/bun",
  "node_modules/hono",
  "node_modules/smol-toml",
];
if (need.some((p) => !existsSync(p))) {
  console.error("ferry: installing the pinned deno, bun and dependencies (npm ci)...");
  execSync("npm ci --no-audit --no-fund", { stdio: "inherit" });
}
try {
  execSync("node_modules/.bin/bun --version", { stdio: "ignore" });
} catch {
  // npm may skip bun's postinstall (which puts its binary in place); run it once.
  execSync("node install.js", { cwd: "node_modules/bun", stdio: "inherit" });
}
