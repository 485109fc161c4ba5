// The Activity screen names every operation the engine records, the clean-up of a database left
// by an interrupted restore included, instead of showing its internal name.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { Operation } from "./bindings/Operation";
import type { RunRow } from "./api";
import type { Shell } from "./shell";
import { activityView, operationLabel, OPERATIONS } from "./views/activity";

const run = (operation: Operation, message: string | null = null): RunRow => ({
  started_at: "2026-11-25T02:00:00Z",
  finished_at: "2026-11-25T02:00:01Z",
  operation,
  kind: null,
  outcome: "success",
  error_code: null,
  message,
  backup_id: null,
});

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
  mockIPC((cmd) => {
    if (cmd === "history")
      return [
        run("cleanup", "dropped database sv_restore_1a2b on 127.0.0.1:5432, left unfinished by an interrupted restore or test restore at 2026-11-25T01:59:00Z"),
        run("test_restore"),
        run("digest"),
        run("prune"),
      ];
    return null;
  });
});
afterEach(() => clearMocks());

describe("activity", () => {
  test("every operation the engine records has a label", () => {
    expect(operationLabel("cleanup")).toBe("Leftover database removed");
    expect(operationLabel("test_restore")).toBe("Test restore");
    expect(operationLabel("digest")).toBe("Weekly report");
    for (const op of ["backup", "restore", "verify", "test_restore", "alert", "notify", "digest", "prune", "cleanup", "catch-up"]) {
      expect(operationLabel(op), op).not.toBe(op);
    }
    // The table is typed by the engine's union (a missing value does not compile); each label is
    // its own words, and no two operations share one.
    expect(OPERATIONS.length).toBe(12);
    for (const op of OPERATIONS) expect(operationLabel(op), op).not.toBe(op);
    expect(new Set(OPERATIONS.map(operationLabel)).size).toBe(OPERATIONS.length);
    expect(operationLabel("cleanup")).not.toBe(operationLabel("prune"));
    // An operation of a newer engine still shows something.
    expect(operationLabel("something-new")).toBe("something-new");
  });

  test("a clean-up run shows its label and what was dropped", async () => {
    const view = await activityView(shell);
    const rows = [...view.querySelectorAll("[data-testid=run-row]")];
    expect(rows).toHaveLength(4);
    expect(rows[0].textContent).toContain("Leftover database removed");
    expect(rows[0].textContent).toContain("interrupted restore");
    expect(rows[0].textContent).not.toContain("cleanup");
    expect(rows[1].textContent).toContain("Test restore");
    expect(rows[2].textContent).toContain("Weekly report");
  });
});
