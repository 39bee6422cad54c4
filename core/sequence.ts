/**
 * Sequence-aware loss for media flows (RTP and the like): a cluster may name where each datagram carries a
 * sequence number (`offset`, `size` of 1, 2 or 4 bytes, big-endian), and each direction of a flow counts
 * from its gaps, after RFC 3550 appendix A.1:
 *
 * - `expected` grows by the forward step of the highest number seen (the first datagram counts 1), which is
 *   the RFC's extended_max − base_seq + 1 kept incrementally, so wrap-around needs no cycle counter: a step
 *   is taken modulo 2^(8·size).
 * - A forward step below `maxDropout` advances the highest; a step back of at most `maxMisorder` is a late
 *   datagram: `reordered`, or `duplicates` when the 32-entry window of recently seen numbers has it already
 *   (an exact repeat of the highest is always a duplicate). Anything else is a jump: ignored once, and when
 *   the very next number follows it (the RFC's bad_seq), the stream restarted there and counting resyncs.
 * - `received` counts datagrams that were not duplicates; lost = max(0, expected − received).
 *
 * Each datagram costs a few integer operations and no allocation. Datagrams too short to hold the number
 * are counted (`short`) and otherwise ignored.
 *
 * @module
 */

/** Where a cluster's datagrams carry a sequence number. */
export interface SequenceSettings {
  /** Byte offset of the number in the payload (after any PROXY header Ferry adds, i.e. as the client sent it). */
  readonly offset: number;
  /** Its width in bytes, big-endian. */
  readonly size: 1 | 2 | 4;
}

/** Sequence counters of one direction; a backend sums its flows' into one of these. */
export class SequenceCounts {
  /** Datagrams the numbers say were sent. */
  expected = 0;
  /** Datagrams seen, duplicates excluded. */
  received = 0;
  /** Datagrams that arrived after a higher number. */
  reordered = 0;
  /** Datagrams whose number was already seen. */
  duplicates = 0;

  /** Datagrams lost (never negative: late datagrams from before the first one seen can exceed it). */
  get lost(): number {
    return this.expected > this.received ? this.expected - this.received : 0;
  }

  /** Lost over expected, in per-mille (0 before any datagram). */
  get lossPermille(): number {
    return this.expected === 0 ? 0 : Math.round((this.lost * 1000) / this.expected);
  }
}

/** The tracker of one direction of one flow. */
export class SequenceTracker extends SequenceCounts {
  readonly offset: number;
  readonly size: 1 | 2 | 4;
  /** Datagrams too short to carry the number. */
  short = 0;
  /** Steps forward up to this advance the highest number; larger ones are jumps. */
  readonly maxDropout: number;
  /** Steps back up to this are late datagrams; larger ones are jumps. */
  readonly maxMisorder: number;
  readonly #mask: number;
  readonly #modulus: number;
  #started = false;
  #max = 0;
  /** Bit i set: number (max − i) was seen. */
  #recent = 0;
  /** After a jump, the number that would confirm a restart; -1 if none. */
  #badSeq = -1;
  /** The backend's totals of this direction, or null: every change is added there too. */
  totals: SequenceCounts | null = null;

  /** A tracker reading `settings.size` bytes at `settings.offset`. */
  constructor(settings: SequenceSettings) {
    super();
    this.offset = settings.offset;
    this.size = settings.size;
    this.#modulus = 2 ** (8 * settings.size);
    this.#mask = settings.size === 4 ? -1 : this.#modulus - 1;
    // RFC 3550's 3000 and 100 for 16 bits; narrower numbers get proportionally smaller windows.
    this.maxMisorder = Math.min(100, this.#modulus / 8);
    this.maxDropout = Math.min(3000, this.#modulus / 2);
  }

  /** The highest number seen (not extended), or -1 before the first. */
  get highest(): number {
    return this.#started ? this.#max : -1;
  }

  /** Reads and counts the number of the datagram of `len` bytes at `data[at]`. */
  observe(data: Uint8Array, at: number, len: number): void {
    const o = at + this.offset;
    if (this.offset + this.size > len) {
      this.short++;
      return;
    }
    let seq: number;
    if (this.size === 2) seq = (data[o] << 8) | data[o + 1];
    else if (this.size === 1) seq = data[o];
    else seq = ((data[o] << 24) | (data[o + 1] << 16) | (data[o + 2] << 8) | data[o + 3]) >>> 0;
    if (!this.#started) return this.#restart(seq);
    // The step modulo 2^bits, unsigned.
    const step = this.size === 4 ? (seq - this.#max) >>> 0 : (seq - this.#max) & this.#mask;
    const t = this.totals;
    if (step === 0) {
      this.duplicates++;
      if (t !== null) t.duplicates++;
    } else if (step < this.maxDropout) {
      this.#max = seq;
      this.#recent = step < 32 ? (this.#recent << step) | 1 : 1;
      this.#badSeq = -1;
      this.expected += step;
      this.received++;
      if (t !== null) {
        t.expected += step;
        t.received++;
      }
    } else if (step > this.#modulus - this.maxMisorder) {
      const back = this.#modulus - step;
      if (back < 32) {
        const bit = 1 << back;
        if ((this.#recent & bit) !== 0) {
          this.duplicates++;
          if (t !== null) t.duplicates++;
          return;
        }
        this.#recent |= bit;
      }
      // Older than the window: a repeat cannot be told from a late datagram, so it counts as late.
      this.reordered++;
      this.received++;
      if (t !== null) {
        t.reordered++;
        t.received++;
      }
    } else if (seq === this.#badSeq) {
      this.#restart(seq);
    } else {
      this.#badSeq = this.size === 4 ? (seq + 1) >>> 0 : (seq + 1) & this.#mask;
    }
  }

  #restart(seq: number): void {
    this.#started = true;
    this.#max = seq;
    this.#recent = 1;
    this.#badSeq = -1;
    this.expected++;
    this.received++;
    if (this.totals !== null) {
      this.totals.expected++;
      this.totals.received++;
    }
  }
}
