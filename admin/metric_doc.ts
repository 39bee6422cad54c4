/**
 * The shape of one metric family's declaration, shared by the files that declare them (admin/metric_names.ts
 * is their index).
 *
 * @module
 */

/** One metric family; `N` is its name's literal type where the declaration keeps it. */
export interface MetricDoc<N extends string = string> {
  readonly name: N;
  readonly type: "counter" | "gauge" | "histogram";
  readonly labels: readonly string[];
  readonly help: string;
}
