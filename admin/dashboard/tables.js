// The tables of the dashboard: the largest flows with their quality figures (GET /api/v1/clients ranked by
// bandwidth: a client is an ip:port, so each row is that client's flow, or its flows on several listeners)
// and the fleet's instances (GET /api/v1/fleet).

import { el, setAttr, setText, syncChildren } from "./dom.js";
import { bytesPerSecond, duration, lossPercent, millis, si } from "./format.js";

/** How many flows the table shows. */
export const TOP_FLOWS = 10;

/**
 * Fills `tbody` with one row per item, each cell's text from `cells`; rows are kept by key.
 * @template T
 * @param {Element} tbody
 * @param {readonly T[]} items
 * @param {(item: T) => string} keyOf
 * @param {(item: T) => string[]} cells
 * @param {boolean[]} numeric which columns are numbers (right-aligned)
 * @param {(row: HTMLElement, item: T) => void} [decorate]
 */
function fillRows(tbody, items, keyOf, cells, numeric, decorate) {
  syncChildren(
    tbody,
    items,
    keyOf,
    () => el("tr", {}, ...numeric.map((n) => el("td", { class: n ? "num" : null }))),
    (row, item) => {
      cells(item).forEach((text, i) => setText(row.children[i], text));
      decorate?.(row, item);
    },
  );
}

/**
 * The largest flows.
 * @param {Element} tbody
 * @param {HTMLElement} empty shown when there is no flow
 * @param {any[]} clients GET /api/v1/clients?by=bandwidth's clients
 */
export function renderFlows(tbody, empty, clients) {
  empty.hidden = clients.length > 0;
  fillRows(
    tbody,
    clients,
    (c) => c.client,
    (c) => [
      c.client,
      c.listeners.join(", "),
      c.backends.length === 0 ? "–" : c.backends.join(", "),
      bytesPerSecond(c.bandwidth),
      millis(c.latencyMs),
      millis(c.jitterMs),
      lossPercent(c.lossPermille),
      si(c.datagramsIn) + " / " + si(c.datagramsOut),
      duration(c.ageSeconds),
    ],
    [false, false, false, true, true, true, true, true, true],
  );
}

/**
 * The fleet's instances; a config hash other than this instance's is flagged.
 * @param {Element} tbody
 * @param {any} fleet GET /api/v1/fleet's body
 * @param {string} ownHash this instance's configHash
 */
export function renderFleet(tbody, fleet, ownHash) {
  fillRows(
    tbody,
    fleet.instances,
    (i) => i.instance,
    (i) => [
      i.instance + (i.self ? " (this one)" : ""),
      i.version + " · " + i.runtime + " " + i.runtimeVersion,
      String(i.workers),
      si(i.flows),
      si(i.connections),
      si(i.datagrams),
      // Its own heartbeat may be a poll behind a change made here: it is not compared with itself.
      i.self
        ? ownHash.slice(0, 8)
        : i.configHash === ownHash
        ? "same"
        : "differs (" + i.configHash.slice(0, 8) + ")",
      i.draining ? "draining" : "serving",
      duration(i.ageSeconds) + " ago",
    ],
    [false, false, true, true, true, true, false, false, true],
    (row, i) => {
      setAttr(row, "class", i.self ? "self" : "");
      setAttr(row.children[6], "class", i.self || i.configHash === ownHash ? "" : "warn-text");
    },
  );
}
