// Whole-suite test command: `deno task test [options] [paths...]`.
//
// Steps: deno fmt --check, deno lint, deno check, then the binary (scripts/build.ts: bun build --compile
// --outfile dist/ferry, which tests/e2e_relay.test.ts runs under Deno), then the suite under Deno and
// under Bun. A failed build counts as 1 failed step, like a failed check, and the suites still run (the
// binary's tests are then skipped: a stale dist/ferry is removed before building, never tested).
// Counts come from each runtime's JUnit report, as leaf tests, so both runtimes are comparable:
// - Bun nests describe() blocks as <testsuite>; every <testcase> is a leaf.
// - Deno reports a describe() as a test with steps, and lists parents *and* steps as <testcase>,
//   named "outer > inner > leaf"; a testcase is a parent if another one's name starts with
//   its name + " > ". A parent's own failure ("N test steps failed") is not counted again, but
//   any other failure on a parent (e.g. an after() hook throwing) is.
// A failed check counts as 1 failed. A runtime that exits non-zero with no failure in its report
// (crash, load error, no report at all) counts 1 failed; Bun's "N errors" (errors outside tests,
// which its report leaves out) are added as failures.
//
// Options: --deno-only, --bun-only, --no-checks, --checks-only, --no-build, --filter <name> (deno --filter /
// bun -t; Deno matches only top-level test/describe names, so filter by those); other arguments
// are test paths (default: tests/). The last line printed is "N passed, M failed".

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

const args = [...Deno.args];
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
};
const denoOnly = flag("--deno-only");
const bunOnly = flag("--bun-only");
const noChecks = flag("--no-checks");
const checksOnly = flag("--checks-only");
const noBuild = flag("--no-build");
let filter: string | undefined;
const fi = args.indexOf("--filter");
if (fi >= 0) [, filter] = args.splice(fi, 2);
const unknown = args.filter((a) => a.startsWith("-"));
if (unknown.length) {
  console.error(`unknown option(s): ${unknown.join(" ")}`);
  console.log("0 passed, 1 failed");
  Deno.exit(1);
}
const paths = args.length ? args : ["tests/"];

type Row = { name: string; passed: number; failed: number; skipped: number; note: string };
const rows: Row[] = [];

const exists = (p: string) => {
  try {
    Deno.statSync(root + p);
    return true;
  } catch {
    return false;
  }
};

/** The bun executable: the pinned one in node_modules, else whatever "bun" is on the PATH. */
const bunPath = () => (exists("node_modules/.bin/bun") ? `${root}node_modules/.bin/bun` : "bun");

/** Runs a command with output streamed to the terminal; returns the exit code and, if asked, the text. */
async function run(cmd: string, cmdArgs: string[], capture = false): Promise<{ code: number; text: string }> {
  console.log(`\n$ ${[cmd === deno ? "deno" : cmd, ...cmdArgs].join(" ")}`);
  const opts = { args: cmdArgs, cwd: root, stdin: "null" as const };
  let child: Deno.ChildProcess;
  try {
    const out = capture ? "piped" : "inherit";
    child = new Deno.Command(cmd, { ...opts, stdout: out, stderr: out }).spawn();
  } catch (e) {
    console.error(`cannot run ${cmd}: ${e}`);
    return { code: 127, text: "" };
  }
  let text = "";
  if (capture) {
    const tee = async (src: ReadableStream<Uint8Array>, dst: { write(b: Uint8Array): Promise<number> }) => {
      const dec = new TextDecoder();
      for await (const chunk of src) {
        text += dec.decode(chunk, { stream: true });
        await dst.write(chunk);
      }
    };
    await Promise.all([tee(child.stdout, Deno.stdout), tee(child.stderr, Deno.stderr)]);
  }
  return { code: (await child.status).code, text };
}

const decode = (s: string) =>
  s.replace(
    /&(lt|gt|quot|apos|amp|#(\d+));/g,
    (_, e: string, n?: string) =>
      n ? String.fromCharCode(Number(n)) : { lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" }[e]!,
  );

type Case = { name: string; failure?: string; skipped: boolean };

function parseJunit(xml: string): Case[] {
  const cases: Case[] = [];
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = m[3] ?? "";
    const fail = body.match(/<(failure|error)\b([^>]*)>/);
    const attr = (s: string, a: string) => decode(s.match(new RegExp(`\\b${a}="([^"]*)"`))?.[1] ?? "");
    cases.push({
      name: attr(m[1], "name"),
      failure: fail ? attr(fail[2], "message") || fail[1] : undefined,
      skipped: /<skipped\b/.test(body),
    });
  }
  return cases;
}

function count(cases: Case[], nestedByName: boolean) {
  const parents = new Set<string>();
  if (nestedByName) {
    for (const c of cases) {
      const parts = c.name.split(" > ");
      for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join(" > "));
    }
  }
  let passed = 0, failed = 0, skipped = 0;
  for (const c of cases) {
    if (parents.has(c.name)) {
      if (c.failure && !/^\d+ test steps? failed/.test(c.failure)) failed++;
    } else if (c.failure) failed++;
    else if (c.skipped) skipped++;
    else passed++;
  }
  return { passed, failed, skipped };
}

async function suite(name: "deno" | "bun") {
  const dir = await Deno.makeTempDir({ prefix: "ferry-test-" });
  const report = `${dir}/${name}.xml`;
  let res;
  if (name === "deno") {
    const f = filter ? ["--filter", filter] : [];
    res = await run(deno, ["test", "-A", `--junit-path=${report}`, ...f, ...paths]);
  } else {
    const f = filter ? ["-t", filter] : [];
    res = await run(
      bunPath(),
      ["test", "--reporter=junit", `--reporter-outfile=${report}`, ...f, ...paths],
      true,
    );
  }
  let xml = "";
  try {
    xml = await Deno.readTextFile(report);
  } catch { /* no report */ }
  await Deno.remove(dir, { recursive: true });
  const row = { name, ...count(parseJunit(xml), name === "deno"), note: "" };
  const errors = Number(res.text.match(/^\s*(\d+) errors?\s*$/m)?.[1] ?? 0);
  if (errors) {
    row.failed += errors;
    row.note = `${errors} error(s) outside tests`;
  }
  if (res.code !== 0 && row.failed === 0) {
    row.failed = 1;
    row.note = xml ? `exit code ${res.code}` : `exit code ${res.code}, no report`;
  }
  rows.push(row);
}

if (!noChecks) {
  const checkPaths = ["main.ts", "core/", "shell/", "admin/", "tests/", "scripts/"].filter(exists);
  const checks: [string, string[]][] = [
    ["fmt", ["fmt", "--check"]],
    ["lint", ["lint"]],
    ["check", ["check", ...checkPaths]],
  ];
  for (const [name, cmdArgs] of checks) {
    const { code } = await run(deno, cmdArgs);
    rows.push({
      name,
      passed: 0,
      failed: code === 0 ? 0 : 1,
      skipped: 0,
      note: code ? `exit code ${code}` : "ok",
    });
  }
}
/** Builds dist/ferry, the compiled binary the end-to-end tests run too; a failure is 1 failed step. */
async function build() {
  // scripts/build.ts alone knows the entrypoints; it removes a stale dist/ferry before building.
  const { code } = await run(Deno.execPath(), ["run", "-A", "scripts/build.ts"]);
  const ok = code === 0 && exists("dist/ferry");
  rows.push({
    name: "build",
    passed: 0,
    failed: ok ? 0 : 1,
    skipped: 0,
    note: ok ? "dist/ferry" : code ? `exit code ${code}` : "no dist/ferry written",
  });
}

if (!checksOnly) {
  if (!noBuild) await build();
  if (!bunOnly) await suite("deno");
  if (!denoOnly) await suite("bun");
}

const total = (k: "passed" | "failed" | "skipped") => rows.reduce((n, r) => n + r[k], 0);
console.log("\nstep    passed  failed  skipped  note");
for (const r of rows) {
  const cols = [r.name.padEnd(6), String(r.passed).padStart(6), String(r.failed).padStart(6)];
  console.log(`${cols.join("  ")}  ${String(r.skipped).padStart(7)}  ${r.note}`);
}
console.log(`${total("passed")} passed, ${total("failed")} failed`);
Deno.exit(total("failed") ? 1 : 0);
