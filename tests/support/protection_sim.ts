/**
 * The edge-protection simulation itself (run by tests/simulation_protection.test.ts): operations on one
 * `RelayCore`, each checked against the models of tests/support/protection_model.ts, and the invariants
 * checked after every step.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Flow, FlowState } from "../../core/flow.ts";
import type { Listener, TcpListener, UdpListener } from "../../core/listener.ts";
import type { ListenerProtection } from "../../core/protection.ts";
import { RelayCore } from "../../core/relay_core.ts";
import { cluster, config } from "./fixtures.ts";
import {
  blockText,
  limiterMemory,
  type ModelAutoBan,
  ModelBans,
  ModelLimits,
  ruleHolds,
  sourceAddress,
  WindowLedger,
} from "./protection_model.ts";
import {
  AUTO_MAX_FLOWS,
  CLIENT_DROPS,
  IPS,
  NAMES,
  PORTS,
  ProtectionWorld,
  REASON_OF,
} from "./protection_world.ts";
import { checkTcp, opTcp, TCP_NAME } from "./protection_sim_tcp.ts";
import { opBan, opListBans, opUnban } from "./protection_sim_bans.ts";

/** One seed's run. */
export class ProtectionSim extends ProtectionWorld {
  readonly core: RelayCore;
  readonly bans = new ModelBans();
  readonly models = new Map<Listener, { p: ListenerProtection | null; limits: ModelLimits | null }>();
  readonly received = new Map<Listener, number>();
  readonly replies = new Map<Listener, number>();
  /** The protection a flow was admitted under (the amplification bound holds while it is unchanged). */
  readonly admittedUnder = new Map<Flow, ListenerProtection | null>();
  /** Per-IP and per-prefix ledgers of what each protection object let through. */
  readonly ledgers = new Map<ListenerProtection, [WindowLedger, WindowLedger]>();
  readonly memory = new Map<ListenerProtection, number>();
  readonly recentClosed: Flow[] = [];
  sprayed = 0;

  /** A run of `steps` steps from `seed`; `trace` prints every operation. */
  constructor(seed: number, readonly steps: number, trace = false) {
    super(seed, trace);
    const c = cluster({
      frontTimeout: this.pick([300, 2_000, 30_000]),
      backTimeout: this.pick([300, 30_000]),
    });
    this.core = new RelayCore(
      config([c], [
        ...NAMES.map((name, i) => this.randomListener(name, i)),
        this.randomTcpListener(TCP_NAME),
      ]),
      { seed, autoMaxFlows: AUTO_MAX_FLOWS },
    );
    for (const name of [...NAMES, TCP_NAME]) {
      const l = this.core.listener(name)!;
      this.received.set(l, 0);
      this.replies.set(l, 0);
    }
  }

  /** The model of `l`'s current protection (a new protection object starts with fresh buckets). */
  model(l: Listener): { p: ListenerProtection | null; limits: ModelLimits | null } {
    let m = this.models.get(l);
    if (m === undefined || m.p !== l.protection) {
      const lc = l.protection?.config.limits ?? null;
      m = { p: l.protection, limits: lc === null ? null : new ModelLimits(lc) };
      this.models.set(l, m);
      if (l.protection !== null) {
        this.ledgers.set(l.protection, [new WindowLedger(), new WindowLedger()]);
        this.memory.set(l.protection, limiterMemory(l.protection));
      }
    }
    return m;
  }

  /** True while the listener's tables have forgotten no source: the limiter model is exact. */
  exact(l: Listener): boolean {
    const p = l.protection;
    return p === null || ((p.perIp?.evictions ?? 0) === 0 && (p.perPrefix?.evictions ?? 0) === 0);
  }

  // -- the run

  run(): void {
    for (this.step = 1; this.step <= this.steps; this.step++) {
      try {
        this.once();
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        assert.fail(
          `seed ${this.seed} step ${this.step}: ${msg}\n  replay: FERRY_SIM_SEED=${this.seed} ` +
            `(FERRY_SIM_TRACE=1 prints every op)\n  last ops:\n    ${this.ring.join("\n    ")}`,
        );
      }
    }
  }

  once(): void {
    const r = this.rng.nextFloat() * 100;
    if (r < 6) opTcp(this);
    else if (r < 46) this.opClient(this.pickListener());
    else if (r < 50) this.opChatty();
    else if (r < 68) this.opReply();
    else if (r < 80) this.opClock();
    else if (r < 84) this.opTimeout();
    else if (r < 89) opBan(this);
    else if (r < 91) opUnban(this);
    else if (r < 93) opListBans(this);
    else if (r < 97) this.opReconfigure();
    else if (r < 98) this.opSpray();
    else this.opClock();
    this.checkInvariants();
  }

  pickListener(): Listener {
    return this.core.listener(this.pick(NAMES))!;
  }
  // -- client datagrams

  opClient(l: Listener, ipPort?: [string, number], data = this.datagram(l)): void {
    const [ip, port] = ipPort ?? [this.pick(IPS), this.pick(PORTS)];
    this.label(`fromClient ${l.config.name} ${ip}:${port} ${data.length}B`);
    const m = this.model(l);
    const exact = this.exact(l);
    const known = l.lookup(ip, port);
    const flowsBefore = this.core.flowCount;
    const listenerFlows = l.flows;
    const c = (l as UdpListener).counters;
    const before = [c.datagramsIn, ...CLIENT_DROPS.map((d) => c.drops[d as keyof typeof c.drops])];
    const banned = this.bans.holding(ip, this.now);
    const mostSpecific = banned.sort((a, b) => Number(b.split("/")[1]) - Number(a.split("/")[1]))[0];
    const hitsBefore = mostSpecific === undefined
      ? 0
      : this.core.protection.bans.get(mostSpecific)?.hits ?? 0;
    const autoBans: ModelAutoBan[] = [];
    const limit = l.config.maxFlows > 0 ? l.config.maxFlows : AUTO_MAX_FLOWS;

    // The model's verdict, in the core's order of checks: "in" = forwarded or admitted.
    let want: string;
    const limited = (newFlow: boolean) => {
      if (m.limits === null) return false;
      if (!newFlow && !m.limits.chargesEstablished) return false;
      const v = m.limits.check(ip, newFlow, data.length, this.now);
      if (v !== null && v.ban !== null) autoBans.push(v.ban);
      return v !== null;
    };
    if (data.length > l.config.maxDatagramSize) want = "truncated";
    else if (data.length === 0) want = "invalid";
    else if (known !== undefined) want = limited(false) ? "rate_limited" : "in";
    else if (banned.length > 0) want = "banned";
    else if (limited(true)) want = "rate_limited";
    else if (
      l.protection?.filter !== null && l.protection?.filter !== undefined &&
      !ruleHolds(l.protection.filter.rule, data)
    ) {
      want = "filtered";
    } else if (listenerFlows >= limit) want = "shed";
    // The source policy refuses multicast, and zoned text it does not parse (after the limits counted it).
    else if (ip.includes("%") || (sourceAddress(ip).family === 4 && sourceAddress(ip).bytes[0] === 224)) {
      want = "invalid";
    } else want = "in";

    const r = this.core.fromClient(l, ip, port, data, this.now);
    this.received.set(l, this.received.get(l)! + 1);
    const got = typeof r === "number" ? REASON_OF[r] ?? `drop${r}` : "in";
    // Exactly one counter moved, by one.
    const after = [c.datagramsIn, ...CLIENT_DROPS.map((d) => c.drops[d as keyof typeof c.drops])];
    const moved = after.map((v, i) => v - before[i]);
    const which = ["in", ...CLIENT_DROPS].filter((_, i) => moved[i] !== 0);
    if (which.length !== 1 || moved.reduce((a, b) => a + b, 0) !== 1) {
      assert.fail(`${ip}:${port}: counters moved [${moved.join(" ")}] for one datagram (${got})`);
    }
    if (which[0] !== got) assert.fail(`${ip}:${port}: returned ${got} but counted ${which[0]}`);
    this.hit(`client:${known === undefined ? "new" : "known"}:${got}`);

    // The limiter model decides rate_limited only while exact; otherwise the core may also fail open.
    const agrees = got === want || (!exact && (got === "rate_limited" || want === "rate_limited"));
    if (!agrees) assert.fail(`${ip}:${port} on ${l.config.name}: ${got}, the model says ${want}`);
    if (!exact && got !== want) this.hit("limiter:loose-verdict");

    if (typeof r === "number") {
      if (this.core.flowCount !== flowsBefore) {
        assert.fail(`${ip}:${port}: refused (${got}) but a flow moved`);
      }
      if (l.lookup(ip, port) !== known) assert.fail(`${ip}:${port}: refused (${got}) but the table changed`);
    } else if (known === undefined) {
      if (l.flows !== listenerFlows + 1 || l.flows > limit) {
        assert.fail(`${ip}:${port}: admitted past ${limit}`);
      }
      this.admittedUnder.set(r, l.protection);
      this.ledge(l, ip, true, data.length);
      if (this.bans.lapsedFor(ip, this.now)) this.hit("ban:admitted-after-expiry");
    } else {
      if (r !== known) assert.fail(`${ip}:${port}: a known client got another flow`);
      this.ledge(l, ip, false, data.length);
    }
    if (got === "banned") {
      const ban = this.core.protection.bans.get(mostSpecific!);
      if (ban === undefined || ban.hits !== hitsBefore + 1) {
        assert.fail(
          `${ip}: banned, but ban ${mostSpecific} counted ${ban?.hits ?? "no"} hits (was ${hitsBefore})`,
        );
      }
    }
    this.takeAutoBans(l, exact, autoBans);
  }

  /** One established flow sends a run of datagrams at once: the per-source datagram and byte limits bite. */
  opChatty(): void {
    const flows = [...this.core.flows()].filter((f) => f.state === FlowState.Established);
    if (flows.length === 0) return;
    const f = this.pick(flows);
    for (let i = 5 + this.int(20); i > 0; i--) {
      this.opClient(
        f.listener,
        [f.clientIp, f.clientPort],
        new Uint8Array(1 + this.int(300)).fill(0x51),
      );
      if (f.state !== FlowState.Established) break;
    }
  }

  /** Checks the automatic bans the core placed against the model's (or adopts them once loose). */
  takeAutoBans(l: Listener, exact: boolean, predicted: ModelAutoBan[]): void {
    const placed = this.core.protection.autoBans.splice(0);
    // No automatic ban while a ban on that block is in force: it is neither shortened nor announced again.
    const due = predicted.filter((b) => !this.bans.liveOn(b.cidr, this.now));
    if (exact) {
      const got = placed.map((b) => `${b.cidr}@${b.expiresAt}`).join(" ");
      const wantText = due.map((b) => `${b.cidr}@${b.expiresAt}`).join(" ");
      if (got !== wantText) {
        assert.fail(`${l.config.name}: automatic bans [${got}], the model says [${wantText}]`);
      }
    }
    for (const b of placed) {
      if (b.origin !== "auto") assert.fail(`automatic ban ${b.cidr} has origin ${b.origin}`);
      this.bans.addUntil(b.cidr, b.expiresAt);
      this.hit("ban:auto");
    }
  }

  /** Records an accepted datagram (and a new flow) per source key, then checks the window bound. */
  ledge(l: Listener, ip: string, newFlow: boolean, size: number): void {
    const p = l.protection;
    const lc = p?.config.limits ?? null;
    if (p === null || lc === null) return;
    const a = sourceAddress(ip);
    const [ipLedger, prefixLedger] = this.ledgers.get(p)!;
    const keyed = [
      [ipLedger, blockText(a, a.family === 4 ? 32 : 128), lc.perIp, p.perIp?.evictions ?? 0],
      [
        prefixLedger,
        blockText(a, a.family === 4 ? lc.prefixV4 : lc.prefixV6),
        lc.perPrefix,
        p.perPrefix?.evictions ?? 0,
      ],
    ] as const;
    for (const [ledger, key, rates, evictions] of keyed) {
      const dims = [["new_flows", rates.newFlows, newFlow ? 1 : 0], ["datagrams", rates.datagrams, 1], [
        "bytes",
        rates.bytes,
        size,
      ]] as const;
      for (const [dim, rate, weight] of dims) {
        if (rate <= 0 || weight === 0) continue;
        // Each eviction may hand one source a fresh burst: the table's documented fail-open.
        const burst = Math.max(1, (rate * lc.burstMs) / 1000);
        const broken = ledger.record(`${dim} ${key}`, weight, this.now, rate, burst, burst * evictions);
        if (broken !== null) assert.fail(`${l.config.name}: ${broken} (${evictions} evictions)`);
      }
    }
  }

  // -- replies

  opReply(): void {
    const live = [...this.core.flows()];
    const f = this.recentClosed.length > 0 && (live.length === 0 || this.chance(0.08))
      ? this.pick(this.recentClosed)
      : live.length > 0
      ? this.pick(live)
      : undefined;
    if (f === undefined) return;
    const l = f.listener;
    const size = 1 + this.int(400);
    this.label(`fromBackend flow#${f.id} ${f.clientIp}:${f.clientPort} ${size}B`);
    const q = f.quality;
    const c = l.counters;
    const before = [c.datagramsOut, c.drops.amplified, c.drops.late];
    const a = l.protection?.amplification ?? null;
    const open = f.state === FlowState.Established || f.state === FlowState.Closing;
    const amplifies = a !== null && f.requests < a.datagrams && q.bytesOut + size > a.ratio * q.bytesIn;
    const want = !open ? "late" : amplifies ? "amplified" : "out";
    const ok = this.core.fromBackend(f, size, this.now);
    this.replies.set(l, this.replies.get(l)! + 1);
    const moved = [c.datagramsOut, c.drops.amplified, c.drops.late].map((v, i) => v - before[i]);
    const got = moved[0] === 1 ? "out" : moved[1] === 1 ? "amplified" : moved[2] === 1 ? "late" : "none";
    if (moved.reduce((x, y) => x + y, 0) !== 1 || got !== want || ok !== (want === "out")) {
      assert.fail(`reply to flow#${f.id}: ${got} (${ok}), the model says ${want}`);
    }
    this.hit(`reply:${got}`);
    // The bound itself, for flows whose guard has not changed under them.
    if (ok && a !== null && f.requests < a.datagrams && this.admittedUnder.get(f) === l.protection) {
      if (q.bytesOut > a.ratio * q.bytesIn) {
        assert.fail(`flow#${f.id}: sent back ${q.bytesOut} B for ${q.bytesIn} B in, ratio ${a.ratio}`);
      }
    }
    this.reap();
  }

  reap(): void {
    for (let e = this.core.poll(); e !== undefined; e = this.core.poll()) {
      if (e.kind !== "closed") continue;
      this.admittedUnder.delete(e.flow);
      this.recentClosed.push(e.flow);
      if (this.recentClosed.length > 16) this.recentClosed.shift();
    }
  }

  // -- time

  opClock(): void {
    const r = this.rng.nextFloat();
    const dt = r < 0.7 ? this.int(40) : r < 0.95 ? 40 + this.int(1000) : 1000 + this.int(5000);
    this.now += dt;
    this.label(`clock +${dt}`);
  }

  opTimeout(): void {
    const next = this.core.nextDeadline();
    if (next !== Infinity && this.chance(0.5)) this.now = Math.max(this.now, next);
    this.label("onTimeout");
    this.core.onTimeout(this.now);
    this.reap();
  }

  // -- reconfiguration and sprays

  opReconfigure(): void {
    const l = this.pickListener();
    const keep = this.chance(0.4);
    const lc = keep
      ? { ...l.config }
      : { ...this.randomListener(l.config.name, NAMES.indexOf(l.config.name)) };
    this.label(`setListener ${lc.name} ${keep ? "same protection" : "new protection"}`);
    const old = l.protection;
    const got = this.core.setListener(lc);
    if (got !== l) assert.fail("setListener replaced the listener object");
    if (keep && l.protection !== old) assert.fail("an unchanged protection config restarted its buckets");
    if (!keep && l.protection !== null && l.protection === old) {
      assert.fail("a new protection config kept old buckets");
    }
    this.hit(keep ? "reconfigure:kept" : "reconfigure:new");
  }

  /** Many fresh sources at once: the limiter tables must stay within their size. */
  opSpray(): void {
    const l = this.pickListener();
    const n = 20 + this.int(80);
    this.label(`spray ${n} sources on ${l.config.name}`);
    for (let i = 0; i < n; i++) {
      const k = this.sprayed++;
      const ip = k % 3 === 2
        ? `2001:db8:ff:${(k >> 8).toString(16)}::${(k & 0xff).toString(16)}`
        : `10.${(k >> 16) & 0xff}.${(k >> 8) & 0xff}.${k & 0xff}`;
      this.opClient(l, [ip, 2000], Uint8Array.of(0x51, 0xff, 0, 0, 0x54));
    }
    this.hit("spray");
  }

  // -- invariants

  checkInvariants(): void {
    this.reap();
    let topDrops = 0, flows = 0, datagramsIn = 0, bytesIn = 0;
    for (const name of NAMES) {
      const l = this.core.listener(name)!;
      const c = (l as UdpListener).counters;
      const sum = c.datagramsIn + CLIENT_DROPS.reduce((s, d) => s + c.drops[d as keyof typeof c.drops], 0);
      if (sum !== this.received.get(l)) {
        assert.fail(`${name}: ${this.received.get(l)} received, ${sum} counted`);
      }
      const out = c.datagramsOut + c.drops.amplified + c.drops.late;
      if (out !== this.replies.get(l)) assert.fail(`${name}: ${this.replies.get(l)} replies, ${out} counted`);
      topDrops += c.drops.banned + c.drops.rate_limited + c.drops.filtered + c.drops.shed;
      flows += c.flowsCreated, datagramsIn += c.datagramsIn, bytesIn += c.bytesIn;
      const p = l.protection;
      if (p === null) continue;
      for (const t of [p.perIp, p.perPrefix]) {
        if (t === null) continue;
        // `size` scans the table: every 16th step is enough.
        if ((this.step & 15) === 0 && t.size > t.capacity) {
          assert.fail(`${name}: limiter holds ${t.size} > ${t.capacity} entries`);
        }
        if (t.evictions > 0) this.hit("limiter:evicting");
      }
      const fixed = this.memory.get(p);
      if (fixed !== undefined && limiterMemory(p) !== fixed) assert.fail(`${name}: limiter memory moved`);
    }
    const tcp = this.core.listener(TCP_NAME)! as TcpListener;
    checkTcp(this, tcp);
    topDrops += tcp.counters.drops.banned + tcp.counters.drops.rate_limited + tcp.counters.drops.shed;
    flows += tcp.counters.connectionsTotal;
    // Top talkers count what the listeners count: drops as they happen, flows at admission, accepted
    // datagrams and bytes charged by each flow (read every 16th step: reading walks the flows).
    const top = (this.step & 15) === 0 ? this.core.topTalkers() : this.core.protection.top;
    const totals = [top.drops.total, top.flows.total, top.datagrams.total, top.bytes.total];
    if ((this.step & 15) !== 0) totals.length = 2;
    const want = [topDrops, flows, datagramsIn, bytesIn].slice(0, totals.length);
    if (totals.join(" ") !== want.join(" ")) {
      assert.fail(`top-talker totals [${totals}], listeners [${want}]`);
    }
  }
}
