/** `GET /clients?by=loss|latency`: ranking on the corrected figures (admin/clients.ts). */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { topClients, worstLoss } from "../admin/clients.ts";
import { flow } from "./support/fake_control.ts";

const seq = (lossPermille: number) => ({
  expected: 1000,
  received: 1000 - lossPermille,
  lost: lossPermille,
  reordered: 0,
  duplicates: 0,
  lossPermille,
});

describe("client rankings", () => {
  const flows = [
    flow({
      id: "1",
      client: "192.0.2.1:1",
      latencyMs: 80,
      lossPermille: 0,
      dropPermille: 0,
      unansweredPermille: 0,
    }),
    flow({
      id: "2",
      client: "192.0.2.2:1",
      latencyMs: 20,
      lossPermille: 5,
      dropPermille: 5,
      unansweredPermille: 120,
    }),
    flow({
      id: "3",
      client: "192.0.2.3:1",
      latencyMs: null,
      lossPermille: 0,
      dropPermille: 0,
      unansweredPermille: 10,
      sequence: { up: seq(0), down: seq(60) },
    }),
    flow({
      id: "4",
      client: "192.0.2.4:1",
      latencyMs: 40,
      lossPermille: 30,
      dropPermille: 30,
      unansweredPermille: 0,
    }),
  ];

  test("by=loss ranks on the worst of drops, unanswered and sequence loss", () => {
    assert.deepEqual(topClients(flows, "loss", 10).map((c) => c.client), [
      "192.0.2.2:1",
      "192.0.2.3:1",
      "192.0.2.4:1",
      "192.0.2.1:1",
    ]);
    assert.equal(worstLoss(flows[2]), 60);
    assert.equal(topClients(flows, "loss", 1)[0].unansweredPermille, 120);
  });

  test("by=latency: highest first, clients without a sample last", () => {
    assert.deepEqual(topClients(flows, "latency", 10).map((c) => c.client), [
      "192.0.2.1:1",
      "192.0.2.4:1",
      "192.0.2.2:1",
      "192.0.2.3:1",
    ]);
  });
});
