/**
 * The main thread's end of one relay worker thread: starts it, waits for its listeners to be bound, and
 * turns requests into promises of their replies (shell/workers/worker_protocol.ts).
 *
 * @module
 */

import type {
  WorkerCalls,
  WorkerInit,
  WorkerMethod,
  WorkerPassive,
  WorkerReply,
  WorkerRequest,
  WorkerStarted,
} from "./worker_protocol.ts";

/** What a call to a worker resolves to. */
export type WorkerResult<M extends WorkerMethod> = Awaited<ReturnType<WorkerCalls[M]>>;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * The worker's entry module. Run from source, it sits next to this file. In a `bun build --compile`
 * binary (built with shell/workers/worker_main.ts as a second entrypoint) this code runs inside the bundle at the
 * root of the binary's file system, where the worker is shell/workers/worker_main.ts (Bun maps the name).
 */
export function workerUrl(here: string = import.meta.url): URL {
  return new URL(
    here.endsWith("/shell/workers/worker_link.ts") ? "./worker_main.ts" : "./shell/workers/worker_main.ts",
    here,
  );
}

/**
 * What went wrong, in one line. Deno says "Uncaught Error: ..."; Bun quotes the source around the throw,
 * then "error: ..." and a stack, and passes no error object.
 */
function errorText(event: ErrorEvent): string {
  const text = event.message ?? "";
  return /^error: (.*)$/m.exec(text)?.[1] ?? (text.split("\n")[0] || "the worker failed");
}

/** One worker thread. */
export class WorkerLink {
  readonly index: number;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Set when the worker died or was terminated: every later call fails with it. */
  #dead: Error | null = null;

  private constructor(index: number, worker: Worker) {
    this.index = index;
    this.#worker = worker;
  }

  /**
   * Starts worker `init.index` and resolves once its relay runs; rejects (the worker terminated) when it
   * cannot load or bind. `onDeath` hears of an uncaught error in the worker after that; `onPassive` of
   * each passive failure the worker reports.
   */
  static start(
    init: WorkerInit,
    onDeath: (error: Error) => void,
    onPassive: (report: WorkerPassive) => void = () => {},
  ): Promise<WorkerLink> {
    const link = new WorkerLink(init.index, new Worker(workerUrl(), { type: "module" }));
    const worker = link.#worker;
    return new Promise((resolve, reject) => {
      let started = false;
      worker.addEventListener("message", (event: MessageEvent) => {
        const m = event.data as WorkerStarted | WorkerReply | WorkerPassive;
        if (m.type === "reply") return link.#settle(m);
        if (m.type === "passive") return onPassive(m);
        started = m.ok;
        if (m.ok) return resolve(link);
        link.terminate();
        reject(new Error(m.error));
      });
      worker.addEventListener("error", (event: ErrorEvent) => {
        // Handled here: unhandled, Deno rethrows a worker's error in the main thread and ends the process.
        event.preventDefault();
        const error = new Error(errorText(event));
        link.#fail(error);
        worker.terminate();
        // Before the start, the pool names the workers that failed (once if all failed alike).
        if (started) onDeath(new Error(`worker ${init.index}: ${error.message}`));
        else reject(error);
      });
      worker.postMessage(init);
    });
  }

  /** Asks the worker to run `method`; resolves with its answer, rejects with what it threw. */
  call<M extends WorkerMethod>(method: M, ...args: Parameters<WorkerCalls[M]>): Promise<WorkerResult<M>> {
    if (this.#dead !== null) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const request: WorkerRequest<M> = { type: "call", id, method, args };
      this.#worker.postMessage(request);
    });
  }

  /** Ends the thread now (its sockets close with it); pending calls fail. */
  terminate(): void {
    this.#fail(new Error(`worker ${this.index} terminated`));
    this.#worker.terminate();
  }

  #settle(reply: WorkerReply): void {
    const p = this.#pending.get(reply.id);
    if (p === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.ok) p.resolve(reply.value);
    else p.reject(new Error(reply.error));
  }

  #fail(error: Error): void {
    this.#dead ??= error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}
