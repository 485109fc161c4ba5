// The backup list says what the last check of each backup proved: restored into a scratch
// database and compared (the weekly test restore, or Test restore) with its day, only read back
// (Verify), a failed test restore (the error in its title), or nothing yet.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { BackupRow } from "./api";
import * as fmt from "./format";
import type { Shell } from "./shell";
import { backupsView } from "./views/backups";

const row = (id: string, verified: boolean | null, verify_message: string | null, verified_at: string | null): BackupRow => ({
  id,
  created_at: "2026-11-30T02:00:00Z",
  kind: "scheduled",
  status: "complete",
  size: 1_000_000,
  duration_ms: 1200,
  tables: 3,
  rows: 50,
  location: "local",
  path: `/backups/${id}.svb`,
  database: "school",
  verified,
  verify_message,
  verified_at,
});

const failedWhy = "test restore failed: restoring public.t: value for domain posint violates check constraint \"pos\"";
const rows = [
  row("restored", true, "test restore: 3 tables, 50 rows restored and compared", "2026-11-30T02:01:00Z"),
  row("unrestorable", false, failedWhy, "2026-11-30T02:01:00Z"),
  row("read-back", true, "3 tables, 50 rows checked", "2026-11-29T10:00:00Z"),
  row("broken", false, "The backup is damaged", "2026-11-29T10:00:00Z"),
  row("never", null, null, null),
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
