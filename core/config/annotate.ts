/**
 * Config files written for people: TOML with each key's doc line from the declaration beside it. The
 * built-in default config (`ferry print-default-config`) and the README's "every key with its default"
 * reference are both rendered here, so neither can drift from what the validator accepts.
 *
 * @module
 */

import { stringify } from "smol-toml";
import { ConfigSchema, type Schema, SECTIONS } from "./schema.ts";
import { isTable } from "./words.ts";

type Json = Record<string, unknown>;
const S = (schema: Schema | unknown): Json => schema as Json;

/** Where trailing comments start, so a block reads as two columns. */
const COMMENT_COLUMN = 27;

/** A TOML value as it stands right of `=`. */
function tomlValue(value: unknown): string {
  return stringify({ v: value }).replace(/^v = /, "").trim();
}

function line(key: string, value: string, doc: string | undefined, commented = false): string {
  const text = `${commented ? "# " : ""}${key} = ${value}`;
  if (doc === undefined || doc === "") return text;
  return `${text.padEnd(COMMENT_COLUMN - 1)} # ${doc}`;
}

function propsOf(schema: Schema | unknown): Record<string, Json> {
  const s = S(schema);
  return (isTable(s.properties) ? s.properties : {}) as Record<string, Json>;
}

/** Whether a key holds a table (written under its own header) rather than a value. */
function isTableKey(schema: Json): boolean {
  return schema.type === "object" || (schema.type === "array" && S(schema.items).type === "object");
}

interface RenderOptions {
  /** Write every declared key: given values, else defaults, else a commented example. */
  readonly allKeys: boolean;
  /** Doc lines for keys the declaration leaves general, by dotted schema path ("clusters.*.balancer"). */
  readonly notes?: Readonly<Record<string, string>>;
}

/** The value lines of one table; sub-tables are the caller's. */
function valueLines(schema: Schema | unknown, value: Json, o: RenderOptions, where: string): string[] {
  const out: string[] = [];
  for (const [key, s] of Object.entries(propsOf(schema))) {
    if (isTableKey(s)) continue;
    const doc = o.notes?.[`${where}.${key}`] ?? (s.description as string | undefined);
    if (Object.prototype.hasOwnProperty.call(value, key)) out.push(line(key, tomlValue(value[key]), doc));
    else if (o.allKeys && s.default !== undefined) out.push(line(key, tomlValue(s.default), doc));
    else if (o.allKeys && Array.isArray(s.examples)) out.push(line(key, tomlValue(s.examples[0]), doc, true));
  }
  return out;
}

/** A table and its sub-tables, each under its header. */
function tableLines(
  schema: Schema | unknown,
  value: Json,
  header: string,
  o: RenderOptions,
  where: string,
): string[] {
  const out = [header, ...valueLines(schema, value, o, where)];
  for (const [key, s] of Object.entries(propsOf(schema))) {
    if (!isTableKey(s)) continue;
    const given = value[key];
    const name = `${header.replace(/\s*#.*$/, "").replace(/^\[+|\]+$/g, "")}.${key}`;
    if (s.type === "object") {
      if (!isTable(given) && !o.allKeys) continue;
      if (!isTable(given) && s["x-presence"] === true) {
        // Its presence switches it on: the reference shows it commented out, with its defaults.
        const block = tableLines(s, {}, `[${name}]`, { ...o, allKeys: true }, `${where}.${key}`);
        out.push("", `# ${block[0].padEnd(COMMENT_COLUMN - 3)} # ${s.description as string}`);
        out.push(...block.slice(1).map((l) => `# ${l}`));
        continue;
      }
      const doc = s.description as string;
      const title = o.allKeys ? `${`[${name}]`.padEnd(COMMENT_COLUMN - 1)} # ${doc}` : `[${name}]`;
      out.push("", ...tableLines(s, isTable(given) ? given : {}, title, o, `${where}.${key}`));
    } else if (Array.isArray(given)) {
      for (const item of given) {
        out.push("", ...tableLines(s.items, item as Json, `[[${name}]]`, o, `${where}.${key}`));
      }
    }
  }
  return out;
}

/**
 * Renders a file-shaped config as annotated TOML: sections in file order, `[[listeners]]` and
 * `[clusters.NAME]` each under its header, every key with its doc line. `parse` of the result equals
 * `raw` (plus, with `allKeys`, the defaults).
 */
export function annotatedToml(raw: Json, o: RenderOptions): string {
  const top = propsOf(ConfigSchema);
  const blocks: string[][] = [];
  for (const section of SECTIONS) {
    const given = raw[section];
    if (section === "listeners") {
      for (const l of Array.isArray(given) ? given : []) {
        blocks.push(tableLines(S(top.listeners).items, l as Json, "[[listeners]]", o, "listeners"));
      }
    } else if (section === "clusters") {
      const cluster = S(top.clusters).patternProperties as Record<string, Json>;
      const schema = Object.values(cluster)[0];
      for (const [name, c] of Object.entries(isTable(given) ? given : {})) {
        blocks.push(tableLines(schema, c as Json, `[clusters.${name}]`, o, "clusters.*"));
      }
    } else if (isTable(given) || o.allKeys) {
      blocks.push(tableLines(top[section], isTable(given) ? given : {}, `[${section}]`, o, section));
    }
  }
  return blocks.map((b) => b.join("\n")).join("\n\n") + "\n";
}
