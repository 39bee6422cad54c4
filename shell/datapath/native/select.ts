/**
 * Which UDP data path serves a listener. `datapath` on a listener overrides `relay.datapath` unless it is
 * "auto"; "auto" picks the native path on Linux x86_64/aarch64 when libc loads (and, under Deno, FFI is
 * permitted), the runtime's socket API otherwise, and says why. An explicit "native" that cannot load is
 * an error: the operator asked for it, and silently running slower would hide that.
 *
 * @module
 */

import type { Datapath } from "../../../core/types.ts";
import { type Libc, LIBC_NAME, loadLibc, nativeArch } from "./ffi.ts";

/** The data path a listener runs on, and why. */
export interface DatapathChoice {
  /** What serves the listener. */
  readonly datapath: "native" | "runtime";
  /** What the config asked for, once a listener's "auto" followed `relay.datapath`. */
  readonly requested: Datapath;
  /** Why "auto" runs on the runtime path (null when it runs what it asked for). */
  readonly reason: string | null;
}

/** A listener's effective request: its own datapath, or the relay's when it says "auto". */
export function requestedDatapath(listener: Datapath, relay: Datapath): Datapath {
  return listener === "auto" ? relay : listener;
}

/** Either the loaded libc, or why the native path cannot run here. */
export type NativeSupport = { readonly libc: Libc } | { readonly reason: string };

function platformName(): string {
  return "Bun" in globalThis
    ? (globalThis as unknown as { process: { platform: string } }).process.platform
    : Deno.build.os;
}

/** Whether Deno runs without FFI permission (Bun has no permissions). */
function ffiDenied(): boolean {
  if ("Bun" in globalThis) return false;
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state !== "granted";
  } catch {
    return false; // no permission API here: let dlopen decide
  }
}

let probed: Promise<NativeSupport> | null = null;

/** Whether the native path can run here (checked once per thread). */
export function nativeSupport(): Promise<NativeSupport> {
  probed ??= (async (): Promise<NativeSupport> => {
    const os = platformName();
    if (os !== "linux") return { reason: `the native data path needs Linux (this is ${os})` };
    if (nativeArch() === null) return { reason: "the native data path needs x86_64 or aarch64" };
    if (ffiDenied()) return { reason: "FFI is not permitted (run deno with --allow-ffi, or -A)" };
    try {
      return { libc: await loadLibc() };
    } catch (e) {
      return { reason: `${LIBC_NAME} did not load: ${e instanceof Error ? e.message : String(e)}` };
    }
  })();
  return probed;
}

/**
 * Decides a listener's data path (with the libc to run it on, when native). Throws when "native" was
 * asked for and cannot run here. `support` is for tests; by default the platform is probed.
 */
export async function chooseDatapath(
  requested: Datapath,
  probe: () => Promise<NativeSupport> = nativeSupport,
): Promise<DatapathChoice & { libc?: Libc }> {
  if (requested === "runtime") return { datapath: "runtime", requested, reason: null };
  const support = await probe();
  if ("libc" in support) return { datapath: "native", requested, reason: null, libc: support.libc };
  if (requested === "native") throw new Error(`datapath = "native": ${support.reason}`);
  return { datapath: "runtime", requested, reason: support.reason };
}
