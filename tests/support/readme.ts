/**
 * The README's generated parts and its code blocks, for tests/readme.test.ts and scripts/docs.ts. Each
 * generated part stands between `<!-- generated: NAME ... -->` and `<!-- end: NAME -->` and is rendered
 * from its one source, so the README cannot drift from the code.
 *
 * @module
 */

import { REFERENCE_TOML } from "../../core/default_config.ts";
import { METRICS } from "../../admin/metric_names.ts";
import { CONFIG_ENV, ENV_VARS } from "../../shell/process/env.ts";

/** The parts, by name: what each renders from. */
export const GENERATED: Readonly<Record<string, () => string>> = {
  /** Every config key with its default and doc line, from core/config/schema.ts. */
  reference: () => "```toml\n" + REFERENCE_TOML + "```",
  /** Every metric family, from admin/metric_names.ts. */
  metrics: () =>
    table(
      ["metric", "type", "labels", "meaning"],
      METRICS.map((m) => [`\`${m.name}\``, m.type, m.labels.join(", "), m.help.replaceAll("|", "\\|")]),
    ),
  /** Every environment variable, from shell/process/env.ts. */
  env: () =>
    table(
      ["variable", "config key", "value"],
      [
        [`\`${CONFIG_ENV}\``, "the config file path", "a path"],
        ...ENV_VARS.map((v) => [`\`${v.name}\``, `\`${v.path.join(".")}\``, v.help.replaceAll("|", "\\|")]),
      ],
    ),
};

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/** A part's text with table padding and blank edges ignored (deno fmt aligns tables its own way). */
function normal(text: string): string {
  return text.trim().split("\n").map((l) =>
    l.startsWith("|") ? l.split("|").map((c) => c.trim().replace(/^-+$/, "-")).join("|") : l
  ).join("\n");
}

/** Where each part stands in `readme`. */
function parts(readme: string): { name: string; start: number; end: number }[] {
  const out: { name: string; start: number; end: number }[] = [];
  for (const m of readme.matchAll(/<!-- generated: ([a-z]+)[^>]*-->\n/g)) {
    const name = m[1];
    const start = (m.index as number) + m[0].length;
    const end = readme.indexOf(`<!-- end: ${name} -->`, start);
    if (end < 0) throw new Error(`README.md: <!-- generated: ${name} --> has no <!-- end: ${name} -->`);
    out.push({ name, start, end });
  }
  return out;
}

/** The README with every generated part rendered afresh. */
export function regenerate(readme: string): string {
  let out = readme;
  for (const p of parts(readme).reverse()) {
    const render = GENERATED[p.name];
    if (render === undefined) throw new Error(`README.md: no generator for part ${p.name}`);
    out = out.slice(0, p.start) + "\n" + render() + "\n\n" + out.slice(p.end);
  }
  return out;
}

/** The names of the parts that differ from what their sources render (ignoring table padding). */
export function staleParts(readme: string): string[] {
  return parts(readme).filter((p) => {
    const render = GENERATED[p.name];
    return render === undefined || normal(readme.slice(p.start, p.end)) !== normal(render());
  }).map((p) => p.name);
}

/** The names of the parts the README has. */
export function partNames(readme: string): string[] {
  return parts(readme).map((p) => p.name);
}

/** Every fenced block of a language, with the line it starts on. */
export function codeBlocks(readme: string, lang: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const lines = readme.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```" + lang) continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && lines[j].trim() !== "```") j++;
    out.push({ line: start, text: lines.slice(start, j).join("\n") + "\n" });
    i = j;
  }
  return out;
}
