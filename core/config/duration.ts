/**
 * Durations in config files: "500ms", "30s", "5m", "1h", "1m30s", or integer milliseconds.
 *
 * @module
 */

const DURATION_UNITS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const DURATION_ORDER = ["h", "m", "s", "ms"];
const DURATION_PART = /(\d+)(ms|h|m|s)/y;

/**
 * Parses a duration such as "500ms", "30s", "5m", "1h" or "1m30s" into milliseconds, or returns why it is not
 * one. Units must descend and appear once each, so "30s1m" (almost certainly a typo) is refused rather than
 * silently summed. A bare "0" is accepted because "no timeout" should not need a unit. Range limits are the
 * caller's: this only reads the text.
 */
export function parseDuration(text: string): number | string {
  if (typeof text !== "string") return "a duration must be a string";
  if (text === "0") return 0;
  if (text === "") return `"" is not a duration (expected e.g. "500ms", "30s", "5m", "1h30m")`;
  let total = 0;
  let pos = 0;
  let lastUnit = -1;
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(text);
    if (m === null) {
      return `"${text}" is not a duration (expected e.g. "500ms", "30s", "5m", "1h30m")`;
    }
    const unitIndex = DURATION_ORDER.indexOf(m[2]);
    if (unitIndex <= lastUnit) {
      return `"${text}" is not a duration: units must go from largest to smallest, each once (h, m, s, ms)`;
    }
    lastUnit = unitIndex;
    // Digits beyond 15 cannot be summed exactly; such a duration is out of every range anyway.
    if (m[1].length > 15) return `"${text}" is far too long a duration`;
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    pos = DURATION_PART.lastIndex;
  }
  if (!Number.isSafeInteger(total)) return `"${text}" is far too long a duration`;
  return total;
}

/**
 * Formats milliseconds as the shortest exact duration string ("1m30s", "500ms", "0s") that
 * {@link parseDuration} reads back to the same number. Values that are not a non-negative safe integer are
 * written as "<n>ms" so that a bad value stays visible instead of being rounded into a plausible one.
 */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) return `${ms}ms`;
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const unit of DURATION_ORDER) {
    const size = DURATION_UNITS[unit];
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
