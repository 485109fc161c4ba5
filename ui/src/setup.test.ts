// No key without its recovery copy: when the app starts with a key whose copy is owed, the
// first-run step resumes where it was left (Continue waits for the copy).

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { AppStatus } from "./api";
import type { Shell } from "./shell";
import { setupView } from "./views/setup";

const status: AppStatus = { configured: true, database: { host: "127.0.0.1", port: 5432, name: "school", user: "postgres", tls: "prefer", ca_file: null, password_saved: false }, target: "postgres@127.0.0.1:5432/school", key: { fingerprint: "4220efac447a6419", origin: "keychain" }, key_error: null, backup_dir: "/backups", config_path: "/config.toml", running: null, next_run: null, failure: null, offsite_behind: [], version: "0.1.0", format_writes: 2, formats_read: [1, 2], key_recovery_pending: true };
const shell: Shell = { error: (e) => { throw e; }, toast: () => {}, busy: () => {}, explain: (e) => String(e), refreshStatus: async () => {}, go: () => {} };

beforeEach(() => {
  document.body.innerHTML = "";
  mockIPC((cmd) => (cmd === "key_save_recovery" ? "/media/usb/schoolvault-key-4220efac447a6419.txt" : null));
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
});
