/**
 * The interactive API reference at `/api/v1/docs`: a small page that reads `/api/v1/openapi.json` and
 * shows every operation with its parameters, body and response schemas (key, type, default, doc line), and
 * a form to send each request with the token. The page, its script and its style are strings in this module,
 * so they are inside the single binary (no CDN, no files beside it), and the page holds no data itself:
 * everything it shows comes from API calls made with the token the operator types (kept for the tab only).
 *
 * @module
 */

import { DASHBOARD_CSP } from "./dashboard/routes.ts";

/** The security policy of the page: the dashboard's (its own script, style and API, nothing else, never framed). */
export const DOCS_CSP = DASHBOARD_CSP;

/** The page. */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ferry admin API reference</title>
<link rel="stylesheet" href="/api/v1/docs/app.css">
<script src="/api/v1/docs/app.js" defer></script>
</head>
<body>
<header>
  <h1>Ferry admin API</h1>
  <form id="auth"><label>Token <input id="token" type="password" autocomplete="off"
    placeholder="admin.token (kept for this tab only)"></label><button>Use</button></form>
</header>
<main id="main"><p id="status">Loading /api/v1/openapi.json…</p></main>
</body>
</html>
`;

/** The page's style: readable on a phone as on a desktop. */
export const DOCS_CSS = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1b1f23; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: .6em 1em; display: flex; flex-wrap: wrap;
  gap: .5em 1.5em; align-items: center; }
header h1 { font-size: 1.15em; margin: 0; }
header input { width: 16em; max-width: 60vw; }
main { padding: 1em; max-width: 70em; }
details.op { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; margin: .4em 0; }
details.op > summary { padding: .45em .7em; cursor: pointer; display: flex; gap: .6em; flex-wrap: wrap; }
.method { font: bold 12px monospace; padding: .15em .5em; border-radius: 4px; color: #fff;
  background: #57606a; min-width: 4.2em; text-align: center; }
.get { background: #0969da; } .post { background: #1a7f37; } .put { background: #9a6700; }
.patch { background: #8250df; } .delete { background: #cf222e; }
.path { font-family: monospace; word-break: break-all; }
.body { padding: 0 .8em .8em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: .3em 0; }
td, th { border-bottom: 1px solid #eaeef2; padding: .25em .4em; text-align: left; vertical-align: top; }
code, textarea, pre { font-family: ui-monospace, monospace; font-size: 12.5px; }
textarea { width: 100%; min-height: 6em; box-sizing: border-box; }
pre { background: #f6f8fa; padding: .6em; overflow: auto; max-height: 24em; border-radius: 4px; }
input[type=text] { width: 14em; max-width: 100%; }
.muted { color: #57606a; }
`;

/** The page's script: fetch the document, render it, send requests. */
export const DOCS_JS = `"use strict";
const TOKEN_KEY = "ferry-admin-token";
const $ = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v; else if (k === "text") el.textContent = v; else el.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
};
const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
async function api(method, path, body) {
  const headers = {};
  if (token()) headers.authorization = "Bearer " + token();
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body });
  return { status: res.status, text: await res.text() };
}
let doc;
function resolve(schema) {
  let s = schema;
  for (let i = 0; s && s.$ref && i < 20; i++) {
    s = s.$ref.slice(2).split("/").reduce((node, part) => node && node[part.replace(/~1/g, "/")], doc);
  }
  return s || {};
}
function typeOf(s) {
  s = resolve(s);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.anyOf) return s.anyOf.map(typeOf).join(" | ");
  if (s.allOf) return s.allOf.map(typeOf).join(" & ");
  if (s.type === "array") return typeOf(s.items || {}) + "[]";
  if (Array.isArray(s.type)) return s.type.join(" | ");
  return s.type || "any";
}
function schemaTable(schema) {
  const s = resolve(schema);
  const props = s.properties || {};
  const keys = Object.keys(props);
  if (keys.length === 0) return $("p", { class: "muted", text: typeOf(s) });
  const required = new Set(s.required || []);
  const rows = keys.map((k) => {
    const p = resolve(props[k]);
    const def = p.default === undefined ? "" : JSON.stringify(p.default);
    return $("tr", {}, $("td", {}, $("code", { text: k + (required.has(k) ? " *" : "") })),
      $("td", { text: typeOf(p) }), $("td", {}, $("code", { text: def })), $("td", { text: p.description || "" }));
  });
  return $("table", {}, $("tr", {}, $("th", { text: "key" }), $("th", { text: "type" }),
    $("th", { text: "default" }), $("th", { text: "meaning" })), ...rows);
}
function example(schema) {
  const s = resolve(schema);
  if (s.default !== undefined) return s.default;
  if (s.examples) return s.examples[0];
  if (s.enum) return s.enum[0];
  if (s.type === "object") {
    const out = {};
    for (const k of s.required || []) out[k] = example((s.properties || {})[k] || {});
    return out;
  }
  if (s.type === "array") return [];
  if (s.type === "integer" || s.type === "number") return s.minimum || 0;
  if (s.type === "boolean") return false;
  return "";
}
function operation(path, method, op) {
  const params = (op.parameters || []).map(resolve);
  const inputs = params.map((p) => {
    const input = $("input", { type: "text", placeholder: p.name, "aria-label": p.name });
    return { p, input };
  });
  const media = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  const body = media ? $("textarea", { "aria-label": "request body" }) : null;
  if (body) body.value = JSON.stringify(example(media.schema), null, 2);
  const out = $("pre", { class: "muted", text: "" });
  const send = $("button", { type: "button", text: "Send" });
  send.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    for (const { p, input } of inputs) {
      if (input.value === "") continue;
      if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(input.value));
      else query.set(p.name, input.value);
    }
    if ([...query].length) url += "?" + query;
    out.textContent = method.toUpperCase() + " " + url + " …";
    try {
      const r = await api(method.toUpperCase(), url, body ? body.value : undefined);
      let text = r.text;
      try { text = JSON.stringify(JSON.parse(r.text), null, 2); } catch (_) { /* not JSON */ }
      out.textContent = r.status + "\\n" + text;
    } catch (e) { out.textContent = String(e); }
  });
  const responses = Object.entries(op.responses || {}).map(([status, r]) => {
    const schema = r.content && r.content["application/json"] && r.content["application/json"].schema;
    return $("details", {}, $("summary", { text: status + " " + (r.description || "") }),
      schema ? schemaTable(schema) : null);
  });
  return $("details", { class: "op" },
    $("summary", {}, $("span", { class: "method " + method, text: method.toUpperCase() }),
      $("span", { class: "path", text: path }), $("span", { class: "muted", text: op.summary || "" })),
    $("div", { class: "body" },
      op.description ? $("p", { text: op.description }) : null,
      inputs.length ? $("p", {}, ...inputs.flatMap(({ p, input }) => [
        $("label", { title: p.description || "" }, p.name + (p.required ? " *" : "") + " ", input), " "])) : null,
      media ? $("div", {}, $("strong", { text: "Body" }), schemaTable(media.schema), body) : null,
      $("p", {}, send), out, $("strong", { text: "Responses" }), ...responses));
}
async function load() {
  const main = document.getElementById("main");
  const r = await api("GET", "/api/v1/openapi.json");
  if (r.status !== 200) {
    document.getElementById("status").textContent = r.status === 401
      ? "Enter the admin token above to read the reference." : "Could not load the document: " + r.status;
    return;
  }
  doc = JSON.parse(r.text);
  main.replaceChildren($("p", { text: doc.info.title + " — OpenAPI " + doc.openapi }));
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) main.append(operation(path, method, op));
  }
}
document.getElementById("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
  load();
});
load();
`;
