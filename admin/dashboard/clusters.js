// The clusters panel: each cluster's backends with state, health, weight and flows, and the actions an
// operator takes on one (drain, undrain, down, set weight), each a PATCH of the backend through the API.

import { patchBackend } from "./api.js";
import { el, setAttr, setText, syncChildren, toast } from "./dom.js";
import { si } from "./format.js";

/** What each action button sets. */
const ACTIONS = /** @type {const} */ ({
  drain: { state: "draining", label: "Drain", title: "No new flows; existing ones stay" },
  undrain: { state: "up", label: "Undrain", title: "Take new flows again" },
  down: { state: "down", label: "Down", title: "Marked down: no new flows" },
});

/**
 * A backend's row: address, state, health, weight, flows and the action controls.
 * @param {string} cluster
 * @param {any} b
 * @returns {HTMLElement}
 */
function backendRow(cluster, b) {
  const data = { "data-cluster": cluster, "data-backend": b.address };
  const buttons = Object.entries(ACTIONS).map(([action, a]) =>
    el("button", { type: "button", class: "small", "data-action": action, title: a.title, ...data }, a.label)
  );
  const weight = el("input", {
    type: "number",
    min: 1,
    step: 1,
    class: "weight",
    placeholder: "new",
    "aria-label": "weight of " + b.address,
    ...data,
  });
  const set = el("button", { type: "button", class: "small", "data-action": "weight", ...data }, "Set");
  const row = el(
    "tr",
    { "data-backend": b.address },
    // data-label: the column's name, shown beside each cell where a phone stacks the row (dashboard.css).
    el("td", { class: "addr" }, b.address),
    el("td", { "data-label": "State" }, el("span", { class: "badge" })),
    el("td", { class: "health", "data-label": "Health" }),
    el("td", { class: "num", "data-label": "Weight" }, el("span", { class: "weight-now" }), " ", weight, set),
    el("td", { class: "num flows", "data-label": "Flows" }),
    el("td", { class: "num traffic", "data-label": "Datagrams" }),
    el("td", { class: "actions" }, ...buttons),
  );
  return row;
}

/**
 * Refreshes a backend's row in place (an input being typed into keeps its text).
 * @param {HTMLElement} row
 * @param {any} b
 */
function updateBackendRow(row, b) {
  const cells = row.children;
  const state = b.effectiveState ?? b.state;
  const badge = /** @type {HTMLElement} */ (cells[1].firstElementChild);
  setText(badge, state === b.state ? state : state + " (set " + b.state + ")");
  setAttr(badge, "class", "badge " + (state === "up" ? "ok" : state === "draining" ? "warn" : "bad"));
  setAttr(row, "data-state", b.state);
  const h = b.health;
  const health = h === null ? "–" : h.status + (h.probed ? " (probed)" : "") +
    (h.lastError ? ": " + h.lastError : "");
  setText(cells[2], health);
  setText(/** @type {Element} */ (cells[3].querySelector(".weight-now")), String(b.weight));
  setText(cells[4], si(b.activeFlows) + " live · " + si(b.flowsTotal) + " total");
  setText(cells[5], si(b.datagramsTo) + " / " + si(b.datagramsFrom));
  for (const button of cells[6].querySelectorAll("button")) {
    const action = /** @type {keyof typeof ACTIONS} */ (button.getAttribute("data-action"));
    setAttr(button, "disabled", ACTIONS[action]?.state === b.state);
  }
}

/**
 * A cluster's card.
 * @param {any} c
 * @returns {HTMLElement}
 */
function clusterCard(c) {
  return el(
    "article",
    { class: "card cluster", "data-cluster": c.name },
    el("header", {}, el("h3", {}, c.name), el("span", { class: "muted small" })),
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { class: "backends" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["Backend", "State", "Health", "Weight", "Flows", "Datagrams to / from", "Actions"].map((
              h,
              i,
            ) => el("th", { class: i === 3 || i === 4 || i === 5 ? "num" : null }, h)),
          ),
        ),
        el("tbody"),
      ),
    ),
  );
}

/** The clusters panel. */
export class ClustersPanel {
  /**
   * @param {HTMLElement} container
   * @param {() => void} changed called after an action succeeded, to refresh at once
   */
  constructor(container, changed) {
    this.container = container;
    container.addEventListener("click", (e) => {
      const target = /** @type {Element | null} */ (e.target);
      const button = target?.closest("button[data-action]");
      if (button instanceof HTMLButtonElement) void this.#act(button, changed);
    });
  }

  /**
   * Runs the action of `button`.
   * @param {HTMLButtonElement} button
   * @param {() => void} changed
   */
  async #act(button, changed) {
    const action = button.dataset.action ?? "";
    const cluster = button.dataset.cluster ?? "";
    const backend = button.dataset.backend ?? "";
    /** @type {{ state?: string, weight?: number }} */
    let patch;
    if (action === "weight") {
      const input = button.parentElement?.querySelector("input");
      const weight = Number(input?.value);
      // The API checks the bounds and says which; only a non-number is caught here.
      if (input?.value === "" || !Number.isFinite(weight)) {
        toast("weight: type a whole number first", true);
        return;
      }
      patch = { weight };
    } else {
      const a = ACTIONS[/** @type {keyof typeof ACTIONS} */ (action)];
      if (a === undefined) return;
      patch = { state: a.state };
    }
    button.disabled = true;
    try {
      await patchBackend(cluster, backend, patch);
      toast(cluster + " " + backend + ": " + (patch.state ?? "weight " + patch.weight));
      const input = button.parentElement?.querySelector("input");
      if (input) input.value = "";
      changed();
    } catch (e) {
      toast(cluster + " " + backend + ": " + (e instanceof Error ? e.message : String(e)), true);
    } finally {
      button.disabled = false;
    }
  }

  /**
   * One poll's clusters (GET /api/v1/clusters).
   * @param {any[]} clusters
   */
  update(clusters) {
    syncChildren(this.container, clusters, (c) => c.name, clusterCard, (card, c) => {
      setText(
        /** @type {Element} */ (card.querySelector("header span")),
        c.balancer + " · fail open " + (c.fail_open ? "on" : "off") + " (" + c.failOpenEvents + " times)",
      );
      syncChildren(
        /** @type {Element} */ (card.querySelector("tbody")),
        c.backends,
        (b) => b.address,
        (b) => backendRow(c.name, b),
        updateBackendRow,
      );
    });
  }
}
