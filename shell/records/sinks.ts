/**
 * Where session records go: stderr, or a file rotated by size (FILE → FILE.1 → ... → FILE.keep). Lines are
 * buffered and written together (every FLUSH_MS, or at FLUSH_BYTES), so a burst of ended flows costs one
 * write, not one per record. Written synchronously, so a flush at exit is never lost.
 *
 * @module
 */

import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { writeStderr } from "../process/platform.ts";

/** How long a record may wait in the buffer. */
export const FLUSH_MS = 200;
/** A buffer this large is written at once. */
export const FLUSH_BYTES = 64 * 1024;

/** A destination of record lines. */
export interface RecordSink {
  /** Queues one line (with its newline). */
  write(line: string): void;
  /** Writes what is queued. */
  flush(): void;
  /** Flushes and releases the destination. */
  close(): void;
}

/** Buffers lines and hands them to `out` in batches. */
class BufferedSink implements RecordSink {
  #lines: string[] = [];
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly out: (text: string) => void) {}

  write(line: string): void {
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= FLUSH_BYTES) this.flush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_MS);
      const t = this.#timer as unknown as { unref?: () => void };
      if (typeof t.unref === "function") t.unref();
      else if ("Deno" in globalThis) Deno.unrefTimer(this.#timer as unknown as number);
    }
  }

  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("");
    this.#lines = [];
    this.#bytes = 0;
    this.out(text);
  }

  close(): void {
    this.flush();
  }
}

/** Records to stderr, beside the logs. */
export function stderrSink(): RecordSink {
  return new BufferedSink(writeStderr);
}

/**
 * Records appended to `path`; once it would pass `maxSize` bytes (0 = never), it is renamed to `path.1`
 * (older ones shift up to `path.keep`, the oldest is removed; keep = 0 just starts the file afresh).
 * Throws if the file cannot be opened; a later write error is reported once through `warn`.
 */
export function rotatingFileSink(
  path: string,
  maxSize: number,
  keep: number,
  warn: (message: string) => void,
): RecordSink {
  let fd = openSync(path, "a", 0o640);
  let size = fstatSync(fd).size;
  let failed = false;
  const rotate = () => {
    closeSync(fd);
    if (keep === 0) rmSync(path, { force: true });
    else {
      rmSync(`${path}.${keep}`, { force: true });
      for (let k = keep - 1; k >= 1; k--) {
        try {
          renameSync(`${path}.${k}`, `${path}.${k + 1}`);
        } catch { /* not there yet */ }
      }
      renameSync(path, `${path}.1`);
    }
    fd = openSync(path, "a", 0o640);
    size = 0;
  };
  const buffered = new BufferedSink((text) => {
    try {
      const bytes = new TextEncoder().encode(text);
      if (maxSize > 0 && size > 0 && size + bytes.length > maxSize) rotate();
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off);
      size += bytes.length;
    } catch (e) {
      if (!failed) {
        warn(`session records: cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`);
      }
      failed = true;
    }
  });
  return {
    write: (line) => buffered.write(line),
    flush: () => buffered.flush(),
    close: () => {
      buffered.close();
      try {
        closeSync(fd);
      } catch { /* already closed */ }
    },
  };
}
