/**
 * A small classic-BPF interpreter for tests: runs a socket filter over a packet the way Linux does for a
 * UDP socket (data at the UDP header, the IP header through SKF_NET_OFF), and checks what the kernel's
 * verifier would (length, jump targets in range, ends in a return, known opcodes).
 *
 * @module
 */

import { BPF, BPF_MAX_INSNS, type BpfInsn, SKF_NET_OFF } from "../../core/bpf_filter.ts";

/** Throws what the kernel would refuse the program for. */
export function verify(program: readonly BpfInsn[]): void {
  if (program.length === 0 || program.length > BPF_MAX_INSNS) throw new Error(`length ${program.length}`);
  const known = new Set<number>(Object.values(BPF));
  program.forEach((p, pc) => {
    if (!known.has(p.code)) throw new Error(`pc ${pc}: unknown opcode 0x${p.code.toString(16)}`);
    if (p.jt > 255 || p.jf > 255 || p.jt < 0 || p.jf < 0) {
      throw new Error(`pc ${pc}: jump offset out of range`);
    }
    const cond = p.code === BPF.JMP_JEQ_K || p.code === BPF.JMP_JGT_K || p.code === BPF.JMP_JGE_K;
    if (cond && (pc + 1 + Math.max(p.jt, p.jf) >= program.length)) {
      throw new Error(`pc ${pc}: jumps past the end`);
    }
    if (p.code === BPF.JMP_JA && pc + 1 + p.k >= program.length) throw new Error(`pc ${pc}: ja past the end`);
  });
  if (program[program.length - 1].code !== BPF.RET_K) throw new Error("does not end in a return");
}

/** An IP packet with its UDP header at `transport`. */
export interface Packet {
  readonly bytes: Uint8Array;
  readonly transport: number;
}

/** Builds an IPv4 or IPv6 UDP packet from `source` (4 or 16 bytes) carrying `payload`. */
export function udpPacket(source: Uint8Array, payload: Uint8Array): Packet {
  const v6 = source.length === 16;
  const ipLen = v6 ? 40 : 20;
  const out = new Uint8Array(ipLen + 8 + payload.length);
  out[0] = v6 ? 0x60 : 0x45;
  out.set(source, v6 ? 8 : 12);
  out[ipLen + 4] = (8 + payload.length) >> 8;
  out[ipLen + 5] = (8 + payload.length) & 0xff;
  out.set(payload, ipLen + 8);
  return { bytes: out, transport: ipLen };
}

/** Runs `program` on `packet`; returns the filter's verdict (0 = drop). */
export function run(program: readonly BpfInsn[], packet: Packet): number {
  let a = 0;
  const p = packet.bytes;
  const load = (k: number, size: number): number | null => {
    const signed = k | 0;
    let at: number;
    if (signed < 0) {
      if (signed < SKF_NET_OFF || signed >= SKF_NET_OFF + 0x10000) return null;
      at = signed - SKF_NET_OFF;
    } else at = packet.transport + k;
    if (at + size > p.length) return null;
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + p[at + i];
    return v;
  };
  for (let pc = 0, steps = 0; pc < program.length; pc++, steps++) {
    if (steps > BPF_MAX_INSNS) throw new Error("loops");
    const i = program[pc];
    switch (i.code) {
      case BPF.LD_W_ABS:
      case BPF.LD_H_ABS:
      case BPF.LD_B_ABS: {
        const v = load(i.k, i.code === BPF.LD_W_ABS ? 4 : i.code === BPF.LD_H_ABS ? 2 : 1);
        if (v === null) return 0; // the kernel ends a filter whose load is out of bounds with 0
        a = v;
        break;
      }
      case BPF.LD_W_LEN:
        a = p.length - packet.transport;
        break;
      case BPF.ALU_AND_K:
        a = (a & i.k) >>> 0;
        break;
      case BPF.ALU_RSH_K:
        a = a >>> i.k;
        break;
      case BPF.JMP_JA:
        pc += i.k;
        break;
      case BPF.JMP_JEQ_K:
        pc += a === i.k ? i.jt : i.jf;
        break;
      case BPF.JMP_JGT_K:
        pc += a > i.k ? i.jt : i.jf;
        break;
      case BPF.JMP_JGE_K:
        pc += a >= i.k ? i.jt : i.jf;
        break;
      case BPF.RET_K:
        return i.k;
      default:
        throw new Error(`pc ${pc}: opcode 0x${i.code.toString(16)}`);
    }
  }
  throw new Error("fell off the end");
}
