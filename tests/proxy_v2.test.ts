/**
 * Tests for core/proxy_v2.ts: byte-exact PROXY v2 vectors, v1 text, and the decoder's refusals.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { SocketAddress } from "../core/address.ts";
import { decodeProxyV2, encodeProxyV1, encodeProxyV2 } from "../core/proxy_v2.ts";

/** Bytes as lowercase hex, so vectors are compared as written. */
function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex (spaces allowed) to bytes. */
function fromHex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

function v4(ip: string, port: number): SocketAddress {
  return { ip, port, family: 4 };
}

function v6(ip: string, port: number): SocketAddress {
  return { ip, port, family: 6 };
}

const SIG = "0d0a0d0a000d0a515549540a";

// 192.0.2.1:51000 -> 198.51.100.7:7000; 51000 = 0xc738, 7000 = 0x1b58.
const V4_DGRAM = `${SIG} 21 12 000c c0000201 c6336407 c738 1b58`;
// 2001:db8::1 port 443 -> 2001:db8::2 port 8443; 443 = 0x01bb, 8443 = 0x20fb.
const V6_DGRAM =
  `${SIG} 21 22 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 01bb 20fb`;
const UNSPEC = `${SIG} 21 00 0000`;

describe("encodeProxyV2", () => {
  test("IPv4 datagram vector", () => {
    const header = encodeProxyV2(v4("192.0.2.1", 51000), v4("198.51.100.7", 7000), "dgram");
    assert.equal(toHex(header), toHex(fromHex(V4_DGRAM)));
    assert.equal(header.length, 28);
  });

  test("IPv4 stream vector differs only in the family/transport byte", () => {
    const header = encodeProxyV2(v4("192.0.2.1", 51000), v4("198.51.100.7", 7000), "stream");
    assert.equal(toHex(header), toHex(fromHex(`${SIG} 21 11 000c c0000201 c6336407 c738 1b58`)));
  });

  test("IPv6 datagram vector", () => {
    const header = encodeProxyV2(v6("2001:db8::1", 443), v6("2001:db8::2", 8443), "dgram");
    assert.equal(toHex(header), toHex(fromHex(V6_DGRAM)));
    assert.equal(header.length, 52);
  });

  test("IPv6 stream vector", () => {
    const header = encodeProxyV2(v6("2001:db8::1", 443), v6("2001:db8::2", 8443), "stream");
    assert.equal(header[13], 0x21);
    assert.equal(toHex(header.subarray(14)), toHex(fromHex(V6_DGRAM).subarray(14)));
  });

  test("mixed families become AF_UNSPEC with length 0", () => {
    assert.equal(
      toHex(encodeProxyV2(v4("192.0.2.1", 51000), v6("2001:db8::2", 8443), "dgram")),
      toHex(fromHex(UNSPEC)),
    );
    assert.equal(
      toHex(encodeProxyV2(v6("2001:db8::1", 443), v4("198.51.100.7", 7000), "stream")),
      toHex(fromHex(UNSPEC)),
    );
  });

  test("a mapped IPv4 client with an IPv4 local is encoded as IPv4", () => {
    const header = encodeProxyV2(v6("::ffff:192.0.2.1", 51000), v4("198.51.100.7", 7000), "dgram");
    assert.equal(toHex(header), toHex(fromHex(V4_DGRAM)));
  });

  test("mapped on both sides (dual-stack listener) is encoded as IPv4", () => {
    const header = encodeProxyV2(v6("::ffff:192.0.2.1", 51000), v6("::ffff:198.51.100.7", 7000), "dgram");
    assert.equal(toHex(header), toHex(fromHex(V4_DGRAM)));
    // The runtime may also report a mapped address in hex-group form.
    const hexForm = encodeProxyV2(v6("::ffff:c000:201", 51000), v6("::ffff:c633:6407", 7000), "dgram");
    assert.equal(toHex(hexForm), toHex(fromHex(V4_DGRAM)));
  });

  test("a mapped client with a real IPv6 local keeps the exact IPv6 pair", () => {
    const header = encodeProxyV2(v6("::ffff:192.0.2.1", 51000), v6("2001:db8::2", 8443), "dgram");
    const expected =
      `${SIG} 21 22 0024 00000000000000000000ffffc0000201 20010db8000000000000000000000002 c738 20fb`;
    assert.equal(toHex(header), toHex(fromHex(expected)));
  });

  test("an unparsable address falls back to AF_UNSPEC rather than throwing", () => {
    assert.equal(
      toHex(encodeProxyV2(v4("nope", 1), v4("198.51.100.7", 7000), "dgram")),
      toHex(fromHex(UNSPEC)),
    );
    assert.equal(toHex(encodeProxyV2(v6("fe80::1%eth0", 1), v6("::1", 2), "dgram")), toHex(fromHex(UNSPEC)));
  });

  test("port extremes are big-endian", () => {
    const header = encodeProxyV2(v4("10.0.0.1", 0), v4("10.0.0.2", 65535), "dgram");
    assert.equal(toHex(header.subarray(24)), "0000ffff");
    const low = encodeProxyV2(v4("10.0.0.1", 1), v4("10.0.0.2", 256), "dgram");
    assert.equal(toHex(low.subarray(24)), "00010100");
  });
});

describe("decodeProxyV2", () => {
  test("round-trips IPv4 and IPv6, dgram and stream", () => {
    const pairs: [SocketAddress, SocketAddress][] = [
      [v4("192.0.2.1", 51000), v4("198.51.100.7", 7000)],
      [v6("2001:db8::1", 443), v6("2001:db8::2", 8443)],
      [v4("0.0.0.0", 0), v4("255.255.255.255", 65535)],
      [v6("::", 1), v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2)],
    ];
    for (const [client, local] of pairs) {
      for (const transport of ["dgram", "stream"] as const) {
        const header = encodeProxyV2(client, local, transport);
        assert.deepEqual(decodeProxyV2(header), { client, local, transport, headerLength: header.length });
      }
    }
  });

  test("decodes the literal vectors", () => {
    assert.deepEqual(decodeProxyV2(fromHex(V4_DGRAM)), {
      client: v4("192.0.2.1", 51000),
      local: v4("198.51.100.7", 7000),
      transport: "dgram",
      headerLength: 28,
    });
    assert.deepEqual(decodeProxyV2(fromHex(V6_DGRAM)), {
      client: v6("2001:db8::1", 443),
      local: v6("2001:db8::2", 8443),
      transport: "dgram",
      headerLength: 52,
    });
  });

  test("a mapped client decodes as IPv4", () => {
    const header = encodeProxyV2(v6("::ffff:192.0.2.1", 51000), v4("198.51.100.7", 7000), "dgram");
    const decoded = decodeProxyV2(header);
    assert.notEqual(typeof decoded, "string");
    assert.deepEqual((decoded as { client: SocketAddress }).client, v4("192.0.2.1", 51000));
  });

  test("AF_UNSPEC and LOCAL decode as unspec", () => {
    assert.deepEqual(decodeProxyV2(fromHex(UNSPEC)), { unspec: true, headerLength: 16 });
    assert.deepEqual(decodeProxyV2(fromHex(`${SIG} 20 00 0000`)), { unspec: true, headerLength: 16 });
    // LOCAL may still carry an address block; it is skipped, not trusted.
    assert.deepEqual(decodeProxyV2(fromHex(`${SIG} 20 12 000c c0000201 c6336407 c738 1b58`)), {
      unspec: true,
      headerLength: 28,
    });
  });

  test("headerLength marks where the payload starts, past any TLVs", () => {
    const payload = fromHex("deadbeef");
    const header = fromHex(V4_DGRAM);
    const datagram = new Uint8Array(header.length + payload.length);
    datagram.set(header);
    datagram.set(payload, header.length);
    const decoded = decodeProxyV2(datagram) as { headerLength: number };
    assert.equal(toHex(datagram.subarray(decoded.headerLength)), "deadbeef");

    // A 4-byte NOOP TLV (type 0x04, length 1) after the addresses: length 12 + 4 = 16.
    const withTlv = fromHex(`${SIG} 21 12 0010 c0000201 c6336407 c738 1b58 04 0001 00 cafe`);
    assert.deepEqual(decodeProxyV2(withTlv), {
      client: v4("192.0.2.1", 51000),
      local: v4("198.51.100.7", 7000),
      transport: "dgram",
      headerLength: 32,
    });
  });

  test("reads a header inside a larger buffer (subarray with an offset)", () => {
    const big = new Uint8Array(100);
    const header = fromHex(V6_DGRAM);
    big.set(header, 7);
    const decoded = decodeProxyV2(big.subarray(7));
    assert.equal((decoded as { headerLength: number }).headerLength, 52);
  });

  const malformed: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["15 bytes", fromHex(V4_DGRAM).subarray(0, 15)],
    ["truncated IPv4 address block", fromHex(V4_DGRAM).subarray(0, 27)],
    ["truncated IPv6 address block", fromHex(V6_DGRAM).subarray(0, 40)],
    ["length larger than the buffer", fromHex(`${SIG} 21 12 ffff c0000201 c6336407 c738 1b58`)],
    ["garbage", fromHex("474554202f20485454502f312e310d0a0d0a")],
    ["a v1 header", new TextEncoder().encode("PROXY TCP4 192.0.2.1 198.51.100.7 51000 7000\r\n")],
    [
      "wrong signature (last byte)",
      fromHex(`0d0a0d0a000d0a515549540b 21 12 000c c0000201 c6336407 c738 1b58`),
    ],
    [
      "wrong signature (first byte)",
      fromHex(`0e0a0d0a000d0a515549540a 21 12 000c c0000201 c6336407 c738 1b58`),
    ],
    ["version 1", fromHex(`${SIG} 11 12 000c c0000201 c6336407 c738 1b58`)],
    ["version 3", fromHex(`${SIG} 31 12 000c c0000201 c6336407 c738 1b58`)],
    ["unknown command", fromHex(`${SIG} 22 12 000c c0000201 c6336407 c738 1b58`)],
    ["AF_UNIX", fromHex(`${SIG} 21 31 00d8 ${"00".repeat(216)}`)],
    ["unknown family", fromHex(`${SIG} 21 42 000c c0000201 c6336407 c738 1b58`)],
    ["unspecified transport", fromHex(`${SIG} 21 10 000c c0000201 c6336407 c738 1b58`)],
    ["unknown transport", fromHex(`${SIG} 21 13 000c c0000201 c6336407 c738 1b58`)],
    ["IPv4 length too short", fromHex(`${SIG} 21 12 000b c0000201 c6336407 c738 1b`)],
    ["IPv6 length too short", fromHex(`${SIG} 21 22 000c c0000201 c6336407 c738 1b58`)],
  ];
  for (const [name, bytes] of malformed) {
    test(`returns a reason for ${name}`, () => {
      const result = decodeProxyV2(bytes);
      assert.equal(typeof result, "string", `${name}: ${JSON.stringify(result)}`);
      assert.ok((result as string).length > 0);
    });
  }

  test("never throws on any prefix of a valid header, or on random-looking bytes", () => {
    const header = fromHex(V6_DGRAM);
    for (let n = 0; n < header.length; n++) {
      assert.equal(typeof decodeProxyV2(header.subarray(0, n)), "string", `prefix of ${n}`);
    }
    // A fixed pseudo-random sequence (no Math.random: the tests stay reproducible).
    let x = 0x12345678;
    for (let round = 0; round < 500; round++) {
      const bytes = new Uint8Array(round % 70);
      for (let i = 0; i < bytes.length; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        bytes[i] = x >>> 24;
      }
      // Keep the signature on half the rounds so the deeper checks get exercised.
      if (round % 2 === 0 && bytes.length >= 12) bytes.set(fromHex(SIG));
      decodeProxyV2(bytes);
    }
  });
});

describe("encodeProxyV1", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

  test("TCP4", () => {
    assert.equal(
      text(encodeProxyV1(v4("192.0.2.1", 51000), v4("198.51.100.7", 7000))),
      "PROXY TCP4 192.0.2.1 198.51.100.7 51000 7000\r\n",
    );
  });

  test("TCP6, canonical text", () => {
    assert.equal(
      text(encodeProxyV1(v6("2001:DB8:0::1", 443), v6("2001:db8::2", 8443))),
      "PROXY TCP6 2001:db8::1 2001:db8::2 443 8443\r\n",
    );
  });

  test("mapped IPv4 with IPv4 local is TCP4", () => {
    assert.equal(
      text(encodeProxyV1(v6("::ffff:192.0.2.1", 51000), v4("198.51.100.7", 7000))),
      "PROXY TCP4 192.0.2.1 198.51.100.7 51000 7000\r\n",
    );
  });

  test("mixed families are UNKNOWN", () => {
    assert.equal(text(encodeProxyV1(v4("192.0.2.1", 51000), v6("2001:db8::2", 8443))), "PROXY UNKNOWN\r\n");
    assert.equal(text(encodeProxyV1(v6("2001:db8::1", 443), v4("198.51.100.7", 7000))), "PROXY UNKNOWN\r\n");
  });

  test("is exact bytes, within the spec's 107-byte limit", () => {
    const longest = encodeProxyV1(
      v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
      v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
    );
    assert.ok(longest.length <= 107, String(longest.length));
    assert.equal(toHex(encodeProxyV1(v4("1.2.3.4", 5), v4("6.7.8.9", 10)).subarray(-2)), "0d0a");
  });
});
