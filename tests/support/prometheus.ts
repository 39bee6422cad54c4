/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for testing `/metrics`. It throws on
 * anything a lenient scraper might let through: a sample before its family's HELP and TYPE, a family
 * described twice or split apart, a bad metric or label name, an unknown escape in a label value, a
 * duplicate label or sample, a value that is not a float, a counter not named `_total` or negative, or a
 * missing final newline.
 *
 * @module
 */

/** One sample. */
export interface ParsedSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One family with its samples, in order. */
export interface ParsedFamily {
  readonly name: string;
  help: string | undefined;
  type: string | undefined;
  readonly samples: ParsedSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const TYPES = ["counter", "gauge", "histogram", "summary", "untyped"];

function unescapeHelp(text: string, line: number): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new Error(`line ${line}: bad escape \\${c} in HELP`);
  });
}

/** Reads `{a="x",b="y"}` starting at `pos` (which holds "{"); returns the labels and the index after "}". */
function readLabels(s: string, pos: number, line: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = pos + 1;
  if (s[i] === "}") return [labels, i + 1];
  for (;;) {
    const eq = s.indexOf("=", i);
    if (eq === -1) throw new Error(`line ${line}: label without "="`);
    const name = s.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`line ${line}: label ${name} repeated`);
    if (s[eq + 1] !== '"') throw new Error(`line ${line}: label value of ${name} is not quoted`);
    let value = "";
    let j = eq + 2;
    for (;; j++) {
      if (j >= s.length) throw new Error(`line ${line}: unterminated label value`);
      const c = s[j];
      if (c === '"') break;
      if (c === "\\") {
        const e = s[++j];
        if (e === "\\") value += "\\";
        else if (e === '"') value += '"';
        else if (e === "n") value += "\n";
        else throw new Error(`line ${line}: bad escape \\${e ?? ""} in label value`);
      } else value += c;
    }
    labels[name] = value;
    i = j + 1;
    if (s[i] === "}") return [labels, i + 1];
    if (s[i] !== ",") throw new Error(`line ${line}: expected "," or "}" after a label`);
    i++;
  }
}

/** Parses an exposition strictly; returns the families by name, in order. Throws on any violation. */
export function parsePrometheus(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  if (text.includes("\r")) throw new Error("carriage return in the exposition");
  const families = new Map<string, ParsedFamily>();
  const seenSamples = new Set<string>();
  /** The last cumulative bucket count of each histogram series: buckets never decrease. */
  const lastBucket = new Map<string, number>();
  let current: ParsedFamily | undefined;
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((s, index) => {
    const line = index + 1;
    if (s === "") throw new Error(`line ${line}: empty line`);
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(s);
    if (meta !== null) {
      const [, kind, name, rest = ""] = meta;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
      let f = families.get(name);
      if (f === undefined) {
        f = { name, help: undefined, type: undefined, samples: [] };
        families.set(name, f);
      } else if (f !== current) {
        throw new Error(`line ${line}: family ${name} appears again after another family`);
      }
      if (f.samples.length > 0) throw new Error(`line ${line}: ${kind} for ${name} after its samples`);
      current = f;
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`line ${line}: second HELP for ${name}`);
        f.help = unescapeHelp(rest, line);
      } else {
        if (f.type !== undefined) throw new Error(`line ${line}: second TYPE for ${name}`);
        if (!TYPES.includes(rest)) throw new Error(`line ${line}: unknown type ${JSON.stringify(rest)}`);
        f.type = rest;
      }
      return;
    }
    if (s.startsWith("#")) return; // a comment
    const m = /^([^\s{]+)/.exec(s);
    if (m === null) throw new Error(`line ${line}: no metric name`);
    const name = m[1];
    if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
    let labels: Record<string, string> = {};
    let pos = name.length;
    if (s[pos] === "{") [labels, pos] = readLabels(s, pos, line);
    if (s[pos] !== " ") throw new Error(`line ${line}: expected one space before the value`);
    const parts = s.slice(pos + 1).split(" ");
    if (parts.length > 2 || !FLOAT.test(parts[0])) {
      throw new Error(`line ${line}: bad value ${JSON.stringify(s.slice(pos + 1))}`);
    }
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) throw new Error(`line ${line}: bad timestamp`);
    const value = Number(parts[0].replace(/Inf$/, "Infinity"));
    // A histogram's samples are named <family>_bucket (with le), _sum and _count.
    const suffix = /_(bucket|sum|count)$/.exec(name);
    const base = suffix !== null && families.get(name.slice(0, suffix.index))?.type === "histogram"
      ? name.slice(0, suffix.index)
      : name;
    const f = families.get(base);
    if (f === undefined || f.help === undefined || f.type === undefined) {
      throw new Error(`line ${line}: sample of ${name} before its HELP and TYPE`);
    }
    if (f.type === "histogram") {
      if (base === name) throw new Error(`line ${line}: histogram sample ${name} has no _bucket/_sum/_count`);
      if (suffix![1] === "bucket" && !("le" in labels)) throw new Error(`line ${line}: bucket without le`);
      if (suffix![1] !== "bucket" && "le" in labels) throw new Error(`line ${line}: le on ${name}`);
      if (suffix![1] === "bucket") {
        const series = JSON.stringify(Object.entries(labels).filter(([k]) => k !== "le").sort());
        const prev = lastBucket.get(`${base}${series}`);
        if (prev !== undefined && value < prev) throw new Error(`line ${line}: buckets of ${base} decrease`);
        lastBucket.set(`${base}${series}`, value);
      }
    }
    if (f !== current) throw new Error(`line ${line}: samples of ${name} are not contiguous`);
    if (f.type === "counter") {
      if (!name.endsWith("_total")) throw new Error(`line ${line}: counter ${name} does not end in _total`);
      if (!(value >= 0)) throw new Error(`line ${line}: counter ${name} is ${parts[0]}`);
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seenSamples.has(key)) throw new Error(`line ${line}: duplicate sample ${s}`);
    seenSamples.add(key);
    f.samples.push({ name, labels, value });
  });
  return families;
}
