/**
 * Where a key path stands in TOML text, so an error can name the line (`clusters.game.balancer (line 14)`).
 * A light scan of table headers and `key =` lines, not a second parser: it is only asked about documents
 * that already parsed, and a path it cannot place simply gets no line.
 *
 * @module
 */

/** Splits a dotted TOML key ("clusters.game", `clusters."a.b"`) into its parts. */
function keyParts(text: string): string[] {
  const parts: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(\.|$)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    const k = m[1];
    parts.push(k.startsWith('"') ? JSON.parse(k) : k.startsWith("'") ? k.slice(1, -1) : k);
    if (m[2] === "") break;
  }
  return parts;
}

/** A key as it appears in an error path: bare when TOML allows, quoted otherwise. */
function pathKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/** The line (1-based) of every table header and key in `text`, by error-path form. */
export function keyLines(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  const counts = new Map<string, number>();
  let table = "";
  /** A header's path: array tables take the index of their latest entry, at every level. */
  const pathOf = (parts: string[], isArray: boolean): string => {
    let path = "";
    parts.forEach((part, i) => {
      path = path === "" ? pathKey(part) : `${path}.${pathKey(part)}`;
      const last = i === parts.length - 1;
      if (last && isArray) {
        const n = counts.get(path) ?? 0;
        counts.set(path, n + 1);
        path = `${path}[${n}]`;
      } else if (counts.has(path)) {
        path = `${path}[${(counts.get(path) as number) - 1}]`;
      }
    });
    return path;
  };
  text.split(/\r?\n/).forEach((line, i) => {
    const header = /^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(line);
    if (header !== null) {
      table = pathOf(keyParts(header[2]), header[1] === "[[");
      if (!lines.has(table)) lines.set(table, i + 1);
      return;
    }
    const key =
      /^\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=/
        .exec(line);
    if (key === null) return;
    const path = [table, ...keyParts(key[1]).map(pathKey)].filter((p) => p !== "").join(".");
    if (!lines.has(path)) lines.set(path, i + 1);
  });
  return lines;
}

/** The line of `path` or of its nearest enclosing key that has one; undefined when none does. */
export function lineOf(lines: ReadonlyMap<string, number>, path: string): number | undefined {
  let p = path;
  while (p !== "") {
    const line = lines.get(p);
    if (line !== undefined) return line;
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) return undefined;
    p = p.slice(0, cut);
  }
  return undefined;
}
