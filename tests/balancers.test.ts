/**
 * Balancer behaviour: weighted spread, load awareness, and the consistency properties of the hash balancers
 * (agreement across instances, minimal movement on membership change, independence from list order).
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Balancer, Candidate } from "../core/balancers/balancer.ts";
import { createBalancer } from "../core/balancers/index.ts";
import { isPrime, MaglevBalancer } from "../core/balancers/maglev.ts";
import { hashString } from "../core/hash.ts";
import { Rng } from "../core/rng.ts";
import type { BalancerKind } from "../core/types.ts";

type Kind = Exclude<BalancerKind, "external">;

const OPTS = { hashSeed: 0x5eed, maglevTableSize: 65537 };

/** Backends 10.0.0.1:53, 10.0.0.2:53, ... with the given weights and (optionally) flows. */
function backends(weights: readonly number[], flows: readonly number[] = []): Candidate[] {
  return weights.map((weight, i) => ({ key: `10.0.0.${i + 1}:53`, weight, flows: flows[i] ?? 0 }));
}

/** A realistic affinity-key hash: a client ip:port hashed with a seed, as the core does. */
function clientHash(i: number): number {
  return hashString(`198.51.${(i >>> 8) & 255}.${i & 255}:${1024 + (i >>> 16)}`, 0x1234);
}

/** Share of `picks` picks landing on each candidate, with a fresh key per pick and flows left unchanged. */
function shares(kind: Kind, candidates: readonly Candidate[], picks: number): number[] {
  const b = createBalancer(kind, OPTS);
  const rng = new Rng(42);
  const counts = new Array<number>(candidates.length).fill(0);
  for (let i = 0; i < picks; i++) counts[b.pick(candidates, 1, clientHash(i), rng)]++;
  return counts.map((c) => c / picks);
}

/** Owner key of each of `keys` flow keys. */
function owners(b: Balancer, candidates: readonly Candidate[], version: number, keys: number): string[] {
  const rng = new Rng(1);
  const out: string[] = [];
  for (let i = 0; i < keys; i++) out.push(candidates[b.pick(candidates, version, clientHash(i), rng)].key);
  return out;
}

function movedFraction(before: readonly string[], after: readonly string[]): number {
  let moved = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++;
  return moved / before.length;
}

function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe("weighted spread (weights 1,2,3 over 60k picks, within ±3 points)", () => {
  const weights = [1, 2, 3];
  for (const kind of ["random", "power_of_two", "rendezvous", "maglev"] as const) {
    test(kind, () => {
      const got = shares(kind, backends(weights), 60_000);
      for (let i = 0; i < weights.length; i++) {
        const want = weights[i] / 6;
        assert.ok(
          Math.abs(got[i] - want) <= 0.03,
          `${kind}[${i}]: ${got[i].toFixed(4)} vs ${want.toFixed(4)}`,
        );
      }
    });
  }
});

describe("round_robin", () => {
  test("nginx sequence for weights 5,1,1", () => {
    const b = createBalancer("round_robin", OPTS);
    const c = backends([5, 1, 1]);
    const rng = new Rng(0);
    const seq = Array.from({ length: 14 }, () => "abc"[b.pick(c, 1, 0, rng)]).join("");
    assert.equal(seq, "aabacaa".repeat(2));
  });

  test("every cycle of sum(weights) picks is exact", () => {
    const b = createBalancer("round_robin", OPTS);
    const c = backends([1, 2, 3]);
    const rng = new Rng(0);
    for (let cycle = 0; cycle < 100; cycle++) {
      const counts = [0, 0, 0];
      for (let i = 0; i < 6; i++) counts[b.pick(c, 7, 0, rng)]++;
      assert.deepEqual(counts, [1, 2, 3]);
    }
  });

  test("state restarts when the version changes", () => {
    const b = createBalancer("round_robin", OPTS);
    const rng = new Rng(0);
    const c = backends([5, 1, 1]);
    b.pick(c, 1, 0, rng);
    b.pick(c, 1, 0, rng);
    b.pick(c, 1, 0, rng);
    const seq = Array.from({ length: 7 }, () => "abc"[b.pick(c, 2, 0, rng)]).join("");
    assert.equal(seq, "aabacaa");
  });
});

describe("least_flows", () => {
  const rng = new Rng(0);

  test("picks the fewest flows per weight", () => {
    const b = createBalancer("least_flows", OPTS);
    assert.equal(b.pick(backends([1, 1, 1], [5, 1, 3]), 1, 0, rng), 1);
    // 4/2 = 2 beats 3/1 = 3 although 4 > 3.
    assert.equal(b.pick(backends([2, 1], [4, 3]), 2, 0, rng), 0);
    // 7/3 < 5/2: cross-multiplication, not integer division.
    assert.equal(b.pick(backends([2, 3], [5, 7]), 3, 0, rng), 1);
  });

  test("ties rotate instead of always hitting index 0", () => {
    const b = createBalancer("least_flows", OPTS);
    const idle = backends([1, 1, 1]);
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(() => b.pick(idle, 1, 0, rng)), [0, 1, 2, 0, 1, 2]);
    const someBusy = backends([1, 1, 1, 1], [1, 0, 1, 0]);
    assert.deepEqual([0, 1, 2, 3].map(() => b.pick(someBusy, 2, 0, rng)), [1, 3, 1, 3]);
  });

  test("with flows counted, load ends proportional to weight", () => {
    const b = createBalancer("least_flows", OPTS);
    const flows = [0, 0, 0];
    for (let i = 0; i < 600; i++) flows[b.pick(backends([1, 2, 3], flows), 1, 0, rng)]++;
    assert.deepEqual(flows, [100, 200, 300]);
  });
});

describe("power_of_two", () => {
  test("with two candidates it always takes the less loaded (draws are distinct)", () => {
    const b = createBalancer("power_of_two", OPTS);
    const rng = new Rng(3);
    const c = backends([1, 1], [10, 2]);
    for (let i = 0; i < 1000; i++) assert.equal(b.pick(c, 1, 0, rng), 1);
  });

  test("the most loaded never wins, the least loaded wins whenever drawn", () => {
    const b = createBalancer("power_of_two", OPTS);
    const rng = new Rng(4);
    const c = backends([1, 1, 1], [0, 50, 100]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) counts[b.pick(c, 1, 0, rng)]++;
    assert.equal(counts[2], 0);
    // Index 0 is in 2 of the 3 equally likely pairs.
    assert.ok(Math.abs(counts[0] / 30_000 - 2 / 3) < 0.02, `${counts}`);
  });

  test("with flows counted, load tracks weight closely", () => {
    const b = createBalancer("power_of_two", OPTS);
    const rng = new Rng(5);
    const flows = [0, 0, 0];
    for (let i = 0; i < 6000; i++) flows[b.pick(backends([1, 2, 3], flows), 1, 0, rng)]++;
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(flows[i] - (i + 1) * 1000) <= 60, `${flows}`);
  });
});

describe("random", () => {
  test("the same rng seed replays the same picks", () => {
    const c = backends([3, 1, 4, 1, 5]);
    const run = () => {
      const b = createBalancer("random", OPTS);
      const rng = new Rng(99);
      return Array.from({ length: 200 }, () => b.pick(c, 1, 0, rng));
    };
    assert.deepEqual(run(), run());
  });
});

for (const kind of ["rendezvous", "maglev"] as const) {
  describe(`${kind} consistency`, () => {
    const KEYS = 20_000;
    const ten = backends([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);

    test("two instances with the same seed agree; another seed reassigns most keys", () => {
      const a = owners(createBalancer(kind, OPTS), ten, 1, KEYS);
      const b = owners(createBalancer(kind, OPTS), ten, 1, KEYS);
      assert.deepEqual(a, b);
      const other = owners(createBalancer(kind, { ...OPTS, hashSeed: OPTS.hashSeed + 1 }), ten, 1, KEYS);
      const differ = movedFraction(a, other);
      // Independent assignments over 10 backends differ for ~90% of keys.
      assert.ok(differ > 0.8, `only ${differ} differ`);
    });

    test("candidate order does not change the choice", () => {
      const b1 = createBalancer(kind, OPTS);
      const b2 = createBalancer(kind, OPTS);
      const mixed = shuffled(backends([1, 2, 3, 4, 5, 6, 7]), new Rng(8));
      assert.deepEqual(owners(b1, backends([1, 2, 3, 4, 5, 6, 7]), 1, KEYS), owners(b2, mixed, 1, KEYS));
    });

    test("removing 1 of 10 moves about 1/10 of keys", () => {
      const b = createBalancer(kind, OPTS);
      const before = owners(b, ten, 1, KEYS);
      const removed = ten[3].key;
      const nine = ten.filter((c) => c.key !== removed);
      const after = owners(b, nine, 2, KEYS);
      const moved = movedFraction(before, after);
      if (kind === "rendezvous") {
        for (let i = 0; i < KEYS; i++) if (before[i] !== removed) assert.equal(after[i], before[i]);
        assert.ok(moved >= 0.08 && moved <= 0.12, `moved ${moved}`);
      } else {
        assert.ok(moved >= 0.07 && moved <= 0.15, `moved ${moved}`);
      }
      for (let i = 0; i < KEYS; i++) assert.notEqual(after[i], removed);
    });

    test("adding an 11th moves about 1/11 of keys", () => {
      const b = createBalancer(kind, OPTS);
      const before = owners(b, ten, 1, KEYS);
      const eleven = backends([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
      const added = eleven[10].key;
      const after = owners(b, eleven, 2, KEYS);
      const moved = movedFraction(before, after);
      if (kind === "rendezvous") {
        for (let i = 0; i < KEYS; i++) if (after[i] !== before[i]) assert.equal(after[i], added);
        assert.ok(moved >= 0.07 && moved <= 0.115, `moved ${moved}`);
      } else {
        assert.ok(moved >= 0.06 && moved <= 0.15, `moved ${moved}`);
      }
    });
  });
}

describe("maglev table size", () => {
  test("a non-prime size throws, from the factory and the constructor", () => {
    for (const size of [0, 1, 4, 65536, 65535, 1.5, -7, NaN]) {
      assert.throws(() => createBalancer("maglev", { ...OPTS, maglevTableSize: size }), RangeError);
      assert.throws(() => new MaglevBalancer(1, size), RangeError);
    }
    for (const size of [2, 3, 251, 65537]) createBalancer("maglev", { ...OPTS, maglevTableSize: size });
  });

  test("isPrime", () => {
    const primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47];
    for (let n = -1; n < 50; n++) assert.equal(isPrime(n), primes.includes(n), `${n}`);
    assert.ok(isPrime(65537) && isPrime(655373) && !isPrime(65537 * 3));
  });

  test("the table is built once per version, not per pick", () => {
    const b = new MaglevBalancer(1, 65537);
    const first = backends([1, 1, 1]);
    const rng = new Rng(0);
    const before = Array.from({ length: 2000 }, (_, i) => b.pick(first, 1, clientHash(i), rng));
    // Same version, same count, other weights: a balancer that rebuilt per pick would answer differently.
    const reweighted = backends([1, 1, 50]);
    const same = Array.from({ length: 2000 }, (_, i) => b.pick(reweighted, 1, clientHash(i), rng));
    assert.deepEqual(same, before);
    const rebuilt = Array.from({ length: 2000 }, (_, i) => b.pick(reweighted, 2, clientHash(i), rng));
    assert.notDeepEqual(rebuilt, before);
  });
});

describe("property: every balancer returns a valid index; hash ones ignore order", () => {
  const kinds: Kind[] = ["round_robin", "random", "least_flows", "power_of_two", "rendezvous", "maglev"];
  test("200 random candidate sets", () => {
    const gen = new Rng(2024);
    const balancers = kinds.map((k) => createBalancer(k, { ...OPTS, maglevTableSize: 1009 }));
    const mirror = kinds.map((k) => createBalancer(k, { ...OPTS, maglevTableSize: 1009 }));
    for (let version = 1; version <= 200; version++) {
      const n = 1 + gen.nextInt(12);
      const c = Array.from({ length: n }, (_, i) => ({
        key: `192.0.2.${gen.nextInt(256)}:${i + 1}`,
        weight: 1 + gen.nextInt(1000),
        flows: gen.nextInt(50),
      }));
      const mixed = shuffled(c, gen);
      const rng = new Rng(version);
      for (let p = 0; p < 20; p++) {
        const keyHash = gen.nextU32();
        for (let k = 0; k < kinds.length; k++) {
          const i = balancers[k].pick(c, version, keyHash, rng);
          assert.ok(Number.isInteger(i) && i >= 0 && i < n, `${kinds[k]} returned ${i} of ${n}`);
          if (kinds[k] === "rendezvous" || kinds[k] === "maglev") {
            assert.equal(mixed[mirror[k].pick(mixed, version, keyHash, rng)].key, c[i].key);
          }
        }
      }
    }
  });
});
