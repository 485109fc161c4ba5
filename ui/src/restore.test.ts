// The restore modal's safety rules, against mockIPC: the red button stays disabled until the
// database's name is typed exactly; Esc and a click outside cancel; Tab stays inside.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { openRestore } from "./views/restore";
import type { RestorePreview } from "./api";

const preview: RestorePreview = {
  what: "b1",
  backup_id: "b1",
  file_name: "b1.svb",
  format: 2,
  created_at: "2026-11-25T02:00:00Z",
  source_database: "school",
  target: "postgres@127.0.0.1:5432/school",
  target_database: "school",
  tables: [
    { name: "public.users", backup_rows: 10, live_rows: 12 },
    { name: "public.fees", backup_rows: 5, live_rows: 5 },
  ],
  backup_rows: 15,
  live_rows: 17,
  warnings: [],
};

const calls: { cmd: string; args: Record<string, unknown> }[] = [];

beforeEach(() => {
  calls.length = 0;
  document.body.innerHTML = "";
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
    if (cmd === "restore_preview") return preview;
    if (cmd === "restore") return { backup_id: "b1", target: preview.target, tables: 2, rows: 15, duration_ms: 1200, safety_backup_id: "s1", warnings: [] };
    return null;
  });
});
afterEach(() => clearMocks());

const tick = () => new Promise((r) => setTimeout(r, 0));
const q = <T extends Element>(sel: string) => document.querySelector<T>(sel);

describe("restore modal", () => {
  test("shows the target, the rows per table, and keeps the button disabled until the exact name is typed", async () => {
    await openRestore("b1", { onDone: () => {} });
    await tick();
    const dialog = q<HTMLElement>('[role="dialog"]');
    expect(dialog?.textContent).toContain("postgres@127.0.0.1:5432/school");
    expect(q("[data-testid=preview-tables]")?.textContent).toContain("public.users");
    expect(q<HTMLInputElement>("[data-testid=safety]")?.checked).toBe(true);
    const button = q<HTMLButtonElement>("[data-testid=restore-confirm]")!;
    const input = q<HTMLInputElement>("[data-testid=confirm-name]")!;
    expect(button.disabled).toBe(true);
    for (const wrong of ["schoo", "School", "school2"]) {
      input.value = wrong;
      input.dispatchEvent(new Event("input"));
      expect(button.disabled).toBe(true);
    }
    input.value = "school";
    input.dispatchEvent(new Event("input"));
    expect(button.disabled).toBe(false);
    expect(document.activeElement).toBe(input);
  });

  test("Esc closes it without restoring", async () => {
    let closed = false;
    await openRestore("b1", { onDone: () => (closed = true) });
    await tick();
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(q('[role="dialog"]')).toBeNull();
    expect(closed).toBe(true);
    expect(calls.map((c) => c.cmd)).not.toContain("restore");
  });

  test("a click outside closes it; focus is trapped inside with Tab", async () => {
    await openRestore("b1", { onDone: () => {} });
    await tick();
    const buttons = Array.from(document.querySelectorAll<HTMLButtonElement>('[role="dialog"] button:not([disabled])'));
    const last = buttons[buttons.length - 1];
    last.focus();
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Tab", bubbles: true }));
    expect(q('[role="dialog"]')?.contains(document.activeElement)).toBe(true);
    q<HTMLElement>("[data-testid=modal]")!.dispatchEvent(new MouseEvent("mousedown", { bubbles: true }));
    expect(q('[role="dialog"]')).toBeNull();
  });

  test("confirming restores with the typed name and the safety backup, then offers undo", async () => {
    await openRestore("b1", { onDone: () => {} });
    await tick();
    const input = q<HTMLInputElement>("[data-testid=confirm-name]")!;
    input.value = "school";
    input.dispatchEvent(new Event("input"));
    q<HTMLButtonElement>("[data-testid=restore-confirm]")!.click();
    await tick();
    await tick();
    const call = calls.find((c) => c.cmd === "restore");
    expect(call?.args.confirmName).toBe("school");
    expect(call?.args.safetyBackup).toBe(true);
    expect(q("[data-testid=restore-result]")?.textContent).toContain("15 rows");
    expect(q("[data-testid=undo]")).not.toBeNull();
  });

  test("an unreadable backup shows the mapped error instead of the warning", async () => {
    clearMocks();
    mockIPC((cmd) => {
      if (cmd === "restore_preview") throw { code: "wrong_key", message: "This backup was encrypted with key 4220efac447a6419." };
      return null;
    });
    await openRestore("b1", { onDone: () => {} });
    await tick();
    expect(q("[data-testid=error]")?.textContent).toContain("This backup was made with another key");
    expect(q("[data-testid=restore-confirm]")).toBeNull();
  });
});
