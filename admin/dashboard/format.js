// How the dashboard writes numbers: rates, sizes, durations, milliseconds. Decimal (SI) prefixes, as network
// rates are usually given.

const PREFIXES = ["", "k", "M", "G", "T", "P"];

/**
 * A number with an SI prefix and at most three significant digits: 0, 12, 1.23k, 45.6M.
 * @param {number} n
 * @returns {string}
 */
export function si(n) {
  if (!Number.isFinite(n)) return "–";
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  let i = 0;
  while (v >= 999.5 && i < PREFIXES.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 && Number.isInteger(v) ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
  return sign + v.toFixed(digits) + PREFIXES[i];
}

/**
 * A rate per second: "1.23k/s".
 * @param {number} n
 * @returns {string}
 */
export function perSecond(n) {
  return si(n) + "/s";
}

/**
 * Bytes: "1.23 MB".
 * @param {number} n
 * @returns {string}
 */
export function bytes(n) {
  return si(n) + "B";
}

/**
 * Bytes per second: "1.23 MB/s".
 * @param {number} n
 * @returns {string}
 */
export function bytesPerSecond(n) {
  return si(n) + "B/s";
}

/**
 * Milliseconds, or a dash when unknown: "12.3 ms".
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function millis(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
}

/**
 * A duration in seconds, coarsely: "42s", "5m 3s", "2h 10m", "3d 4h".
 * @param {number} seconds
 * @returns {string}
 */
export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.floor(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

/**
 * Loss in per mille, as a percentage: "1.5 %".
 * @param {number} permille
 * @returns {string}
 */
export function lossPercent(permille) {
  if (!Number.isFinite(permille)) return "–";
  return (permille / 10).toFixed(permille < 100 ? 1 : 0) + " %";
}
