/**
 * The TCP driver's side of a connection the core ended (its `connection_closed` event): both sockets
 * close, the session record gets the core's reason, and `linkState` describes open connections for the
 * admin listing. Over the running runtime's adapter, against node:net on 127.0.0.1, bounded in time.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { RelayCore } from "../core/relay_core.ts";
import type { Connection, ConnectionEnd } from "../core/connection.ts";
import type { Listener, TcpListener } from "../core/listener.ts";
import { TcpRelay } from "../shell/datapath/tcp_relay.ts";
import { CoreLoop } from "../shell/relay/core_loop.ts";
import type { TcpSockets } from "../shell/datapath/tcp_sockets.ts";
import { bunTcpSockets } from "../shell/datapath/bun/tcp.ts";
import { denoTcpSockets } from "../shell/datapath/deno/tcp.ts";
import { addr, backend, cluster, config, listener } from "./support/fixtures.ts";

const sockets: TcpSockets = "Bun" in globalThis ? bunTcpSockets : denoTcpSockets;

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("a connection the core ended is closed both ways, with the core's reason", async () => {
  const cleanups: (() => void)[] = [];
  try {
    // An echo backend that notes when its side of the relayed connection closes.
    let backendClosed = 0;
    const server = net.createServer((s) => {
      s.on("error", () => {});
      s.on("close", () => backendClosed++);
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const core = new RelayCore(
      config(
        [cluster({ backends: [backend(`127.0.0.1:${port}`)] })],
        [listener({ protocol: "tcp", address: addr("127.0.0.1:0") })],
      ),
      { seed: 1 },
    );
    const relay = new TcpRelay(new CoreLoop(core, () => performance.now()), sockets);
    cleanups.push(() => relay.stop());
    const ended: ConnectionEnd[] = [];
    relay.setConnectionEnded((_c, end) => ended.push(end));
    const local = await relay.bind(core.listener("l") as Listener, false);

    const client = net.connect({ host: "127.0.0.1", port: local.port });
    cleanups.push(() => client.destroy());
    client.on("error", () => {});
    const clientClosed = new Promise<void>((r) => client.once("close", () => r()));
    let echoed = "";
    client.on("data", (d) => (echoed += d));
    client.write("ping");
    await until(() => echoed === "ping");

    const conn = [...core.connections()][0] as Connection;
    const state = relay.linkState(conn);
    assert.equal(state?.state, "established");
    assert.ok(state !== null && state.lastActivity >= conn.openedAt);
    assert.deepEqual([conn.bytesUp, conn.bytesDown], [4, 4]);

    // The core queues `connection_closed`; the core loop routes it to the driver that bound the listener.
    assert.equal(core.disconnect("127.0.0.1"), 1);
    await clientClosed;
    await until(() => backendClosed === 1);
    assert.equal(relay.active, 0);
    assert.equal(relay.linkState(conn), null);
    assert.deepEqual(ended, ["disconnected"], "recorded as the core counted it");
    assert.equal((core.listener("l") as TcpListener).counters.connectionsEnded.disconnected, 1);
    assert.equal((core.listener("l") as TcpListener).counters.connectionsEnded.closed, 0);
  } finally {
    for (const c of cleanups.reverse()) c();
  }
});
