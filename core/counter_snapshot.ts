/**
 * A listener's counters as the control interface carries them, and their sum over workers: both derived
 * from the declaration in core/counters.ts, so a figure declared there is copied and summed without
 * anyone writing its name again. Pure functions over plain data (the admin API, the worker pool and tests
 * call them; the forwarding path never does).
 *
 * @module
 */

import {
  type CounterField,
  type CountersFor,
  countersFor,
  type FieldsFor,
  type ListenerCounterDecls,
  type Protocol,
  type ValueOf,
} from "./counters.ts";

/** Every figure of a `P` listener as a snapshot shows it: the core's counters, its live count, the shell's. */
export type CounterSnapshotFor<P extends Protocol> = P extends Protocol
  ? { readonly [K in FieldsFor<P>]: Readonly<ValueOf<ListenerCounterDecls[K]>> }
  : never;

/** A UDP listener's figures in a snapshot. */
export type UdpCounterSnapshot = CounterSnapshotFor<"udp">;
/** A TCP listener's figures in a snapshot. */
export type TcpCounterSnapshot = CounterSnapshotFor<"tcp">;

/** The figures a `P` listener's shell reads from its sockets when a snapshot is taken. */
export type ShellFiguresFor<P extends Protocol> = P extends Protocol
  ? { readonly [K in FieldsFor<P, "shell">]: number }
  : never;

type Loose = Record<string, number | Readonly<Record<string, number>>>;

/**
 * A copy of a listener's figures: its core counters (keyed ones copied, so the snapshot does not move on),
 * `live` (its live flows or open connections) for the live gauges and the shell's figures.
 */
export function snapshotCounters<P extends Protocol>(
  protocol: P,
  counters: CountersFor<P>,
  live: number,
  shell: ShellFiguresFor<P>,
): CounterSnapshotFor<P> {
  const c = counters as unknown as Loose;
  const s = shell as unknown as Record<string, number>;
  const out: Loose = {};
  for (const [field, d] of countersFor(protocol)) {
    if (d.source === "live") out[field] = live;
    else if (d.source === "shell") out[field] = s[field] ?? 0;
    else {
      const v = c[field];
      out[field] = typeof v === "number" ? v : { ...v };
    }
  }
  return out as unknown as CounterSnapshotFor<P>;
}

/**
 * Two workers' figures of one listener added, field by field and key by key (keys of either: a worker may
 * report a reason the other has not seen). A field missing on one side counts as zero.
 */
export function sumCounterSnapshots<P extends Protocol>(
  protocol: P,
  a: CounterSnapshotFor<P>,
  b: CounterSnapshotFor<P>,
): CounterSnapshotFor<P> {
  const x = a as unknown as Partial<Loose>;
  const y = b as unknown as Partial<Loose>;
  const out: Loose = {};
  for (const [field, d] of countersFor(protocol)) {
    out[field] = d.by === undefined ? num(x[field]) + num(y[field]) : sumKeys(x[field], y[field]);
  }
  return out as unknown as CounterSnapshotFor<P>;
}

/** The declared fields of a `protocol` listener, in order (for tests and docs). */
export function snapshotFields(protocol: Protocol): CounterField[] {
  return countersFor(protocol).map(([field]) => field);
}

function num(v: number | Readonly<Record<string, number>> | undefined): number {
  return typeof v === "number" ? v : 0;
}

function sumKeys(
  a: number | Readonly<Record<string, number>> | undefined,
  b: number | Readonly<Record<string, number>> | undefined,
): Record<string, number> {
  const out: Record<string, number> = typeof a === "object" ? { ...a } : {};
  if (typeof b === "object") { for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v; }
  return out;
}
