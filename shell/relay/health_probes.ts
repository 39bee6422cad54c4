/**
 * Active health probes: one task per (cluster, backend) whose cluster enables `health.mode`, run on the
 * runtime's sockets, never on the data path. Each task fires after a random start offset within one
 * interval, then every interval plus up to `jitter`, so a hundred backends do not probe together. The core
 * decides what a result means (rise, fall, transitions); this module only probes and reports.
 *
 * A UDP probe sends the payload from a fresh socket connected to the backend (where the runtime can) and
 * needs a reply matching `expect` within `timeout`; no reply, an ICMP refusal or a mismatch is a failure.
 * A TCP probe needs the connect to succeed within `timeout` and, with `send`/`expect`, the reply to match.
 * A DNS probe sends a real query (core/dns_message.ts; a fresh ID from a seeded Rng each time) over UDP or
 * TCP and needs, within `timeout`, a reply with that ID, the QR bit, the question echoed and an accepted
 * RCODE; over UDP, replies that do not match (a stale answer, another ID) are ignored until one does.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";
import { type HealthSettings, matchesExpect } from "../../core/health.ts";
import { checkDnsReply, DEFAULT_DNS_PROBE, dnsTcpMessage, encodeDnsQuery } from "../../core/dns_message.ts";
import { Rng } from "../../core/rng.ts";
import type { TcpSockets, TcpStream } from "../datapath/tcp_sockets.ts";
import { isRefused } from "../datapath/tcp_sockets.ts";
import type { Clock } from "./core_loop.ts";
import { Sent, type UdpSockets } from "../datapath/udp_sockets.ts";

/** One probing task. */
interface Task {
  readonly cluster: string;
  readonly backend: string;
  readonly target: SocketAddress;
  readonly settings: HealthSettings;
  timer: ReturnType<typeof setTimeout> | null;
  stopped: boolean;
}

/**
 * What the prober probes and whom it tells: a relay's core, or with workers the main thread's one health
 * state (shell/workers/shared_health.ts), so the backends are probed once whatever the worker count.
 */
export interface ProbeTarget {
  /** The clusters, their health settings and their backends (a RelayCore's Cluster objects fit). */
  clusters(): Iterable<{
    readonly config: { readonly name: string; readonly health: HealthSettings };
    readonly backends: readonly { readonly key: string; readonly address: SocketAddress }[];
  }>;
  /** A probe of backend `key` in `cluster` finished at `now`: `error` is null on success. */
  probeResult(cluster: string, key: string, error: string | null, now: number): void;
}

/** Runs the probes of every cluster that asks for them. */
export class HealthProber {
  readonly #core: ProbeTarget;
  readonly #udp: UdpSockets;
  readonly #tcp: TcpSockets;
  readonly #clock: Clock;
  readonly #tasks = new Map<string, Task>();
  /** DNS query IDs. */
  readonly #rng: Rng;
  #stopped = false;

  /**
   * `seed` seeds the DNS query IDs. A result that changes the core queues its events, and the core wakes
   * its loop (shell/relay/core_loop.ts): nothing to pump here.
   */
  constructor(
    core: ProbeTarget,
    udp: UdpSockets,
    tcp: TcpSockets,
    clock: Clock,
    seed = 0x5eed,
  ) {
    this.#rng = new Rng(seed ^ 0x0d45);
    this.#core = core;
    this.#udp = udp;
    this.#tcp = tcp;
    this.#clock = clock;
  }

  /**
   * Makes the tasks match the core's clusters: starts new ones, stops those whose backend, cluster or
   * settings went away, keeps the rest running on their schedule. Call it after every config change;
   * `only` limits it to the clusters a change of backends named (the others' tasks are left alone).
   */
  sync(only?: ReadonlySet<string>): void {
    if (this.#stopped) return;
    const wanted = new Set<string>();
    for (const c of this.#core.clusters()) {
      if (only !== undefined && !only.has(c.config.name)) continue;
      const s = c.config.health;
      if (s.mode === "off") continue;
      for (const b of c.backends) {
        const id = `${c.config.name}|${b.key}`;
        wanted.add(id);
        const old = this.#tasks.get(id);
        if (old !== undefined && old.settings === s) continue;
        if (old !== undefined) this.#stop(old);
        const target = s.port > 0 ? { ...b.address, port: s.port } : b.address;
        const task: Task = {
          cluster: c.config.name,
          backend: b.key,
          target,
          settings: s,
          timer: null,
          stopped: false,
        };
        this.#tasks.set(id, task);
        this.#schedule(task, Math.random() * s.interval);
      }
    }
    for (const [id, task] of this.#tasks) {
      if (only !== undefined && !only.has(task.cluster)) continue;
      if (!wanted.has(id)) {
        this.#stop(task);
        this.#tasks.delete(id);
      }
    }
  }

  /** Number of probing tasks (for tests and status). */
  get size(): number {
    return this.#tasks.size;
  }

  /** Stops every task. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#tasks.values()) this.#stop(t);
    this.#tasks.clear();
  }

  #stop(task: Task): void {
    task.stopped = true;
    if (task.timer !== null) clearTimeout(task.timer);
    task.timer = null;
  }

  #schedule(task: Task, delay: number): void {
    if (task.stopped) return;
    task.timer = setTimeout(() => {
      task.timer = null;
      this.#run(task);
    }, delay);
  }

  async #run(task: Task): Promise<void> {
    let error: string | null;
    try {
      const mode = task.settings.mode;
      error = mode === "udp"
        ? await this.#probeUdp(task)
        : mode === "dns"
        ? await this.#probeDns(task)
        : await this.#probeTcp(task);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    if (task.stopped) return;
    this.#core.probeResult(task.cluster, task.backend, error, this.#clock());
    const s = task.settings;
    this.#schedule(task, s.interval + Math.random() * s.jitter);
  }

  /** Resolves to null on success, else why it failed. */
  #probeDns(task: Task): Promise<string | null> {
    const dns = task.settings.dns ?? DEFAULT_DNS_PROBE;
    const id = this.#rng.nextInt(65536);
    const query = encodeDnsQuery(id, dns);
    if (dns.transport === "tcp") {
      return this.#probeTcp(task, query, (data) => {
        const m = dnsTcpMessage(data);
        return m === null ? undefined : checkDnsReply(m, id, dns);
      });
    }
    let last: string | null = null;
    return this.#probeUdp(task, query, (data) => {
      // A reply to an earlier query (or anything else) on this socket is not this probe's answer: wait on.
      const why = checkDnsReply(data, id, dns);
      if (why === null || why.startsWith("RCODE")) return why;
      last = why;
      return undefined;
    }, () => last);
  }

  /**
   * Resolves to null on success, else why it failed. `judge` (DNS) decides a reply: null passes, a string
   * fails, undefined waits for another; `lastWhy` adds the last ignored reply's fault to a timeout.
   */
  #probeUdp(
    task: Task,
    payload?: Uint8Array,
    judge?: (data: Uint8Array) => string | null | undefined,
    lastWhy?: () => string | null,
  ): Promise<string | null> {
    const s = task.settings;
    return new Promise((resolve) => {
      let settled = false;
      let socket: { close(): void } | null = null;
      const finish = (error: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket?.close();
        resolve(error);
      };
      const timer = setTimeout(() => {
        const why = lastWhy?.() ?? null;
        finish(`no reply within ${s.timeout} ms` + (why === null ? "" : ` (ignored: ${why})`));
      }, s.timeout);
      this.#udp.openUpstream(task.target, 65507, {
        reply: (data) => {
          if (judge === undefined) {
            return finish(matchesExpect(s.expect, data) ? null : `unexpected reply (${data.length} bytes)`);
          }
          const verdict = judge(data);
          if (verdict !== undefined) finish(verdict);
        },
        truncated: () => finish("reply too large"),
        error: (refused) => finish(refused ? "refused (ICMP port unreachable)" : "receive error"),
      }).then((up) => {
        socket = up;
        if (settled) return up.close();
        const sent = up.send(payload ?? s.send ?? new Uint8Array(0));
        if (sent === Sent.Refused) finish("refused (ICMP port unreachable)");
        else if (sent !== Sent.Ok) finish("send failed");
      }, (e) => finish(`socket: ${e instanceof Error ? e.message : e}`));
    });
  }

  /**
   * Resolves to null on success, else why it failed. `payload` and `judge` (DNS) replace send/expect:
   * `judge` sees every byte received so far and passes (null), fails (a string) or waits (undefined).
   */
  #probeTcp(
    task: Task,
    payload?: Uint8Array,
    judge?: (received: Uint8Array) => string | null | undefined,
  ): Promise<string | null> {
    const s = task.settings;
    const send = payload ?? s.send;
    return new Promise((resolve) => {
      let settled = false;
      let stream: TcpStream | null = null;
      const abort = new AbortController();
      const chunks: Uint8Array[] = [];
      const finish = (error: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        abort.abort();
        stream?.close();
        resolve(error);
      };
      const timer = setTimeout(
        () =>
          finish(stream === null ? `connect timeout (${s.timeout} ms)` : `no reply within ${s.timeout} ms`),
        s.timeout,
      );
      const received = () => {
        let n = 0;
        for (const c of chunks) n += c.length;
        const all = new Uint8Array(n);
        n = 0;
        for (const c of chunks) {
          all.set(c, n);
          n += c.length;
        }
        return all;
      };
      this.#tcp.connect(task.target, {
        data: (d) => {
          chunks.push(d.slice());
          if (judge !== undefined) {
            const verdict = judge(received());
            if (verdict !== undefined) finish(verdict);
          } else if (s.expect !== null && matchesExpect(s.expect, received())) finish(null);
        },
        end: () =>
          finish(
            judge !== undefined
              ? "closed before a whole reply"
              : s.expect === null || matchesExpect(s.expect, received())
              ? null
              : "unexpected reply",
          ),
        drain: () => {},
        closed: (e) => finish(e === undefined ? "closed before a reply" : `connection error: ${String(e)}`),
      }, abort.signal).then(
        (st) => {
          stream = st;
          if (settled) return st.close();
          if (send !== null) st.write(send);
          if (judge === undefined && s.expect === null) finish(null);
        },
        (e) =>
          finish(isRefused(e) ? "connect refused" : `connect failed: ${e instanceof Error ? e.message : e}`),
      );
    });
  }
}
