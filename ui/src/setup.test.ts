// No key without its recovery copy: when the app starts with a key whose copy is owed, the
// first-run step resumes where it was left (Continue waits for the copy).

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { AppStatus, Settings } from "./api";
import type { Shell } from "./shell";
import { setupView } from "./views/setup";

const status: AppStatus = { configured: true, database: { engine: "postgres", host: "127.0.0.1", port: 5432, name: "school", user: "postgres", tls: "prefer", ca_file: null, password_saved: false }, target: "postgres@127.0.0.1:5432/school", key: { fingerprint: "4220efac447a6419", origin: "keychain" }, key_error: null, backup_dir: "/backups", config_path: "/config.toml", running: null, next_run: null, failure: null, offsite_behind: [], version: "0.1.0", format_writes: 3, formats_read: [1, 2, 3], key_recovery_pending: true, key_rotation_due: false, key_since: null };
const shell: Shell = { error: (e) => { throw e; }, toast: () => {}, busy: () => {}, explain: (e) => String(e), refreshStatus: async () => {}, go: () => {}, follow: () => {} };

const settings: Settings = { backup_dir: "/backups", start_at_login: true, schedule_enabled: true, cron: "0 2 * * *", timezone: "", catch_up: true, watchdog_minutes: 10, test_restore: true, keep_days: 30, keep_last: null, keep_weekly: null, keep_monthly: null, email_enabled: false, smtp_host: "", smtp_port: 587, smtp_security: "starttls", smtp_user: "", smtp_password_saved: false, email_from: "", email_to: [], school_admins: false, stale_hours: 48, weekly_digest: false };
const saved: Settings[] = [];

beforeEach(() => {
  document.body.innerHTML = "";
  saved.length = 0;
  mockIPC((cmd, args) => {
    if (cmd === "key_save_recovery") return "/media/usb/schoolvault-key-4220efac447a6419.txt";
    if (cmd === "get_settings") return settings;
    if (cmd === "save_settings") {
      saved.push((args as { settings: Settings }).settings);
      return (args as { settings: Settings }).settings;
    }
    return null;
  });
});
afterEach(() => clearMocks());

describe("first run: the key's recovery copy", () => {
  test("an owed copy resumes the step: Continue waits until the copy is saved", async () => {
    const view = await setupView(shell, status);
    document.body.append(view);
    expect(view.textContent).toContain("Save a recovery copy now");
    const cont = view.querySelector<HTMLButtonElement>("[data-testid=setup-done]")!;
    expect(cont.disabled).toBe(true);
    view.querySelector<HTMLButtonElement>("[data-testid=key-save-recovery]")!.click();
    await new Promise((r) => setTimeout(r, 0));
    expect(view.querySelector("[data-testid=recovery-saved]")?.textContent).toContain("/media/usb/schoolvault-key-4220efac447a6419.txt");
    expect(cont.disabled).toBe(false);
  });

  test("a key whose copy was saved does not hold the person back", async () => {
    const view = await setupView(shell, { ...status, key_recovery_pending: false });
    expect(view.querySelector<HTMLButtonElement>("[data-testid=setup-done]")!.disabled).toBe(false);
  });

  test("the schedule is offered with one click: every day at 02:00 kept as it is, or none for now", async () => {
    let refreshed = 0;
    const view = await setupView({ ...shell, refreshStatus: async () => void refreshed++ }, { ...status, key_recovery_pending: false });
    document.body.append(view);
    const daily = view.querySelector<HTMLInputElement>("[data-testid=setup-daily]")!;
    expect(daily.checked).toBe(true);
    expect(daily.closest("label")?.textContent).toContain("every day at 02:00");
    view.querySelector<HTMLButtonElement>("[data-testid=setup-done]")!.click();
    await new Promise((r) => setTimeout(r, 0));
    expect(saved).toEqual([]);
    expect(refreshed).toBe(1);
    daily.checked = false;
    view.querySelector<HTMLButtonElement>("[data-testid=setup-done]")!.click();
    await new Promise((r) => setTimeout(r, 0));
    expect(saved.map((s) => s.schedule_enabled)).toEqual([false]);
    expect(refreshed).toBe(2);
  });
});
