// The backup list says what the last check of each backup proved: restored into a scratch
// database and compared (the weekly test restore, or Test restore) with its day, only read back
// (Verify), a failed test restore (the error in its title), or nothing yet. And where each
// backup is: on this computer or not, and its copy at each offsite destination.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { BackupRow, CopyRow } from "./api";
import * as fmt from "./format";
import type { Shell } from "./shell";
import { backupsView, showUpload, storedAt } from "./views/backups";

const row = (id: string, verified: boolean | null, verify_message: string | null, verified_at: string | null, copies: CopyRow[] = [], local = true): BackupRow => ({
  id,
  created_at: "2026-11-30T02:00:00Z",
  kind: "scheduled",
  status: "complete",
  size: 1_000_000,
  duration_ms: 1200,
  tables: 3,
  rows: 50,
  local,
  copies,
  path: `/backups/${id}.svb`,
  database: "school",
  verified,
  verify_message,
  verified_at,
  key: "4220efac447a6419",
  older_key: false,
});

// Local times, so that the expected text does not depend on the machine's time zone.
const at = (day: number, hour: number, minute: number) => new Date(2026, 10, day, hour, minute).toISOString();
const cloudWhy = "The destination Cloud cannot be reached (connection timed out).";
const refused = "Destination Cloud refused the access key (a test write).";
const copies: Record<string, CopyRow[]> = {
  pending: [
    { destination: "NAS", state: "done", error: null, since: null },
    { destination: "Cloud", state: "pending", error: cloudWhy, since: at(30, 2, 14) },
  ],
  failed: [
    { destination: "NAS", state: "done", error: null, since: null },
    { destination: "Cloud", state: "failed", error: refused, since: at(29, 2, 14) },
  ],
};

const failedWhy = "test restore failed: restoring public.t: value for domain posint violates check constraint \"pos\"";
const rows = [
  row("restored", true, "test restore: 3 tables, 50 rows restored and compared", "2026-11-30T02:01:00Z"),
  row("unrestorable", false, failedWhy, "2026-11-30T02:01:00Z"),
  row("read-back", true, "3 tables, 50 rows checked", "2026-11-29T10:00:00Z"),
  row("broken", false, "The backup is damaged", "2026-11-29T10:00:00Z"),
  row("never", null, null, null),
  row("offsite", null, null, null, copies.pending),
  row("elsewhere", null, null, null, copies.failed, false),
];

const shell: Shell = {
  error: (e) => {
    throw e;
  },
  toast: () => {},
  busy: () => {},
  explain: (e) => String(e),
  refreshStatus: async () => {},
  go: () => {},
  follow: () => {},
};

beforeEach(() => {
  document.body.innerHTML = "";
  mockIPC((cmd) => (cmd === "list_backups" ? rows : null));
});
afterEach(() => clearMocks());

describe("backups: what the last check proved", () => {
  test("a test restore shows as test-restored with its day, or as a failed test restore with the error", async () => {
    const view = await backupsView(shell);
    const badge = (id: string) => view.querySelector<HTMLElement>(`[data-id="${id}"] [data-testid=check-badge]`)!;
    expect(badge("restored").textContent).toBe(`✓ test-restored ${fmt.day("2026-11-30T02:01:00Z")}`);
    expect(badge("restored").className).toBe("badge ok");
    expect(badge("unrestorable").textContent).toBe("✗ test restore failed");
    expect(badge("unrestorable").className).toBe("badge bad");
    expect(badge("unrestorable").title).toBe(failedWhy);
    // A read-back check stays what it was.
    expect(badge("read-back").textContent).toBe("✓ verified");
    expect(badge("broken").textContent).toBe("✗ failed");
    expect(badge("never").textContent).toBe("not yet");
  });
});

describe("backups: where each backup is", () => {
  const now = new Date(2026, 10, 30, 9, 0);
  const text = (el: HTMLElement) => el.textContent;

  test("on this computer, done at one destination, pending at another since a time today", () => {
    const el = storedAt(row("b", null, null, null, copies.pending), now);
    expect(text(el)).toBe("Local ✓ · NAS ✓ · Cloud: pending since 02:14");
    const local = el.querySelector<HTMLElement>("[data-testid=local-file]")!;
    expect(local.dataset.state).toBe("done");
    expect(local.title).toBe("/backups/b.svb");
    const nas = el.querySelector<HTMLElement>("[data-testid=copy-NAS]")!;
    expect(nas.dataset.state).toBe("done");
    expect(nas.hasAttribute("title")).toBe(false);
    const cloud = el.querySelector<HTMLElement>("[data-testid=copy-Cloud]")!;
    expect(cloud.dataset.state).toBe("pending");
    expect(cloud.title).toBe(cloudWhy);
  });

  test("a failed copy says failed, with the reason as its tooltip; a copy waiting since another day names the day", () => {
    const failed = storedAt(row("b", null, null, null, copies.failed), now);
    expect(text(failed)).toBe("Local ✓ · NAS ✓ · Cloud: failed");
    const cloud = failed.querySelector<HTMLElement>("[data-testid=copy-Cloud]")!;
    expect(cloud.dataset.state).toBe("failed");
    expect(cloud.title).toBe(refused);
    const older = storedAt(row("b", null, null, null, [{ destination: "Cloud", state: "pending", error: null, since: at(29, 2, 14) }]), now);
    expect(text(older)).toBe("Local ✓ · Cloud: pending since 29 Nov, 02:14");
  });

  test("a backup known only from a destination is not on this computer; one without destinations is only local", () => {
    const away = storedAt(row("b", null, null, null, [{ destination: "NAS", state: "done", error: null, since: null }], false), now);
    expect(text(away)).toBe("Not on this computer · NAS ✓");
    expect(away.querySelector<HTMLElement>("[data-testid=local-file]")!.dataset.state).toBe("missing");
    expect(text(storedAt(row("b", null, null, null), now))).toBe("Local ✓");
  });

  test("the list shows it in each row, beside the check", async () => {
    const view = await backupsView(shell);
    const cell = (id: string) => view.querySelector<HTMLElement>(`[data-id="${id}"] .copies`)!.parentElement!;
    expect(cell("never").textContent).toBe("Local ✓not yet");
    expect(view.querySelector<HTMLElement>('[data-id="offsite"] [data-testid=copy-NAS]')!.dataset.state).toBe("done");
    const cloud = view.querySelector<HTMLElement>('[data-id="offsite"] [data-testid=copy-Cloud]')!;
    expect(cloud.dataset.state).toBe("pending");
    expect(cloud.textContent).toMatch(/^Cloud: pending since /);
    expect(cell("elsewhere").textContent).toBe("Not on this computer · NAS ✓ · Cloud: failednot yet");
    expect(view.querySelector<HTMLElement>('[data-id="elsewhere"] [data-testid=copy-Cloud]')!.title).toBe(refused);
  });
});

describe("backups: an upload in progress", () => {
  test("shows its share on its backup's row (a copy not listed yet gets its chip); false for a row not listed", async () => {
    const view = await backupsView(shell);
    const list = view.querySelector<HTMLElement>("[data-testid=backup-list]")!;
    const up = (table: string, bytes: number) => ({ phase: "upload" as const, table, tables_done: 0, tables_total: 0, rows: 0, bytes, total_bytes: 1_000_000 });
    expect(showUpload(list, up("Cloud: offsite", 450_000))).toBe(true);
    const chip = list.querySelector<HTMLElement>('[data-id="offsite"] [data-testid=copy-Cloud]')!;
    expect(chip.textContent).toBe("Cloud: uploading 45%");
    expect(chip.dataset.state).toBe("uploading");
    expect(chip.title).toBe("");
    expect(showUpload(list, up("NAS: never", 1_000_000))).toBe(true);
    expect(list.querySelector('[data-id="never"] [data-testid=copy-NAS]')?.textContent).toBe("NAS: uploading 100%");
    expect(showUpload(list, up("NAS: not-listed-yet", 10))).toBe(false);
    // Other phases are not uploads.
    expect(showUpload(list, { ...up("NAS: never", 0), phase: "export" })).toBe(true);
  });
});
