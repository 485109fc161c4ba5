// Settings: the database connection, the backup folder, the encryption key, the schedule and
// retention, the offsite copies (./destinations.ts), start at login. One file shared with the
// `schoolvault` CLI.

import { api, type AppStatus, type RebuiltList, type Security, type Settings } from "../api";
import { h, put } from "../dom";
import * as fmt from "../format";
import type { Shell } from "../shell";
import { confirmModal } from "../modal";
import { progressView } from "../progress";
import { connectionForm } from "./connection";
import { offsiteSection } from "./destinations";
import { cronOf, dailyOf, WEEKDAYS } from "../schedule";

/** How the SMTP connection is secured, as the form offers it; a value the engine adds and this
 * table lacks fails to compile. */
const SECURITY_LABELS: Record<Security, string> = {
  starttls: "STARTTLS (port 587)",
  tls: "TLS (port 465)",
  plain: "None (a relay on this machine only)",
};
const securityOf = (v: string): Security => (v in SECURITY_LABELS ? (v as Security) : "starttls");

/** The sentence for a rebuilt list of backups. */
export function rebuiltLine(r: RebuiltList): string {
  const parts = [r.listed === 0 ? "No whole backups were found in the folder." : `${r.listed} backup${r.listed === 1 ? "" : "s"} found in the folder and listed.`];
  if (r.problems.length > 0) parts.push(`${r.problems.length} file${r.problems.length === 1 ? " is" : "s are"} not listed.`);
  if (r.set_aside) parts.unshift(`The damaged list was kept aside as ${r.set_aside}.`);
  return parts.join(" ");
}

export async function settingsView(shell: Shell, status: AppStatus): Promise<HTMLElement> {
  let s: Settings;
  try {
    s = await api.getSettings();
  } catch (e) {
    shell.error(e);
    return h("div", { class: "view" });
  }

  // Database
  const conn = connectionForm(status.database);
  const testBtn = h("button", { class: "secondary", "data-testid": "test-connection" }, "Test connection");
  testBtn.addEventListener("click", () => void conn.test());
  const saveConn = h("button", { class: "primary", "data-testid": "save-connection" }, "Save connection");
  saveConn.addEventListener("click", async () => {
    const v = conn.values();
    try {
      await api.saveConnection(v.form, v.password);
      shell.toast("The connection was saved.");
      await shell.refreshStatus();
    } catch (e) {
      shell.error(e);
    }
  });

  // Key
  const keyLine = status.key
    ? h("p", {}, "Fingerprint ", h("code", { "data-testid": "fingerprint" }, status.key.fingerprint), status.key.origin === "keychain" ? " — in this computer's keychain." : status.key.origin === "env" ? " — from BACKUP_ENCRYPTION_KEY." : " — from a key file.")
    : h("p", { class: "error" }, status.key_error ?? "No key yet.");
  const recovery = h("button", { class: "secondary" }, "Save recovery copy…");
  recovery.addEventListener("click", async () => {
    try {
      const path = await api.keySaveRecovery();
      if (path) shell.toast(`Recovery copy saved to ${path}.`);
    } catch (e) {
      shell.error(e);
    }
  });
  const showKey = h("button", { class: "secondary" }, "Show the key once");
  showKey.addEventListener("click", () => void api.keyShowOnce().catch((e) => shell.error(e)));
  // Rotation (the old system's advice: a new key every year). The new key is used only once
  // its recovery copy is saved: the save dialog comes first, a cancel changes nothing.
  const rotateBtn = h("button", { class: "secondary", "data-testid": "key-rotate" }, "Rotate key…");
  rotateBtn.addEventListener("click", async () => {
    const yes = await confirmModal(
      "Rotate the encryption key?",
      "A new key encrypts every backup from now on. The current key stays in this computer's keychain, so older backups still open; keep its recovery copy too. First you save the new key's recovery copy: until it is saved, nothing changes.",
      "Save the new key's recovery copy…",
    );
    if (!yes) return;
    try {
      const k = await api.keyRotate();
      if (!k) return;
      shell.toast(`New key ${k.fingerprint} is current; its recovery copy is saved. Older backups still open with the earlier key.`);
      await shell.refreshStatus();
    } catch (e) {
      shell.error(e);
    }
  });

  // A key is imported from a file (its recovery copy, or the old system's settings file),
  // chosen in a native dialog: it is never typed into this window.
  const importBtn = h("button", { class: "secondary", "data-testid": "key-import-file" }, "Import a key from a file…");
  importBtn.addEventListener("click", async () => {
    try {
      const k = await api.keyImportFile();
      if (!k) return;
      shell.toast(`Key ${k.fingerprint} imported; it is used for new backups, and older keys stay available for older backups.`);
      await shell.refreshStatus();
    } catch (e) {
      shell.error(e);
    }
  });

  // Folder, schedule, retention, login. The backup folder changes only through the native folder
  // dialog (Choose…): the backend refuses any other folder, since the folder decides which files
  // the window may name.
  const dir = h("input", { type: "text", value: s.backup_dir, readonly: true, "aria-label": "Backup folder", "data-testid": "backup-dir" });
  const chooseDir = h("button", { type: "button", class: "small", "data-testid": "backup-dir-pick" }, "Choose…");
  chooseDir.addEventListener("click", async () => {
    try {
      const picked = await api.pickBackupDir();
      if (picked) dir.value = picked;
    } catch (e) {
      shell.error(e);
    }
  });
  // The list of backups is an index of the folder's files: rebuilt from them when it is lost or
  // damaged (the engine's `rescan`), or when backup files were copied into the folder by hand.
  const rebuild = h("button", { type: "button", class: "small secondary", "data-testid": "rebuild-list" }, "Rebuild the list from the folder…");
  const rebuildSlot = h("div");
  const rebuildResult = h("div", { class: "test-result", role: "status", "data-testid": "rebuild-result" });
  rebuild.addEventListener("click", async () => {
    const yes = await confirmModal(
      "Rebuild the list of backups?",
      `SchoolVault reads every backup file in ${s.backup_dir} completely (so it also checks each one; with many large backups this takes a while) and lists the ones it finds whole. The files are not changed. A list that is damaged is kept aside, not deleted.`,
      "Rebuild the list",
    );
    if (!yes) return;
    rebuild.disabled = true;
    const view = progressView("Reading the backup files");
    put(rebuildSlot, view.el);
    put(rebuildResult);
    try {
      const r = await api.rebuildList(view.update);
      rebuildResult.className = r.problems.length === 0 ? "test-result ok" : "test-result bad";
      put(rebuildResult, rebuiltLine(r), r.problems.length > 0 ? h("ul", {}, r.problems.map((p) => h("li", {}, p))) : null);
      shell.toast(rebuiltLine(r));
    } catch (e) {
      rebuildResult.className = "test-result bad";
      put(rebuildResult, shell.explain(e));
    } finally {
      put(rebuildSlot);
      rebuild.disabled = false;
    }
  });
  const dirField = h(
    "div",
    { class: "field" },
    h("span", {}, "Backup folder"),
    h("div", { class: "picked-path" }, dir, chooseDir),
    h("small", { class: "muted" }, "Choose the folder, then save the settings."),
    h("div", { class: "actions left" }, rebuild),
    rebuildSlot,
    rebuildResult,
  );
  const enabled = h("input", { type: "checkbox", checked: s.schedule_enabled, "data-testid": "schedule-enabled" });
  const cron = h("input", { type: "text", value: s.cron, spellcheck: "false", "data-testid": "cron" });
  // Every day at a time on chosen weekdays, or (Advanced) any cron expression: both write `cron`.
  const daily0 = dailyOf(s.cron);
  const dailyMode = h("input", { type: "radio", name: "schedule-mode", checked: daily0 !== null, "data-testid": "schedule-daily" });
  const advancedMode = h("input", { type: "radio", name: "schedule-mode", checked: daily0 === null, "data-testid": "schedule-advanced" });
  const time = h("input", { type: "time", value: daily0?.time ?? "02:00", "data-testid": "schedule-time" });
  const dayBoxes = WEEKDAYS.map(([n]) => h("input", { type: "checkbox", checked: daily0 ? daily0.days.includes(n) : true, "data-day": String(n), "data-testid": `schedule-day-${n}` }));
  const fromDaily = () => {
    dailyMode.checked = true;
    const expr = cronOf({ time: time.value, days: WEEKDAYS.filter((_, i) => dayBoxes[i].checked).map(([n]) => n) });
    if (expr === null) {
      next.className = "next-runs bad";
      put(next, h("li", {}, "Choose a time and at least one day."));
      return;
    }
    cron.value = expr;
    void preview();
  };
  time.addEventListener("input", fromDaily);
  dailyMode.addEventListener("change", fromDaily);
  for (const b of dayBoxes) b.addEventListener("change", fromDaily);
  const tz = h("input", { type: "text", value: s.timezone, placeholder: "this computer's time zone", "data-testid": "timezone" });
  const catchUp = h("input", { type: "checkbox", checked: s.catch_up });
  const testRestore = h("input", { type: "checkbox", checked: s.test_restore, "data-testid": "weekly-test-restore" });
  const watchdog = h("input", { type: "number", min: 1, max: 1440, value: s.watchdog_minutes, "data-testid": "watchdog" });
  const next = h("ul", { class: "next-runs", "data-testid": "next-runs" });
  const keepDays = h("input", { type: "number", min: 1, value: s.keep_days });
  const keepLast = h("input", { type: "number", min: 0, value: s.keep_last ?? "", placeholder: "—" });
  const keepWeekly = h("input", { type: "number", min: 0, value: s.keep_weekly ?? "", placeholder: "—" });
  const keepMonthly = h("input", { type: "number", min: 0, value: s.keep_monthly ?? "", placeholder: "—" });
  const login = h("input", { type: "checkbox", checked: s.start_at_login });
  const emailOn = h("input", { type: "checkbox", checked: s.email_enabled, "data-testid": "email-enabled" });
  const smtpHost = h("input", { type: "text", value: s.smtp_host, placeholder: "smtp.school.example", "data-testid": "smtp-host" });
  const smtpPort = h("input", { type: "number", min: 1, max: 65535, value: s.smtp_port, "data-testid": "smtp-port" });
  const smtpSecurity = h(
    "select",
    { "data-testid": "smtp-security" },
    (Object.entries(SECURITY_LABELS) as [Security, string][]).map(([v, label]) => h("option", { value: v, selected: s.smtp_security === v }, label)),
  );
  const smtpUser = h("input", { type: "text", value: s.smtp_user, autocomplete: "off" });
  const smtpPassword = h("input", { type: "password", autocomplete: "off", placeholder: s.smtp_password_saved ? "saved in the keychain (type to change)" : "", "data-testid": "smtp-password" });
  // The saved SMTP password goes only to its own server, and never unencrypted: a new server or
  // a switch to "None" forgets it when the settings are saved.
  const smtpForgets = () =>
    s.smtp_password_saved && (smtpHost.value.trim().toLowerCase() !== s.smtp_host.trim().toLowerCase() || (smtpSecurity.value === "plain" && s.smtp_security !== "plain"));
  const showSmtpPassword = () => {
    smtpPassword.placeholder = !s.smtp_password_saved ? "" : smtpForgets() ? "the saved password will be forgotten: type it again if needed" : "saved in the keychain (type to change)";
  };
  smtpHost.addEventListener("input", showSmtpPassword);
  smtpSecurity.addEventListener("change", showSmtpPassword);
  const emailFrom = h("input", { type: "text", value: s.email_from, placeholder: "schoolvault@school.example", "data-testid": "email-from" });
  const emailTo = h("input", { type: "text", value: s.email_to.join(", "), placeholder: "head@school.example, it@school.example", "data-testid": "email-to" });
  const schoolAdmins = h("input", { type: "checkbox", checked: s.school_admins });
  const staleHours = h("input", { type: "number", min: 1, value: s.stale_hours });
  const digest = h("input", { type: "checkbox", checked: s.weekly_digest, "data-testid": "weekly-digest" });
  const testEmail = h("button", { class: "secondary", "data-testid": "send-test-email" }, "Send test email");
  testEmail.addEventListener("click", async () => {
    try {
      const n = await api.sendTestEmail();
      shell.toast(`Test email sent to ${n} address${n === 1 ? "" : "es"}.`);
    } catch (e) {
      shell.error(e);
    }
  });

  const preview = async () => {
    try {
      const runs = await api.schedulePreview(cron.value, tz.value || null);
      next.className = "next-runs";
      put(next, ...runs.map((r) => h("li", {}, fmt.when(r))));
    } catch (e) {
      next.className = "next-runs bad";
      put(next, h("li", {}, shell.explain(e)));
    }
  };
  cron.addEventListener("input", () => {
    advancedMode.checked = true;
    void preview();
  });
  advancedMode.addEventListener("change", () => cron.focus());
  tz.addEventListener("input", () => void preview());
  void preview();

  const optional = (el: HTMLInputElement) => (el.value === "" || Number(el.value) === 0 ? null : Number(el.value));
  const save = h("button", { class: "primary", "data-testid": "save-settings" }, "Save settings");
  save.addEventListener("click", async () => {
    try {
      s = await api.saveSettings({
        backup_dir: dir.value,
        start_at_login: login.checked,
        schedule_enabled: enabled.checked,
        cron: cron.value,
        timezone: tz.value,
        catch_up: catchUp.checked,
        watchdog_minutes: Number(watchdog.value) || 0,
        test_restore: testRestore.checked,
        keep_days: Number(keepDays.value) || 0,
        keep_last: optional(keepLast),
        keep_weekly: optional(keepWeekly),
        keep_monthly: optional(keepMonthly),
        email_enabled: emailOn.checked,
        smtp_host: smtpHost.value,
        smtp_port: Number(smtpPort.value) || 587,
        smtp_security: securityOf(smtpSecurity.value),
        smtp_user: smtpUser.value,
        smtp_password_saved: s.smtp_password_saved,
        email_from: emailFrom.value,
        email_to: emailTo.value.split(/[,;\s]+/).filter((a) => a !== ""),
        school_admins: schoolAdmins.checked,
        stale_hours: Number(staleHours.value) || 48,
        weekly_digest: digest.checked,
      }, smtpPassword.value === "" ? null : smtpPassword.value);
      smtpPassword.value = "";
      showSmtpPassword();
      shell.toast("Settings saved.");
      await shell.refreshStatus();
    } catch (e) {
      shell.error(e);
    }
  });

  // Saved on its own (each destination is tested when saved), not with "Save settings".
  const offsite = await offsiteSection(shell);

  const field = (label: string, input: HTMLElement, hint?: string) =>
    h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  const check = (input: HTMLElement, label: string) => h("label", { class: "check" }, input, ` ${label}`);

  return h(
    "div",
    { class: "view settings" },
    h("header", { class: "view-head" }, h("h1", {}, "Settings"), h("span", { class: "muted small" }, `Stored in ${status.config_path}`)),
    h("section", { class: "card" }, h("h2", {}, "School database"), conn.el, h("div", { class: "actions" }, testBtn, saveConn)),
    h("section", { class: "card" }, h("h2", {}, "Encryption key"), keyLine, h("div", { class: "actions left" }, recovery, showKey, rotateBtn, importBtn), status.key_since ? h("p", { class: "muted small", "data-testid": "key-since" }, `In use here since ${fmt.when(status.key_since)}. The old system advised a new key every year (Rotate key…).`) : null, h("p", { class: "muted small" }, "Import: the key's recovery copy (a .txt saved or written down from the sheet), or the old system's settings file (.env) holding BACKUP_ENCRYPTION_KEY.")),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Schedule"),
      check(enabled, "Back up automatically while SchoolVault runs"),
      h(
        "div",
        { class: "schedule-when" },
        h("label", { class: "check" }, dailyMode, " Every day at ", time),
        h(
          "div",
          { class: "weekdays", role: "group", "aria-label": "On these days" },
          WEEKDAYS.map(([, label], i) => h("label", { class: "check day" }, dayBoxes[i], ` ${label}`)),
          h("small", { class: "muted" }, "Untick Sat and Sun for school days only"),
        ),
        h("label", { class: "check" }, advancedMode, " Advanced: a cron expression"),
      ),
      h("div", { class: "form-grid" }, field("Cron (minute hour day month weekday)", cron, "0 2 * * * = every day at 02:00; typing here chooses Advanced"), field("Time zone", tz)),
      h("div", {}, h("small", { class: "muted" }, "Next runs:"), next),
      check(catchUp, "Run a missed backup as soon as the computer is back on"),
      check(testRestore, "Test-restore the newest backup every week (into a scratch database, then dropped)"),
      h("div", { class: "form-grid" }, field("Stop a backup that makes no progress for (minutes)", watchdog, "It is then counted as failed, and the administrators are emailed")),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Keeping backups"),
      h("div", { class: "form-grid four" }, field("Keep every backup for (days)", keepDays), field("Also keep the newest", keepLast), field("Weekly backups kept", keepWeekly), field("Monthly backups kept", keepMonthly)),
      h("small", { class: "muted" }, "The newest verified backup and safety backups younger than 7 days are never deleted."),
    ),
    offsite,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Email"),
      check(emailOn, "Email the administrators when a backup fails, or when none succeeded for a while"),
      h(
        "div",
        { class: "form-grid" },
        field("SMTP server", smtpHost),
        field("Port", smtpPort),
        field("Security", smtpSecurity, "None sends everything readable: only for a relay on this computer"),
        field("Login (if needed)", smtpUser),
        field("Password", smtpPassword, "Kept in the keychain"),
        field("From", emailFrom),
        field("To (administrators)", emailTo, "Separate addresses with commas"),
        field("Alert when no backup succeeded for (hours)", staleHours),
      ),
      check(schoolAdmins, "Also email the school's active administrators (read from the school database)"),
      check(digest, "Also send a weekly report every Monday morning (backups made, failed and kept)"),
      h("div", { class: "actions left" }, testEmail, h("small", { class: "muted" }, "Save first: the test uses the saved settings.")),
    ),
    h("section", { class: "card" }, h("h2", {}, "This computer"), dirField, check(login, "Start SchoolVault in the tray when I log in")),
    h("div", { class: "actions sticky" }, save),
  );
}
