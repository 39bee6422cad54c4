/**
 * Ferry's version, in one place so `--version`, logs and the admin API agree.
 *
 * @module
 */

/** The release version of this build. */
export const VERSION = "0.1.0";
