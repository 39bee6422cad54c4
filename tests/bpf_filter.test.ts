/**
 * The kernel filter compiler: programs verified and run by a test interpreter, accept and refuse cases per
 * rule for IPv4 and IPv6, a property against the user-space checks, and the instruction budget.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Cidr, cidrContains, parseCidr, parseIp } from "../core/address.ts";
import { BPF_MAX_INSNS, compileKernelFilter, encodeBpf, type KernelRules } from "../core/bpf_filter.ts";
import { compileFilter, type FirstDatagramRule } from "../core/first_datagram_filter.ts";
import { run, udpPacket, verify } from "./support/cbpf.ts";

const cidr = (t: string): Cidr => {
  const c = parseCidr(t);
  if (typeof c === "string") throw new Error(c);
  return c;
};
const ip = (t: string) => parseIp(t)!.bytes;
const rules = (over: Partial<KernelRules>): KernelRules => ({
  deny: [],
  allow: [],
  bans: [],
  payload: null,
  ...over,
});
const accepts = (r: KernelRules, src: string, payload = new Uint8Array(4)) => {
  const c = compileKernelFilter(r);
  if (c === null) return true;
  verify(c.program);
  return run(c.program, udpPacket(ip(src), payload)) !== 0;
};

describe("kernel filter compiler", () => {
  test("nothing to do compiles to no program", () => {
    assert.equal(compileKernelFilter(rules({})), null);
  });

  test("deny blocks and bans drop their sources, IPv4 and IPv6", () => {
    const r = rules({
      deny: [cidr("10.0.0.0/8"), cidr("2001:db8::/33")],
      bans: [cidr("192.0.2.7"), cidr("fd00::1/128")],
    });
    assert.ok(!accepts(r, "10.200.1.1"));
    assert.ok(accepts(r, "11.0.0.1"));
    assert.ok(!accepts(r, "192.0.2.7"));
    assert.ok(accepts(r, "192.0.2.8"));
    assert.ok(!accepts(r, "2001:db8:7fff::1"));
    assert.ok(accepts(r, "2001:db8:8000::1"), "outside the /33");
    assert.ok(!accepts(r, "fd00::1"));
    assert.ok(accepts(r, "fd00::2"));
  });

  test("allow blocks admit only their sources, per family", () => {
    const r = rules({ allow: [cidr("198.51.100.0/24"), cidr("203.0.113.128/25")] });
    assert.ok(accepts(r, "198.51.100.99"));
    assert.ok(accepts(r, "203.0.113.200"));
    assert.ok(!accepts(r, "203.0.113.5"));
    assert.ok(!accepts(r, "8.8.8.8"));
    assert.ok(!accepts(r, "2001:db8::1"), "IPv4 allow blocks only: IPv6 is refused, as in user space");
    const six = rules({ allow: [cidr("2001:db8::/32")], deny: [cidr("2001:db8:1::/48")] });
    assert.ok(accepts(six, "2001:db8:2::1"));
    assert.ok(!accepts(six, "2001:db8:1::1"), "deny beats allow");
    assert.ok(!accepts(six, "2001:db9::1"));
  });

  test("payload length and bytes (with a mask)", () => {
    const payload: FirstDatagramRule = {
      minLength: 5,
      maxLength: 10,
      match: [{ offset: 0, bytes: Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x54), mask: null }, {
        offset: 6,
        bytes: Uint8Array.of(0x12, 0x34),
        mask: Uint8Array.of(0xf0, 0xff),
      }],
      regex: "",
    };
    const r = rules({ payload });
    assert.ok(accepts(r, "10.0.0.1", Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x54, 0, 0x1a, 0x34)));
    assert.ok(!accepts(r, "10.0.0.1", Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x55, 0, 0x1a, 0x34)));
    assert.ok(!accepts(r, "10.0.0.1", Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x54, 0, 0x2a, 0x34)));
    assert.ok(
      !accepts(r, "10.0.0.1", Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x54, 0)),
      "short of the second match",
    );
    assert.ok(!accepts(r, "::1", new Uint8Array(11).fill(0xff)), "too long");
    assert.ok(!accepts(r, "::1", Uint8Array.of(0xff, 0xff, 0xff, 0xff)), "too short");
  });

  test("agrees with the user-space checks on random rules and packets (property)", () => {
    const v4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`);
    const v6 = fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}/${p}`);
    const block = fc.oneof(v4, v6).map(cidr).filter((c) => c.ip.family === 4 || !isMapped(c.ip.bytes));
    const rule = fc.record({
      minLength: fc.integer({ min: 0, max: 8 }),
      maxLength: fc.integer({ min: 0, max: 16 }),
      match: fc.array(
        fc.record({
          offset: fc.integer({ min: 0, max: 6 }),
          bytes: fc.uint8Array({ minLength: 1, maxLength: 5 }),
          mask: fc.constant(null),
        }),
        { maxLength: 2 },
      ),
      regex: fc.constant(""),
    });
    fc.assert(
      fc.property(
        fc.array(block, { maxLength: 5 }),
        fc.array(block, { maxLength: 4 }),
        fc.option(rule),
        fc.array(fc.tuple(fc.oneof(fc.ipV4(), fc.ipV6()), fc.uint8Array({ maxLength: 20 })), {
          maxLength: 20,
        }),
        (deny, allow, payload, packets) => {
          const r = rules({ deny, allow, payload });
          const compiled = compileKernelFilter(r);
          if (compiled !== null) verify(compiled.program);
          const user = payload === null ? null : compileFilter(payload);
          for (const [src, data] of packets) {
            const addr = parseIp(src)!;
            if (addr.family === 6 && isMapped(addr.bytes)) continue;
            // The user-space source policy: deny beats allow; any allow block restricts every family.
            const expect = !deny.some((c) => cidrContains(c, addr)) &&
              (allow.length === 0 || allow.some((c) => cidrContains(c, addr))) &&
              (user === null || user.test(data));
            const got = compiled === null ? true : run(compiled.program, udpPacket(addr.bytes, data)) !== 0;
            assert.equal(got, expect, `${src} ${[...data]}`);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  test("thousands of bans stay within BPF_MAXINSNS; the rest are counted as omitted", () => {
    const bans = Array.from({ length: 3000 }, (_, i) => cidr(`10.${i >> 8}.${i & 255}.1`));
    const c = compileKernelFilter(rules({ bans }))!;
    verify(c.program);
    assert.ok(c.program.length <= BPF_MAX_INSNS);
    assert.ok(c.omitted > 0 && c.omitted < 3000);
    const kept = 3000 - c.omitted;
    assert.ok(!accepts(rules({ bans: bans.slice(0, kept) }), "10.0.0.1"));
    assert.equal(encodeBpf(c.program).length, c.program.length * 8);
  });
});

function isMapped(b: Uint8Array): boolean {
  return b.length === 16 && b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}
