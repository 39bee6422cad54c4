/**
 * Peers of scripts/torture.ts that run in their own process, so the process that measures the legit flow
 * is not the one stalled by the flood or the echo work:
 *
 *   deno run -A scripts/torture/child.ts echo [REPLY_BYTES]           prints the port, then echoes
 *   deno run -A scripts/torture/child.ts flood PORT COUNT FIRST BATCH WAIT_MS   prints {"sent","replied"}
 *
 * @module
 */

import process from "node:process";
import { bound, sourceFlood } from "./peers.ts";

const [mode, ...args] = process.argv.slice(2);
if (mode === "echo") {
  const size = Number(args[0] ?? 0);
  const s = await bound();
  const big = size > 0 ? new Uint8Array(size) : null;
  s.on("message", (m, r) => s.send(big ?? m, r.port, r.address));
  console.log(s.address().port);
} else if (mode === "flood") {
  const [port, count, first, batch, wait] = args.map(Number);
  console.log(JSON.stringify(await sourceFlood(port, count, first, batch, wait)));
  process.exit(0);
}
