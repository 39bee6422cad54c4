/**
 * Sequence-aware loss end to end in the core: the `[clusters.NAME.sequence]` keys, and the core reading
 * the number of each direction from the buffers the shells pass (a reply at an offset into a larger
 * receive buffer, as the native path passes it), summed per backend.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { configToToml, parseConfigToml } from "../core/config.ts";
import { RelayCore } from "../core/relay_core.ts";
import type { Flow } from "../core/flow.ts";
import { cluster, config, listener } from "./support/fixtures.ts";

const BASE = `
[[listeners]]
name = "rtp"
address = "127.0.0.1:5004"
cluster = "media"

[clusters.media]
backends = [{ address = "127.0.0.1:6004" }]
`;

describe("[clusters.NAME.sequence]", () => {
  test("off by default; offset and size parsed, written back and read again", () => {
    const plain = parseConfigToml(BASE);
    assert.ok(plain.ok);
    if (!plain.ok) return;
    assert.equal(plain.config.clusters[0].sequence ?? null, null);
    const r = parseConfigToml(`${BASE}[clusters.media.sequence]\noffset = 2\nsize = 2\n`);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    if (!r.ok) return;
    assert.deepEqual(r.config.clusters[0].sequence, { offset: 2, size: 2 });
    const again = parseConfigToml(configToToml(r.config));
    assert.ok(again.ok);
    if (again.ok) assert.deepEqual(again.config.clusters[0].sequence, { offset: 2, size: 2 });
  });

  test("bad sizes, offsets and keys are clear errors", () => {
    for (
      const [body, path] of [
        ["size = 3", "clusters.media.sequence.size"],
        ["size = 8", "clusters.media.sequence.size"],
        ["offset = -1", "clusters.media.sequence.offset"],
        ["offset = 2\nwidth = 2", "clusters.media.sequence.width"],
      ]
    ) {
      const r = parseConfigToml(`${BASE}[clusters.media.sequence]\n${body}\n`);
      assert.ok(!r.ok, body);
      if (!r.ok) assert.ok(r.errors.some((e) => e.path === path), `${body}: ${JSON.stringify(r.errors)}`);
    }
  });
});

/** An RTP-like datagram: 12 bytes, the 16-bit sequence number at offset 2. */
function rtp(seq: number): Uint8Array {
  const d = new Uint8Array(12);
  d[2] = (seq >> 8) & 0xff;
  d[3] = seq & 0xff;
  return d;
}

describe("the core reads sequence numbers both ways", () => {
  test("loss, reordering and repeats per flow and summed per backend, across the 16-bit wrap", () => {
    const core = new RelayCore(
      config([cluster({ sequence: { offset: 2, size: 2 } }, 1)], [listener()]),
      { seed: 1 },
    );
    const l = core.listener("l")!;
    const flows: Flow[] = [];
    for (const port of [1000, 1001]) {
      let flow: Flow | null = null;
      // Client → backend: 65530..65535 then 0..5 with 3 lost, and 2 and 1 repeated late.
      for (const s of [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 4, 5, 2, 1]) {
        const f = core.fromClient(l, "192.0.2.9", port, rtp(s), s);
        assert.equal(typeof f, "object");
        flow = f as Flow;
      }
      // Backend → client: replies sit at offset 64 of a larger receive buffer (the native path's slots).
      const slab = new Uint8Array(256);
      for (const s of [10, 11, 13, 12, 14]) {
        slab.set(rtp(s), 64);
        assert.ok(core.fromBackend(flow!, 12, 100, slab, 64));
      }
      flows.push(flow!);
    }
    const q = flows[0].quality;
    assert.equal(q.sequenceUp?.expected, 12);
    assert.equal(q.sequenceUp?.lost, 1);
    assert.equal(q.sequenceUp?.duplicates, 2);
    assert.equal(q.sequenceUp?.reordered, 0);
    assert.equal(q.sequenceDown?.expected, 5);
    assert.equal(q.sequenceDown?.lost, 0);
    assert.equal(q.sequenceDown?.reordered, 1);
    const b = flows[0].backend!.quality;
    assert.equal(b.sequenceUp.expected, 24);
    assert.equal(b.sequenceUp.lost, 2);
    assert.equal(b.sequenceDown.reordered, 2);
    // A sequence loss counts into the flow's worst loss figure, and so its priority.
    assert.equal(q.worstLossPermille, Math.max(q.unansweredPermille, Math.round(1000 / 12)));
  });

  test("a cluster without [sequence] reads nothing (no trackers)", () => {
    const core = new RelayCore(config([cluster({}, 1)], [listener()]), { seed: 1 });
    const f = core.fromClient(core.listener("l")!, "192.0.2.9", 1, rtp(1), 0) as Flow;
    assert.equal(f.quality.sequenceUp, null);
    assert.equal(f.quality.sequenceDown, null);
  });
});
