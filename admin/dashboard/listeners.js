// The listeners panel: one card per listener with its live figures as small charts, computed in the page
// from the counters of /metrics?format=json (rates are differences between two polls).
//   UDP: datagrams/s and bytes/s each way, active flows, drops/s by reason.
//   TCP: new connections/s, bytes/s each way, open connections.

import { Chart, History, Rates } from "./charts.js";
import { el, setText, syncChildren } from "./dom.js";
import { bytesPerSecond, perSecond, si } from "./format.js";

/**
 * /metrics?format=json indexed: family name -> its samples.
 * @typedef {Map<string, { labels: Record<string, string>, value: number | null }[]>} Families
 */

/**
 * The families of a /metrics?format=json body, by name.
 * @param {{ families: { name: string, samples: { labels: Record<string, string>, value: number | null }[] }[] }} body
 * @returns {Families}
 */
export function indexFamilies(body) {
  return new Map(body.families.map((f) => [f.name, f.samples]));
}

/**
 * The sum of family `name`'s samples for listener `listener` (0 when it has none).
 * @param {Families} families
 * @param {string} name
 * @param {string} listener
 */
function value(families, name, listener) {
  let sum = 0;
  for (const s of families.get(name) ?? []) if (s.labels.listener === listener) sum += s.value ?? 0;
  return sum;
}

/** One listener's card: its histories and charts. */
class ListenerCard {
  /** @param {{ name: string, protocol: string }} listener */
  constructor(listener) {
    this.name = listener.name;
    this.protocol = listener.protocol;
    this.title = el("h3", {}, listener.name);
    this.badges = el("span", { class: "badges" });
    this.where = el("p", { class: "muted small" });
    const udp = listener.protocol === "udp";
    /** @type {Record<string, History>} */
    this.h = {
      in: new History(),
      out: new History(),
      bytesIn: new History(),
      bytesOut: new History(),
      active: new History(),
      opened: new History(),
    };
    /** @type {Map<string, { history: History, color: number }>} drops by reason, in first-seen order */
    this.drops = new Map();
    /** Every reason summed: the one line drawn while no reason has had a drop in the window. */
    this.dropTotal = new History();
    this.traffic = new Chart(udp ? "datagrams/s" : "connections/s", perSecond);
    this.bytes = new Chart("bytes/s", bytesPerSecond);
    this.active = new Chart(udp ? "active flows" : "open connections", si);
    this.dropChart = udp ? new Chart("drops/s", perSecond, true) : null;
    const charts = [this.traffic, this.bytes, this.active, this.dropChart].filter((c) => c !== null);
    this.root = el(
      "article",
      { class: "card listener", "data-listener": listener.name },
      el("header", {}, this.title, this.badges),
      this.where,
      el("div", { class: "charts" }, ...charts.map((c) => c.root)),
    );
  }

  /**
   * Adds this poll's figures and redraws.
   * @param {any} status the listener in /api/v1/status
   * @param {Families} families
   * @param {Rates} rates
   * @param {number} at ms
   */
  update(status, families, rates, at) {
    const n = this.name;
    const key = (/** @type {string} */ what) => n + "\u0000" + what;
    const push = (/** @type {History} */ h, /** @type {number | null} */ v) => {
      if (v !== null) h.push(v);
    };
    const dp = status.datapath;
    setText(
      this.where,
      (status.protocol + " " + (status.address ?? "not bound") + " → " + status.cluster) +
        (dp ? " · " + dp.datapath + " path" : ""),
    );
    this.#badges(status);
    if (this.protocol === "udp") {
      push(this.h.in, rates.rate(key("din"), value(families, "ferry_listener_datagrams_in_total", n), at));
      push(this.h.out, rates.rate(key("dout"), value(families, "ferry_listener_datagrams_out_total", n), at));
      push(this.h.bytesIn, rates.rate(key("bin"), value(families, "ferry_listener_bytes_in_total", n), at));
      push(
        this.h.bytesOut,
        rates.rate(key("bout"), value(families, "ferry_listener_bytes_out_total", n), at),
      );
      this.h.active.push(value(families, "ferry_listener_active_flows", n));
      this.#dropRates(families, rates, at);
    } else {
      push(
        this.h.in,
        rates.rate(key("conn"), value(families, "ferry_listener_tcp_connections_total", n), at),
      );
      push(
        this.h.bytesIn,
        rates.rate(key("up"), value(families, "ferry_listener_tcp_bytes_up_total", n), at),
      );
      push(
        this.h.bytesOut,
        rates.rate(key("down"), value(families, "ferry_listener_tcp_bytes_down_total", n), at),
      );
      this.h.active.push(value(families, "ferry_listener_tcp_connections_active", n));
    }
    const udp = this.protocol === "udp";
    this.traffic.draw(
      udp ? [{ name: "in", history: this.h.in }, { name: "out", history: this.h.out }] : [{
        name: "new",
        history: this.h.in,
      }],
    );
    this.bytes.draw([
      { name: udp ? "in" : "up", history: this.h.bytesIn },
      { name: udp ? "out" : "down", history: this.h.bytesOut },
    ]);
    this.active.draw([{ name: "active", history: this.h.active }]);
    // Only reasons with a drop in the window get a line (seven flat lines at 0 would say nothing).
    const dropping = [...this.drops]
      .filter(([, d]) => d.history.values.some((v) => v > 0))
      .map(([reason, d]) => ({ name: reason, history: d.history, color: d.color }));
    this.dropChart?.draw(
      dropping.length > 0 ? dropping : [{ name: "none", history: this.dropTotal, color: 7 }],
    );
  }

  /**
   * @param {Families} families
   * @param {Rates} rates
   * @param {number} at
   */
  #dropRates(families, rates, at) {
    let total = 0;
    let known = false;
    for (const s of families.get("ferry_listener_drops_total") ?? []) {
      if (s.labels.listener !== this.name) continue;
      const reason = s.labels.reason ?? "?";
      let d = this.drops.get(reason);
      if (d === undefined) {
        d = { history: new History(), color: this.drops.size + 2 };
        this.drops.set(reason, d);
      }
      const r = rates.rate(this.name + "\u0000drop\u0000" + reason, s.value ?? 0, at);
      if (r !== null) {
        d.history.push(r);
        total += r;
        known = true;
      }
    }
    if (known) this.dropTotal.push(total);
  }

  /** @param {any} status */
  #badges(status) {
    const want = status.draining ? "draining" : status.address === null ? "unbound" : "";
    if (this.badges.textContent === want) return;
    this.badges.replaceChildren(...(want === "" ? [] : [el("span", { class: "badge warn" }, want)]));
  }
}

/** The listeners panel. */
export class ListenersPanel {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.rates = new Rates();
    /** @type {Map<string, ListenerCard>} */
    this.cards = new Map();
  }

  /**
   * One poll's figures.
   * @param {any[]} listeners /api/v1/status's listeners
   * @param {Families} families
   * @param {number} at ms (performance.now())
   */
  update(listeners, families, at) {
    syncChildren(
      this.container,
      listeners,
      (l) => l.protocol + ":" + l.name,
      (l) => {
        const card = new ListenerCard(l);
        this.cards.set(l.protocol + ":" + l.name, card);
        return card.root;
      },
      (_node, l) => this.cards.get(l.protocol + ":" + l.name)?.update(l, families, this.rates, at),
    );
    const live = new Set(listeners.map((l) => l.protocol + ":" + l.name));
    for (const k of this.cards.keys()) if (!live.has(k)) this.cards.delete(k);
  }

  /** Forgets the counters' last values (after a pause). */
  reset() {
    this.rates.reset();
  }
}
