/**
 * Did-you-mean: the known word nearest to a mistyped one, by edit distance (insertions, deletions,
 * substitutions), when it is near enough to be a plausible typo. Pure and small, for any list of names
 * (environment variables here; config keys can share it).
 *
 * @module
 */

/** Levenshtein distance of `a` and `b`, in two rows of memory. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/**
 * The entry of `known` nearest to `word` (case-insensitive; `-` and `_` alike), or undefined when none is
 * within a third of the longer word's length (at most 3 edits): a short word must be nearly right.
 */
export function didYouMean(word: string, known: readonly string[]): string | undefined {
  if (word.length > 96) return undefined; // nothing is near it; keeps odd input cheap
  const norm = (s: string) => s.toLowerCase().replaceAll("-", "_");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(norm(word), norm(k));
    if (d <= Math.min(3, Math.floor(Math.max(word.length, k.length) / 3)) && d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}
