/**
 * The dashboard's static files, imported as text so that `deno run`, `bun run` and the compiled binary
 * (`bun build --compile` embeds text imports) all serve the same bytes with no file lookup at run time.
 * They are real files next to this one, so `deno fmt` and `deno lint` look after them.
 *
 * @module
 */

import indexHtml from "./index.html" with { type: "text" };
import css from "./dashboard.css" with { type: "text" };
import icon from "./icon.svg" with { type: "text" };
import mainJs from "./dashboard.js" with { type: "text" };
import apiJs from "./api.js" with { type: "text" };
import chartsJs from "./charts.js" with { type: "text" };
import domJs from "./dom.js" with { type: "text" };
import formatJs from "./format.js" with { type: "text" };
import listenersJs from "./listeners.js" with { type: "text" };
import clustersJs from "./clusters.js" with { type: "text" };
import tablesJs from "./tables.js" with { type: "text" };

/** One file the dashboard serves. */
export interface Asset {
  readonly type: string;
  readonly body: string;
}

const JS = "text/javascript; charset=utf-8";

/** The page itself, served at `/`. */
export const INDEX_HTML: string = indexHtml;

/** Every file under `/ui/`, by path. The page's scripts are ES modules importing one another by these. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/ui/dashboard.css", { type: "text/css; charset=utf-8", body: css }],
  ["/ui/icon.svg", { type: "image/svg+xml", body: icon }],
  ["/ui/dashboard.js", { type: JS, body: mainJs }],
  ["/ui/api.js", { type: JS, body: apiJs }],
  ["/ui/charts.js", { type: JS, body: chartsJs }],
  ["/ui/dom.js", { type: JS, body: domJs }],
  ["/ui/format.js", { type: JS, body: formatJs }],
  ["/ui/listeners.js", { type: JS, body: listenersJs }],
  ["/ui/clusters.js", { type: JS, body: clustersJs }],
  ["/ui/tables.js", { type: JS, body: tablesJs }],
]);
