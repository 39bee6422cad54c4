/**
 * The quality estimators against synthetic traces with known RTT, reply loss, reordering and sequence
 * wrap: RTT pairing that lost replies do not pollute, the unanswered ratio, sequence-aware loss, and the
 * backend figures the peak_ewma balancer reads.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_OUTSTANDING, OUTLIER_STREAK, Quality } from "../core/quality.ts";
import { SequenceTracker } from "../core/sequence.ts";
import { BackendQuality, PEAK_EWMA_DECAY_MS } from "../core/backend_quality.ts";
import { Rng } from "../core/rng.ts";

interface Trace {
  /** What the client measured: the median RTT of its answered requests, and its true loss in per-mille. */
  readonly median: number;
  readonly lossPermille: number;
  readonly q: Quality;
}

interface TraceSpec {
  readonly requests: number;
  /** Backend answer time, ms, plus uniform noise in [0, noise). */
  readonly rtt: number;
  readonly noise: number;
  /** Probability that a reply is lost. */
  readonly loss: number;
  /** The client sends its next request this long after a reply... */
  readonly think: number;
  /** ...or this long after a request whose reply never came. */
  readonly timeout: number;
  readonly seed: number;
}

/** A request/response client: each request waits for its reply (or a timeout) before the next. */
function serialTrace(s: TraceSpec): Trace {
  const rng = new Rng(s.seed);
  const q = new Quality(0);
  const rtts: number[] = [];
  let lost = 0;
  let t = 0;
  for (let i = 0; i < s.requests; i++) {
    q.onClient(64, t);
    const rtt = s.rtt + rng.nextFloat() * s.noise;
    if (rng.nextFloat() < s.loss) {
      lost++;
      t += s.timeout;
    } else {
      q.onBackend(64, t + rtt);
      rtts.push(rtt);
      t += rtt + s.think;
    }
  }
  rtts.sort((a, b) => a - b);
  return { median: rtts[rtts.length >> 1], lossPermille: (lost * 1000) / s.requests, q };
}

const BASE: TraceSpec = { requests: 2000, rtt: 20, noise: 1, loss: 0, think: 10, timeout: 100, seed: 7 };

describe("RTT pairing and the unanswered ratio on request/response traffic", () => {
  for (const loss of [0, 0.05, 0.08, 0.1, 0.2]) {
    test(`${loss * 100}% reply loss: srtt within 3% of the client's median, unanswered within 2 points`, () => {
      const { median, lossPermille, q } = serialTrace({ ...BASE, loss });
      assert.ok(Math.abs(q.srtt - median) / median < 0.03, `srtt ${q.srtt} vs median ${median}`);
      // Jitter stays the path's (noise of 1 ms), not the gaps a lost reply would splice in.
      assert.ok(q.rttvar < 1, `jitter ${q.rttvar}`);
      assert.ok(
        Math.abs(q.unansweredPermille - lossPermille) <= 20,
        `${q.unansweredPermille} vs ${lossPermille}`,
      );
      // Ferry itself dropped nothing: the two figures stay apart.
      assert.equal(q.dropPermille, 0);
      assert.equal(q.outliers, 0);
    });
  }

  test("the issue's case (8% loss, 20 ms backend): no 30 ms latency, no 19 ms jitter, loss seen", () => {
    const { q } = serialTrace({ ...BASE, requests: 200, loss: 0.08, seed: 3 });
    assert.ok(q.srtt > 19.5 && q.srtt < 21.5, `srtt ${q.srtt}`);
    assert.ok(q.rttvar < 1, `jitter ${q.rttvar}`);
    assert.ok(q.unansweredPermille > 30, `unanswered ${q.unansweredPermille}`);
  });

  test("one very late sample is rejected; a lasting change is followed after OUTLIER_STREAK samples", () => {
    const q = new Quality(0);
    let t = 0;
    const step = (rtt: number) => {
      q.onClient(10, t);
      q.onBackend(10, t + rtt);
      t += rtt + 10;
    };
    for (let i = 0; i < 50; i++) step(20);
    step(500);
    assert.equal(q.outliers, 1);
    assert.ok(Math.abs(q.srtt - 20) < 0.01);
    for (let i = 0; i < 200; i++) step(200);
    assert.ok(q.outliers <= OUTLIER_STREAK, `${q.outliers} rejected`);
    assert.ok(Math.abs(q.srtt - 200) < 2, `srtt ${q.srtt}`);
  });

  test("a reply with several requests outstanding gives no sample, and an extra reply answers nothing", () => {
    const q = new Quality(0);
    q.onClient(10, 0);
    q.onBackend(10, 20); // srtt 20
    q.onClient(10, 100);
    q.onBackend(10, 120);
    q.onBackend(10, 121); // a second reply to one request
    assert.equal(q.answered, 2);
    assert.equal(q.samples, 2);
    assert.equal(q.unansweredPermille, 0);
  });

  test("a pipelining flow (sending faster than its RTT) is not read as losing its in-flight requests", () => {
    // Request every 10 ms, each answered 25 ms later, none lost; the first reply teaches srtt. Replies
    // interleave with later requests: drive them in time order.
    const q2 = new Quality(0);
    q2.onClient(10, 0);
    q2.onBackend(10, 25);
    const events: [number, boolean][] = [];
    for (let i = 0; i < 500; i++) {
      events.push([100 + i * 10, true]);
      events.push([125 + i * 10, false]);
    }
    events.sort((a, b) => a[0] - b[0] || (a[1] === b[1] ? 0 : a[1] ? 1 : -1));
    for (const [at, isRequest] of events) isRequest ? q2.onClient(10, at) : q2.onBackend(10, at);
    assert.ok(q2.unansweredPermille <= 20, `unanswered ${q2.unansweredPermille}`);
    assert.ok(q2.outstanding <= MAX_OUTSTANDING);
  });
});

describe("estimator properties", () => {
  test("request/response at any RTT, 0–20% loss: srtt near the median, unanswered near the truth", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.2, max: 300, noNaN: true }),
        fc.double({ min: 0, max: 0.2, noNaN: true }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (rtt, loss, think, seed) => {
          const { median, lossPermille, q } = serialTrace({
            requests: 600,
            rtt,
            noise: rtt * 0.02,
            loss,
            think,
            timeout: 3 * rtt + 1,
            seed,
          });
          assert.ok(Math.abs(q.srtt - median) / median < 0.05, `srtt ${q.srtt} vs ${median}`);
          assert.ok(Math.abs(q.unansweredPermille - lossPermille) <= 20);
        },
      ),
      { numRuns: 150, seed: 16 },
    );
  });

  test("any interleaving of requests, replies and drops keeps every figure finite and in range", () => {
    const op = fc.tuple(fc.constantFrom("c", "b", "d"), fc.double({ min: 0, max: 1000, noNaN: true }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const q = new Quality(0);
        const bq = new BackendQuality();
        q.link(bq);
        let t = 0;
        for (const [kind, dt] of ops) {
          t += dt;
          if (kind === "c") q.onClient(1, t);
          else if (kind === "b") q.onBackend(1, t);
          else q.onDrop();
        }
        for (const v of [q.unansweredPermille, q.dropPermille, q.worstLossPermille, bq.unansweredPermille]) {
          assert.ok(Number.isInteger(v) && v >= 0 && v <= 1000, `${v}`);
        }
        assert.ok(q.outstanding >= 0 && q.outstanding <= MAX_OUTSTANDING);
        assert.ok(q.srtt !== q.srtt || (q.srtt >= 0 && Number.isFinite(q.srtt)));
        assert.ok(Number.isFinite(q.rttvar) && q.rttvar >= 0);
        assert.ok(Number.isFinite(bq.peakCost(t)) && bq.peakCost(t) >= 0);
        assert.ok(Number.isFinite(q.priority(t)));
      }),
      { numRuns: 300, seed: 16 },
    );
  });
});

/** Feeds sequence number `seq` (already wrapped) as a datagram with the number at `offset`. */
function feed(tr: SequenceTracker, seq: number, offset = 2): void {
  const d = new Uint8Array(offset + tr.size + 4);
  for (let i = 0; i < tr.size; i++) d[offset + i] = (seq >>> (8 * (tr.size - 1 - i))) & 0xff;
  tr.observe(d, 0, d.byteLength);
}

describe("sequence-aware loss", () => {
  test("in order, with gaps, late and repeated datagrams", () => {
    const tr = new SequenceTracker({ offset: 2, size: 2 });
    for (const s of [10, 11, 13, 12, 12, 16, 16]) feed(tr, s);
    // Expected 10..16 = 7, received 10 11 13 12 16 = 5: 14 and 15 lost; 12 late once; 12 and 16 repeated.
    assert.equal(tr.expected, 7);
    assert.equal(tr.received, 5);
    assert.equal(tr.lost, 2);
    assert.equal(tr.reordered, 1);
    assert.equal(tr.duplicates, 2);
  });

  test("wrap-around at 8, 16 and 32 bits", () => {
    for (const size of [1, 2, 4] as const) {
      const mod = 2 ** (8 * size);
      const tr = new SequenceTracker({ offset: 0, size });
      for (let i = -5; i < 5; i++) if (i !== 0) feed(tr, (mod + i) % mod, 0);
      assert.equal(tr.expected, 10, `size ${size}`);
      assert.equal(tr.lost, 1, `size ${size}`);
      assert.equal(tr.reordered + tr.duplicates, 0);
    }
  });

  test("a jump is ignored once and followed when confirmed (a restarted sender)", () => {
    const tr = new SequenceTracker({ offset: 2, size: 2 });
    for (let s = 0; s < 10; s++) feed(tr, s);
    feed(tr, 40_000); // stray: ignored
    feed(tr, 10);
    assert.equal(tr.expected, 11);
    feed(tr, 30_000);
    feed(tr, 30_001); // confirmed: counting resyncs from here
    feed(tr, 30_002);
    assert.equal(tr.lost, 0);
    assert.equal(tr.expected, 13);
  });

  test("datagrams too short to hold the number are counted apart", () => {
    const tr = new SequenceTracker({ offset: 2, size: 2 });
    tr.observe(new Uint8Array(3), 0, 3);
    assert.equal(tr.short, 1);
    assert.equal(tr.expected, 0);
  });

  test("property: loss, reordering and repeats match the truth across a wrap, at any start", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (size, start, seed) => {
          const s = size as 1 | 2 | 4;
          const mod = 2 ** (8 * s);
          const rng = new Rng(seed);
          // Extended numbers; drops, adjacent swaps and immediate repeats, few enough to stay in the windows.
          const sent: number[] = [];
          for (let i = 0; i < 400; i++) if (rng.nextFloat() >= 0.1) sent.push(start + i);
          for (let i = 0; i + 1 < sent.length; i++) {
            if (rng.nextFloat() < 0.05) [sent[i], sent[i + 1]] = [sent[i + 1], sent[i]];
          }
          const arrivals: number[] = [];
          for (const x of sent) {
            arrivals.push(x);
            if (rng.nextFloat() < 0.03) arrivals.push(x);
          }
          // The oracle, on unwrapped numbers.
          const seen = new Set<number>();
          let max = -Infinity;
          let min = Infinity;
          let reordered = 0;
          let duplicates = 0;
          for (const x of arrivals) {
            if (seen.has(x)) {
              duplicates++;
              continue;
            }
            if (seen.size === 0) min = x;
            if (x < max) reordered++;
            seen.add(x);
            if (x > max) max = x;
          }
          const tr = new SequenceTracker({ offset: 1, size: s });
          for (const x of arrivals) feed(tr, x % mod, 1);
          // Expected counts from the first datagram seen; one older than it is received but not expected.
          assert.equal(tr.expected, max - min + 1);
          assert.equal(tr.received, seen.size);
          assert.equal(tr.lost, Math.max(0, max - min + 1 - seen.size));
          assert.equal(tr.reordered, reordered);
          assert.equal(tr.duplicates, duplicates);
        },
      ),
      { numRuns: 200, seed: 16 },
    );
  });
});

describe("backend figures", () => {
  test("flows feed the backend; its peak EWMA jumps up, falls smoothly and decays while idle", () => {
    const bq = new BackendQuality();
    const q = new Quality(0);
    q.link(bq);
    q.onClient(10, 0);
    q.onBackend(10, 50);
    assert.equal(bq.srtt, 50);
    assert.equal(bq.peakCost(50), 50);
    bq.rtt(5, 50 + PEAK_EWMA_DECAY_MS);
    const w = Math.exp(-1);
    assert.ok(Math.abs(bq.peak - (50 * w + 5 * (1 - w))) < 1e-9);
    bq.rtt(80, 60 + PEAK_EWMA_DECAY_MS); // a slow sample is taken at once
    assert.equal(bq.peak, 80);
    const later = 60 + 3 * PEAK_EWMA_DECAY_MS;
    assert.ok(Math.abs(bq.peakCost(later) - 80 * Math.exp(-2)) < 1e-9);
    q.onClient(10, 1000);
    q.onClient(10, 2000); // the first of these two went unanswered
    assert.equal(bq.answered, 1);
    assert.equal(bq.unanswered, 1);
    assert.equal(bq.unansweredPermille, 500);
  });
});
