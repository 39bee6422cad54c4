/**
 * The native driver's way up: a run of one flow's datagrams, prepared in the receive batch's up
 * mmsghdrs, goes to the flow's connected upstream socket as one UDP GSO sendmsg when the datagrams are
 * equal-sized, else with sendmmsg; every datagram that cannot go is reported to the core as a failed send
 * towards the backend (a refusal once, as a plain send would see it).
 *
 * @module
 */

import type { RelayCore } from "../../../core/relay_core.ts";
import type { Batches } from "./batches.ts";
import { Errno, type ErrnoCounts } from "./errno.ts";
import type { Libc, Ptr } from "./ffi.ts";
import type { NativeFlow } from "./native_records.ts";

/** Sends client datagrams to their flows' upstream sockets. */
export class UpstreamTx {
  readonly #libc: Libc;
  readonly #core: RelayCore;
  readonly #errors: ErrnoCounts;
  readonly #gsoSaved: { up: number };

  /** A sender over `libc` reporting to `core`; counts into `errors` and `gsoSaved.up` (the driver's). */
  constructor(libc: Libc, core: RelayCore, errors: ErrnoCounts, gsoSaved: { up: number }) {
    this.#libc = libc;
    this.#core = core;
    this.#errors = errors;
    this.#gsoSaved = gsoSaved;
  }

  /** Sends `count` datagrams of `nf` prepared in `b` from slot `start`: one GSO sendmsg when it can. */
  sendRun(nf: NativeFlow, b: Batches, start: number, count: number, now: number): void {
    const seg = count > 1 && nf.nl.gso && !nf.noGso ? b.upSegment(start, count) : 0;
    if (seg > 0) {
      if (this.#libc.sendmsg(nf.fd, b.upGsoMsg(start, count, seg), 0) >= 0) {
        this.#gsoSaved.up += count - 1;
        return;
      }
      const e = this.#libc.errno();
      if (e === Errno.ECONNREFUSED) {
        // As a plain send would: the refusal costs the first datagram; the rest go on.
        this.#errors.add("send", e);
        this.#core.sendFailed(nf.flow, "to_backend", "refused", now);
        start++;
        count--;
      } else if (e === Errno.EAGAIN || e === Errno.ENOBUFS) {
        this.#errors.add("send", e);
        for (let k = 0; k < count; k++) this.#core.sendFailed(nf.flow, "to_backend", "error", now);
        return;
      } else {
        this.#errors.add("send(gso)", e);
        nf.noGso = true;
      }
    }
    this.send(nf, b.upMm, start, count, now);
  }

  /** Sends `count` prepared up mmsghdrs from `refs[start]` on the flow's socket; counts every failure. */
  send(nf: NativeFlow, refs: readonly Ptr[], start: number, count: number, now: number): void {
    const libc = this.#libc;
    let off = 0;
    while (off < count) {
      const k = count - off === 1
        ? (libc.sendmsg(nf.fd, refs[start + off], 0) >= 0 ? 1 : -1)
        : libc.sendmmsg(nf.fd, refs[start + off], count - off, 0);
      if (k > 0) {
        off += k;
        continue;
      }
      const e = libc.errno();
      this.#errors.add("send", e);
      this.#core.sendFailed(nf.flow, "to_backend", e === Errno.ECONNREFUSED ? "refused" : "error", now);
      off++; // that datagram is lost; the next may go (a refusal is reported once)
    }
  }
}
