import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LateWindow } from "../shell/datapath/late_window.ts";

describe("late-reply window", () => {
  test("holds items for its window, releases them oldest first, and the oldest early when full", () => {
    const released: number[] = [];
    let now = 0;
    const w = new LateWindow<number>((n) => released.push(n), () => now, 100, 3);
    w.add(1, 0);
    w.add(2, 10);
    w.add(3, 20);
    assert.equal(w.size, 3);
    w.add(4, 30); // full: 1 goes early
    assert.deepEqual(released, [1]);
    w.sweep(109);
    assert.deepEqual(released, [1]);
    w.sweep(110);
    assert.deepEqual(released, [1, 2]);
    now = 200;
    w.sweep(now);
    assert.deepEqual(released, [1, 2, 3, 4]);
    assert.equal(w.size, 0);
    w.releaseAll();
  });

  test("its timer releases what is due by itself; releaseAll empties it at once", async () => {
    const released: string[] = [];
    const w = new LateWindow<string>((s) => released.push(s), () => performance.now(), 20, 8);
    w.add("a", performance.now());
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(released, ["a"]);
    w.add("b", performance.now());
    w.add("c", performance.now());
    w.releaseAll();
    assert.deepEqual(released, ["a", "b", "c"]);
  });

  test("a window of 0 or no capacity releases at once", () => {
    const released: number[] = [];
    new LateWindow<number>((n) => released.push(n), () => 0, 0, 4).add(1, 0);
    new LateWindow<number>((n) => released.push(n), () => 0, 100, 0).add(2, 0);
    assert.deepEqual(released, [1, 2]);
  });
});
