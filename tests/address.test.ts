/**
 * Tests for core/address.ts: parsing, RFC 5952 formatting, socket addresses, classes and CIDR blocks.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  cidrContains,
  classifyIp,
  formatIp,
  formatSocketAddress,
  type IpAddress,
  parseCidr,
  parseIp,
  parseIpv4,
  parseIpv6,
  parseSocketAddress,
  unmapIpv4,
} from "../core/address.ts";

/** Parses or fails the test, so each assertion below reads as one line. */
function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  assert.notEqual(parsed, null, `${text} should parse`);
  return parsed as IpAddress;
}

/** The bytes as hex, so byte expectations are written out literally. */
function hex(addr: IpAddress): string {
  return Array.from(addr.bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

describe("parseIpv4", () => {
  test("accepts dotted quads", () => {
    assert.deepEqual(parseIpv4("192.0.2.1"), { family: 4, bytes: new Uint8Array([192, 0, 2, 1]) });
    assert.equal(hex(ip("0.0.0.0")), "00000000");
    assert.equal(hex(ip("255.255.255.255")), "ffffffff");
  });

  for (
    const bad of [
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "1.2.3.256",
      "01.2.3.4",
      "1.2.3.04",
      "1..2.3",
      "",
      ".1.2.3",
      "1.2.3.",
      " 1.2.3.4",
      "1.2.3.4 ",
      "+1.2.3.4",
      "-1.2.3.4",
      "1.2.3.x",
      "0x1.2.3.4",
      "1000.2.3.4",
      "1e2.2.3.4",
      "١.2.3.4",
    ]
  ) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      assert.equal(parseIpv4(bad), null);
      assert.equal(parseIp(bad), null);
    });
  }
});

describe("parseIpv6", () => {
  test("'::' is all zeros", () => {
    assert.equal(hex(ip("::")), "0".repeat(32));
    assert.equal(ip("::").family, 6);
  });

  test("'::1' is loopback bytes", () => {
    assert.equal(hex(ip("::1")), "0".repeat(31) + "1");
  });

  test("full form and compressed forms agree", () => {
    const full = hex(ip("2001:0db8:0000:0000:0000:0000:0000:0001"));
    assert.equal(full, "20010db8000000000000000000000001");
    assert.equal(hex(ip("2001:db8::1")), full);
    assert.equal(hex(ip("2001:DB8::1")), full);
    assert.equal(hex(ip("2001:db8:0:0:0:0:0:1")), full);
  });

  test("'::' at the end and standing for one group", () => {
    assert.equal(hex(ip("1::")), "0001" + "0".repeat(28));
    assert.equal(hex(ip("1:2:3:4:5:6:7::")), "0001000200030004000500060007" + "0000");
    assert.equal(hex(ip("::2:3:4:5:6:7:8")), "0000000200030004000500060007" + "0008");
  });

  test("IPv4-mapped and trailing dotted quads", () => {
    assert.equal(hex(ip("::ffff:1.2.3.4")), "00000000000000000000ffff01020304");
    assert.equal(hex(ip("::FFFF:1.2.3.4")), "00000000000000000000ffff01020304");
    assert.equal(hex(ip("::1.2.3.4")), "00000000000000000000000001020304");
    assert.equal(hex(ip("1:2:3:4:5:6:1.2.3.4")), "0001000200030004000500060102" + "0304");
    assert.equal(hex(ip("64:ff9b::192.0.2.33")), "0064ff9b0000000000000000c0000221");
  });

  test("bracketed through parseIp", () => {
    assert.equal(hex(ip("[::1]")), hex(ip("::1")));
    assert.equal(parseIp("[1.2.3.4]"), null);
    assert.equal(parseIp("[::1"), null);
  });

  for (
    const bad of [
      ":::",
      ":::1",
      "1:::2",
      "1::2::3",
      ":",
      ":1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6::1.2.3.4",
      "1:2:3:4:5:6:7:1.2.3.4",
      "fe80::1%eth0",
      "fe80::1%1",
      "12345::",
      "g::1",
      "::ffff:1.2.3",
      "::ffff:256.1.1.1",
      "::ffff:01.2.3.4",
      "::1.2.3.4:5",
      "1.2::3",
      "0:0:0:0:0:0:0:0:0",
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      " ::1",
    ]
  ) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      assert.equal(parseIp(bad), null);
    });
  }

  test("refuses '' directly and long text", () => {
    assert.equal(parseIpv6(""), null);
    assert.equal(parseIpv6("1" + ":1".repeat(30)), null);
  });

  test("the longest legal text (45 chars) parses", () => {
    const longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    assert.equal(longest.length, 45);
    assert.equal(hex(ip(longest)), "f".repeat(32));
  });
});

describe("formatIp", () => {
  const cases: [string, string][] = [
    ["0.0.0.0", "0.0.0.0"],
    ["192.0.2.1", "192.0.2.1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    // A single zero group is not compressed (RFC 5952 4.2.2).
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    // The longest run wins (4.2.3).
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    // Equal runs: the first wins (4.2.3).
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    // Leading zeros dropped, lowercase (4.1, 4.3).
    ["2001:DB8:00AB:000C::1", "2001:db8:ab:c::1"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["fe80::", "fe80::"],
    ["ff02::1:2", "ff02::1:2"],
  ];
  for (const [input, expected] of cases) {
    test(`${input} -> ${expected}`, () => {
      assert.equal(formatIp(ip(input)), expected);
      assert.equal(formatIp(ip(expected)), expected, "canonical text is a fixed point");
    });
  }

  test("mapped IPv4 round-trips by bytes", () => {
    const mapped = ip("::ffff:1.2.3.4");
    assert.deepEqual(ip(formatIp(mapped)), mapped);
  });

  test("round-trips every single-group position and zero-run shape", () => {
    for (let mask = 0; mask < 256; mask++) {
      const groups = Array.from({ length: 8 }, (_, i) => ((mask >> i) & 1 ? (i + 1).toString(16) : "0"));
      const parsed = ip(groups.join(":"));
      const text = formatIp(parsed);
      assert.deepEqual(ip(text), parsed, text);
      assert.ok(!text.includes(":::"), text);
      assert.ok(text.split("::").length <= 2, text);
    }
  });
});

describe("parseSocketAddress / formatSocketAddress", () => {
  test("IPv4 ip:port", () => {
    assert.deepEqual(parseSocketAddress("192.0.2.1:53"), { ip: "192.0.2.1", port: 53, family: 4 });
    assert.deepEqual(parseSocketAddress("0.0.0.0:0"), { ip: "0.0.0.0", port: 0, family: 4 });
    assert.deepEqual(parseSocketAddress("1.2.3.4:65535"), { ip: "1.2.3.4", port: 65535, family: 4 });
  });

  test("bracketed IPv6, canonicalised", () => {
    assert.deepEqual(parseSocketAddress("[::1]:53"), { ip: "::1", port: 53, family: 6 });
    assert.deepEqual(parseSocketAddress("[2001:DB8:0::1]:8443"), {
      ip: "2001:db8::1",
      port: 8443,
      family: 6,
    });
  });

  for (
    const bad of [
      "192.0.2.1",
      "192.0.2.1:",
      "192.0.2.1:65536",
      "192.0.2.1:99999",
      "192.0.2.1:123456",
      "192.0.2.1:-1",
      "192.0.2.1:5a",
      "192.0.2.1: 53",
      "::1:53",
      "2001:db8::1:53",
      "[::1]",
      "[::1]:",
      "[::1]53",
      "[::1:53",
      "[::1]:65536",
      "[fe80::1%eth0]:53",
      "[1.2.3]:53",
      "localhost:53",
      ":53",
      "",
    ]
  ) {
    test(`refuses ${JSON.stringify(bad)} with a reason`, () => {
      const result = parseSocketAddress(bad);
      assert.equal(typeof result, "string");
      assert.ok((result as string).length > 0);
    });
  }

  test("unbracketed IPv6 gets a hint naming the bracketed form", () => {
    const result = parseSocketAddress("::1:53");
    assert.equal(typeof result, "string");
    assert.ok((result as string).includes("[::1]:53"));
  });

  test("formatSocketAddress brackets IPv6 and round-trips", () => {
    for (const text of ["192.0.2.1:53", "[::1]:53", "[2001:db8::1]:8443", "0.0.0.0:0"]) {
      const parsed = parseSocketAddress(text);
      assert.notEqual(typeof parsed, "string");
      assert.equal(formatSocketAddress(parsed as Exclude<typeof parsed, string>), text);
    }
  });
});

describe("unmapIpv4", () => {
  test("unmaps ::ffff:a.b.c.d only", () => {
    assert.deepEqual(unmapIpv4(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    assert.deepEqual(unmapIpv4(ip("::ffff:0:0")), ip("0.0.0.0"));
    assert.deepEqual(unmapIpv4(ip("10.0.0.1")), ip("10.0.0.1"));
    // IPv4-compatible (deprecated), NAT64 and near misses stay IPv6.
    for (const text of ["::1.2.3.4", "64:ff9b::1.2.3.4", "1::ffff:1.2.3.4", "::fffe:1.2.3.4", "::1"]) {
      assert.equal(unmapIpv4(ip(text)).family, 6, text);
    }
  });
});

describe("classifyIp", () => {
  const cases: [string, string][] = [
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["0.255.255.255", "unspecified"],
    ["1.0.0.0", "unicast"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.255", "multicast"],
    ["223.255.255.255", "unicast"],
    ["240.0.0.1", "unicast"],
    ["255.255.255.255", "broadcast"],
    ["255.255.255.254", "unicast"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["128.0.0.1", "unicast"],
    ["10.0.0.1", "unicast"],
    ["192.0.2.1", "unicast"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["::2", "unicast"],
    ["1::1", "unicast"],
    ["ff02::1", "multicast"],
    ["ff00::", "multicast"],
    ["fe80::1", "unicast"],
    ["2001:db8::1", "unicast"],
    // Mapped IPv4 is classified as the IPv4 inside.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:0.0.0.0", "unspecified"],
    ["::ffff:224.0.0.251", "multicast"],
    ["::ffff:255.255.255.255", "broadcast"],
    ["::ffff:192.0.2.1", "unicast"],
    // IPv4-compatible is not mapped: plain IPv6 unicast.
    ["::127.0.0.1", "unicast"],
  ];
  for (const [text, kind] of cases) {
    test(`${text} is ${kind}`, () => {
      assert.equal(classifyIp(ip(text)), kind);
    });
  }
});

describe("parseCidr", () => {
  test("blocks and bare hosts", () => {
    assert.deepEqual(parseCidr("10.0.0.0/8"), { ip: ip("10.0.0.0"), prefix: 8 });
    assert.deepEqual(parseCidr("10.1.2.3"), { ip: ip("10.1.2.3"), prefix: 32 });
    assert.deepEqual(parseCidr("::1"), { ip: ip("::1"), prefix: 128 });
    assert.deepEqual(parseCidr("2001:db8::/32"), { ip: ip("2001:db8::"), prefix: 32 });
    assert.deepEqual(parseCidr("0.0.0.0/0"), { ip: ip("0.0.0.0"), prefix: 0 });
    assert.deepEqual(parseCidr("::/0"), { ip: ip("::"), prefix: 0 });
    assert.deepEqual(parseCidr("1.2.3.4/32"), { ip: ip("1.2.3.4"), prefix: 32 });
    assert.deepEqual(parseCidr("::/128"), { ip: ip("::"), prefix: 128 });
  });

  for (
    const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "10.0.0.0/x",
      "10.0.0.0/1000",
      "/8",
      "10.0.0/8",
      "host/8",
      "",
    ]
  ) {
    test(`refuses ${JSON.stringify(bad)} with a reason`, () => {
      assert.equal(typeof parseCidr(bad), "string");
    });
  }
});

describe("cidrContains", () => {
  /** A parsed block, failing the test if the literal is wrong. */
  function block(text: string) {
    const parsed = parseCidr(text);
    assert.notEqual(typeof parsed, "string", text);
    return parsed as Exclude<typeof parsed, string>;
  }
  const contains = (b: string, a: string) => cidrContains(block(b), ip(a));

  test("/0 contains its whole family and nothing else", () => {
    assert.ok(contains("0.0.0.0/0", "255.255.255.255"));
    assert.ok(contains("0.0.0.0/0", "1.2.3.4"));
    assert.ok(contains("::/0", "2001:db8::1"));
    assert.ok(!contains("::/0", "1.2.3.4"));
    assert.ok(!contains("0.0.0.0/0", "2001:db8::1"));
  });

  test("/32 and /128 are single hosts", () => {
    assert.ok(contains("192.0.2.1/32", "192.0.2.1"));
    assert.ok(!contains("192.0.2.1/32", "192.0.2.0"));
    assert.ok(!contains("192.0.2.1/32", "192.0.2.3"));
    assert.ok(contains("192.0.2.1", "192.0.2.1"));
    assert.ok(contains("2001:db8::1/128", "2001:db8::1"));
    assert.ok(!contains("2001:db8::1/128", "2001:db8::"));
    assert.ok(!contains("2001:db8::1/128", "2001:db8::3"));
  });

  test("byte-aligned prefixes", () => {
    assert.ok(contains("10.0.0.0/8", "10.255.255.255"));
    assert.ok(!contains("10.0.0.0/8", "11.0.0.0"));
    assert.ok(contains("192.168.0.0/16", "192.168.200.1"));
    assert.ok(!contains("192.168.0.0/16", "192.169.0.1"));
    assert.ok(contains("2001:db8::/32", "2001:db8:ffff::1"));
    assert.ok(!contains("2001:db8::/32", "2001:db9::1"));
  });

  test("odd prefix /13: 8.0.0.0 - 8.7.255.255", () => {
    assert.ok(contains("8.0.0.0/13", "8.0.0.0"));
    assert.ok(contains("8.0.0.0/13", "8.7.255.255"));
    assert.ok(!contains("8.0.0.0/13", "8.8.0.0"));
    assert.ok(!contains("8.0.0.0/13", "7.255.255.255"));
    // Host bits in the block text are ignored, as the mask applies to both sides.
    assert.ok(contains("8.5.1.1/13", "8.0.0.0"));
  });

  test("other odd prefixes at both families", () => {
    assert.ok(contains("172.16.0.0/12", "172.31.255.255"));
    assert.ok(!contains("172.16.0.0/12", "172.32.0.0"));
    assert.ok(contains("192.0.2.128/25", "192.0.2.255"));
    assert.ok(!contains("192.0.2.128/25", "192.0.2.127"));
    assert.ok(contains("192.0.2.1/31", "192.0.2.0"));
    assert.ok(!contains("192.0.2.1/31", "192.0.2.2"));
    assert.ok(contains("fe80::/10", "febf::1"));
    assert.ok(!contains("fe80::/10", "fec0::1"));
    assert.ok(contains("2001:db8::/127", "2001:db8::1"));
    assert.ok(!contains("2001:db8::/127", "2001:db8::2"));
    assert.ok(contains("128.0.0.0/1", "255.0.0.0"));
    assert.ok(!contains("128.0.0.0/1", "127.255.255.255"));
  });

  test("a mapped IPv4 address matches an IPv4 block", () => {
    assert.ok(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert.ok(!contains("10.0.0.0/8", "::ffff:11.1.2.3"));
    assert.ok(contains("0.0.0.0/0", "::ffff:1.2.3.4"));
    // Only mapped: IPv4-compatible and NAT64 forms are IPv6.
    assert.ok(!contains("10.0.0.0/8", "::10.1.2.3"));
    assert.ok(!contains("10.0.0.0/8", "64:ff9b::10.1.2.3"));
  });

  test("a mapped address still matches IPv6 blocks as IPv6", () => {
    assert.ok(contains("::ffff:0:0/96", "::ffff:10.1.2.3"));
    assert.ok(contains("::/0", "::ffff:10.1.2.3"));
    assert.ok(!contains("2001:db8::/32", "::ffff:10.1.2.3"));
  });

  test("a plain IPv4 address does not match a mapped IPv6 block", () => {
    assert.ok(!contains("::ffff:10.0.0.0/104", "10.1.2.3"));
  });
});
