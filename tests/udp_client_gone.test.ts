/**
 * Regression: a client that closes its socket before its reply arrives makes the kernel answer the reply
 * with ICMP port unreachable. On Bun that surfaced as an uncaught ECONNREFUSED on the listener socket and
 * killed the process. Runs against every Ferry target, on both UDP data paths (the native one where it
 * runs).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { FerryProcess, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";
import { Client, sleep } from "./support/udp.ts";
import { nativeSupport } from "../shell/datapath/native/select.ts";

const native = await nativeSupport();

const cleanup: (() => void)[] = [];
after(() => {
  for (const f of cleanup.splice(0)) f();
  killAll();
});

for (const target of ferryTargets()) {
  describe(`[${target.name}]`, () => {
    for (const datapath of ["runtime", "native"] as const) {
      const skip = datapath === "native" && "reason" in native ? native.reason : false;
      test(`a client gone before its reply does not take the relay down (${datapath})`, {
        timeout: 30_000,
        skip,
      }, async () => {
        // A backend that answers every datagram 100 ms late: the first clients are gone by then.
        const backend = dgram.createSocket("udp4");
        cleanup.push(() => backend.close());
        await new Promise<void>((r) => backend.bind(0, "127.0.0.1", () => r()));
        backend.on("message", (m, from) => setTimeout(() => backend.send(m, from.port, from.address), 100));
        const [udp, admin] = [...await freePorts("udp", 1), ...await freePorts("tcp", 1)];
        const ferry = await FerryProcess.start(
          target,
          `[relay]
grace_period = "1s"
datapath = "${datapath}"
[admin]
listen = "127.0.0.1:${admin}"
[[listeners]]
name = "u"
address = "127.0.0.1:${udp}"
cluster = "c"
[clusters.c]
backends = [{ address = "127.0.0.1:${backend.address().port}" }]
`,
        );
        for (let i = 0; i < 5; i++) {
          const gone = await new Client().start();
          gone.send(`bye ${i}`, udp);
          await sleep(20);
          gone.close();
        }
        await sleep(400);
        assert.ok(ferry.running, `ferry died: ${ferry.stderr.slice(-2000)}`);
        const stays = await new Client().start();
        cleanup.push(() => stays.close());
        assert.equal(await stays.ask("still there?", udp, 2000), "still there?");
        assert.equal(await ferry.stop(), 0);
      });
    }
  });
}
