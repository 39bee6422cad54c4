// The dashboard's entry point: asks for the token when the API wants one, then polls the API once a second
// while the page is visible (never while hidden: a dashboard nobody watches costs the relay nothing) and
// hands each poll to the panels. The largest flows and the fleet (only when in a fleet) are fetched every
// third poll: ranking flows walks every flow, which is the one figure here whose cost grows with traffic.

import { api, AuthError, storedToken, storeToken, tokenRequired } from "./api.js";
import { ClustersPanel } from "./clusters.js";
import { setText, toast } from "./dom.js";
import { duration } from "./format.js";
import { indexFamilies, ListenersPanel } from "./listeners.js";
import { renderFleet, renderFlows, TOP_FLOWS } from "./tables.js";

/** Between the starts of two polls. */
const POLL_MS = 1000;
/** The largest flows and the fleet are fetched once every this many polls. */
const SLOW_EVERY = 3;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const listeners = new ListenersPanel($("listeners"));
const clusters = new ClustersPanel($("clusters"), () => schedule(0));

/** @type {ReturnType<typeof setTimeout> | undefined} */
let timer;
let polls = 0;
let running = false;
/** False while the token form is shown. */
let authorised = false;

/**
 * Polls again after `ms`, if the page is visible and the token known.
 * @param {number} ms
 */
function schedule(ms) {
  clearTimeout(timer);
  timer = undefined;
  if (document.hidden || !authorised) return;
  timer = setTimeout(poll, ms);
}

/** One poll: every figure the page shows, fetched at once, then drawn. */
async function poll() {
  if (running) return;
  running = true;
  const started = performance.now();
  try {
    const slow = polls % SLOW_EVERY === 0;
    const [status, metrics, clusterList, clients] = await Promise.all([
      api("/api/v1/status"),
      api("/metrics?format=json"),
      api("/api/v1/clusters"),
      slow ? api("/api/v1/clients?by=bandwidth&top=" + TOP_FLOWS) : null,
    ]);
    const at = performance.now();
    showStatus(status);
    listeners.update(status.listeners, indexFamilies(metrics), at);
    clusters.update(clusterList.clusters);
    if (clients !== null) renderFlows($("flows"), $("flows-empty"), clients.clients);
    for (const id of ["listeners-section", "clusters-section", "flows-section"]) $(id).hidden = false;
    if (status.fleet !== null && slow) await pollFleet();
    // Redrawn every poll, so this instance's row shows the config hash the header shows.
    if (status.fleet !== null && fleet !== null) renderFleet($("fleet"), fleet, status.configHash);
    $("fleet-section").hidden = status.fleet === null;
    polls++;
    live("live", "live · " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof AuthError) {
      askToken("The token was refused: " + e.message);
    } else {
      live("error", "cannot reach the relay: " + (e instanceof Error ? e.message : String(e)));
    }
  } finally {
    running = false;
    schedule(Math.max(0, POLL_MS - (performance.now() - started)));
  }
}

/** The last GET /api/v1/fleet, or null before the first. */
let fleet = null;

/** Fetches the fleet's instances into {@link fleet}; a failure is shown under the table. */
async function pollFleet() {
  const error = $("fleet-error");
  try {
    fleet = await api("/api/v1/fleet");
    error.hidden = true;
  } catch (e) {
    if (e instanceof AuthError) throw e;
    error.textContent = e instanceof Error ? e.message : String(e);
    error.hidden = false;
  }
}

/** @param {any} s /api/v1/status */
function showStatus(s) {
  const parts = [
    s.fleet !== null ? s.fleet : null,
    "ferry " + s.version,
    s.runtime + " " + s.runtimeVersion,
    s.workers + (s.workers === 1 ? " worker" : " workers"),
    "up " + duration(s.uptimeSeconds),
    "config " + s.configHash.slice(0, 8),
    s.draining ? "DRAINING" : null,
  ];
  setText($("instance"), parts.filter((p) => p !== null).join(" · "));
}

/**
 * @param {"live" | "paused" | "error"} state
 * @param {string} text
 */
function live(state, text) {
  const el = $("live");
  setText(el, text);
  el.setAttribute("data-state", state);
}

/** @param {string} message shown above the form, or "" */
function askToken(message) {
  authorised = false;
  storeToken(null);
  clearTimeout(timer);
  const error = $("login-error");
  error.textContent = message;
  error.hidden = message === "";
  $("login").hidden = false;
  $("signout").hidden = true;
  live("paused", "waiting for the token");
  $("token").focus();
}

function start() {
  authorised = true;
  $("login").hidden = true;
  $("signout").hidden = !tokenRequired();
  listeners.reset();
  schedule(0);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("token"));
  const token = input.value.trim();
  if (token === "") return;
  input.value = "";
  storeToken(token);
  start();
});

$("signout").addEventListener("click", () => {
  askToken("");
  toast("The token is forgotten in this tab.");
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = undefined;
    if (authorised) live("paused", "paused while the page is hidden");
  } else if (authorised) {
    listeners.reset(); // a rate over the hidden time would be an average, not a live figure
    schedule(0);
  }
});

if (tokenRequired() && storedToken() === null) askToken("");
else start();
