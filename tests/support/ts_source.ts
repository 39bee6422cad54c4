/**
 * A small lexer for TypeScript source, enough for tests that check what a module uses and imports: it
 * blanks comments and replaces every string and template text by a numbered placeholder, so prose in a
 * comment or a string never looks like code, while import specifiers stay readable.
 *
 * @module
 */

/** Source with comments blanked and literals replaced by `"<n>"`, and the literals by number. */
export interface StrippedSource {
  /** The code: comments are spaces, a string or template text is `"<n>"`; newlines are kept. */
  readonly code: string;
  /** The text of literal `<n>` (a string's contents; a template's raw text pieces joined). */
  readonly literals: readonly string[];
}

/** What may precede a `/` that starts a regular expression literal rather than a division. */
const REGEX_AFTER = new Set("([{,;:=!&|?+-*%<>~^".split(""));
/** Keywords after which a `/` starts a regular expression literal. */
const REGEX_KEYWORDS = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
]);

/** Strips `source` (see StrippedSource). Regular expression literals are replaced like strings. */
export function stripSource(source: string): StrippedSource {
  const literals: string[] = [];
  let out = "";
  let i = 0;
  const n = source.length;
  /** The last code token's kind for the regex-or-division question: its last character, or a keyword. */
  let last = "";
  const literal = (text: string): void => {
    // The literal's newlines follow it, so line numbers stay those of the source.
    out += `"${literals.length}"` + "\n".repeat(text.split("\n").length - 1);
    literals.push(text);
    last = '"';
  };
  // Template literals nest (`a${`b${c}`}`): a stack of brace depths, one per open `${`.
  const braces: number[] = [];
  const readTemplate = (): void => {
    // At the character after "`" or after the "}" closing a `${`.
    let text = "";
    while (i < n) {
      const c = source[i];
      if (c === "\\") {
        text += source.slice(i, i + 2);
        i += 2;
      } else if (c === "`") {
        i++;
        literal(text);
        return;
      } else if (c === "$" && source[i + 1] === "{") {
        i += 2;
        literal(text);
        out += "${";
        braces.push(0);
        last = "{";
        return;
      } else {
        text += c;
        i++;
      }
    }
    literal(text);
  };
  while (i < n) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < n && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'") {
      let text = "";
      i++;
      while (i < n && source[i] !== c && source[i] !== "\n") {
        if (source[i] === "\\") {
          text += source.slice(i, i + 2);
          i += 2;
        } else text += source[i++];
      }
      i++;
      literal(text);
    } else if (c === "`") {
      i++;
      readTemplate();
    } else if (c === "}" && braces.length > 0 && braces[braces.length - 1] === 0) {
      braces.pop();
      out += "}";
      i++;
      readTemplate();
    } else if (c === "/" && (last === "" || REGEX_AFTER.has(last) || REGEX_KEYWORDS.has(last))) {
      let text = "";
      let inClass = false;
      i++;
      while (i < n && source[i] !== "\n") {
        const d = source[i];
        if (d === "\\") {
          text += source.slice(i, i + 2);
          i += 2;
          continue;
        }
        if (d === "/" && !inClass) break;
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        text += d;
        i++;
      }
      i++;
      while (i < n && /[a-z]/.test(source[i])) i++; // flags
      literal(text);
    } else {
      if (c === "{" && braces.length > 0) braces[braces.length - 1]++;
      else if (c === "}" && braces.length > 0) braces[braces.length - 1]--;
      out += c;
      i++;
      if (/[\w$]/.test(c)) {
        // Track whole words so `return /x/` is seen as a regex.
        let j = out.length - 1;
        while (j > 0 && /[\w$]/.test(out[j - 1])) j--;
        if (!/[\w$]/.test(source[i] ?? "")) last = out.slice(j);
      } else if (!/\s/.test(c)) last = c;
    }
  }
  return { code: out, literals };
}

/** One import or re-export of a module. */
export interface ImportEdge {
  /** The specifier as written. */
  readonly specifier: string;
  /** `import type` / `export type`: erased, never loaded at run time. */
  readonly typeOnly: boolean;
  /** 1-based line of the statement. */
  readonly line: number;
}

/**
 * Every static import, re-export and side-effect import of stripped source, plus dynamic `import(...)` and
 * `require(...)` calls (reported with the specifier `<dynamic>` when it is not a plain literal).
 */
export function importsOf(stripped: StrippedSource): ImportEdge[] {
  const { code, literals } = stripped;
  const edges: ImportEdge[] = [];
  const lineAt = (at: number): number => code.slice(0, at).split("\n").length;
  const statement = /\b(import|export)\s+(type\s+)?(?:[^;"]*?\bfrom\s+)?"(\d+)"/g;
  for (const m of code.matchAll(statement)) {
    // `export` without `from` (export const x = "a") does not match: the pattern requires `from` for export.
    if (m[1] === "export" && !/\bfrom\s+"\d+"$/.test(m[0])) continue;
    edges.push({ specifier: literals[Number(m[3])], typeOnly: m[2] !== undefined, line: lineAt(m.index) });
  }
  for (const m of code.matchAll(/\b(import|require)\s*\(\s*("(\d+)"\s*\))?/g)) {
    if (m[1] === "import" && code[(m.index ?? 0) - 1] === ".") continue;
    const specifier = m[3] === undefined ? "<dynamic>" : literals[Number(m[3])];
    edges.push({ specifier: `${m[1]}(${specifier})`, typeOnly: false, line: lineAt(m.index) });
  }
  return edges;
}
