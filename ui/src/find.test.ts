// A new computer after a disaster: where the list of backups is empty, "Find backups in…" lists
// what an offsite destination holds (or first offers the form that adds the destination); the
// backups found show as not on this computer, with their copy there and no counts yet; and the
// restore modal shows the download of such a backup before its warning.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { BackupRow, DestinationRow, FoundBackups, Progress, RestorePreview } from "./api";
import type { Shell } from "./shell";
import { backupsView } from "./views/backups";
import { foundLine } from "./views/find";
import { openRestore } from "./views/restore";

const nas: DestinationRow = { name: "NAS", kind: "folder", url: "file:///mnt/nas/schoolvault", enabled: true, access_key_id: null, secret_saved: false, keep_days: null, keep_last: null, keep_weekly: null, keep_monthly: null, bandwidth_kbps: null, lock_days: null, copies_done: 0, copies_pending: 0, copies_failed: 0, waiting_since: null, last_error: null };
// What a listed-from-a-destination backup looks like: its counts are inside the encrypted file.
const found: BackupRow = { id: "20261201-020000-ab12", created_at: "2026-12-01T02:00:00Z", kind: "scheduled", status: "complete", size: 99_700_000, duration_ms: 0, tables: 0, rows: 0, local: false, copies: [{ destination: "NAS", state: "done", error: null, since: null }], path: "/backups/school-20261201-020000-ab12.svb", database: "school", verified: null, verify_message: null, verified_at: null, key: "", older_key: false };
const preview: RestorePreview = { what: found.id, backup_id: found.id, file_name: "school-20261201-020000-ab12.svb", format: 2, created_at: found.created_at, source_database: "school", target: "postgres@127.0.0.1:5432/school", target_database: "school", tables: [{ name: "public.pupils", backup_rows: 10, live_rows: 0 }], backup_rows: 10, live_rows: 0, warnings: [], dev_key: false, missing_roles: [], sessions: [], lock_timeout_secs: 60, end_sessions_needs: "a superuser login, or one in pg_signal_backend" };

const toasts: string[] = [];
const shell: Shell = {
  error: (e) => {
    throw e;
  },
  toast: (t) => void toasts.push(t),
  busy: () => {},
  explain: (e) => String(e),
  refreshStatus: async () => {},
  go: () => {},
  follow: () => {},
};

let destinations: DestinationRow[] = [];
let backups: BackupRow[] = [];
const calls: { cmd: string; args: Record<string, unknown> }[] = [];

beforeEach(() => {
  document.body.innerHTML = "";
  toasts.length = 0;
  calls.length = 0;
  destinations = [nas];
  backups = [];
  mockIPC(async (cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: a });
    if (cmd === "list_backups") return backups;
    if (cmd === "list_destinations") return destinations;
    if (cmd === "find_backups") {
      backups = [found];
      return { destination: String(a.name), listed: 1, unfinished: 1, problems: [] } satisfies FoundBackups;
    }
    if (cmd === "restore_preview") {
      const ch = a.onProgress as { onmessage?: (p: Progress) => void } | null;
      ch?.onmessage?.({ phase: "download", table: "NAS", tables_done: 0, tables_total: 0, rows: 0, bytes: 49_850_000, total_bytes: 99_700_000 });
      await new Promise((r) => setTimeout(r, 20));
      return preview;
    }
    return null;
  });
});
afterEach(() => clearMocks());

const settle = () => new Promise((r) => setTimeout(r, 10));

describe("a new computer finds the backups at a destination", () => {
  test("what was found, in a sentence", () => {
    expect(foundLine({ destination: "NAS", listed: 3, unfinished: 0, problems: [] })).toBe("3 backups found in NAS and listed: choose one and Restore… (it is downloaded and checked first).");
    expect(foundLine({ destination: "NAS", listed: 1, unfinished: 2, problems: ["x.svb: damaged"] })).toBe(
      "1 backup found in NAS and listed: choose one and Restore… (it is downloaded and checked first). 2 unfinished copies were left out. 1 file could not be read.",
    );
    expect(foundLine({ destination: "cloud", listed: 0, unfinished: 0, problems: [] })).toContain("No backups were found in cloud");
  });

  test("the empty list offers Find backups in a destination; what it finds is listed as not on this computer", async () => {
    const view = await backupsView(shell);
    document.body.append(view);
    await settle();
    const card = view.querySelector<HTMLElement>("[data-testid=find-backups]")!;
    expect(card.textContent).toContain("Setting up a new computer?");
    expect(card.querySelector<HTMLSelectElement>("[data-testid=find-from]")!.value).toBe("NAS");
    card.querySelector<HTMLButtonElement>("[data-testid=find-go]")!.click();
    await settle();
    expect(calls.find((c) => c.cmd === "find_backups")?.args).toEqual({ name: "NAS" });
    expect(toasts[0]).toContain("1 backup found in NAS");
    expect(toasts[0]).toContain("1 unfinished copy was left out");
    const row = view.querySelector<HTMLElement>(`[data-id="${found.id}"]`)!;
    expect(row.querySelector("[data-testid=local-file]")!.textContent).toBe("Not on this computer");
    expect(row.querySelector("[data-testid=copy-NAS]")!.textContent).toBe("NAS ✓");
    // Its counts are not known before it is downloaded: a dash, not "0 / 0".
    expect(row.textContent).toContain("—");
    expect(row.textContent).not.toContain("0 / 0");
    expect(view.querySelector("[data-testid=find-backups]")).toBeNull();
  });

  test("with no destination yet, the card offers the form that adds one", async () => {
    destinations = [];
    const view = await backupsView(shell);
    await settle();
    const card = view.querySelector<HTMLElement>("[data-testid=find-backups]")!;
    expect(card.querySelector("[data-testid=add-destination]")).not.toBeNull();
    expect(card.querySelector("[data-testid=find-go]")).toBeNull();
  });

  test("the restore modal shows the download of a backup that is not here, then its warning", async () => {
    const opening = openRestore(found.id, { onDone: () => {} });
    await new Promise((r) => setTimeout(r, 5));
    const dialog = document.querySelector<HTMLElement>('[role="dialog"]')!;
    expect(dialog.textContent).toContain("Fetching the backup");
    expect(dialog.querySelector<HTMLElement>("[data-testid=progress-phase]")!.textContent).toContain("NAS");
    expect(dialog.querySelector("progress")!.value).toBe(50);
    await opening;
    await settle();
    expect(dialog.querySelector("[data-testid=preview-tables]")?.textContent).toContain("public.pupils");
    expect(typeof calls.find((c) => c.cmd === "restore_preview")?.args.onProgress).toBe("object");
  });
});
