// The disaster-recovery page: the steps say what this computer already has and their buttons
// open the screen that does each one (the set-up's, before it is done).

import { describe, expect, test } from "vitest";
import type { AppStatus } from "./api";
import type { Screen, Shell } from "./shell";
import { emergencySteps, emergencyView } from "./views/emergency";

const base: AppStatus = { configured: true, database: { engine: "postgres", host: "10.0.0.5", port: 5432, name: "erp", user: "postgres", tls: "prefer", ca_file: null, password_saved: false }, target: "postgres@10.0.0.5:5432/erp", key: { fingerprint: "4220efac447a6419", origin: "keychain" }, key_error: null, backup_dir: "/backups", config_path: "/config.toml", running: null, next_run: null, failure: null, offsite_behind: [], version: "0.1.0", format_writes: 3, formats_read: [1, 2, 3], key_recovery_pending: false, key_rotation_due: false, key_since: null };
const fresh: AppStatus = { ...base, configured: false, database: null, target: null, key: null };

function shellGoing(to: Screen[]): Shell {
  return { error: (e) => { throw e; }, toast: () => {}, busy: () => {}, explain: (e) => String(e), refreshStatus: async () => {}, go: (s) => void to.push(s), follow: () => {} };
}

describe("disaster recovery", () => {
  test("a new computer: the server and the key are to do, their buttons open the set-up", () => {
    const went: Screen[] = [];
    const view = emergencyView(shellGoing(went), fresh);
    document.body.replaceChildren(view);
    expect(view.querySelector("[data-testid=emergency-step-1]")!.className).toContain("todo");
    expect(view.querySelector("[data-testid=emergency-step-2]")!.textContent).toContain("No key on this computer yet");
    view.querySelector<HTMLButtonElement>("[data-testid=emergency-key]")!.click();
    view.querySelector<HTMLButtonElement>("[data-testid=emergency-connection]")!.click();
    expect(went).toEqual(["setup", "setup"]);
    // Nothing to restore from before the set-up: no button that would open an empty list.
    expect(view.querySelector("[data-testid=emergency-restore]")).toBeNull();
    expect(view.querySelector("[data-testid=emergency-cli]")!.textContent).toContain("schoolvault restore <id> --create-db erp --create-roles");
  });

  test("a set-up computer: done steps name the server and the key's fingerprint to compare", () => {
    const steps = emergencySteps(base);
    expect(steps.map((s) => s.state)).toEqual(["done", "done", null, null, null]);
    expect(steps[0].state_text).toBe("Connected to postgres@10.0.0.5:5432/erp");
    expect(steps[1].state_text).toContain("4220efac447a6419");
    const went: Screen[] = [];
    const view = emergencyView(shellGoing(went), base);
    view.querySelector<HTMLButtonElement>("[data-testid=emergency-restore]")!.click();
    view.querySelector<HTMLButtonElement>("[data-testid=emergency-key]")!.click();
    expect(went).toEqual(["backups", "settings"]);
  });

  test("a key whose recovery copy is owed still sends the key step to the set-up", () => {
    expect(emergencySteps({ ...base, key_recovery_pending: true })[1].button!.screen).toBe("setup");
  });
});
