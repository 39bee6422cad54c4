/**
 * Peers of scripts/torture.ts that run in their own process, so the process that measures the legit flow
 * is not the one stalled by the flood or the echo work:
 *
 *   deno run -A scripts/torture/child.ts echo [REPLY_BYTES]           prints the port, then echoes
 *   deno run -A scripts/torture/child.ts flood PORT COUNT FIRST BATCH WAIT_MS   prints {"sent","replied"}
 *   deno run -A scripts/torture/child.ts paced PORT INTERVAL_MS   a legit flow; stdin lines "phase NAME"
 *       start a phase, "stop" prints each phase's {sent, lost, p99} and exits
 *   deno run -A scripts/torture/child.ts halfopen PORT COUNT     opens COUNT connections that never finish a
 *       request head, prints {"opened"} once all are open, holds them until stdin ends, then prints
 *       {"closedByServer","refused"} (closed before that; answered 503)
 *
 * @module
 */

import net from "node:net";
import process from "node:process";
import { bound, pacedFlow, sourceFlood } from "./peers.ts";

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
} else if (mode === "halfopen") {
  const [port, count] = args.map(Number);
  const sockets: net.Socket[] = [];
  let closedByServer = 0, refused = 0, opened = 0, ending = false;
  for (let base = 0; base < count; base += 500) {
    await Promise.all(Array.from({ length: Math.min(500, count - base) }, () =>
      new Promise<void>((res) => {
        const s = net.connect(port, "127.0.0.1");
        let heard = "";
        s.on("data", (d) => (heard += d));
        s.on("error", () => res());
        s.once("connect", () => {
          opened++;
          s.write("GET /metrics HTTP/1.1\r\nHost: x\r\n"); // never finished
          res();
        });
        s.once("close", () => {
          if (ending) return;
          closedByServer++;
          if (heard.startsWith("HTTP/1.1 503")) refused++;
          res();
        });
        sockets.push(s);
      })));
  }
  console.log(JSON.stringify({ opened }));
  process.stdin.resume();
  await new Promise((res) => process.stdin.once("end", res));
  ending = true;
  for (const s of sockets) s.destroy();
  console.log(JSON.stringify({ closedByServer, refused }));
  process.exit(0);
} else if (mode === "paced") {
  const [port, interval] = args.map(Number);
  const flow = await pacedFlow(port, interval);
  console.log("{}");
  let buffer = "";
  process.stdin.on("data", async (d) => {
    buffer += d;
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith("phase ")) flow.phase(line.slice(6));
      else if (line === "stop") {
        console.log(JSON.stringify(await flow.stop()));
        process.exit(0);
      }
    }
  });
}
