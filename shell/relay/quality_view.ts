/**
 * The core's quality figures as the admin API shows them: a backend's (core/backend_quality.ts) and a
 * flow's sequence counters, rounded, and the merge of one backend's figures across workers.
 *
 * @module
 */

import type { BackendQuality } from "../../core/backend_quality.ts";
import type { Quality } from "../../core/quality.ts";
import type { SequenceCounts } from "../../core/sequence.ts";
import type { BackendQualityInfo, SequenceInfo } from "../../core/control_api.ts";

/** One direction's sequence counters. */
export function sequenceInfo(c: SequenceCounts): SequenceInfo {
  return {
    expected: c.expected,
    received: c.received,
    lost: c.lost,
    reordered: c.reordered,
    duplicates: c.duplicates,
    lossPermille: c.lossPermille,
  };
}

/** A flow's sequence counters per direction, or null when its cluster reads no sequence number. */
export function flowSequence(q: Quality): { up: SequenceInfo; down: SequenceInfo } | null {
  if (q.sequenceUp === null || q.sequenceDown === null) return null;
  return { up: sequenceInfo(q.sequenceUp), down: sequenceInfo(q.sequenceDown) };
}

/** A backend's quality as of `now` (the core's clock). */
export function backendQualityInfo(q: BackendQuality, now: number): BackendQualityInfo {
  return {
    latencyMs: q.srtt === q.srtt ? round3(q.srtt) : null,
    jitterMs: round3(q.rttvar),
    peakEwmaMs: round3(q.peakCost(now)),
    samples: q.samples,
    answered: q.answeredTotal,
    unanswered: q.unansweredTotal,
    unansweredPermille: q.unansweredPermille,
    sequenceUp: sequenceInfo(q.sequenceUp),
    sequenceDown: sequenceInfo(q.sequenceDown),
  };
}

function sumSequence(a: SequenceInfo, b: SequenceInfo): SequenceInfo {
  const expected = a.expected + b.expected;
  const received = a.received + b.received;
  const lost = expected > received ? expected - received : 0;
  return {
    expected,
    received,
    lost,
    reordered: a.reordered + b.reordered,
    duplicates: a.duplicates + b.duplicates,
    lossPermille: expected === 0 ? 0 : Math.round((lost * 1000) / expected),
  };
}

/**
 * One backend's figures from two workers: counters summed, latencies weighted by samples, the unanswered
 * ratio weighted by judged requests, the peak EWMA cost the higher (the balancers of both see their own).
 */
export function mergeBackendQuality(a: BackendQualityInfo, b: BackendQualityInfo): BackendQualityInfo {
  const samples = a.samples + b.samples;
  const mean = (x: number | null, y: number | null, wx: number, wy: number) =>
    x === null ? y : y === null ? x : wx + wy === 0 ? (x + y) / 2 : round3((x * wx + y * wy) / (wx + wy));
  const ja = a.answered + a.unanswered;
  const jb = b.answered + b.unanswered;
  return {
    latencyMs: mean(a.latencyMs, b.latencyMs, a.samples, b.samples),
    jitterMs: mean(a.jitterMs, b.jitterMs, a.samples, b.samples) ?? 0,
    peakEwmaMs: Math.max(a.peakEwmaMs, b.peakEwmaMs),
    samples,
    answered: a.answered + b.answered,
    unanswered: a.unanswered + b.unanswered,
    unansweredPermille: Math.round(mean(a.unansweredPermille, b.unansweredPermille, ja, jb) ?? 0),
    sequenceUp: sumSequence(a.sequenceUp, b.sequenceUp),
    sequenceDown: sumSequence(a.sequenceDown, b.sequenceDown),
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
