/**
 * Words for config errors: "did you mean" hints, how a value is described in "expected X, got Y", and how
 * a key appears in a path.
 *
 * @module
 */

/**
 * Edit distance between two short strings (keys, enum values), for "did you mean" hints. Adjacent swaps count
 * as one edit (optimal string alignment), since "gmae" for "game" is the commonest typo of all.
 */
function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1);
    row[0] = i;
    rows.push(row);
  }
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = d;
    }
  }
  return rows[a.length][b.length];
}

/**
 * The known word closest to `word`, if close enough to be a plausible typo. Case and separators are
 * ignored first, so `maxFlows` and `max-flows` both find `max_flows`.
 */
export function suggest(word: string, known: readonly string[]): string | undefined {
  // Very long inputs cannot be near any known key; skipping them keeps odd input cheap.
  if (word.length > 64) return undefined;
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  for (const k of known) if (norm(k) === norm(word)) return k;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    // A 2-letter typo in a 3-letter word is a different word, so short words get a tighter limit.
    const limit = Math.min(2, Math.floor(Math.max(word.length, k.length) / 3));
    if (d <= limit && d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** A value's kind in TOML terms, for "expected X, got Y" messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  switch (typeof value) {
    case "string":
      return `the string ${quote(value)}`;
    case "number":
      return Number.isFinite(value) ? `the number ${value}` : `${value}`;
    case "boolean":
      return `${value}`;
    case "object":
      return "a table";
    default:
      return `a ${typeof value}`;
  }
}

/** Quotes a string for a message, cut short so a megabyte of garbage does not become a megabyte of log. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 77) + "..." : s);
}

/** A table key as it appears in a path: bare when TOML allows, quoted otherwise. */
function pathKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : quote(key);
}

/** A key path joined with one more key. */
export function join(path: string, key: string): string {
  return path === "" ? pathKey(key) : `${path}.${pathKey(key)}`;
}

/** A plain table (not an array, date, null or class instance). */
export function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.prototype.toString.call(value) === "[object Object]";
}

/** Reads a key only if the table itself has it, so `constructor` or `__proto__` never come from a prototype. */
export function own(table: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

/** Sets an own key, even `__proto__`, without touching any prototype. */
export function define(table: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
}
