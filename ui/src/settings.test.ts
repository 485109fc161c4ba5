// The backup folder in Settings is shown, not typed: it changes only through the native folder
// dialog (Choose…, through the backend), and the chosen folder is what the settings save.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { AppStatus, Settings } from "./api";
import type { Shell } from "./shell";
import { rebuiltLine, settingsView } from "./views/settings";

const settings: Settings = { backup_dir: "/home/it/.local/share/schoolvault/backups", start_at_login: false, schedule_enabled: true, cron: "0 2 * * *", timezone: "", catch_up: true, watchdog_minutes: 10, test_restore: true, keep_days: 30, keep_last: null, keep_weekly: null, keep_monthly: null, email_enabled: false, smtp_host: "", smtp_port: 587, smtp_security: "starttls", smtp_user: "", smtp_password_saved: false, email_from: "", email_to: [], school_admins: false, stale_hours: 48, weekly_digest: false };
const status: AppStatus = { configured: true, database: null, target: null, key: null, key_error: null, backup_dir: settings.backup_dir, config_path: "/home/it/.config/schoolvault/config.toml", running: null, next_run: null, failure: null, offsite_behind: [], version: "0.1.0", format_writes: 3, formats_read: [1, 2, 3], key_recovery_pending: false, key_rotation_due: false, key_since: null };

const calls: { cmd: string; args: Record<string, unknown> }[] = [];
let picked: string | null = null;
const errors: unknown[] = [];
const shell: Shell = {
  error: (e) => void errors.push(e),
  toast: () => {},
  busy: () => {},
  explain: (e) => String(e),
  refreshStatus: async () => {},
  go: () => {},
  follow: () => {},
};

beforeEach(() => {
  calls.length = 0;
  errors.length = 0;
  picked = null;
  document.body.innerHTML = "";
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
    if (cmd === "get_settings") return settings;
    if (cmd === "pick_backup_dir") return picked;
    if (cmd === "save_settings") return (args as { settings: Settings }).settings;
    if (cmd === "schedule_preview") return [];
    if (cmd === "list_destinations") return [];
    return null;
  });
});
afterEach(() => clearMocks());

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("settings: the backup folder", () => {
  test("is read-only and changes only to the folder chosen in the dialog", async () => {
    const view = await settingsView(shell, status);
    document.body.append(view);
    const dir = view.querySelector<HTMLInputElement>("[data-testid=backup-dir]")!;
    const choose = view.querySelector<HTMLButtonElement>("[data-testid=backup-dir-pick]")!;
    expect(dir.readOnly).toBe(true);
    expect(dir.value).toBe(settings.backup_dir);
    expect(choose.textContent).toBe("Choose…");

    // Cancelled: unchanged.
    choose.click();
    await tick();
    expect(calls.filter((c) => c.cmd === "pick_backup_dir")).toHaveLength(1);
    expect(dir.value).toBe(settings.backup_dir);

    // Chosen: shown, and saved with the settings.
    picked = "/media/nas/schoolvault";
    choose.click();
    await tick();
    expect(dir.value).toBe("/media/nas/schoolvault");
    view.querySelector<HTMLButtonElement>("[data-testid=save-settings]")!.click();
    await tick();
    const save = calls.find((c) => c.cmd === "save_settings");
    expect((save?.args.settings as Settings).backup_dir).toBe("/media/nas/schoolvault");
    expect(errors).toEqual([]);
  });
});

describe("settings: the list rebuilt from the folder", () => {
  test("says what was listed, what was not, and where a damaged list went", () => {
    expect(rebuiltLine({ listed: 1, problems: [], set_aside: null })).toBe("1 backup found in the folder and listed.");
    expect(rebuiltLine({ listed: 0, problems: ["a.svb: damaged"], set_aside: null })).toBe("No whole backups were found in the folder. 1 file is not listed.");
    expect(rebuiltLine({ listed: 3, problems: ["a", "b"], set_aside: "/x/catalog.sqlite.damaged-20261204-101010" })).toBe(
      "The damaged list was kept aside as /x/catalog.sqlite.damaged-20261204-101010. 3 backups found in the folder and listed. 2 files are not listed.",
    );
  });
});

describe("settings: the weekly test restore", () => {
  test("shows the setting, and saves it turned off", async () => {
    const view = await settingsView(shell, status);
    document.body.append(view);
    const box = view.querySelector<HTMLInputElement>("[data-testid=weekly-test-restore]")!;
    expect(box.checked).toBe(true);
    expect(box.closest("label")?.textContent).toContain("Test-restore the newest backup every week (into a scratch database, then dropped)");
    box.checked = false;
    view.querySelector<HTMLButtonElement>("[data-testid=save-settings]")!.click();
    await tick();
    const save = calls.find((c) => c.cmd === "save_settings");
    expect((save?.args.settings as Settings).test_restore).toBe(false);
    expect(errors).toEqual([]);
  });
});

describe("settings: the schedule without cron", () => {
  test("every day at a time on chosen weekdays writes the cron setting; typing a cron expression chooses Advanced", async () => {
    const view = await settingsView(shell, status);
    document.body.append(view);
    const q = <T extends HTMLElement>(id: string) => view.querySelector<T>(`[data-testid=${id}]`)!;
    const cron = q<HTMLInputElement>("cron");
    expect(q<HTMLInputElement>("schedule-daily").checked).toBe(true);
    expect(q<HTMLInputElement>("schedule-time").value).toBe("02:00");
    expect([0, 1, 2, 3, 4, 5, 6].every((d) => q<HTMLInputElement>(`schedule-day-${d}`).checked)).toBe(true);

    // School days only, at 21:30.
    for (const d of [6, 0]) {
      q<HTMLInputElement>(`schedule-day-${d}`).checked = false;
      q<HTMLInputElement>(`schedule-day-${d}`).dispatchEvent(new Event("change"));
    }
    const time = q<HTMLInputElement>("schedule-time");
    time.value = "21:30";
    time.dispatchEvent(new Event("input"));
    expect(cron.value).toBe("30 21 * * 1-5");
    await tick();
    expect(calls.filter((c) => c.cmd === "schedule_preview").at(-1)?.args.cron).toBe("30 21 * * 1-5");

    // No day: said, and the last valid choice (Friday only) stays.
    for (const d of [1, 2, 3, 4, 5]) {
      q<HTMLInputElement>(`schedule-day-${d}`).checked = false;
      q<HTMLInputElement>(`schedule-day-${d}`).dispatchEvent(new Event("change"));
    }
    expect(q("next-runs").textContent).toContain("at least one day");
    expect(cron.value).toBe("30 21 * * 5");

    // Advanced: any expression, saved as typed.
    cron.value = "*/30 7-17 * * 1-5";
    cron.dispatchEvent(new Event("input"));
    expect(q<HTMLInputElement>("schedule-advanced").checked).toBe(true);
    q<HTMLButtonElement>("save-settings").click();
    await tick();
    expect((calls.find((c) => c.cmd === "save_settings")?.args.settings as Settings).cron).toBe("*/30 7-17 * * 1-5");
  });

  test("a cron expression that is not daily opens on Advanced", async () => {
    const daily = settings.cron;
    settings.cron = "*/15 7-17 * * *";
    try {
      const view = await settingsView(shell, status);
      document.body.append(view);
      expect(view.querySelector<HTMLInputElement>("[data-testid=schedule-advanced]")!.checked).toBe(true);
      expect(view.querySelector<HTMLInputElement>("[data-testid=cron]")!.value).toBe("*/15 7-17 * * *");
    } finally {
      settings.cron = daily;
    }
  });
});
