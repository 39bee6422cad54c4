/**
 * Builds the single-file `ferry` binary with `bun build --compile`: `deno task build [options]`.
 *
 *   deno run -A scripts/build.ts                               dist/ferry for this machine
 *   deno run -A scripts/build.ts --target bun-linux-arm64      dist/ferry-linux-arm64 (cross-compiled)
 *   deno run -A scripts/build.ts --target=bun-darwin-arm64 --outfile out/ferry-mac
 *
 * `--target` is passed through to bun's `--target` (bun-linux-x64, bun-linux-arm64, bun-linux-x64-musl,
 * bun-darwin-x64, bun-darwin-arm64, bun-windows-x64, ...). A native build works offline; a cross build
 * needs bun to download that target's runtime once (it caches it), so it fails offline. Without
 * `--outfile`, a cross build is named after its target so it does not replace the native dist/ferry.
 *
 * Prints the output path and size; exits non-zero when bun fails or leaves no file.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname;

const USAGE = `usage: deno run -A scripts/build.ts [--target bun-OS-ARCH[-VARIANT]] [--outfile PATH]
  --target    passed to bun build --target for cross-compiling (e.g. bun-linux-arm64, bun-darwin-arm64)
  --outfile   output path (default dist/ferry, or dist/ferry-OS-ARCH for a --target build)
`;

function fail(message: string, code = 1): never {
  console.error(`build: ${message}`);
  Deno.exit(code);
}

/** `--name value` or `--name=value`; every other argument is an error. */
function parseArgs(argv: readonly string[]): { target?: string; outfile?: string } {
  const out: { target?: string; outfile?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      Deno.exit(0);
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (name !== "--target" && name !== "--outfile") fail(`unknown argument ${arg}\n${USAGE}`, 2);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === "") fail(`${name} needs a value\n${USAGE}`, 2);
    out[name === "--target" ? "target" : "outfile"] = value;
  }
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function humanSize(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}

const { target, outfile: given } = parseArgs(Deno.args);
if (target !== undefined && !/^bun-[a-z0-9-]+$/.test(target)) {
  fail(`--target ${target}: expected bun-OS-ARCH, e.g. bun-linux-x64, bun-linux-arm64, bun-darwin-arm64`, 2);
}
let outfile = given ?? (target === undefined ? "dist/ferry" : `dist/ferry-${target.slice(4)}`);
// bun appends .exe for Windows targets; name the file as it will be written.
if (target?.includes("windows") && !outfile.endsWith(".exe")) outfile += ".exe";
const outPath = outfile.startsWith("/") ? outfile : `${root}${outfile}`;

const localBun = `${root}node_modules/.bin/bun`;
const bun = exists(localBun) ? localBun : "bun";
// Worker entries are further entrypoints: inside the binary, workers load them from the root bundle.
const entrypoints = [
  "main.ts",
  "shell/workers/worker_main.ts",
  "shell/process/admin_thread.ts",
  "shell/process/config_load_thread.ts",
  "shell/process/config_check_thread.ts",
];
const args = [
  "build",
  "--compile",
  ...entrypoints,
  // The binary reads .env only beside its config file (shell/process/cli.ts), as `deno main.ts` does: Bun's own
  // autoload of a .env (and bunfig.toml) in the working directory is off.
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  "--outfile",
  outPath,
  ...(target ? ["--target", target] : []),
];
console.log(`$ ${bun === localBun ? "node_modules/.bin/bun" : "bun"} ${args.join(" ")}`);

// A stale file must not pass for a fresh build: remove it first, then require bun to have written one.
try {
  Deno.removeSync(outPath);
} catch { /* none */ }

let status: Deno.CommandStatus;
try {
  status = await new Deno.Command(bun, {
    args,
    cwd: root,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn().status;
} catch (e) {
  fail(`cannot run ${bun}: ${e instanceof Error ? e.message : String(e)}`);
}
if (!status.success) {
  const hint = target !== undefined
    ? " (a cross build downloads the target's runtime: is the network up?)"
    : "";
  fail(`bun build failed with exit code ${status.code}${hint}`);
}
let size: number;
try {
  size = Deno.statSync(outPath).size;
} catch {
  fail(`bun reported success but wrote no ${outfile}`);
}
console.log(`built ${outfile} (${humanSize(size)}, ${size} bytes)${target ? ` for ${target}` : ""}`);
