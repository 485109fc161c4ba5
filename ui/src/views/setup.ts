// First run: connect to the school database (or create a demo one), then the encryption key —
// generate it (and save a recovery copy before going on) or import the old system's.

import { api, type AppStatus, type KeyInfo } from "../api";
import { h, put } from "../dom";
import type { Shell } from "../shell";
import { connectionForm } from "./connection";

export async function setupView(shell: Shell, status: AppStatus): Promise<HTMLElement> {
  const root = h("div", { class: "view setup" });
  const step = status.database ? 2 : 1;
  root.append(
    h("header", { class: "view-head" }, h("h1", {}, "Welcome to SchoolVault")),
    h("p", { class: "lead" }, "Two steps and the school's records are safe: tell SchoolVault where the school database is, then create the key that encrypts every backup."),
  );
  if (step === 1) root.append(await databaseStep(shell));
  else root.append(keyStep(shell, status));
  return root;
}

async function databaseStep(shell: Shell): Promise<HTMLElement> {
  const form = connectionForm(null);
  const save = h("button", { class: "primary", disabled: true, "data-testid": "save-connection" }, "Save and continue");
  const testBtn = h("button", { class: "secondary", "data-testid": "test-connection" }, "Test connection");
  testBtn.addEventListener("click", async () => {
    save.disabled = !(await form.test());
  });
  form.el.addEventListener("input", () => {
    save.disabled = true;
  });
  save.addEventListener("click", async () => {
    const v = form.values();
    try {
      await api.saveConnection(v.form, v.password);
      await shell.refreshStatus();
    } catch (e) {
      shell.error(e);
    }
  });
  const card = h(
    "section",
    { class: "card" },
    h("h2", {}, "1. The school database"),
    form.el,
    h("div", { class: "actions" }, testBtn, save),
  );
  const wrap = h("div", {}, card);
  try {
    const demo = await api.demoOffer();
    if (demo.available) {
      const make = h("button", { class: "secondary", "data-testid": "create-demo" }, "Create the demo school database");
      make.addEventListener("click", async () => {
        make.disabled = true;
        shell.busy("Creating the demo school database…");
        try {
          await api.createDemo();
          await shell.refreshStatus();
        } catch (e) {
          shell.error(e);
          make.disabled = false;
        } finally {
          shell.busy(null);
        }
      });
      wrap.append(
        h(
          "section",
          { class: "card subtle", "data-testid": "demo-offer" },
          h("h3", {}, "Just trying SchoolVault?"),
          h("p", {}, `A PostgreSQL answers on ${demo.database.host}:${demo.database.port}. SchoolVault can create a small demo school database there (“${demo.database.name}”, about 300,000 rows) so you can try a backup and a restore in a minute.`),
          make,
        ),
      );
    }
  } catch {
    // No offer: nothing to show.
  }
  return wrap;
}

function keyStep(shell: Shell, status: AppStatus): HTMLElement {
  const card = h("section", { class: "card" }, h("h2", {}, "2. The encryption key"));
  const body = h("div");
  card.append(body);
  const choose = () => {
    const gen = h("button", { class: "primary", "data-testid": "key-generate" }, "Generate a new key");
    const imp = h("button", { class: "secondary", "data-testid": "key-import" }, "Import the key from a file…");
    gen.addEventListener("click", async () => {
      try {
        saved(await api.keyGenerate(), true);
      } catch (e) {
        shell.error(e);
      }
    });
    imp.addEventListener("click", async () => {
      try {
        const k = await api.keyImportFile();
        if (k) saved(k, false);
      } catch (e) {
        shell.error(e);
      }
    });
    put(body, 
      h("p", {}, "Every backup is encrypted with a 256-bit key kept in this computer's keychain. Without the key, a backup cannot be restored by anyone — including you."),
      status.key_error ? h("div", { class: "error", role: "alert" }, status.key_error) : null,
      h("div", { class: "choice" }, h("div", {}, h("h3", {}, "New here?"), h("p", { class: "muted" }, "Generate a key, then save its recovery copy."), gen)),
      h(
        "div",
        { class: "choice" },
        h("h3", {}, "Coming from the old backup service?"),
        h("p", { class: "muted" }, "Import its BACKUP_ENCRYPTION_KEY so its backup files can be restored here too: choose the old system's settings file (.env), or a text file holding the key. A SchoolVault key comes back the same way, from its recovery copy (after a disaster)."),
        imp,
      ),
    );
  };
  const saved = (key: KeyInfo, mustSave: boolean) => {
    const cont = h("button", { class: "primary", disabled: mustSave, "data-testid": "setup-done" }, "Continue");
    const where = h("p", { class: "muted", "data-testid": "recovery-saved" });
    const save = h("button", { class: "secondary", "data-testid": "key-save-recovery" }, "Save recovery copy…");
    const show = h("button", { class: "secondary", "data-testid": "key-show" }, "Show the key once");
    save.addEventListener("click", async () => {
      try {
        const path = await api.keySaveRecovery();
        if (path) {
          where.textContent = `Saved to ${path}. Print it or move it somewhere safe, away from this computer.`;
          cont.disabled = false;
        }
      } catch (e) {
        shell.error(e);
      }
    });
    show.addEventListener("click", () => void api.keyShowOnce().catch((e) => shell.error(e)));
    // The schedule, offered with one click: every day at 02:00 (the default) or none for now.
    const daily = h("input", { type: "checkbox", checked: true, "data-testid": "setup-daily" });
    cont.addEventListener("click", async () => {
      try {
        const s = await api.getSettings();
        const want = daily.checked;
        if (s.schedule_enabled !== want || (want && s.cron !== "0 2 * * *")) {
          await api.saveSettings({ ...s, schedule_enabled: want, cron: want ? "0 2 * * *" : s.cron });
        }
      } catch (e) {
        shell.error(e);
        return;
      }
      await shell.refreshStatus();
    });
    put(body, 
      h("p", {}, "The key is in the keychain. Its fingerprint (not the key itself) is ", h("code", { "data-testid": "fingerprint" }, key.fingerprint), "."),
      mustSave ? h("div", { class: "warning" }, "Save a recovery copy now: if this computer dies, the copy is the only way to open the backups.") : null,
      h("div", { class: "actions left" }, save, show),
      where,
      h("h3", {}, "When to back up"),
      h("label", { class: "check" }, daily, " Back up every day at 02:00 while SchoolVault runs (recommended; another time or school days only in Settings → Schedule)"),
      h("div", { class: "actions" }, cont),
    );
  };
  if (status.key) saved(status.key, status.key_recovery_pending);
  else choose();
  return card;
}

