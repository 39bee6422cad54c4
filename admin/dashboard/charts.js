// Small time-series charts drawn as SVG polylines: the last HISTORY samples, scaled to the largest value
// shown, one line per series. The history lives in the page only; the relay keeps nothing for it.

import { el, setText, svg } from "./dom.js";

/** Samples kept per series (one a poll: two minutes at the default one-second poll). */
export const HISTORY = 120;

const WIDTH = 120;
const HEIGHT = 40;
/** Space kept free at the top and bottom so a line at 0 or at the maximum stays visible. */
const PAD = 2;
/** The fewest samples the x axis spans: a new chart fills from the right over this many, then scrolls. */
const MIN_SPAN = 20;

/** The last {@link HISTORY} values of one figure. */
export class History {
  constructor() {
    /** @type {number[]} */
    this.values = [];
  }

  /** @param {number} value */
  push(value) {
    this.values.push(value);
    if (this.values.length > HISTORY) this.values.shift();
  }

  /** The newest value, or NaN before the first. */
  get last() {
    return this.values.length === 0 ? NaN : this.values[this.values.length - 1];
  }
}

/**
 * Counter rates: the change of each counter between two polls, per second. A counter that went down (the
 * relay restarted) restarts from its new value.
 */
export class Rates {
  constructor() {
    /** @type {Map<string, { value: number, at: number }>} */
    this.previous = new Map();
  }

  /**
   * The rate of counter `key` now at `value`, `at` ms; null on its first sample.
   * @param {string} key
   * @param {number} value
   * @param {number} at
   * @returns {number | null}
   */
  rate(key, value, at) {
    const before = this.previous.get(key);
    this.previous.set(key, { value, at });
    if (before === undefined || at <= before.at || value < before.value) return null;
    return (value - before.value) / ((at - before.at) / 1000);
  }

  /** Forgets every counter (after a pause, so the first rate is not an average over the pause). */
  reset() {
    this.previous.clear();
  }
}

/**
 * @typedef {{ name: string, history: History, color?: number }} Line
 */

/**
 * A chart: a caption with the current figure (the lines' newest values summed), the SVG, and a legend
 * when there is more than one line (or the lines are named).
 */
export class Chart {
  /**
   * @param {string} title
   * @param {(n: number) => string} format how to write a value
   * @param {boolean} [namedLines] show the legend even for one line (its name says something, e.g. a reason)
   */
  constructor(title, format, namedLines = false) {
    this.format = format;
    this.namedLines = namedLines;
    this.value = el("span", { class: "chart-value" }, "–");
    this.svg = svg("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT,
      preserveAspectRatio: "none",
      class: "chart",
      role: "img",
      "aria-label": title,
    });
    this.peak = svg("title");
    this.svg.append(this.peak);
    this.legend = el("ul", { class: "legend" });
    this.root = el(
      "figure",
      { class: "chart-box", "data-chart": title },
      el("figcaption", {}, el("span", { class: "chart-title" }, title), this.value),
      this.svg,
      this.legend,
    );
    /** @type {SVGElement[]} */
    this.lines = [];
  }

  /**
   * Redraws the lines; the caption shows their newest values summed.
   * @param {Line[]} lines
   */
  draw(lines) {
    let max = 0;
    for (const line of lines) for (const v of line.history.values) if (v > max) max = v;
    const scale = max > 0 ? (HEIGHT - 2 * PAD) / max : 0;
    while (this.lines.length < lines.length) {
      const p = svg("polyline", { "vector-effect": "non-scaling-stroke", fill: "none" });
      this.lines.push(p);
      this.svg.append(p);
    }
    while (this.lines.length > lines.length) this.lines.pop()?.remove();
    let total = 0;
    let known = false;
    let span = MIN_SPAN;
    for (const line of lines) span = Math.max(span, line.history.values.length);
    lines.forEach((line, i) => {
      const values = line.history.values;
      const offset = span - values.length;
      const points = values.map((v, j) => {
        const x = ((offset + j) * WIDTH) / (span - 1);
        return x.toFixed(1) + "," + (HEIGHT - PAD - v * scale).toFixed(1);
      });
      const p = this.lines[i];
      p.setAttribute("points", points.join(" "));
      p.setAttribute("class", "s" + ((line.color ?? i) % 8));
      if (values.length > 0) {
        total += line.history.last;
        known = true;
      }
    });
    setText(this.value, known ? this.format(total) : "–");
    setText(this.peak, "peak " + this.format(max));
    this.#legend(lines);
  }

  /** @param {Line[]} lines */
  #legend(lines) {
    const items = lines.length > 1 || this.namedLines ? lines : [];
    while (this.legend.children.length > items.length) this.legend.lastElementChild?.remove();
    items.forEach((line, i) => {
      let li = /** @type {HTMLElement | undefined} */ (this.legend.children[i]);
      if (li === undefined) {
        li = el("li", {}, el("i"), el("span"), el("b"));
        this.legend.append(li);
      }
      li.children[0].setAttribute("class", "sw s" + ((line.color ?? i) % 8));
      setText(li.children[1], line.name);
      setText(li.children[2], Number.isNaN(line.history.last) ? "–" : this.format(line.history.last));
    });
  }
}
