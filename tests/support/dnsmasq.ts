/**
 * A real dnsmasq for the DNS tests, started by the test on a free loopback port (UDP and TCP), with no
 * config file, no upstream and no hosts file: `ferry.test` (and its subdomains) answer 127.0.0.1 and ::1, names
 * under `nx.test` are NXDOMAIN, anything else REFUSED. Missing dnsmasq: `dnsmasqMissing` says so in one line.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import dgram from "node:dgram";
import net from "node:net";

const CANDIDATES = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"];

/** The dnsmasq binary, or null. */
export const DNSMASQ: string | null = CANDIDATES.find((p) => existsSync(p)) ?? null;

/** The skip reason when dnsmasq is not installed (false when it is). */
export const dnsmasqMissing: string | false = DNSMASQ === null
  ? "dnsmasq is not installed (apt-get install dnsmasq-base); skipping the DNS tests"
  : false;

/** A running dnsmasq. */
export interface Dnsmasq {
  readonly port: number;
  stop(): Promise<void>;
}

/** A port free on 127.0.0.1 for TCP (and, checked by dnsmasq's bind, UDP). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A minimal "ferry.test A" query with ID 1, to see the server answer. */
const PROBE = new Uint8Array([
  0,
  1,
  1,
  0,
  0,
  1,
  0,
  0,
  0,
  0,
  0,
  0,
  5,
  102,
  101,
  114,
  114,
  121,
  4,
  116,
  101,
  115,
  116,
  0,
  0,
  1,
  0,
  1,
]);

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    const done = (ok: boolean) => {
      clearTimeout(t);
      try {
        s.close();
      } catch { /* closed */ }
      resolve(ok);
    };
    const t = setTimeout(() => done(false), 200);
    s.on("message", () => done(true));
    s.on("error", () => done(false));
    s.send(PROBE, port, "127.0.0.1");
  });
}

/** Starts dnsmasq on a free loopback port; resolves once it answers. */
export async function startDnsmasq(): Promise<Dnsmasq> {
  if (DNSMASQ === null) throw new Error("dnsmasq is not installed");
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(DNSMASQ, [
      "--no-daemon",
      "--conf-file=/dev/null",
      "--pid-file=",
      `--port=${port}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      "--address=/ferry.test/127.0.0.1",
      "--address=/ferry.test/::1",
      "--local=/nx.test/",
      "--cache-size=0",
      "--user=nobody",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let exited = false;
    const gone = new Promise<void>((r) => child.once("exit", () => (exited = true, r())));
    let stderr = "";
    child.stderr?.on("data", (d) => (stderr += String(d)));
    for (let i = 0; i < 50 && !exited; i++) {
      if (await answers(port)) {
        return {
          port,
          stop: async () => {
            if (!exited) child.kill("SIGTERM");
            await gone;
          },
        };
      }
    }
    if (!exited) child.kill("SIGTERM");
    await gone;
    if (!/in use/i.test(stderr)) throw new Error(`dnsmasq did not start: ${stderr.trim()}`);
  }
  throw new Error("dnsmasq found no free port in 5 tries");
}
