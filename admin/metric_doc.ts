/**
 * The shape of one metric family's declaration, shared by the files that declare them (admin/metric_names.ts
 * is their index).
 *
 * @module
 */

/** One metric family. */
export interface MetricDoc {
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram";
  readonly labels: readonly string[];
  readonly help: string;
}
