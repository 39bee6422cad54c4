/**
 * The simulation knobs shared by the deterministic simulations (environment variables, read under Deno and
 * Bun alike): FERRY_SIM_SEEDS, FERRY_SIM_BASE, FERRY_SIM_STEPS, FERRY_SIM_SEED, FERRY_SIM_TRACE,
 * FERRY_SIM_STATS. See tests/simulation.test.ts for what each means.
 *
 * @module
 */

/** An environment variable, or undefined (also when the runtime may not read the environment). */
export function simEnv(name: string): string | undefined {
  try {
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    if (proc?.env !== undefined) return proc.env[name];
    const deno = (globalThis as { Deno?: { env: { get(key: string): string | undefined } } }).Deno;
    return deno?.env.get(name);
  } catch {
    return undefined; // no permission to read the environment: defaults
  }
}

/** An integer environment variable, or `fallback` when unset. */
export function simIntEnv(name: string, fallback: number): number {
  const text = simEnv(name);
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${text} is not an integer`);
  return n;
}
