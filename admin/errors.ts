/**
 * The admin API's error type and JSON error body. Every error the API returns, whatever its status, has the
 * shape `{ "error": "...", "errors": [{ "path": "...", "message": "..." }] }`; `errors` lists each field at
 * fault (config-file key paths such as `listeners[1].max_flows`, or a query parameter's name) and is empty
 * when no single field is to blame.
 *
 * @module
 */

import type { ConfigError } from "../core/config.ts";

/** The statuses the API answers errors with. */
export type ErrorStatus = 400 | 401 | 404 | 405 | 409 | 412 | 413 | 415 | 422 | 500 | 503;

/** The JSON body of every error response. */
export interface ErrorBody {
  readonly error: string;
  readonly errors: readonly ConfigError[];
}

/** An error a handler throws; the app turns it into a JSON response with this status. */
export class ApiError extends Error {
  /** The HTTP status. */
  readonly status: ErrorStatus;
  /** The fields at fault, if any. */
  readonly errors: readonly ConfigError[];

  /** An error with a status, a summary and the fields at fault. */
  constructor(status: ErrorStatus, message: string, errors: readonly ConfigError[] = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.errors = errors;
  }
}

/** The JSON body for an error. */
export function errorBody(error: string, errors: readonly ConfigError[] = []): ErrorBody {
  return { error, errors };
}

/** A 400 about one field. */
export function badField(path: string, message: string): ApiError {
  return new ApiError(400, `invalid ${path === "" ? "request body" : path}: ${message}`, [{ path, message }]);
}
