/**
 * The native driver's replies in: an upstream socket readable → recvmmsg straight into its listener's tx
 * slots → `core.fromBackend` per reply (the core reads the payload in place) → the reply queued for the
 * listener's sendmmsg at the end of the round (reply_tx.ts). Replies of a closed flow, or of a flow whose
 * listener went, are read and counted by the scratch path (scratch_io.ts `drainOrphan`).
 *
 * @module
 */

import type { RelayCore } from "../../../core/relay_core.ts";
import type { Clock } from "../../relay/core_loop.ts";
import type { Batches } from "./batches.ts";
import { Errno } from "./errno.ts";
import type { Libc } from "./ffi.ts";
import { IOVEC, MMSGHDR, MSG_DONTWAIT, MSG_TRUNC, SEND_CONTROL, SOCKADDR_MAX } from "./layout.ts";
import type { NativeFlow, NativeListener } from "./native_records.ts";
import type { ReplyTx } from "./reply_tx.ts";
import type { ScratchIo } from "./scratch_io.ts";

/** Rounds of recvmmsg per readiness event, so one busy socket cannot starve the others. */
export const ROUNDS = 4;

/** What the reply path needs of its driver. */
export interface ReplyRxHost {
  readonly libc: Libc;
  readonly core: RelayCore;
  readonly clock: Clock;
  readonly tx: ReplyTx;
  readonly io: ScratchIo;
  /** Whether `nf`'s socket is still the driver's. */
  readonly ours: (nf: NativeFlow) => boolean;
  /** Drains the core's events (shell/relay/core_loop.ts). */
  readonly drain: () => void;
  /** Counts a failed receive as the driver does. */
  readonly recvError: (call: string, errno: number) => void;
}

/** Reads replies from upstream sockets and queues them per listener. */
export class ReplyRx {
  readonly #h: ReplyRxHost;
  /** Listeners with replies queued this round. */
  readonly #dirty: NativeListener[] = [];

  /** The reply path of one driver. */
  constructor(host: ReplyRxHost) {
    this.#h = host;
  }

  /** A flow's upstream socket is readable. */
  onUpstream(nf: NativeFlow): void {
    const h = this.#h;
    const nl = nf.nl;
    if (nl.closed || nf.closed) return h.io.drainOrphan(nf, h.ours, h.drain);
    const core = h.core;
    const libc = h.libc;
    const flow = nf.flow;
    const max = nl.listener.config.maxDatagramSize;
    for (let round = 0; round < ROUNDS && !nf.closed && !nl.closed; round++) {
      const b = nl.b;
      if (b.txCount === b.count) h.tx.flush(nl);
      const start = b.txCount;
      const room = b.count - start;
      const n = libc.recvmmsg(nf.fd, b.urxMm[start], room, MSG_DONTWAIT | MSG_TRUNC);
      if (n <= 0) {
        if (n === 0) return;
        const e = libc.errno();
        h.recvError("recv", e);
        if (e !== Errno.ECONNREFUSED) return;
        // The backend's port was unreachable (ICMP): counted against it, as the runtime path does; queued
        // replies may still follow, so read on.
        core.sendFailed(flow, "to_backend", "refused", h.clock());
        if (core.hasEvents) h.drain();
        continue;
      }
      const now = h.clock();
      const dv = b.dv;
      let at = start;
      for (let j = 0; j < n; j++) {
        const slot = start + j;
        const len = dv.getUint32(b.r.urxMm + slot * MMSGHDR.size + MMSGHDR.len, true);
        if (len > max) {
          core.replyTruncated(flow);
          continue;
        }
        // The reply sits in tx slot `slot` (recvmmsg wrote it there): the core reads it in place.
        if (!core.fromBackend(flow, len, now, b.u8, b.r.txData + slot * b.slot)) continue;
        if (at !== slot) {
          const from = b.r.txData + slot * b.slot;
          b.u8.copyWithin(b.r.txData + at * b.slot, from, from + len);
        }
        queueReply(nl, b, at, nf, len);
        at++;
        // Replies read after the one that closed the flow reach `fromBackend` above: counted as late.
      }
      b.txCount = at;
      if (at > start && !nl.dirty) {
        nl.dirty = true;
        this.#dirty.push(nl);
      }
      if (core.hasEvents) h.drain();
      if (n < room) return;
    }
  }

  /** Sends every listener's queued replies (the end of a round, or before its buffers change). */
  flush(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      const nl = dirty[i];
      nl.dirty = false;
      this.#h.tx.flush(nl);
    }
    dirty.length = 0;
  }
}

/** Fills tx slot `at` of `b` with a reply of `len` bytes to `nf`'s client. */
function queueReply(nl: NativeListener, b: Batches, at: number, nf: NativeFlow, len: number): void {
  const r = b.r;
  b.dv.setUint32(r.txIov + at * IOVEC.size + IOVEC.len, len, true);
  b.txLen[at] = len;
  b.u8.set(nf.name, r.txName + at * SOCKADDR_MAX);
  const pkt = nl.info.pktinfo ? nf.pkt : null;
  if (pkt !== null) b.u8.set(pkt, r.txCtl + at * SEND_CONTROL);
  b.txPktLen[at] = pkt === null ? 0 : pkt.byteLength;
  b.txFlow[at] = nf.flow;
}
