// The one place where error codes from the backend become words and actions.

import type { CommandError } from "./bindings/CommandError";
import type { ErrorCode } from "./bindings/ErrorCode";

export type Action = "settings" | "retry" | "import-key" | "none";

export interface Explained {
  title: string;
  detail: string;
  action: Action;
}

/** Every code the backend can send; a code the engine adds and this table lacks fails to
 * compile. */
const TITLES: Record<ErrorCode, [string, Action]> = {
  db_auth: ["The database refused the login", "settings"],
  db_unreachable: ["The database server cannot be reached", "settings"],
  not_found: ["Not found", "none"],
  not_configured: ["SchoolVault is not set up yet", "settings"],
  wrong_key: ["This backup was made with another key", "import-key"],
  no_key: ["There is no encryption key on this computer", "import-key"],
  keychain: ["The keychain cannot be used", "none"],
  truncated: ["The backup file is incomplete", "none"],
  damaged: ["The backup file is damaged", "none"],
  not_a_backup: ["This is not a backup file", "none"],
  unsupported_version: ["This backup was made by a newer SchoolVault", "none"],
  database: ["The database reported an error", "retry"],
  catalog: ["The list of backups cannot be read", "none"],
  table_unreadable: ["A table could not be read", "settings"],
  disk_full: ["The disk is full", "none"],
  target_mismatch: ["The database does not match the backup", "none"],
  inconsistent: ["The backup did not survive the check", "none"],
  cancelled: ["Cancelled", "none"],
  busy: ["Another job is running", "retry"],
  in_use: ["The database is in use", "retry"],
  invalid_input: ["Please check what you entered", "none"],
  password_needed: ["Type the password for this server", "none"],
  untrusted_file: ["This file could have been written by anyone", "none"],
  destination_unreachable: ["The offsite destination cannot be reached", "retry"],
  destination_auth: ["The offsite destination refused SchoolVault", "settings"],
  destination_missing: ["The offsite bucket or folder does not exist", "settings"],
  io: ["A file could not be read or written", "retry"],
  internal: ["Something went wrong inside SchoolVault", "retry"],
};

function isCommandError(e: unknown): e is CommandError {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

export function explain(e: unknown): Explained {
  if (isCommandError(e)) {
    // A code from a newer backend than this window (never in a matched build) still reads.
    const [title, action] = (TITLES as Partial<Record<string, [string, Action]>>)[e.code] ?? ["Something went wrong", "retry"];
    return { title, detail: e.message, action };
  }
  return { title: "Something went wrong", detail: String(e), action: "retry" };
}

export function actionLabel(a: Action): string | null {
  return { settings: "Open Settings", retry: "Try again", "import-key": "Import a key", none: null }[a];
}
