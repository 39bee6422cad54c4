/**
 * The native driver's scratch I/O: one preallocated area (a control-call region for socket helpers, one
 * mmsghdr, one iovec, a whole datagram) for the rare paths that send or read one datagram outside the
 * batches: the datagram buffered while a flow awaited its backend, and the replies still arriving at a
 * closed flow's socket (its late-reply window) or at a flow whose listener was unbound.
 *
 * @module
 */

import type { RelayCore } from "../../../core/relay_core.ts";
import type { Clock } from "../../relay/core_loop.ts";
import { HEADER_ROOM } from "./batches.ts";
import { Errno, type ErrnoCounts } from "./errno.ts";
import type { Libc, Memory, Ptr } from "./ffi.ts";
import { IOVEC, MMSGHDR, MSG_DONTWAIT, MSG_TRUNC, writeIovec, writeMsghdr } from "./layout.ts";
import type { NativeFlow } from "./native_records.ts";
import { Scratch, SCRATCH_CONTROL } from "./sockets.ts";

/** Scratch layout after the control-call area: one mmsghdr, one iovec, then a whole datagram. */
const S_MM = SCRATCH_CONTROL, S_IOV = S_MM + MMSGHDR.size, S_DATA = S_IOV + 2 * IOVEC.size;
const S_SIZE = S_DATA + HEADER_ROOM + 65_536;

/** The scratch area and the one-datagram sends and reads that use it. */
export class ScratchIo {
  readonly #libc: Libc;
  readonly #core: RelayCore;
  readonly #clock: Clock;
  readonly #errors: ErrnoCounts;
  readonly #recvError: (call: string, errno: number) => void;
  readonly #mem: Memory;
  readonly #mm: Ptr;
  /** The socket helpers' view of the area (sockets.ts). */
  readonly scratch: Scratch;

  /** Allocates the area; `recvError` counts a failed receive as the driver does. */
  constructor(
    libc: Libc,
    core: RelayCore,
    clock: Clock,
    errors: ErrnoCounts,
    recvError: (call: string, errno: number) => void,
  ) {
    this.#libc = libc;
    this.#core = core;
    this.#clock = clock;
    this.#errors = errors;
    this.#recvError = recvError;
    this.#mem = libc.alloc(S_SIZE);
    this.scratch = new Scratch(libc, this.#mem);
    this.#mm = libc.ref(this.#mem, S_MM, MMSGHDR.size);
    writeMsghdr(this.#mem.dv, S_MM, 0, 0, this.#mem.addr + S_IOV, 1, 0, 0);
  }

  /** Frees the area (once nothing can use it any more). */
  free(): void {
    this.#libc.free(this.#mem);
  }

  /**
   * Replies of a closed flow (its socket in the late-reply window: counted `late` by the core) or of a flow
   * whose listener was unbound (counted as the runtime path counts a send on a closed listener socket).
   * Read either way, so the socket does not stay readable; `ours` says the socket is still the driver's
   * and `drain` drains the core's events (shell/relay/core_loop.ts).
   */
  drainOrphan(nf: NativeFlow, ours: (nf: NativeFlow) => boolean, drain: () => void): void {
    const libc = this.#libc;
    const mem = this.#mem;
    writeIovec(mem.dv, S_IOV, mem.addr + S_DATA, 65_536);
    // While the socket is ours (a drain below may close the flow, which keeps the socket a while).
    for (let k = 0; k < 64 && ours(nf); k++) {
      const n = libc.recvmmsg(nf.fd, this.#mm, 1, MSG_DONTWAIT | MSG_TRUNC);
      if (n <= 0) {
        if (n < 0) this.#recvError("recv", libc.errno());
        return;
      }
      const len = mem.dv.getUint32(S_MM + MMSGHDR.len, true);
      const now = this.#clock();
      if (len > nf.nl.listener.config.maxDatagramSize && !nf.closed) this.#core.replyTruncated(nf.flow);
      else if (this.#core.fromBackend(nf.flow, len, now)) {
        this.#core.sendFailed(nf.flow, "to_client", "error", now);
      }
      if (this.#core.hasEvents) drain();
    }
  }

  /** Sends a datagram held in JS memory (the one buffered while a flow awaited its backend) via scratch. */
  sendCopy(nf: NativeFlow, header: Uint8Array | null, data: Uint8Array, now: number): void {
    const mem = this.#mem;
    const h = header?.byteLength ?? 0;
    if (header !== null) mem.u8.set(header, S_DATA);
    mem.u8.set(data.subarray(0, 65_536 + HEADER_ROOM - h), S_DATA + h);
    writeIovec(mem.dv, S_IOV, mem.addr + S_DATA, h + data.byteLength);
    if (this.#libc.sendmsg(nf.fd, this.#mm, 0) < 0) {
      const e = this.#libc.errno();
      this.#errors.add("send", e);
      this.#core.sendFailed(nf.flow, "to_backend", e === Errno.ECONNREFUSED ? "refused" : "error", now);
    }
  }
}
