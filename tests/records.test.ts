// Session records: one record per ended UDP flow and TCP connection (JSON or text, to a rotating file),
// interim records of long flows, sampling, and the rotation of the file sink.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { rotatingFileSink } from "../shell/records/sinks.ts";
import { type SessionRecord, textRecord } from "../shell/records/recorder.ts";
import { FerryProcess, ferryTargets, freePorts, killAll } from "./support/ferry_process.ts";
import { Client, EchoBackend, sleep, until } from "./support/udp.ts";

after(killAll);
const T = { timeout: 30_000 };
const JSON_BODY = { "content-type": "application/json" };

function readRecords(path: string): SessionRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

describe("records: the file sink", () => {
  test("rotates past max_size, keeping `keep` older files", () => {
    const dir = mkdtempSync(`${tmpdir()}/ferry-records-`);
    try {
      const path = `${dir}/r.log`;
      const sink = rotatingFileSink(path, 4096, 2, (m) => assert.fail(m));
      const line = `${"x".repeat(1023)}\n`;
      for (let i = 0; i < 10; i++) {
        sink.write(line);
        sink.flush(); // one write per line, so each rotation point is exact
      }
      sink.close();
      // 4 lines fit in 4096 bytes: r.log.2 and r.log.1 hold 4 each, r.log the last 2; nothing older kept.
      assert.equal(readFileSync(`${path}.2`, "utf8").length, 4096);
      assert.equal(readFileSync(`${path}.1`, "utf8").length, 4096);
      assert.equal(readFileSync(path, "utf8").length, 2048);
      assert.equal(existsSync(`${path}.3`), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the text format carries the same figures", () => {
    const line = textRecord({
      record: "end",
      time: "2026-01-01T00:00:01.000Z",
      listener: "game",
      protocol: "udp",
      cluster: "game",
      client: "192.0.2.1:5000",
      backend: "10.0.0.5:7000",
      start: "2026-01-01T00:00:00.000Z",
      duration_s: 1,
      datagrams_up: 3,
      bytes_up: 300,
      datagrams_down: 2,
      bytes_down: 200,
      reason: "idle",
      rtt_ms: 12.5,
      jitter_ms: 1.5,
      loss_permille: 0,
      first_reply_ms: 14,
      proxy_header: true,
    });
    assert.equal(
      line,
      "2026-01-01T00:00:01.000Z end game udp 192.0.2.1:5000 -> 10.0.0.5:7000 cluster=game reason=idle " +
        "start=2026-01-01T00:00:00.000Z duration=1s up=3/300B down=2/200B rtt=12.5ms jitter=1.5ms loss=0‰ " +
        "first_reply=14ms proxy=yes\n",
    );
  });
});

for (const target of ferryTargets()) {
  describe(`${target.name}: session records`, () => {
    test("a record per ended flow and connection, interim records, sampled and text modes", T, async () => {
      const backend = await new EchoBackend().start();
      const tcpBackend = net.createServer((s) => s.on("data", (d) => s.write(d)));
      await new Promise<void>((r) => tcpBackend.listen(0, "127.0.0.1", () => r()));
      const tcpPort = (tcpBackend.address() as net.AddressInfo).port;
      const client = await new Client().start();
      const [dns, game, proxied] = await freePorts("udp", 3);
      const [tcp] = await freePorts("tcp", 1);
      const dir = mkdtempSync(`${tmpdir()}/ferry-records-`);
      const file = `${dir}/records.log`;
      const b = `backends = [{ address = "127.0.0.1:${backend.port}" }]`;
      const f = await FerryProcess.start(
        target,
        `[relay]\ngrace_period = "100ms"\n[admin]\nlisten = "127.0.0.1:0"\n[records]\nmode = "all"\nfile = "${file}"\ninterim = "1s"\n` +
          `[[listeners]]\nname = "dns"\naddress = "127.0.0.1:${dns}"\ncluster = "dns"\n` +
          `[[listeners]]\nname = "game"\naddress = "127.0.0.1:${game}"\ncluster = "game"\n` +
          `[[listeners]]\nname = "px"\naddress = "127.0.0.1:${proxied}"\ncluster = "px"\n` +
          `[[listeners]]\nname = "web"\nprotocol = "tcp"\naddress = "127.0.0.1:${tcp}"\ncluster = "web"\n` +
          `[clusters.dns]\nresponses = 1\n${b}\n[clusters.game]\n${b}\n` +
          `[clusters.px]\nresponses = 1\nproxy_protocol = "first"\n${b}\n` +
          `[clusters.web]\nbackends = [{ address = "127.0.0.1:${tcpPort}" }]\n`,
      );
      try {
        assert.equal(await client.ask("query", dns), "query");
        assert.equal(await client.ask("hello", game), "hello"); // stays open: interim records
        client.send("p", proxied);
        assert.ok((await client.next()) !== null);
        const sock = net.connect(tcp, "127.0.0.1");
        await new Promise<void>((r) => sock.once("connect", () => r()));
        sock.write("ping");
        await new Promise((r) => sock.once("data", r));
        sock.end();
        await new Promise((r) => sock.once("close", r));

        const byListener = (l: string, kind = "end") =>
          readRecords(file).find((r) => r.listener === l && r.record === kind);
        assert.ok(
          await until(() => byListener("dns") !== undefined && byListener("web") !== undefined, 5000),
        );
        const d = byListener("dns")!;
        assert.equal(d.protocol, "udp");
        assert.equal(d.cluster, "dns");
        assert.match(d.client, /^127\.0\.0\.1:\d+$/);
        assert.equal(d.backend, `127.0.0.1:${backend.port}`);
        assert.equal(d.reason, "responses");
        assert.deepEqual([d.datagrams_up, d.bytes_up, d.datagrams_down, d.bytes_down], [1, 5, 1, 5]);
        assert.ok(d.rtt_ms !== null && d.rtt_ms >= 0 && d.first_reply_ms === d.rtt_ms);
        assert.equal(d.proxy_header, false);
        assert.ok(Date.parse(d.start) <= Date.parse(d.time) && d.duration_s >= 0);
        assert.equal(byListener("px")!.proxy_header, true);
        const w = byListener("web")!;
        assert.equal(w.protocol, "tcp");
        assert.equal(w.reason, "closed");
        assert.deepEqual([w.bytes_up, w.bytes_down, w.datagrams_up], [4, 4, null]);

        // The game flow is still open: after a second it gets interim records, with no reason yet.
        assert.ok(await until(() => byListener("game", "interim") !== undefined, 5000));
        assert.equal(byListener("game", "interim")!.reason, null);
        assert.equal(byListener("game"), undefined);

        // Live: sampled, 1 in 1000 flows by id, in text: the next few flows leave no record.
        const raw = await f.json<Record<string, Record<string, unknown>>>("/api/v1/config?format=json");
        raw.records = { mode: "sampled", sample: 1000, file: `${dir}/text.log`, format: "text" };
        const put = await f.api("/api/v1/config", {
          method: "PUT",
          headers: JSON_BODY,
          body: JSON.stringify(raw),
        });
        assert.equal(put.status, 200, await put.text());
        raw.records = { mode: "all", file: `${dir}/text.log`, format: "text" };
        for (let i = 0; i < 3; i++) await client.ask(`s${i}`, dns);
        await sleep(400);
        assert.equal(existsSync(`${dir}/text.log`) ? readFileSync(`${dir}/text.log`, "utf8") : "", "");
        assert.equal(
          (await f.api("/api/v1/config", { method: "PUT", headers: JSON_BODY, body: JSON.stringify(raw) }))
            .status,
          200,
        );
        await client.ask("t", dns);
        assert.ok(
          await until(() => existsSync(`${dir}/text.log`) && readFileSync(`${dir}/text.log`, "utf8") !== ""),
        );
        assert.match(
          readFileSync(`${dir}/text.log`, "utf8"),
          / end dns udp 127\.0\.0\.1:\d+ -> .* reason=responses /,
        );
      } finally {
        await f.stop();
        client.close();
        backend.close();
        tcpBackend.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe(`${ferryTargets()[0].name}: records and histograms with relay.workers = 2`, () => {
  test("each worker writes FILE.worker<N>; the histograms are summed over workers", T, async () => {
    const tcpBackend = net.createServer((s) => s.on("data", (d) => s.write(d)));
    await new Promise<void>((r) => tcpBackend.listen(0, "127.0.0.1", () => r()));
    const tcpPort = (tcpBackend.address() as net.AddressInfo).port;
    const [tcp] = await freePorts("tcp", 1);
    const dir = mkdtempSync(`${tmpdir()}/ferry-records-`);
    const f = await FerryProcess.start(
      ferryTargets()[0],
      `[relay]\nworkers = 2\ngrace_period = "100ms"\n[admin]\nlisten = "127.0.0.1:0"\n` +
        `[records]\nmode = "all"\nfile = "${dir}/r.log"\n` +
        `[[listeners]]\nname = "web"\nprotocol = "tcp"\naddress = "127.0.0.1:${tcp}"\ncluster = "web"\n` +
        `[clusters.web]\nbackends = [{ address = "127.0.0.1:${tcpPort}" }]\n`,
    );
    const N = 20;
    try {
      for (let i = 0; i < N; i++) {
        const sock = net.connect(tcp, "127.0.0.1");
        await new Promise<void>((r) => sock.once("connect", () => r()));
        sock.write("x");
        await new Promise((r) => sock.once("data", r));
        sock.end();
        await new Promise((r) => sock.once("close", r));
      }
      const records = () => [...readRecords(`${dir}/r.log.worker0`), ...readRecords(`${dir}/r.log.worker1`)];
      assert.ok(await until(() => records().length === N, 5000), `${records().length} records`);
      assert.ok(records().every((r) => r.worker === 0 || r.worker === 1));
      assert.equal(existsSync(`${dir}/r.log`), false);
      // SO_REUSEPORT spreads connections by their address hash: with 20, both workers get some (all on one
      // would happen about once in a million runs), so the count below is a sum over both.
      assert.ok(
        readRecords(`${dir}/r.log.worker0`).length > 0 && readRecords(`${dir}/r.log.worker1`).length > 0,
      );
      const text = await (await f.api("/metrics")).text();
      assert.match(
        text,
        new RegExp(`^ferry_flow_duration_seconds_count\\{listener="web",protocol="tcp"\\} ${N}$`, "m"),
      );
    } finally {
      await f.stop();
      tcpBackend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
