/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core, which brings no
 * browser of its own), served by the compiled binary `dist/ferry` on 127.0.0.1: the page asks for the token
 * and loads; its figures go live under a small bounded UDP load (with truncated datagrams for a drop
 * reason); its actions change a backend's state and weight, as the API confirms; with redis-server
 * installed, it lists the instances of a two-instance fleet; it stops polling while hidden; it fits a
 * phone's width; and nothing is logged as an error, refused by the CSP or answered with an
 * error status. A screenshot is saved in the test's temp folder (and copied to $FERRY_DASHBOARD_SCREENSHOT
 * when that is set: `FERRY_DASHBOARD_SCREENSHOT=docs/dashboard.png deno test -A tests/dashboard_browser.test.ts`
 * makes the README's picture).
 *
 * Runs under both `deno test` and `bun test` against the same binary (the in-process routes are
 * tests/dashboard.test.ts's). Skips with one line when chromium or dist/ferry is missing (the fleet view
 * when redis-server is). The page runs in the browser, so which runtime runs the test only changes the driver.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { BINARY, FerryProcess, type FerryTarget, freePorts, killAll } from "./support/ferry_process.ts";
import { killAllRedis, redisMissing, RedisServer } from "./support/redis.ts";
import { Client, EchoBackend, sleep } from "./support/udp.ts";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "dashboard-browser-token";
const T = { timeout: 20_000 };
/** The bounded load: CLIENTS sockets, each sending BURST datagrams every TICK_MS, for at most LOAD_MS. */
const CLIENTS = 4;
const BURST = 4;
const TICK_MS = 25;
const LOAD_MS = 10_000;
/** The game listener's max_datagram_size: the load's one oversized datagram a tick is dropped as truncated. */
const MAX_DATAGRAM = 256;

const missing = !existsSync(CHROMIUM)
  ? `${CHROMIUM} not found (apt-get install chromium)`
  : !existsSync(BINARY)
  ? "dist/ferry not built (deno task build)"
  : null;
// Bun does not print why a suite was skipped: say it once here.
if (missing !== null) console.log(`dashboard browser test skipped: ${missing}`);
/** The fleet view needs two instances sharing a Redis. */
const noRedis = missing === null ? redisMissing() : null;
if (noRedis !== null) console.log(`dashboard fleet view not tested: ${noRedis}`);

const BINARY_TARGET: FerryTarget = { name: "dist/ferry", command: BINARY, args: [], runtime: "bun" };

describe("dashboard in headless Chromium, served by dist/ferry", { skip: missing ?? false }, () => {
  let ferry: FerryProcess;
  /** A second instance of the fleet (when redis-server is installed). */
  let peer: FerryProcess | null = null;
  let redis: RedisServer | null = null;
  let browser: Browser;
  let page: Page;
  let backends: EchoBackend[] = [];
  let clients: Client[] = [];
  let load: ReturnType<typeof setInterval> | undefined;
  let loadEnd: ReturnType<typeof setTimeout> | undefined;
  const dir = mkdtempSync(`${tmpdir()}/ferry-dashboard-`);
  /** Every console error, page error, failed request and error status the page meets. */
  const problems: string[] = [];

  const stopLoad = () => {
    clearInterval(load);
    clearTimeout(loadEnd);
  };

  before(async () => {
    backends = await Promise.all([new EchoBackend().start(), new EchoBackend().start()]);
    const [udp, udpPeer] = await freePorts("udp", 2);
    const [tcp, tcpBackend] = await freePorts("tcp", 2); // nothing listens on tcpBackend: no TCP traffic
    redis = noRedis === null ? await RedisServer.start() : null;
    const fleet = (instance: string) =>
      redis === null
        ? ""
        : `[redis]\nurl = "${redis.url}"\n\n[fleet]\ninstance = "${instance}"\nheartbeat = "200ms"\n\n`;
    const admin = `[admin]\nlisten = "127.0.0.1:0"\ntoken = "${TOKEN}"\n\n`;
    const udpListener = (name: string, port: number) =>
      `[[listeners]]\nname = "${name}"\nprotocol = "udp"\naddress = "127.0.0.1:${port}"\ncluster = "game"\n` +
      `max_datagram_size = ${MAX_DATAGRAM}\n\n`;
    const game = `[clusters.game]\nbackends = [${
      backends.map((b) => `{ address = "127.0.0.1:${b.port}" }`).join(", ")
    }]\n\n`;
    const toml = admin + fleet("edge-a") + udpListener("game", udp) +
      `[[listeners]]\nname = "web"\nprotocol = "tcp"\naddress = "127.0.0.1:${tcp}"\ncluster = "web"\n\n` +
      game + `[clusters.web]\nbackends = [{ address = "127.0.0.1:${tcpBackend}" }]\n`;
    const start = (config: string) =>
      FerryProcess.start(BINARY_TARGET, config, { token: TOKEN, timeoutMs: 15_000 });
    [ferry, peer] = await Promise.all([
      start(toml),
      redis === null
        ? Promise.resolve(null)
        : start(admin + fleet("edge-b") + udpListener("game", udpPeer) + game),
    ]);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
    });
    page = await browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e instanceof Error ? e.message : String(e)}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.setViewport({ width: 1200, height: 900 });
  }, { timeout: 30_000 });

  after(async () => {
    stopLoad();
    await browser?.close().catch(() => {});
    ferry?.kill();
    peer?.kill();
    killAll();
    redis?.kill();
    killAllRedis();
    for (const c of clients) c.close();
    for (const b of backends) b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Evaluates `js` in the page. The page's code is given as text: the tests are type-checked without the
   * DOM's types.
   */
  const inPage = <R = unknown>(js: string) => page.evaluate(js) as Promise<R>;

  /** Page code telling the page it is hidden (or visible again), as a browser does when the tab changes. */
  const hide = (hidden: boolean) =>
    `Object.defineProperty(document, "hidden", { configurable: true, get: () => ${hidden} });
     document.dispatchEvent(new Event("visibilitychange"));`;

  /** The text of `selector` on the page ("" when absent). */
  const text = (selector: string) => page.$eval(selector, (e) => e.textContent ?? "").catch(() => "");

  /** Waits until `selector`'s text matches `re`; fails with the last text seen. */
  async function waitText(selector: string, re: RegExp, ms = 6000): Promise<string> {
    const end = Date.now() + ms;
    let last = "";
    while (Date.now() < end) {
      last = await text(selector);
      if (re.test(last)) return last;
      await sleep(100);
    }
    assert.fail(`${selector}: expected ${re}, last saw ${JSON.stringify(last)}`);
  }

  /** A backend as the API has it. */
  async function backend(address: string): Promise<{ state: string; weight: number }> {
    const path = `/api/v1/clusters/game/backends/${encodeURIComponent(address)}`;
    return (await ferry.json<{ backend: { state: string; weight: number } }>(path)).backend;
  }

  /** Waits until the API shows `address` with `key` = `value`. */
  async function waitBackend(address: string, key: "state" | "weight", value: string | number) {
    const end = Date.now() + 5000;
    let last: unknown;
    while (Date.now() < end) {
      last = (await backend(address))[key];
      if (last === value) return;
      await sleep(50);
    }
    assert.fail(`backend ${address}: ${key} is ${JSON.stringify(last)}, expected ${JSON.stringify(value)}`);
  }

  test("the page loads without a token, asks for it once and shows the relay", T, async () => {
    const res = await page.goto(ferry.adminUrl + "/", { waitUntil: "load" });
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()["content-security-policy"] ?? "", /default-src 'none'/);
    await page.waitForSelector("#login:not([hidden])", { timeout: 5000 });
    await page.type("#token", TOKEN);
    await page.click("#login button[type=submit]");
    await page.waitForSelector("#listeners-section:not([hidden])", { timeout: 5000 });
    assert.match(await text("#instance"), /ferry .* · bun /);
    assert.equal(await inPage('sessionStorage.getItem("ferry.admin.token")'), TOKEN);
    assert.ok(await page.$('article[data-listener="game"]'), "no card for the game listener");
    assert.equal((await page.$$("#clusters tr[data-backend]")).length, 3);
    assert.ok(
      await page.$('article[data-listener="web"] figure[data-chart="open connections"]'),
      "no TCP card",
    );
  });

  test("in a fleet, its instances are listed", { ...T, skip: noRedis ?? false }, async () => {
    await page.waitForSelector("#fleet-section:not([hidden])", { timeout: 5000 });
    const rows = async () =>
      (await page.$$eval("#fleet tr", (trs) => trs.map((tr) => tr.textContent ?? ""))).join("\n");
    const end = Date.now() + 8000;
    while (!/edge-b/.test(await rows()) && Date.now() < end) await sleep(200);
    const all = await rows();
    assert.match(all, /edge-a \(this one\)/);
    assert.match(all, /edge-b/);
  });

  test("live figures follow a small UDP load: rates, flows, drops by reason, largest flows", T, async () => {
    const rate = 'article[data-listener="game"] figure[data-chart="datagrams/s"] .chart-value';
    const before = await waitText(rate, /^0\/s$/);
    clients = await Promise.all(Array.from({ length: CLIENTS }, () => new Client().start()));
    const port = ferry.port("game");
    const small = new Uint8Array(100);
    const big = new Uint8Array(MAX_DATAGRAM + 100);
    load = setInterval(() => {
      for (const c of clients) for (let i = 0; i < BURST; i++) c.send(small, port);
      clients[0].send(big, port);
    }, TICK_MS);
    loadEnd = setTimeout(stopLoad, LOAD_MS); // bounded even if a step below hangs
    const during = await waitText(rate, /^[1-9][0-9.]*k?\/s$/);
    assert.notEqual(during, before);
    await waitText('article[data-listener="game"] figure[data-chart="active flows"] .chart-value', /^[1-9]/);
    await waitText('article[data-listener="game"] figure[data-chart="drops/s"] .legend', /truncated\s*[1-9]/);
    const points = await page.$eval(
      'article[data-listener="game"] figure[data-chart="datagrams/s"] polyline',
      (p) => p.getAttribute("points") ?? "",
    );
    assert.ok(points.split(" ").length >= 2, `a line of at least two samples: ${points}`);
    // The largest flows are fetched every third poll.
    const ports = clients.map((c) => `127.0.0.1:${c.port}`);
    const flowRows = () => page.$$eval("#flows tr", (trs) => trs.map((tr) => tr.textContent ?? ""));
    let rows = await flowRows();
    for (
      const end = Date.now() + 6000;
      !rows.some((r) => ports.some((p) => r.includes(p))) && Date.now() < end;
    ) {
      await sleep(200);
      rows = await flowRows();
    }
    assert.ok(rows.some((r) => ports.some((p) => r.includes(p))), `no client of the load in ${rows}`);
    assert.ok(rows.some((r) => /\d ms/.test(r)), `no RTT figure in the largest flows: ${rows}`);
  });

  test("actions change a backend's state and weight through the API", T, async () => {
    const address = `127.0.0.1:${backends[0].port}`;
    const at = `[data-backend="${address}"]`;
    const click = async (action: string) => {
      await page.waitForSelector(`button[data-action="${action}"]${at}:not([disabled])`, { timeout: 5000 });
      await page.click(`button[data-action="${action}"]${at}`);
    };
    await click("drain");
    await waitBackend(address, "state", "draining");
    await waitText(`#clusters tr${at} .badge`, /^draining$/);
    await click("down");
    await waitBackend(address, "state", "down");
    await waitText(`#clusters tr${at} .badge`, /^down$/);
    await click("undrain");
    await waitBackend(address, "state", "up");
    await page.type(`input${at}`, "7");
    await click("weight");
    await waitBackend(address, "weight", 7);
    await waitText(`#clusters tr${at} .weight-now`, /^7$/);
    await waitText("#toast", /weight 7/);
  });

  test("the page stops polling while hidden and resumes when visible", T, async () => {
    const requests: string[] = [];
    const count = (r: { url(): string }) => requests.push(r.url());
    page.on("request", count);
    try {
      // Headless Chromium keeps every page visible, so the page is told it is hidden the way a browser would.
      await inPage(hide(true));
      await sleep(300); // a poll already under way may finish
      requests.length = 0;
      await sleep(2500);
      assert.equal(requests.length, 0, `requests while hidden: ${requests.join(", ")}`);
      assert.match(await text("#live"), /paused/);
      await inPage(hide(false));
      await waitText("#live", /^live/);
      assert.ok(requests.some((u) => u.endsWith("/api/v1/status")), "no poll after becoming visible");
    } finally {
      page.off("request", count);
    }
  });

  test("it fits a phone's width; a screenshot is saved; no console error", T, async () => {
    const shot = `${dir}/dashboard.png`;
    await inPage('document.getElementById("toast").hidden = true'); // the last action's note, fixed mid-page
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    assert.ok(png.length > 10_000, `screenshot of ${png.length} bytes`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    const keep = process.env.FERRY_DASHBOARD_SCREENSHOT;
    if (keep) copyFileSync(shot, keep);

    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    await sleep(1200); // one poll at the new size
    const fit = await inPage<{ page: number; view: number; button: number }>(`({
      page: document.documentElement.scrollWidth,
      view: innerWidth,
      button: document.querySelector("#clusters button[data-action=drain]")?.getBoundingClientRect().right ?? 1e9,
    })`);
    assert.ok(fit.page <= fit.view, `the page is ${fit.page} px wide on a ${fit.view} px screen`);
    assert.ok(fit.button <= fit.view, `the drain button ends at ${fit.button} px of ${fit.view}`);
    await page.screenshot({ path: `${dir}/dashboard-phone.png`, fullPage: true });
    assert.deepEqual(problems, []);
  });
});
