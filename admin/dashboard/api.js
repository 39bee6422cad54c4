// The dashboard's calls to the admin API: same origin only, JSON, the token (when the API wants one) sent as
// a Bearer token. The token is asked for once and kept for the tab in sessionStorage, so it is gone when the
// tab closes and is never written to a cookie, a URL or the page.

const TOKEN_KEY = "ferry.admin.token";

/** Thrown when the API refuses the token (401): the page asks for it again. */
export class AuthError extends Error {}

/**
 * True when the API wants a token; the page is told in a <meta> when it is served.
 * @returns {boolean}
 */
export function tokenRequired() {
  const meta = document.querySelector('meta[name="ferry-auth"]');
  return meta === null || meta.getAttribute("content") !== "none";
}

/**
 * The tab's token, or null when none was given yet.
 * @returns {string | null}
 */
export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return memoryToken; // storage disabled: keep it for this page's life only
  }
}

/** @type {string | null} */
let memoryToken = null;

/**
 * Keeps `token` for the tab; null forgets it.
 * @param {string | null} token
 */
export function storeToken(token) {
  memoryToken = token;
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch { /* storage disabled: memoryToken serves */ }
}

/**
 * Calls the API and returns its JSON. A 401 throws {@link AuthError}; any other failure throws an Error
 * with the API's own message (`{ error }`), or the status when the body says nothing.
 * @param {string} path e.g. "/api/v1/status"
 * @param {{ method?: string, body?: unknown, timeoutMs?: number }} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const headers = new Headers({ accept: "application/json" });
  const token = storedToken();
  if (tokenRequired() && token !== null) headers.set("authorization", "Bearer " + token);
  /** @type {RequestInit} */
  const init = {
    method: options.method ?? "GET",
    headers,
    cache: "no-store",
    credentials: "omit",
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  };
  if (options.body !== undefined) {
    headers.set("content-type", "application/json");
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  /** @type {any} */
  let json = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch { /* not JSON: reported below by status */ }
  if (res.status === 401) throw new AuthError(json?.error ?? "the token was refused");
  if (!res.ok) {
    const detail = Array.isArray(json?.errors) && json.errors.length > 0
      ? ": " + json.errors.map((/** @type {any} */ e) => e.message).join("; ")
      : "";
    throw new Error((json?.error ?? "HTTP " + res.status) + detail);
  }
  return json;
}

/**
 * Changes a backend (PATCH of its weight or state), on this instance and for the running relay only.
 * @param {string} cluster
 * @param {string} address "ip:port"
 * @param {{ state?: string, weight?: number }} patch
 * @returns {Promise<any>}
 */
export function patchBackend(cluster, address, patch) {
  const path = "/api/v1/clusters/" + encodeURIComponent(cluster) + "/backends/" + encodeURIComponent(address);
  return api(path, { method: "PATCH", body: patch });
}
