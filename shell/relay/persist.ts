/**
 * Writing a config change back to the config file (`?persist=true`): only the keys the change touched are
 * written, onto the file as it is, by a format-preserving TOML editor, so the file keeps its comments,
 * layout and spelling (`send_hex` stays `send_hex`), and environment, `.env` and flag overrides never
 * reach it.
 *
 * The write is in two steps so that a file that cannot be written changes nothing: {@link prepareWrite}
 * writes and fsyncs a temp file beside the config file (before the change is applied), and
 * {@link PendingWrite.commit} keeps `FILE.bak` and renames the temp file over the config file (after). The
 * temp file has one fixed name, `.FILE.tmp`, reused by every write and removed at start, so a crash
 * mid-write leaves at most that one file behind, never a pile of them.
 *
 * @module
 */

import { chmod, copyFile, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { parse as parseToml, patch as patchToml } from "@decimalturn/toml-patch";
import { applyChanges, configDiff } from "../../core/config_diff.ts";
import { isTable, toRaw } from "../../core/config_raw.ts";
import type { FerryConfig } from "../../core/types.ts";

/** A written and synced temp file, waiting to replace the config file or to be thrown away. */
export interface PendingWrite {
  /** Keeps the current file as FILE.bak and renames the temp file over it. */
  commit(): Promise<void>;
  /** Removes the temp file; the config file is untouched. */
  discard(): Promise<void>;
}

/** The one temp file of `path`: `.NAME.tmp` in the same directory (rename needs one file system). */
export function tempPathOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.tmp`;
}

/** Removes a temp file a crash left behind. Never throws. */
export async function removeStaleTemp(path: string): Promise<void> {
  await unlink(tempPathOf(path)).catch(() => {});
}

/**
 * The config file's text `fileText` with the change from `before` to `after` written in: only the keys
 * that differ are touched. Throws when the file is not TOML any more (it is then not ours to rewrite).
 */
export function persistedText(fileText: string, before: FerryConfig, after: FerryConfig): string {
  const doc = parseToml(fileText);
  if (!isTable(doc)) throw new Error("the config file is not a TOML table");
  const changes = configDiff(toRaw(before), toRaw(after));
  if (changes.length === 0) return fileText;
  return patchToml(fileText, applyChanges(doc, changes));
}

/** True when the TOML text sets a non-empty admin.token. */
function holdsToken(text: string): boolean {
  try {
    const doc = parseToml(text);
    return isTable(doc) && isTable(doc.admin) && typeof doc.admin.token === "string" &&
      doc.admin.token !== "";
  } catch {
    return true; // unknown: be safe
  }
}

/** The mode the new file gets: 0600 when it holds a token, else the current file's (or 0644). */
async function modeFor(path: string, text: string): Promise<number> {
  if (holdsToken(text)) return 0o600;
  try {
    return (await stat(path)).mode & 0o777;
  } catch {
    return 0o644;
  }
}

/** Writes `text` to `path`'s temp file and syncs it to disk; throws (leaving no temp file) when it cannot. */
export async function prepareWrite(path: string, text: string): Promise<PendingWrite> {
  const tmp = tempPathOf(path);
  const mode = await modeFor(path, text);
  try {
    const file = await open(tmp, "w", mode);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await chmod(tmp, mode);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return {
    commit: async () => {
      try {
        const old = await readFile(path, "utf8");
        await copyFile(path, `${path}.bak`);
        await chmod(`${path}.bak`, holdsToken(old) ? 0o600 : mode);
      } catch { /* no previous file: nothing to back up */ }
      await rename(tmp, path);
    },
    discard: () => unlink(tmp).catch(() => {}),
  };
}

/** Reads the config file as it is now (the base a persisted change is written onto). */
export function readConfigFile(path: string): Promise<string> {
  return readFile(path, "utf8");
}
