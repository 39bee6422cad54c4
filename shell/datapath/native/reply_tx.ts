/**
 * The native driver's reply path out: a listener's queued replies (in its tx slots, filled by
 * `NativeUdp`) go to their clients with sendmmsg, runs to one client as UDP GSO messages; a reply that
 * cannot go is reported to the core against its flow, and a GSO message the kernel refuses is resent one
 * by one (and that flow stops using GSO).
 *
 * @module
 */

import type { Flow } from "../../../core/flow.ts";
import type { RelayCore } from "../../../core/relay_core.ts";
import type { Clock } from "../../relay/core_loop.ts";
import { Errno, type ErrnoCounts } from "./errno.ts";
import type { Libc } from "./ffi.ts";
import type { NativeFlow, NativeListener } from "./native_records.ts";

/** Sends the queued replies of native listeners. */
export class ReplyTx {
  readonly #libc: Libc;
  readonly #core: RelayCore;
  readonly #clock: Clock;
  readonly #errors: ErrnoCounts;
  readonly #canGso: (flow: unknown) => boolean;
  readonly #gsoSaved: { down: number };

  /** A sender over `libc` reporting to `core`; counts into `errors` and `gsoSaved.down` (the driver's). */
  constructor(
    libc: Libc,
    core: RelayCore,
    clock: Clock,
    errors: ErrnoCounts,
    canGso: (flow: unknown) => boolean,
    gsoSaved: { down: number },
  ) {
    this.#libc = libc;
    this.#core = core;
    this.#clock = clock;
    this.#errors = errors;
    this.#canGso = canGso;
    this.#gsoSaved = gsoSaved;
  }

  /**
   * Sends a listener's queued replies with sendmmsg (runs to one flow as GSO messages); a reply that
   * cannot go is counted against its flow.
   */
  flush(nl: NativeListener): void {
    const b = nl.b;
    const n = b.txCount;
    if (n === 0) return;
    b.txCount = 0;
    const libc = this.#libc;
    const m = b.packReplies(n, nl.nameLen, nl.gso, this.#canGso);
    this.#gsoSaved.down += n - m;
    let off = 0;
    while (off < m) {
      const k = nl.closed ? -1 : libc.sendmmsg(nl.info.fd, b.txMm[off], m - off, 0);
      if (k > 0) {
        off += k;
        continue;
      }
      const e = nl.closed ? Errno.EBADF : libc.errno();
      const slots = b.msgSlots[off];
      if (slots > 1 && e !== Errno.EAGAIN && e !== Errno.ENOBUFS && e !== Errno.EBADF) {
        // The kernel refused this GSO message (segments above the path MTU, say): its replies go one by
        // one, and the flow stops using GSO.
        this.#errors.add("sendmmsg(gso)", e);
        ((b.txFlow[b.msgFirst[off]] as Flow).handle as NativeFlow).noGso = true;
        for (let i = b.msgFirst[off], end = i + slots; i < end; i++) {
          if (libc.sendmsg(nl.info.fd, b.oneReply(i, nl.nameLen), 0) >= 0) continue;
          this.#errors.add("sendmmsg", libc.errno());
          this.#core.sendFailed(b.txFlow[i] as Flow, "to_client", "error", this.#clock());
        }
        off++;
        continue;
      }
      this.#errors.add("sendmmsg", e);
      const now = this.#clock();
      // A full socket buffer (or a closed socket) takes none of the rest; any other error costs one message.
      const last = e === Errno.EAGAIN || e === Errno.ENOBUFS || e === Errno.EBADF ? m : off + 1;
      for (; off < last; off++) {
        for (let i = b.msgFirst[off], end = i + b.msgSlots[off]; i < end; i++) {
          this.#core.sendFailed(b.txFlow[i] as Flow, "to_client", "error", now);
        }
      }
    }
    b.txFlow.fill(null, 0, n);
  }
}
