/**
 * Logging through LogTape: readable lines on a terminal, JSON lines otherwise, written synchronously to
 * stderr (stdout stays for command output such as `ferry check`).
 *
 * JSON lines are flat and stable so tools (and the end-to-end tests) can read them: `{"time", "level",
 * "logger", "message", ...properties}`, with the message rendered without quotes and every property a
 * field of its own, e.g. `{"message":"listening quick udp 127.0.0.1:7000 → quick","event":"listening",
 * "listener":"quick","address":"127.0.0.1:7000",...}`.
 *
 * @module
 */

import {
  configureSync,
  getAnsiColorFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogRecord,
  type TextFormatter,
} from "@logtape/logtape";
import type { LogLevel } from "../../core/types.ts";

/** The logger every part of the command logs through. */
export const log: Logger = getLogger(["ferry"]);

/** How logging is set up. */
export interface LogSettings {
  readonly level: LogLevel;
  readonly format: "auto" | "text" | "json";
}

/** Where log lines go and what that place is. */
export interface LogOutput {
  /** Writes one formatted line (newline included). */
  readonly write: (line: string) => void;
  /** Whether the output is a terminal: "auto" then means text, and text gets colours. */
  readonly terminal: boolean;
  /** NO_COLOR is set (https://no-color.org): text without ANSI colours even on a terminal. */
  readonly noColor: boolean;
}

/** "auto" resolved: text on a terminal, JSON lines otherwise (a pipe, a file, a log collector). */
export function resolveLogFormat(format: LogSettings["format"], terminal: boolean): "text" | "json" {
  return format === "auto" ? (terminal ? "text" : "json") : format;
}

/** A property or message value as JSON can carry it (errors by message, bigints as decimal strings). */
function plain(value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** Renders a message's parts: strings bare, other values as JSON (or an error's message). */
function renderMessage(record: LogRecord): string {
  let out = "";
  record.message.forEach((part, i) => {
    if (i % 2 === 0 || typeof part === "string") out += String(part);
    else {
      const v = plain(part);
      out += typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
    }
  });
  return out;
}

/** The flat JSON-lines formatter described in the module comment. */
export function jsonFormatter(record: LogRecord): string {
  const doc: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    logger: record.category.join("."),
    message: renderMessage(record),
  };
  for (const [k, v] of Object.entries(record.properties)) if (!(k in doc)) doc[k] = plain(v);
  return JSON.stringify(doc) + "\n";
}

function textFormatter(output: LogOutput): TextFormatter {
  const options = { timestamp: "date-time", value: "bare", category: "." } as const;
  return output.terminal && !output.noColor ? getAnsiColorFormatter(options) : getTextFormatter(options);
}

/**
 * (Re)configures logging. Called once early from the command line and environment (so config errors are
 * logged in the requested format), then again with the validated config, and on each reload.
 */
export function setupLogging(settings: LogSettings, output: LogOutput): void {
  const format = resolveLogFormat(settings.format, output.terminal);
  const formatter = format === "json" ? jsonFormatter : textFormatter(output);
  configureSync({
    reset: true,
    sinks: { out: (record: LogRecord) => output.write(formatter(record)) },
    loggers: [
      { category: ["ferry"], sinks: ["out"], lowestLevel: settings.level },
      // LogTape's own diagnostics: problems only (it otherwise announces itself at info level).
      { category: ["logtape", "meta"], sinks: ["out"], lowestLevel: "warning" },
    ],
  });
}
