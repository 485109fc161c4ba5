// Typed calls to the backend's commands. Types come from the Rust definitions (ts-rs).

import { Channel, invoke } from "@tauri-apps/api/core";
import type { AppStatus } from "./bindings/AppStatus";
import type { BackupRow } from "./bindings/BackupRow";
import type { CheckResult } from "./bindings/CheckResult";
import type { ConnectionReport } from "./bindings/ConnectionReport";
import type { CopyRow } from "./bindings/CopyRow";
import type { CopyState } from "./bindings/CopyState";
import type { DbForm } from "./bindings/DbForm";
import type { DemoOffer } from "./bindings/DemoOffer";
import type { DestinationRow } from "./bindings/DestinationRow";
import type { FoundBackups } from "./bindings/FoundBackups";
import type { KeyInfo } from "./bindings/KeyInfo";
import type { RebuiltList } from "./bindings/RebuiltList";
import type { Progress } from "./bindings/Progress";
import type { RestorePreview } from "./bindings/RestorePreview";
import type { RestoreResult } from "./bindings/RestoreResult";
import type { RunRow } from "./bindings/RunRow";
import type { Settings } from "./bindings/Settings";
import type { SyncRow } from "./bindings/SyncRow";
import type { Engine } from "./bindings/Engine";
import type { Security } from "./bindings/Security";
import type { Tls } from "./bindings/Tls";

export type {
  AppStatus,
  BackupRow,
  CheckResult,
  ConnectionReport,
  CopyRow,
  CopyState,
  DbForm,
  DemoOffer,
  DestinationRow,
  Engine,
  FoundBackups,
  KeyInfo,
  Progress,
  RebuiltList,
  RestorePreview,
  RestoreResult,
  RunRow,
  Security,
  Settings,
  SyncRow,
  Tls,
};

function channel(onProgress: (p: Progress) => void): Channel<Progress> {
  const ch = new Channel<Progress>();
  ch.onmessage = onProgress;
  return ch;
}

export const api = {
  status: () => invoke<AppStatus>("status"),
  testConnection: (form: DbForm, password: string | null) =>
    invoke<ConnectionReport>("test_connection", { form, password }),
  saveConnection: (form: DbForm, password: string | null) =>
    invoke<AppStatus>("save_connection", { form, password }),
  demoOffer: () => invoke<DemoOffer>("demo_offer"),
  createDemo: () => invoke<AppStatus>("create_demo"),
  keyGenerate: () => invoke<KeyInfo>("key_generate"),
  keyImport: (hex: string) => invoke<KeyInfo>("key_import", { hex }),
  /** Import the key from a file chosen in a native dialog (null: cancelled). */
  keyImportFile: () => invoke<KeyInfo | null>("key_import_file"),
  /** Rotate the key once its recovery copy is saved (native dialog; null: cancelled). */
  keyRotate: () => invoke<KeyInfo | null>("key_rotate"),
  keyRotationDismiss: () => invoke<null>("key_rotation_dismiss"),
  keySaveRecovery: () => invoke<string | null>("key_save_recovery"),
  keyShowOnce: () => invoke<void>("key_show_once"),
  listBackups: () => invoke<BackupRow[]>("list_backups"),
  backupNow: (onProgress: (p: Progress) => void) =>
    invoke<BackupRow>("backup_now", { onProgress: channel(onProgress) }),
  cancelJob: () => invoke<boolean>("cancel_job"),
  /** `onProgress` hears the download of a backup that is not on this computer (from its destination). */
  restorePreview: (what: string, onProgress?: (p: Progress) => void) =>
    invoke<RestorePreview>("restore_preview", { what, onProgress: channel(onProgress ?? (() => {})) }),
  /** `trustDevKey`: the person ticked the modal's second warning (an old-system file that only the
   *  public development key opened); the backend refuses such a file without it. */
  /** `roles`: into a database without the backup's tables on a server that lacks the backup's
   *  roles (`RestorePreview.missing_roles`), "create" them without login, or make SchoolVault's
   *  login the "owner" of everything; null otherwise. */
  restore: (what: string, confirmName: string, safetyBackup: boolean, trustDevKey: boolean, onProgress: (p: Progress) => void, roles: "create" | "owner" | null = null, endSessions = false) =>
    invoke<RestoreResult>("restore", {
      what,
      confirmName,
      safetyBackup,
      trustDevKey,
      roles,
      endSessions,
      onProgress: channel(onProgress),
    }),
  pickRestoreFile: () => invoke<string | null>("pick_restore_file"),
  pickCaFile: () => invoke<string | null>("pick_ca_file"),
  /** The native folder dialog; the backend saves only a backup folder chosen this way (or the
   *  current or default one). `null`: cancelled. */
  pickBackupDir: () => invoke<string | null>("pick_backup_dir"),
  deleteBackup: (id: string) => invoke<void>("delete_backup", { id }),
  /** The list rebuilt from the files in the (saved) backup folder, each read completely; a
   *  damaged list is moved aside first. The files are not changed. */
  rebuildList: (onProgress: (p: Progress) => void = () => {}) => invoke<RebuiltList>("rebuild_list", { onProgress: channel(onProgress) }),
  verifyBackup: (id: string, onProgress: (p: Progress) => void = () => {}) => invoke<CheckResult>("verify_backup", { id, onProgress: channel(onProgress) }),
  testRestoreBackup: (id: string, onProgress: (p: Progress) => void = () => {}) =>
    invoke<CheckResult>("test_restore_backup", { id, onProgress: channel(onProgress) }),
  history: (limit?: number) => invoke<RunRow[]>("history", { limit: limit ?? null }),
  getSettings: () => invoke<Settings>("get_settings"),
  saveSettings: (settings: Settings, smtpPassword: string | null = null) =>
    invoke<Settings>("save_settings", { settings, smtpPassword }),
  sendTestEmail: () => invoke<number>("send_test_email"),
  schedulePreview: (cron: string, timezone: string | null) =>
    invoke<string[]>("schedule_preview", { cron, timezone }),
  acknowledgeFailure: () => invoke<void>("acknowledge_failure"),
  listDestinations: () => invoke<DestinationRow[]>("list_destinations"),
  /** Tested by the backend (a small file written, read back, deleted) before it is saved.
   *  `secret`: the S3 secret key or WebDAV password, only here, never in the row; null or empty
   *  keeps the saved one. */
  saveDestination: (destination: DestinationRow, secret: string | null) =>
    invoke<DestinationRow>("save_destination", { destination, secret }),
  testDestination: (name: string) => invoke<void>("test_destination", { name }),
  /** Stops copying there; the files at the destination stay. */
  removeDestination: (name: string) => invoke<void>("remove_destination", { name }),
  /** A new computer: list the backups destination `name` holds. */
  findBackups: (name: string) => invoke<FoundBackups>("find_backups", { name }),
  syncNow: (verify: boolean, onProgress: (p: Progress) => void) =>
    invoke<SyncRow[]>("sync_now", { verify, onProgress: channel(onProgress) }),
};
