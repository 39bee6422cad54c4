/**
 * The UDP driver over the runtime's own sockets (Bun.udpSocket or Deno.listenDatagram, whichever runs the
 * test), with real datagrams on 127.0.0.1. The same checks run over the native driver in
 * tests/native_udp.test.ts (tests/support/udp_suite.ts).
 */
import { UdpRelay } from "../shell/udp_relay.ts";
import type { UdpSockets } from "../shell/udp_sockets.ts";
import { bunUdpSockets } from "../shell/bun/udp.ts";
import { denoUdpSockets } from "../shell/deno/udp.ts";
import { udpDriverSuite } from "./support/udp_suite.ts";

const sockets: UdpSockets = "Bun" in globalThis ? bunUdpSockets : denoUdpSockets;

udpDriverSuite({
  name: sockets.name,
  driver: (core) => Promise.resolve(new UdpRelay(core, sockets, () => performance.now())),
  // Connected sockets surface ICMP port unreachable as ECONNREFUSED; Deno's unconnected ones cannot.
  seesRefusals: sockets.name === "bun",
});
