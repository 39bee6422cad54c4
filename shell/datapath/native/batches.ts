/**
 * The batch buffers of one native listener, in one block of libc memory that never moves:
 *
 * - rx: `count` slots the listener's recvmmsg fills (data, client sockaddr, control for PKTINFO and
 *   SO_RXQ_OVFL), with the mmsghdr array pointing at them;
 * - up: per rx slot, a 1-iovec and a 2-iovec mmsghdr (PROXY header + payload) for sending that slot's
 *   datagram on its flow's connected upstream socket, without copying it (a run of one flow's datagrams
 *   goes out in one sendmmsg);
 * - tx: `count` reply slots, filled by recvmmsg on upstream sockets (`urx` mmsghdrs: no name, capacity
 *   iovecs) and sent to clients in one sendmmsg (`tx` mmsghdrs, built at flush time by `packReplies`:
 *   client name, PKTINFO, and consecutive replies of one flow as one UDP GSO message);
 * - a run of one flow's equal-sized datagrams can go upstream as one UDP GSO sendmsg (`upGso`).
 *
 * Every pointer written into these structs points into the same block, and every `Ptr` the hot path
 * passes to libc is made here once. The block is freed only by `free`, after the driver stopped using it.
 *
 * @module
 */

import type { Libc, Memory, Ptr } from "./ffi.ts";
import {
  CMSGHDR,
  cmsgSpace,
  GSO_MAX_BYTES,
  GSO_MAX_SEGMENTS,
  IOVEC,
  MMSGHDR,
  MSGHDR,
  RECV_CONTROL,
  SEND_CONTROL,
  setU64,
  SOCKADDR_IN,
  SOCKADDR_IN6,
  SOCKADDR_MAX,
  SOL_UDP,
  UDP_SEGMENT,
  writeCmsgHeader,
  writeIovec,
  writeMsghdr,
} from "./layout.ts";

/** Largest PROXY v2 header the up slots hold (IPv6: 16 + 36 bytes; TLVs are not sent on UDP). */
export const HEADER_ROOM = 64;

/** Batch memory budget per direction: big datagrams get fewer slots (at least MIN_BATCH). */
const BUDGET = 1 << 20;
/** Most datagrams per recvmmsg/sendmmsg. */
export const MAX_BATCH = 64;
const MIN_BATCH = 8;

/** Offsets (from the block start) of each region. */
interface Regions {
  rxData: number;
  txData: number;
  rxName: number;
  txName: number;
  rxCtl: number;
  txCtl: number;
  rxIov: number;
  txIov: number;
  urxIov: number;
  upIov: number;
  upIov2: number;
  rxMm: number;
  txMm: number;
  urxMm: number;
  upMm: number;
  upMm2: number;
  hdr: number;
  /** One msghdr + UDP_SEGMENT cmsg for a GSO send upstream; one msghdr for a reply sent alone. */
  upGso: number;
  one: number;
  end: number;
}

/** The GSO cmsg room after the msghdr in the `upGso` region. */
const GSO_CMSG = cmsgSpace(2);

function layoutRegions(count: number, slot: number): Regions {
  let at = 0;
  const take = (bytes: number) => {
    const off = at;
    at += (bytes + 63) & ~63; // cache-line aligned regions
    return off;
  };
  const r = {
    rxData: take(count * slot),
    txData: take(count * slot),
    rxName: take(count * SOCKADDR_MAX),
    txName: take(count * SOCKADDR_MAX),
    rxCtl: take(count * RECV_CONTROL),
    txCtl: take(count * SEND_CONTROL),
    rxIov: take(count * IOVEC.size),
    txIov: take(count * IOVEC.size),
    urxIov: take(count * IOVEC.size),
    upIov: take(count * IOVEC.size),
    upIov2: take(count * 2 * IOVEC.size),
    rxMm: take(count * MMSGHDR.size),
    txMm: take(count * MMSGHDR.size),
    urxMm: take(count * MMSGHDR.size),
    upMm: take(count * MMSGHDR.size),
    upMm2: take(count * MMSGHDR.size),
    hdr: take(count * HEADER_ROOM),
    upGso: take(MSGHDR.size + GSO_CMSG),
    one: take(MSGHDR.size),
    end: 0,
  };
  r.end = at;
  return r;
}

/** Slots per batch for datagrams of up to `slot` bytes. */
export function batchSize(slot: number): number {
  return Math.max(MIN_BATCH, Math.min(MAX_BATCH, Math.floor(BUDGET / slot)));
}

/** The batch buffers of one listener. Fields are public for the driver's hot path. */
export class Batches {
  /** Slots per direction. */
  readonly count: number;
  /** Bytes per data slot: the listener's max_datagram_size + 1, so an oversized datagram shows as too long. */
  readonly slot: number;
  readonly mem: Memory;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly r: Regions;
  /** recvmmsg on the listener, from slot 0. */
  readonly rxMm: Ptr;
  /** recvmmsg on an upstream into tx slots i.. (refs per i, made once). */
  readonly urxMm: readonly Ptr[];
  /** sendmmsg of replies from tx slot i. */
  readonly txMm: readonly Ptr[];
  /** sendmsg/sendmmsg of rx slot i upstream, without and with a PROXY header. */
  readonly upMm: readonly Ptr[];
  readonly upMm2: readonly Ptr[];
  /** The flow each queued reply goes to (grouping, and counting a failed send). */
  readonly txFlow: unknown[];
  /** Per tx slot: reply length, and bytes of PKTINFO cmsg at the start of its control room. */
  readonly txLen: Int32Array;
  readonly txPktLen: Int32Array;
  /** Per message `packReplies` built: its first tx slot and how many slots (GSO segments) it carries. */
  readonly msgFirst: Int32Array;
  readonly msgSlots: Int32Array;
  /** Per rx slot: the length its up iovec was set to. */
  readonly upLen: Int32Array;
  readonly upGso: Ptr;
  readonly one: Ptr;
  /** Replies queued in tx slots [0, txCount). */
  txCount = 0;
  readonly #views: (Uint8Array | undefined)[] = [];

  /** Allocates and links the buffers for datagrams up to `maxDatagram` bytes from clients of `family`. */
  constructor(readonly libc: Libc, maxDatagram: number, family: 4 | 6) {
    this.slot = maxDatagram + 1;
    this.count = batchSize(this.slot);
    const n = this.count;
    const r = this.r = layoutRegions(n, this.slot);
    this.mem = libc.alloc(r.end);
    this.u8 = this.mem.u8;
    this.dv = this.mem.dv;
    const base = this.mem.addr;
    const dv = this.dv;
    const nameLen = family === 4 ? SOCKADDR_IN.size : SOCKADDR_IN6.size;
    for (let i = 0; i < n; i++) {
      const data = i * this.slot;
      writeIovec(dv, r.rxIov + i * IOVEC.size, base + r.rxData + data, this.slot);
      writeIovec(dv, r.urxIov + i * IOVEC.size, base + r.txData + data, this.slot);
      writeIovec(dv, r.txIov + i * IOVEC.size, base + r.txData + data, 0);
      writeIovec(dv, r.upIov + i * IOVEC.size, base + r.rxData + data, 0);
      writeIovec(dv, r.upIov2 + 2 * i * IOVEC.size, base + r.hdr + i * HEADER_ROOM, 0);
      writeIovec(dv, r.upIov2 + (2 * i + 1) * IOVEC.size, base + r.rxData + data, 0);
      const m = MMSGHDR.size * i;
      writeMsghdr(
        dv,
        r.rxMm + m,
        base + r.rxName + i * SOCKADDR_MAX,
        nameLen,
        base + r.rxIov + i * IOVEC.size,
        1,
        base + r.rxCtl + i * RECV_CONTROL,
        RECV_CONTROL,
      );
      writeMsghdr(dv, r.urxMm + m, 0, 0, base + r.urxIov + i * IOVEC.size, 1, 0, 0);
      // Replies carry a PKTINFO cmsg only on listeners that need one: msg_controllen stays 0 otherwise.
      writeMsghdr(
        dv,
        r.txMm + m,
        base + r.txName + i * SOCKADDR_MAX,
        nameLen,
        base + r.txIov + i * IOVEC.size,
        1,
        base + r.txCtl + i * SEND_CONTROL,
        0,
      );
      writeMsghdr(dv, r.upMm + m, 0, 0, base + r.upIov + i * IOVEC.size, 1, 0, 0);
      writeMsghdr(dv, r.upMm2 + m, 0, 0, base + r.upIov2 + 2 * i * IOVEC.size, 2, 0, 0);
    }
    const refs = (region: number) =>
      Array.from(
        { length: n },
        (_, i) => libc.ref(this.mem, region + i * MMSGHDR.size, (n - i) * MMSGHDR.size),
      );
    this.rxMm = libc.ref(this.mem, r.rxMm, n * MMSGHDR.size);
    this.urxMm = refs(r.urxMm);
    this.txMm = refs(r.txMm);
    this.upMm = refs(r.upMm);
    this.upMm2 = refs(r.upMm2);
    this.txFlow = new Array(n).fill(null);
    this.txLen = new Int32Array(n);
    this.txPktLen = new Int32Array(n);
    this.msgFirst = new Int32Array(n);
    this.msgSlots = new Int32Array(n);
    this.upLen = new Int32Array(n);
    writeMsghdr(dv, r.upGso, 0, 0, 0, 0, base + r.upGso + MSGHDR.size, GSO_CMSG);
    writeCmsgHeader(dv, r.upGso + MSGHDR.size, SOL_UDP, UDP_SEGMENT, 2);
    this.upGso = libc.ref(this.mem, r.upGso, MSGHDR.size + GSO_CMSG);
    this.one = libc.ref(this.mem, r.one, MSGHDR.size);
  }

  /**
   * A view of rx slot `i`'s first `len` bytes, for the core. Reused while the length repeats (steady
   * traffic often has one size), so forwarding usually allocates nothing; valid until the next batch.
   */
  rxView(i: number, len: number): Uint8Array {
    let v = this.#views[i];
    if (v === undefined || v.byteLength !== len) {
      const at = this.r.rxData + i * this.slot;
      v = this.u8.subarray(at, at + len);
      this.#views[i] = v;
    }
    return v;
  }

  /** Resets msg_namelen and msg_controllen of rx slots [0, n) (the kernel overwrote them with lengths). */
  resetRx(n: number, nameLen: number): void {
    const dv = this.dv;
    for (let i = 0, m = this.r.rxMm; i < n; i++, m += MMSGHDR.size) {
      dv.setUint32(m + MSGHDR.namelen, nameLen, true);
      dv.setUint32(m + MSGHDR.controllen, RECV_CONTROL, true);
    }
  }

  /** Sets the length of an up iovec (1-iovec form) of rx slot `i`. */
  setUpLen(i: number, len: number): void {
    this.dv.setUint32(this.r.upIov + i * IOVEC.size + IOVEC.len, len, true);
    this.upLen[i] = len;
  }

  /**
   * The GSO segment size for sending up slots [start, start + n) in one sendmsg, or 0 when they cannot
   * go as one (sizes differ, except a shorter last one; an empty datagram; too many bytes in all).
   */
  upSegment(start: number, n: number): number {
    const seg = this.upLen[start];
    let total = seg;
    for (let k = 1; k < n; k++) {
      const len = this.upLen[start + k];
      total += len;
      if (len > seg || (len < seg && k < n - 1) || len === 0) return 0;
    }
    return seg > 0 && n <= GSO_MAX_SEGMENTS && total <= GSO_MAX_BYTES ? seg : 0;
  }

  /** Points the GSO msghdr at up slots [start, start + n) with segment size `seg`. */
  upGsoMsg(start: number, n: number, seg: number): Ptr {
    const dv = this.dv;
    const at = this.r.upGso;
    setU64(dv, at + MSGHDR.iov, this.mem.addr + this.r.upIov + start * IOVEC.size);
    setU64(dv, at + MSGHDR.iovlen, n);
    dv.setUint16(at + MSGHDR.size + CMSGHDR.data, seg, true);
    return this.upGso;
  }

  /**
   * Builds the tx mmsghdrs for the replies in slots [0, n): one message per reply, or, with `gso`, one per
   * run of consecutive replies to one flow that `canGso` allows (equal sizes but a shorter last one),
   * carrying a UDP_SEGMENT cmsg. Returns the message count (see msgFirst/msgSlots).
   */
  packReplies(n: number, nameLen: number, gso: boolean, canGso: (flow: unknown) => boolean): number {
    const dv = this.dv;
    const r = this.r;
    const base = this.mem.addr;
    let m = 0;
    for (let i = 0; i < n;) {
      const flow = this.txFlow[i];
      const seg = this.txLen[i];
      let k = 1;
      if (gso && seg > 0 && i + 1 < n && this.txFlow[i + 1] === flow && canGso(flow)) {
        let total = seg;
        while (i + k < n && k < GSO_MAX_SEGMENTS && this.txFlow[i + k] === flow) {
          const len = this.txLen[i + k];
          if (len > seg || len === 0 || total + len > GSO_MAX_BYTES) break;
          total += len;
          k++;
          if (len < seg) break;
        }
      }
      const mm = r.txMm + m * MMSGHDR.size;
      const ctl = r.txCtl + i * SEND_CONTROL;
      let clen = this.txPktLen[i];
      if (k > 1) {
        writeCmsgHeader(dv, ctl + clen, SOL_UDP, UDP_SEGMENT, 2);
        dv.setUint16(ctl + clen + CMSGHDR.data, seg, true);
        clen += GSO_CMSG;
      }
      writeMsghdr(
        dv,
        mm,
        base + r.txName + i * SOCKADDR_MAX,
        nameLen,
        base + r.txIov + i * IOVEC.size,
        k,
        clen > 0 ? base + ctl : 0,
        clen,
      );
      this.msgFirst[m] = i;
      this.msgSlots[m] = k;
      m++;
      i += k;
    }
    return m;
  }

  /** A msghdr for tx slot `i` alone, without GSO (a GSO message the kernel refused goes out this way). */
  oneReply(i: number, nameLen: number): Ptr {
    const r = this.r;
    const base = this.mem.addr;
    const pkt = this.txPktLen[i];
    writeMsghdr(
      this.dv,
      r.one,
      base + r.txName + i * SOCKADDR_MAX,
      nameLen,
      base + r.txIov + i * IOVEC.size,
      1,
      pkt > 0 ? base + r.txCtl + i * SEND_CONTROL : 0,
      pkt,
    );
    return this.one;
  }

  /** Copies a PROXY header into rx slot `i`'s header room and sets both lengths of its 2-iovec form. */
  setUpHeader(i: number, header: Uint8Array, len: number): void {
    const at = this.r.upIov2 + 2 * i * IOVEC.size;
    this.u8.set(header, this.r.hdr + i * HEADER_ROOM);
    setU64(this.dv, at + IOVEC.len, header.byteLength);
    setU64(this.dv, at + IOVEC.size + IOVEC.len, len);
  }

  /** Frees the memory. No view of it may be used afterwards. */
  free(): void {
    this.libc.free(this.mem);
  }
}
