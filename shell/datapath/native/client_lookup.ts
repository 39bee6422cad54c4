/**
 * From a received datagram's sockaddr to the core's answer, for the native driver: the client's flow found
 * in the listener's `FlowIndex` by the address bytes (IPv4 and IPv6 alike, no string), or, for a client
 * with no flow, the core's string-free pre-admission (`RelayCore.screen`: bans, limits, filter, drain,
 * max_flows, source policy), so a shed flood datagram costs no string, no event and no object. Only a
 * client the core will admit has its address turned into text (cached for IPv4), once, for its new flow.
 *
 * @module
 */

import { type Flow, FlowState } from "../../../core/flow.ts";
import { readIp, readIpBytes } from "../../../core/ip_words.ts";
import type { Drop } from "../../../core/drops.ts";
import type { Listener } from "../../../core/listener.ts";
import type { RelayCore } from "../../../core/relay_core.ts";
import type { FlowIndex } from "./flow_index.ts";
import { IpText } from "./peers.ts";

/** What the lookup needs of a bound listener. */
export interface IndexedListener {
  readonly listener: Listener;
  readonly family: 4 | 6;
  readonly flows: FlowIndex;
}

/** True for the states in which a flow still takes its client's datagrams (it is in the core's table). */
function attached(flow: Flow): boolean {
  return flow.state === FlowState.Established || flow.state === FlowState.AwaitingBackend;
}

/** The native driver's client lookup over one core. */
export class ClientLookup {
  readonly #core: RelayCore;
  readonly #ip = new IpText();
  readonly #words = new Uint32Array(4);

  /** A lookup for the listeners of `core`. */
  constructor(core: RelayCore) {
    this.#core = core;
  }

  /**
   * `RelayCore.fromClient` for the datagram `data` from the sockaddr at `name` in `u8` (port already read):
   * the flow to forward it on, or a Drop code (counted by the core).
   */
  fromClient(
    nl: IndexedListener,
    u8: Uint8Array,
    name: number,
    port: number,
    data: Uint8Array,
    now: number,
  ): Flow | Drop {
    const w = this.#words;
    const v4 = nl.family === 4;
    const family = readIpBytes(u8, v4 ? name + 4 : name + 8, v4 ? 4 : 16, w);
    const index = nl.flows;
    const known = index.get(family, w, port);
    if (known !== undefined) {
      if (attached(known)) return this.#core.forwardFlow(known, data, now);
      index.delete(family, w, port, known); // detached by the core (its requests cap): a new client now
    }
    const core = this.#core;
    const refused = core.screen(nl.listener, family, w, port, data, now);
    if (refused !== null) return refused;
    const ip = v4 ? this.#ip.ipv4(u8, name + 4) : this.#ip.ipv6(u8, name + 8);
    const f = core.admitScreened(nl.listener, ip, port, data, now);
    if (typeof f !== "number" && attached(f)) index.set(family, w, port, f);
    return f;
  }

  /**
   * Indexes the attached flows of `nl`'s listener among `flows` (the core's): a listener bound again with
   * flows alive (a rolled-back reload) must find them, not screen their clients as new ones.
   */
  seed(nl: IndexedListener, flows: Iterable<Flow>): void {
    const w = this.#words;
    for (const f of flows) {
      if (f.listener !== nl.listener || !attached(f)) continue;
      const family = readIp(f.clientIp, w);
      if (family !== 0) nl.flows.set(family, w, f.clientPort, f);
    }
  }

  /** Drops a closed flow's entry from its listener's index (if it still names that flow). */
  forget(nl: IndexedListener, flow: Flow): void {
    const w = this.#words;
    const family = readIp(flow.clientIp, w);
    if (family !== 0) nl.flows.delete(family, w, flow.clientPort, flow);
  }
}
