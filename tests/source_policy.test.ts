/**
 * Tests for core/source_policy.ts: each refusal reason, the default policy, and deny/allow precedence.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Cidr, parseCidr } from "../core/address.ts";
import { compileSourcePolicy, DEFAULT_SOURCE_POLICY } from "../core/source_policy.ts";
import type { SourceClass, SourcePolicy } from "../core/types.ts";

/** CIDR literals to blocks, failing the test on a typo. */
function blocks(...texts: string[]): Cidr[] {
  return texts.map((text) => {
    const parsed = parseCidr(text);
    assert.notEqual(typeof parsed, "string", text);
    return parsed as Cidr;
  });
}

const ALL_CLASSES: SourceClass[] = ["port0", "unspecified", "multicast", "broadcast", "loopback"];

function policy(reject: SourceClass[], deny: string[] = [], allow: string[] = []): SourcePolicy {
  return { reject, deny: blocks(...deny), allow: blocks(...allow) };
}

describe("DEFAULT_SOURCE_POLICY", () => {
  const check = compileSourcePolicy(DEFAULT_SOURCE_POLICY).check;

  test("is the documented value", () => {
    assert.deepEqual(DEFAULT_SOURCE_POLICY, {
      reject: ["port0", "unspecified", "multicast", "broadcast"],
      deny: [],
      allow: [],
    });
  });

  test("allows ordinary unicast on both families", () => {
    assert.equal(check("192.0.2.1", 51000), "ok");
    assert.equal(check("2001:db8::1", 443), "ok");
    assert.equal(check("::ffff:192.0.2.1", 1), "ok");
  });

  test("allows loopback (sidecars and tests)", () => {
    assert.equal(check("127.0.0.1", 5353), "ok");
    assert.equal(check("::1", 5353), "ok");
    assert.equal(check("::ffff:127.0.0.1", 5353), "ok");
  });

  test("refuses port 0, unspecified, multicast and broadcast", () => {
    assert.equal(check("192.0.2.1", 0), "port0");
    assert.equal(check("0.0.0.0", 53), "unspecified");
    assert.equal(check("::", 53), "unspecified");
    assert.equal(check("224.0.0.251", 5353), "multicast");
    assert.equal(check("ff02::fb", 5353), "multicast");
    assert.equal(check("255.255.255.255", 68), "broadcast");
    assert.equal(check("::ffff:255.255.255.255", 68), "broadcast");
  });
});

describe("compileSourcePolicy reasons", () => {
  const strict = compileSourcePolicy(
    policy(ALL_CLASSES, ["203.0.113.0/24"], ["192.0.2.0/24", "203.0.113.0/24"]),
  );

  test("unparsable text", () => {
    for (const text of ["", "nope", "1.2.3", "fe80::1%eth0", "[::1]", "192.0.2.1:53"]) {
      // "[::1]" parses (bracketed) and is then refused as loopback; everything else is unparsable.
      const expected = text === "[::1]" ? "loopback" : "unparsable";
      assert.equal(strict.check(text, 1000), expected, text);
    }
  });

  test("unparsable comes before port 0", () => {
    assert.equal(strict.check("nope", 0), "unparsable");
  });

  test("port0", () => {
    assert.equal(strict.check("192.0.2.1", 0), "port0");
  });

  test("port 0 comes before the address class", () => {
    assert.equal(strict.check("224.0.0.1", 0), "port0");
  });

  test("each class", () => {
    assert.equal(strict.check("0.0.0.0", 1), "unspecified");
    assert.equal(strict.check("224.0.0.1", 1), "multicast");
    assert.equal(strict.check("255.255.255.255", 1), "broadcast");
    assert.equal(strict.check("127.0.0.1", 1), "loopback");
    assert.equal(strict.check("::1", 1), "loopback");
    assert.equal(strict.check("::ffff:127.0.0.1", 1), "loopback");
  });

  test("the class comes before deny and allow", () => {
    const p = compileSourcePolicy(policy(["loopback"], ["127.0.0.0/8"], ["10.0.0.0/8"]));
    assert.equal(p.check("127.0.0.1", 1), "loopback");
  });

  test("denied", () => {
    assert.equal(strict.check("203.0.113.9", 1), "denied");
  });

  test("not_allowed", () => {
    assert.equal(strict.check("198.51.100.1", 1), "not_allowed");
    assert.equal(strict.check("2001:db8::1", 1), "not_allowed");
  });

  test("ok inside an allow block", () => {
    assert.equal(strict.check("192.0.2.77", 1), "ok");
    assert.equal(strict.check("::ffff:192.0.2.77", 1), "ok");
  });
});

describe("classes not in reject are let through", () => {
  test("an empty reject list refuses nothing by class or port", () => {
    const open = compileSourcePolicy(policy([]));
    for (const ip of ["0.0.0.0", "224.0.0.1", "255.255.255.255", "127.0.0.1", "::", "ff02::1", "::1"]) {
      assert.equal(open.check(ip, 0), "ok", ip);
    }
  });

  test("but unparsable text is always refused", () => {
    assert.equal(compileSourcePolicy(policy([])).check("x", 1), "unparsable");
  });
});

describe("deny and allow", () => {
  test("deny beats allow", () => {
    const p = compileSourcePolicy(policy([], ["10.1.0.0/16"], ["10.0.0.0/8"]));
    assert.equal(p.check("10.1.2.3", 1), "denied");
    assert.equal(p.check("10.2.2.3", 1), "ok");
  });

  test("an allow list restricts to its blocks", () => {
    const p = compileSourcePolicy(policy(["port0"], [], ["10.0.0.0/8", "2001:db8::/32"]));
    assert.equal(p.check("10.9.9.9", 1), "ok");
    assert.equal(p.check("2001:db8:1::1", 1), "ok");
    assert.equal(p.check("11.0.0.1", 1), "not_allowed");
    assert.equal(p.check("2001:db9::1", 1), "not_allowed");
    assert.equal(p.check("127.0.0.1", 1), "not_allowed");
  });

  test("deny alone leaves everything else open", () => {
    const p = compileSourcePolicy(policy([], ["192.0.2.0/24", "2001:db8::/32"]));
    assert.equal(p.check("192.0.2.200", 1), "denied");
    assert.equal(p.check("2001:db8::5", 1), "denied");
    assert.equal(p.check("192.0.3.1", 1), "ok");
  });

  test("mapped IPv4 sources meet IPv4 blocks", () => {
    const p = compileSourcePolicy(policy([], ["192.0.2.0/24"], ["10.0.0.0/8"]));
    assert.equal(p.check("::ffff:192.0.2.1", 1), "denied");
    assert.equal(p.check("::ffff:10.0.0.1", 1), "ok");
    assert.equal(p.check("::ffff:11.0.0.1", 1), "not_allowed");
  });

  test("a compiled policy does not follow later changes to the caller's arrays", () => {
    const deny = blocks("192.0.2.0/24");
    const p = compileSourcePolicy({ reject: [], deny, allow: [] });
    deny.length = 0;
    assert.equal(p.check("192.0.2.1", 1), "denied");
  });
});
