// The restore modal's safety rules, against mockIPC: the red button stays disabled until the
// database's name is typed exactly — and, for an old-system file anyone could have written (the
// public development key), until the second warning's box is ticked too; Esc and a click
// outside cancel; Tab stays inside.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { explain } from "./errors";
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
  dev_key: false,
  missing_roles: [],
  sessions: [],
  lock_timeout_secs: 60,
  end_sessions_needs: "a superuser login, or one in pg_signal_backend",
};

// An old-system file that opened only with the public development key.
const untrusted: RestorePreview = { ...preview, what: "/media/usb/old.enc", backup_id: "old", file_name: "old.enc", format: 1, dev_key: true };
let current = preview;
// A restore that runs until the test lets it finish (when set).
let gate: Promise<void> | null = null;

const calls: { cmd: string; args: Record<string, unknown> }[] = [];

beforeEach(() => {
  gate = null;
  calls.length = 0;
  current = preview;
  document.body.innerHTML = "";
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
    if (cmd === "restore_preview") return current;
    if (cmd === "restore" && gate) return gate.then(() => ({ backup_id: "b1", target: preview.target, tables: 2, rows: 15, duration_ms: 1200, safety_backup_id: "s1", warnings: [] }));
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
    expect(call?.args.trustDevKey).toBe(false);
    expect(call?.args.roles).toBeNull();
    expect(q("[data-testid=missing-roles]")).toBeNull();
    expect(q("[data-testid=restore-result]")?.textContent).toContain("15 rows");
    expect(q("[data-testid=undo]")).not.toBeNull();
  });

  test("while it runs, Esc and a click outside do not close it; then the result names the safety backup", async () => {
    let release: () => void = () => {};
    gate = new Promise((r) => (release = r));
    let closed = false;
    await openRestore("b1", { onDone: () => (closed = true) });
    await tick();
    const input = q<HTMLInputElement>("[data-testid=confirm-name]")!;
    input.value = "school";
    input.dispatchEvent(new Event("input"));
    q<HTMLButtonElement>("[data-testid=restore-confirm]")!.click();
    await tick();
    expect(q("[data-testid=restore-running]")).not.toBeNull();
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    q<HTMLElement>("[data-testid=modal]")!.dispatchEvent(new MouseEvent("mousedown", { bubbles: true }));
    expect(q('[role="dialog"]')).not.toBeNull();
    expect(closed).toBe(false);
    release();
    await tick();
    await tick();
    expect(q("[data-testid=safety-id]")?.textContent).toBe("The data as it was before is in safety backup s1.");
    // Ended: Esc closes it again.
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(q('[role="dialog"]')).toBeNull();
    expect(closed).toBe(true);
  });

  test("a new server without the backup's roles: the modal names them and asks to create them or to own everything", async () => {
    current = { ...preview, tables: preview.tables.map((t) => ({ ...t, live_rows: null })), live_rows: 0, missing_roles: ["erp_app", "erp_report"] };
    await openRestore("b1", { onDone: () => {} });
    await tick();
    const note = q<HTMLElement>("[data-testid=missing-roles]")!;
    expect(note.textContent).toContain("erp_app, erp_report");
    expect(note.textContent).toContain("Make postgres (the login SchoolVault uses) the owner of everything");
    expect(q<HTMLInputElement>("[data-testid=roles-create]")!.checked).toBe(true);
    q<HTMLInputElement>("[data-testid=roles-owner]")!.click();
    const input = q<HTMLInputElement>("[data-testid=confirm-name]")!;
    input.value = "school";
    input.dispatchEvent(new Event("input"));
    q<HTMLButtonElement>("[data-testid=restore-confirm]")!.click();
    await tick();
    await tick();
    expect(calls.find((c) => c.cmd === "restore")?.args.roles).toBe("owner");
  });

  test("a file anyone could have written: a second warning, and the button waits for the name and its box", async () => {
    current = untrusted;
    await openRestore(untrusted.what, { onDone: () => {} });
    await tick();
    const warning = q<HTMLElement>("[data-testid=dev-key-warning]");
    expect(warning?.textContent).toContain("not authenticated");
    expect(warning?.textContent).toContain("anyone could have written");
    expect(warning?.textContent).toContain("administrator account");
    expect(warning?.textContent).toContain("know where it came from");
    const button = q<HTMLButtonElement>("[data-testid=restore-confirm]")!;
    const input = q<HTMLInputElement>("[data-testid=confirm-name]")!;
    const trust = q<HTMLInputElement>("[data-testid=trust-dev-key]")!;
    expect(trust.checked).toBe(false);
    const setName = (v: string) => {
      input.value = v;
      input.dispatchEvent(new Event("input"));
    };
    const setTrust = (v: boolean) => {
      trust.checked = v;
      trust.dispatchEvent(new Event("change"));
    };
    expect(button.disabled).toBe(true);
    setName("school");
    expect(button.disabled).toBe(true); // the name alone is not enough
    setTrust(true);
    expect(button.disabled).toBe(false);
    setName("schoo");
    expect(button.disabled).toBe(true); // nor the box alone
    setName("school");
    setTrust(false);
    expect(button.disabled).toBe(true);
    setTrust(true);
    expect(calls.map((c) => c.cmd)).not.toContain("restore"); // nothing changed before the click
    button.click();
    await tick();
    await tick();
    const call = calls.find((c) => c.cmd === "restore");
    expect(call?.args.what).toBe(untrusted.what);
    expect(call?.args.confirmName).toBe("school");
    expect(call?.args.trustDevKey).toBe(true);
    expect(q("[data-testid=restore-result]")).not.toBeNull();
  });

  test("a backup of SchoolVault's own has no second warning", async () => {
    await openRestore("b1", { onDone: () => {} });
    await tick();
    expect(q("[data-testid=dev-key-warning]")).toBeNull();
    expect(q("[data-testid=trust-dev-key]")).toBeNull();
  });

  test("the refusals of untrusted files and of redirected passwords have their own words", () => {
    expect(explain({ code: "untrusted_file", message: "m" }).title).toBe("This file could have been written by anyone");
    expect(explain({ code: "password_needed", message: "m" }).title).toBe("Type the password for this server");
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
