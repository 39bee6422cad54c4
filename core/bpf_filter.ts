/**
 * Compiles a listener's source rules into a classic BPF socket filter (SO_ATTACH_FILTER), so the kernel
 * drops datagrams a rule refuses before they take room in the receive queue or cost a syscall.
 *
 * Pure: it returns instructions; the native data path attaches them. On a UDP socket the filter runs with
 * the packet's data at the UDP header (so the payload starts at offset 8 and the length includes the
 * header); the IP header is read through the network offset, SKF_NET_OFF (-0x100000): the version nibble
 * at byte 0, the IPv4 source at 12, the IPv6 source at 8. What it covers:
 * - deny blocks and bans: drop a source inside any of them;
 * - allow blocks (when any): drop a source outside all of them (as in user space, allow blocks of one
 *   family only refuse the other family whole);
 * - the first-datagram filter's length range and bytes, only when the listener says they hold for every
 *   datagram (`all_datagrams`): the kernel cannot tell a flow's first datagram from the others.
 * What it cannot express (regexes, source classes, limits) stays in user space, which checks everything
 * again anyway: the kernel filter only ever drops what user space would drop too.
 *
 * Each rule is a short sequence ending in its own `ret 0`, so every conditional jump is short (cBPF jump
 * offsets are 8 bits) whatever the number of rules.
 *
 * @module
 */

import { type Cidr, unmapCidr } from "./address.ts";
import type { FirstDatagramRule } from "./first_datagram_filter.ts";

/** One cBPF instruction (struct sock_filter). */
export interface BpfInsn {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

// Opcodes (linux/filter.h).
export const BPF = {
  LD_W_ABS: 0x20,
  LD_H_ABS: 0x28,
  LD_B_ABS: 0x30,
  LD_W_LEN: 0x80,
  ALU_AND_K: 0x54,
  ALU_RSH_K: 0x74,
  JMP_JA: 0x05,
  JMP_JEQ_K: 0x15,
  JMP_JGT_K: 0x25,
  JMP_JGE_K: 0x35,
  RET_K: 0x06,
} as const;

/** The network-header offset base for loads (SKF_NET_OFF), as the u32 the kernel reads. */
export const SKF_NET_OFF = -0x100000;
/** The kernel's longest classic program (BPF_MAXINSNS). */
export const BPF_MAX_INSNS = 4096;
/** The UDP header the filter sees in front of the payload. */
export const UDP_HEADER = 8;
const ACCEPT = 0xffff_ffff;

/** What a listener's kernel filter is made of. */
export interface KernelRules {
  readonly deny: readonly Cidr[];
  readonly allow: readonly Cidr[];
  /** Bans in force (their blocks). */
  readonly bans: readonly Cidr[];
  /** The first-datagram filter, if it holds for every datagram; null = not in the kernel. */
  readonly payload: FirstDatagramRule | null;
}

/** A compiled program and what it left to user space. */
export interface CompiledBpf {
  readonly program: readonly BpfInsn[];
  /** Deny blocks and bans that did not fit under BPF_MAX_INSNS (still enforced in user space). */
  readonly omitted: number;
}

const insn = (code: number, k: number, jt = 0, jf = 0): BpfInsn => ({ code, jt, jf, k: k >>> 0 });

/** Network-order words of a block's address, masked, with their masks, for the words the prefix covers. */
function blockWords(c: Cidr): { word: number; mask: number }[] {
  const b = c.ip.bytes;
  const out: { word: number; mask: number }[] = [];
  for (let w = 0; w * 32 < c.prefix; w++) {
    const bits = Math.min(32, c.prefix - w * 32);
    const mask = bits === 32 ? 0xffff_ffff : (0xffff_ffff << (32 - bits)) >>> 0;
    const word = ((b[w * 4] << 24) | (b[w * 4 + 1] << 16) | (b[w * 4 + 2] << 8) | b[w * 4 + 3]) >>> 0;
    out.push({ word: (word & mask) >>> 0, mask });
  }
  return out;
}

/** The source's offset from the network header, by family. */
const SRC_OFFSET = { 4: 12, 6: 8 } as const;

/**
 * The test "source inside `c`": falls through to the instruction after it when inside, and jumps `out`
 * instructions past its end when not. A /0 block holds everything: no instruction.
 */
function inside(c: Cidr, out: number): BpfInsn[] {
  const words = blockWords(c);
  const base = SKF_NET_OFF + SRC_OFFSET[c.ip.family];
  const code: BpfInsn[] = [];
  words.forEach(({ word, mask }, i) => {
    code.push(insn(BPF.LD_W_ABS, base + 4 * i));
    if (mask !== 0xffff_ffff) code.push(insn(BPF.ALU_AND_K, mask));
    // Remaining instructions of this test after the jeq, plus `out`.
    const rest = words.slice(i + 1).reduce((n, w) => n + (w.mask === 0xffff_ffff ? 2 : 3), 0);
    code.push(insn(BPF.JMP_JEQ_K, word, 0, rest + out));
  });
  return code;
}

/** The rules of one family: deny and bans (drop when inside), then allow (drop when outside all). */
function familyRules(family: 4 | 6, r: KernelRules, budget: number): { code: BpfInsn[]; omitted: number } {
  const code: BpfInsn[] = [];
  let omitted = 0;
  const allow = r.allow.filter((c) => c.ip.family === family);
  const allowCost = allow.reduce((n, c) => n + inside(c, 1).length + 1, 0) + (allow.length > 0 ? 1 : 0);
  for (const c of [...r.deny, ...r.bans]) {
    if (c.ip.family !== family) continue;
    const test = inside(c, 1);
    if (code.length + test.length + 1 + allowCost > budget) {
      omitted++;
      continue;
    }
    code.push(...test, insn(BPF.RET_K, 0));
  }
  if (allow.length === 0 && r.allow.length > 0) {
    // Allow blocks of the other family only: user space refuses this family as `not_allowed`; so does this.
    code.push(insn(BPF.RET_K, 0));
  } else if (allow.length > 0) {
    // Each allow test jumps to the end of the allow section when inside; the section ends in `ret 0`.
    const tests = allow.map((c) => inside(c, 1));
    let after = tests.reduce((n, t) => n + t.length + 1, 0) + 1;
    for (const t of tests) {
      after -= t.length + 1;
      code.push(...t, insn(BPF.JMP_JA, after));
    }
    code.push(insn(BPF.RET_K, 0));
  }
  return { code, omitted };
}

/** Length and byte checks on the payload: each failed check drops. */
function payloadRules(p: FirstDatagramRule): BpfInsn[] {
  const code: BpfInsn[] = [];
  if (p.minLength > 0 || p.maxLength > 0) code.push(insn(BPF.LD_W_LEN, 0));
  if (p.minLength > 0) code.push(insn(BPF.JMP_JGE_K, p.minLength + UDP_HEADER, 1, 0), insn(BPF.RET_K, 0));
  if (p.maxLength > 0) code.push(insn(BPF.JMP_JGT_K, p.maxLength + UDP_HEADER, 0, 1), insn(BPF.RET_K, 0));
  for (const m of p.match) {
    // A load past the end of the packet ends the program with 0 (drop), as a short datagram fails the match.
    for (let i = 0; i < m.bytes.length;) {
      const left = m.bytes.length - i;
      const size = left >= 4 ? 4 : left >= 2 ? 2 : 1;
      let value = 0, mask = 0;
      for (let j = 0; j < size; j++) {
        value = value * 256 + m.bytes[i + j];
        mask = mask * 256 + (m.mask === null ? 0xff : m.mask[i + j]);
      }
      const full = size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
      const load = size === 4 ? BPF.LD_W_ABS : size === 2 ? BPF.LD_H_ABS : BPF.LD_B_ABS;
      code.push(insn(load, UDP_HEADER + m.offset + i));
      if (mask !== full) code.push(insn(BPF.ALU_AND_K, mask));
      code.push(insn(BPF.JMP_JEQ_K, (value & mask) >>> 0, 1, 0), insn(BPF.RET_K, 0));
      i += size;
    }
  }
  return code;
}

/**
 * The program for `rules`, or null when there is nothing for the kernel to do (no program: accept all).
 * Bans and deny blocks beyond the instruction budget are left out and counted in `omitted`.
 */
export function compileKernelFilter(given: KernelRules): CompiledBpf | null {
  // An IPv4 client of a dual-stack socket arrives as an IPv4 packet: mapped blocks must be IPv4 rules.
  const rules: KernelRules = {
    ...given,
    deny: given.deny.map(unmapCidr),
    allow: given.allow.map(unmapCidr),
    bans: given.bans.map(unmapCidr),
  };
  const payload = rules.payload === null ? [] : payloadRules(rules.payload);
  if (rules.deny.length + rules.allow.length + rules.bans.length === 0 && payload.length === 0) return null;
  // Header: version dispatch (7), the jump over the IPv6 rules (1) and the final accept (1).
  const budget = BPF_MAX_INSNS - payload.length - 9;
  const v4 = familyRules(4, rules, budget / 2);
  const v6 = familyRules(6, rules, budget / 2);
  // `ja k` goes to pc + 1 + k; the IPv4 rules start at 7.
  const program: BpfInsn[] = [
    insn(BPF.LD_B_ABS, SKF_NET_OFF),
    insn(BPF.ALU_RSH_K, 4),
    insn(BPF.JMP_JEQ_K, 4, 0, 1),
    insn(BPF.JMP_JA, 3), // to the IPv4 rules
    insn(BPF.JMP_JEQ_K, 6, 0, 1),
    insn(BPF.JMP_JA, v4.code.length + 2), // to the IPv6 rules
    insn(BPF.JMP_JA, v4.code.length + 1 + v6.code.length), // neither: to the payload checks
    ...v4.code,
    insn(BPF.JMP_JA, v6.code.length), // IPv4 done: over the IPv6 rules
    ...v6.code,
    ...payload,
    insn(BPF.RET_K, ACCEPT),
  ];
  return { program, omitted: v4.omitted + v6.omitted };
}

/** The program as the bytes of a struct sock_filter array (little-endian hosts: x86_64, aarch64). */
export function encodeBpf(program: readonly BpfInsn[]): Uint8Array {
  const out = new Uint8Array(program.length * 8);
  const dv = new DataView(out.buffer);
  program.forEach((p, i) => {
    dv.setUint16(i * 8, p.code, true);
    dv.setUint8(i * 8 + 2, p.jt);
    dv.setUint8(i * 8 + 3, p.jf);
    dv.setUint32(i * 8 + 4, p.k, true);
  });
  return out;
}
