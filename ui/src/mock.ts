// A fake backend for the browser tests and screenshots (`vite build --mode mock`): the real UI
// over mockIPC with a small in-memory school. `?setup` starts on the first-run screens,
// `?failure` with a failed scheduled backup, `?empty` with no backups. The picked file is an
// old-system file that only the public development key opens (the restore's second warning).
// Two offsite destinations: NAS (a folder, every copy done) and Cloud (an S3 bucket that cannot
// be reached: the newest backup's copy waits); a destination saved with the secret "wrong" is
// refused, as the backend refuses a key that fails the test write.

import { mockIPC } from "@tauri-apps/api/mocks";
import { dailyOf } from "./schedule";
import type { BackupKind } from "./bindings/BackupKind";
import type { Phase } from "./bindings/Phase";
import type { Failure } from "./bindings/Failure";
import type { AppStatus, BackupRow, CopyRow, DbForm, DestinationRow, Progress, RestorePreview, RunRow, Settings, SyncRow } from "./api";

type Args = Record<string, unknown>;

export function installMock(): void {
  const q = new URLSearchParams(location.search);
  const now = Date.now();
  const day = 86_400_000;
  let configured = !q.has("setup");
  let key: { fingerprint: string; origin: string } | null = configured ? { fingerprint: "4220efac447a6419", origin: "keychain" } : null;
  const cloudDown = "The destination Cloud (s3.eu-central-1.wasabisys.com) cannot be reached (connection timed out). The copy waits and is sent at the next try; check the network, or Sync now once it is back.";
  const unreachable = new Set(["Cloud"]);
  const copiesOf = (i: number): CopyRow[] => [
    { destination: "NAS", state: "done", error: null, since: null },
    i === 0 ? { destination: "Cloud", state: "pending", error: cloudDown, since: new Date(now - 3_600_000 * 2).toISOString() } : { destination: "Cloud", state: "done", error: null, since: null },
  ];
  // `verified`: the last check (the newest backup's weekly test restore, an older one's Verify).
  const backup = (i: number, kind: BackupKind, verified: boolean | null, message = "175 tables, 1,254,000 rows checked"): BackupRow => ({
    id: `2026112${6 - i}T020000Z-${(1000 + i).toString(16)}`,
    created_at: new Date(now - i * day - 3_600_000 * 14).toISOString(),
    kind,
    status: "complete",
    size: 17_080_000 + i * 91_000,
    duration_ms: 1440 + i * 37,
    tables: 175,
    rows: 1_254_000 + i * 800,
    local: true,
    copies: copiesOf(i),
    path: `/home/it/.local/share/schoolvault/backups/backup-${i}.svb`,
    database: "school_erp",
    verified,
    verify_message: verified ? message : null,
    verified_at: verified ? new Date(now - i * day - 3_600_000 * 14 + 60_000).toISOString() : null,
    // The oldest one was made before the key was last rotated.
    key: i === 3 ? "3f9a0c1d2e4b5a69" : "4220efac447a6419",
    older_key: false,
  });
  let backups: BackupRow[] = q.has("empty") ? [] : [backup(0, "scheduled", true, "test restore: 175 tables, 1,254,000 rows restored and compared"), backup(1, "manual", null), backup(2, "safety", null), backup(3, "scheduled", true)];
  const runs: RunRow[] = backups.map((b) => ({ started_at: b.created_at, finished_at: b.created_at, operation: "backup", kind: b.kind, outcome: "success", error_code: null, message: null, backup_id: b.id }));
  let failure: Failure | null = q.has("failure")
    ? { at: new Date(now - 3_600_000 * 6).toISOString(), operation: "scheduled backup", code: "db_auth", message: "The database server 127.0.0.1:5432 rejected the password for user backup. Type the right password in Settings → School database, then Test connection and Save.", email_error: "The email could not be sent through smtp.school.example:587 (connection refused). Check the mail server, port, security and login in the email settings, then send a test email." as string | null }
    : null;
  if (failure) runs.unshift({ started_at: failure.at, finished_at: failure.at, operation: "backup", kind: "scheduled", outcome: "failure", error_code: failure.code === "password_needed" || failure.code === "not_configured" ? null : failure.code, message: failure.message, backup_id: null });
  const defaultDir = "/home/it/.local/share/schoolvault/backups";
  const pickedDirs = new Set<string>();
  let settings: Settings = { backup_dir: defaultDir, start_at_login: true, schedule_enabled: true, cron: "0 2 * * *", timezone: "", catch_up: true, watchdog_minutes: 10, test_restore: true, keep_days: 30, keep_last: null, keep_weekly: null, keep_monthly: null, email_enabled: true, smtp_host: "smtp.school.example", smtp_port: 587, smtp_security: "starttls", smtp_user: "backup", smtp_password_saved: true, email_from: "schoolvault@school.example", email_to: ["head@school.example", "it@school.example"], school_admins: true, stale_hours: 48, weekly_digest: false };
  let db: DbForm = { engine: "postgres", host: "erp.school.lan", port: 5432, name: "school_erp", user: "backup", tls: "prefer", ca_file: null, password_saved: true };
  const sameServer = (f: DbForm) => f.host === db.host && f.port === db.port && f.user === db.user;
  const devKeyFile = (what: string) => what.endsWith(".enc");
  const status = (): AppStatus => ({
    configured: configured && key !== null,
    database: configured ? db : null,
    target: configured ? "backup@erp.school.lan:5432/school_erp" : null,
    key,
    key_error: null,
    backup_dir: settings.backup_dir,
    config_path: "/home/it/.config/schoolvault/config.toml",
    running: null,
    next_run: (() => {
      const t = new Date(now);
      t.setHours(2, 0, 0, 0);
      if (t.getTime() <= now) t.setDate(t.getDate() + 1);
      return t.toISOString();
    })(),
    failure,
    offsite_behind: q.has("behind") ? ["no copy to Cloud since Tue 01 Dec 02:14 (3 waiting): Destination Cloud cannot be reached (connection refused)"] : [],
    version: "0.1.0",
    format_writes: 3,
    formats_read: [1, 2, 3],
    // `?owed`: the app was closed after "Generate a new key" before the recovery copy was saved.
    key_recovery_pending: q.has("owed") && !recoverySaved,
    // `?oldkey`: the key is over a year old (until rotated or the reminder dismissed).
    key_rotation_due: q.has("oldkey") && !rotationDismissed && key?.fingerprint === "4220efac447a6419",
    key_since: key ? (key.fingerprint === "4220efac447a6419" ? new Date(now - (q.has("oldkey") ? 400 : 90) * day).toISOString() : new Date(now).toISOString()) : null,
  });
  // `?slow`: jobs take seconds (a restore to watch); the list of backups takes a second to load
  // (a quick switch to another screen must not be overtaken by it).
  const stepMs = q.has("slow") ? 400 : 30;
  const progress = async (ch: unknown, phases: Phase[]) => {
    const send = (ch as { onmessage?: (p: Progress) => void } | null)?.onmessage;
    for (let i = 0; i <= 10; i++) {
      // A download reports bytes of the file and where it comes from; the rest, tables and rows.
      if (phases[0] === "download") send?.({ phase: "download", table: "NAS", tables_done: 0, tables_total: 0, rows: 0, bytes: i * 1_708_000, total_bytes: 17_080_000 });
      else send?.({ phase: phases[Math.min(phases.length - 1, Math.floor(i / 4))], table: `public.table_${i}`, tables_done: i * 17, tables_total: 175, rows: i * 125_000, bytes: i * 55_000_000, total_bytes: 550_000_000 });
      await new Promise((r) => setTimeout(r, stepMs));
    }
  };
  let endedSessions = false;
  let rotationDismissed = false;
  let recoverySaved = false;
  const preview = (what: string): RestorePreview => ({
    what,
    backup_id: what,
    file_name: what.split("/").pop() ?? what,
    format: what.endsWith(".enc") ? 1 : 2,
    created_at: backups.find((b) => b.id === what)?.created_at ?? new Date(now - day).toISOString(),
    source_database: "school_erp",
    target: "backup@erp.school.lan:5432/school_erp",
    target_database: "school_erp",
    tables: [
      { name: "public.Student", backup_rows: 1200, live_rows: 1214 },
      { name: "public.Attendance", backup_rows: 312_000, live_rows: 313_420 },
      { name: "public.FeePayment", backup_rows: 14_400, live_rows: 14_400 },
      { name: "public.Teacher", backup_rows: 90, live_rows: 91 },
      { name: "public.User", backup_rows: 1_400, live_rows: 1_415 },
    ],
    backup_rows: 329_090,
    live_rows: 330_540,
    warnings: devKeyFile(what) ? ["This old-system backup opened only with the old system's built-in development key, which is public: the file was effectively unencrypted and is NOT authenticated (anyone could have written or changed it). Restore it only if you know where it came from."] : [],
    dev_key: devKeyFile(what),
    missing_roles: [],
    // `?sessions`: the ERP is in use (a pool connection idle in a transaction).
    sessions: q.has("sessions") && !endedSessions ? ["pid 4242 erp-web (user erp from 10.0.0.7, idle in transaction since 2026-12-03 09:12:03 UTC)", "pid 4250 erp-web (user erp from 10.0.0.7, idle since 2026-12-03 08:00:41 UTC)"] : [],
    lock_timeout_secs: 60,
    end_sessions_needs: "a superuser login, or one in pg_signal_backend",
  });
  // A check passed: recorded on the backup, as the engine does.
  const checked = (id: string, message: string) => {
    backups = backups.map((b) => (b.id === id ? { ...b, verified: true, verify_message: message, verified_at: new Date().toISOString() } : b));
  };
  // The destinations; their counters are counted from the backups' copies, as the backend does.
  const destination = (name: string, kind: string, url: string, access_key_id: string | null): DestinationRow => ({ name, kind, url, enabled: true, access_key_id, secret_saved: access_key_id !== null, keep_days: null, keep_last: null, keep_weekly: null, keep_monthly: null, bandwidth_kbps: null, lock_days: null, copies_done: 0, copies_pending: 0, copies_failed: 0, waiting_since: null, last_error: null });
  let destinations: DestinationRow[] = [
    destination("NAS", "folder", "file:///media/nas/schoolvault", null),
    destination("Cloud", "s3", "s3://school-backups/erp?endpoint=https://s3.eu-central-1.wasabisys.com&region=eu-central-1&path_style=false", "WASABI7EXAMPLE"),
  ];
  const counted = (d: DestinationRow): DestinationRow => {
    const here = backups.flatMap((b) => b.copies.filter((c) => c.destination === d.name));
    const waiting = here.filter((c) => c.state !== "done").sort((x, y) => String(x.since).localeCompare(String(y.since)))[0];
    return { ...d, copies_done: here.filter((c) => c.state === "done").length, copies_pending: here.filter((c) => c.state === "pending").length, copies_failed: here.filter((c) => c.state === "failed").length, waiting_since: waiting?.since ?? null, last_error: waiting?.error ?? null };
  };
  const setCopies = (name: string, f: (c: CopyRow | undefined) => CopyRow | null) => {
    backups = backups.map((b) => {
      const rest = b.copies.filter((c) => c.destination !== name);
      const next = f(b.copies.find((c) => c.destination === name));
      return { ...b, copies: next ? [...rest, next] : rest };
    });
  };
  const handlers: Record<string, (a: Args) => unknown> = {
    status: () => status(),
    test_connection: (a) => {
      const form = a.form as DbForm;
      if (form.password_saved && !a.password && !(configured && db.password_saved && sameServer(form)))
        throw { code: "password_needed", message: `The saved password is sent only to the connection it was saved for, and ${form.user}@${form.host}:${form.port} (TLS ${form.tls}) is another server, port or user, or a less checked connection; nothing was sent. Type the password for ${form.user}@${form.host}:${form.port} in the Password field, then try again.` };
      if (a.password === "wrong") throw { code: "db_auth", message: "The database server rejected the password for user backup. Type the right password in Settings → School database, then Test connection and Save.", email_error: "The email could not be sent through smtp.school.example:587 (connection refused). Check the mail server, port, security and login in the email settings, then send a test email." as string | null };
      return { target: `backup@${form.host}:5432/${form.name}`, server_version: "PostgreSQL 15.4", tables: 175, size: 692_000_000 };
    },
    save_connection: (a) => {
      const form = a.form as DbForm;
      const saved = a.password ? true : form.password_saved && configured && db.password_saved && sameServer(form);
      db = { ...form, password_saved: saved };
      configured = true;
      return status();
    },
    demo_offer: () => ({ available: true, database: { ...db, host: "127.0.0.1", name: "schoolvault_demo", user: "postgres" }, reason: null }),
    create_demo: () => {
      configured = true;
      return status();
    },
    key_generate: () => (key = { fingerprint: "9f3b2c1d0e8a7b6c", origin: "keychain" }),
    key_import: (a) => {
      if (!/^[0-9a-fA-F]{64}$/.test(String(a.hex).trim())) throw { code: "invalid_input", message: "The key must be 64 hexadecimal characters. Copy it again from the recovery sheet." };
      if (String(a.hex).trim().toLowerCase() === "0123456789abcdef".repeat(4))
        throw { code: "invalid_input", message: "This key is the old system's public development key (0123…cdef, printed in its guide): backups made with it could be read and forged by anyone. Generate a new key with `schoolvault key generate` (or Settings → Encryption key); old-system files made with the development key are still read without importing it." };
      return (key = { fingerprint: "0123456789abcdef", origin: "keychain" });
    },
    // The file "chosen" holds the old system's public development key (`?keyfile`: a good one).
    key_import_file: () => {
      if (!q.has("keyfile"))
        throw { code: "invalid_input", message: "/home/it/old-erp/.env: This key is the old system's public development key (0123…cdef, printed in its guide): backups made with it could be read and forged by anyone. Generate a new key with `schoolvault key generate` (or Settings → Encryption key); old-system files made with the development key are still read without importing it." };
      return (key = { fingerprint: "0123456789abcdef", origin: "keychain" });
    },
    key_rotate: () => (key = { fingerprint: "7c6d5e4f3a2b1c0d", origin: "keychain" }),
    key_rotation_dismiss: () => {
      rotationDismissed = true;
      return null;
    },
    key_save_recovery: () => {
      recoverySaved = true;
      return "/home/it/Documents/schoolvault-key-9f3b2c1d0e8a7b6c.txt";
    },
    key_show_once: () => null,
    list_backups: async () => {
      if (q.has("slow")) await new Promise((r) => setTimeout(r, 1000));
      return backups.map((b) => ({ ...b, older_key: b.key !== "" && b.key !== key?.fingerprint }));
    },
    backup_now: async (a) => {
      await progress(a.onProgress, ["connect", "snapshot", "export", "finish"]);
      const at = new Date().toISOString();
      const b = { ...backup(0, "manual", null), id: `manual-${Date.now()}`, created_at: at, key: key?.fingerprint ?? "", copies: destinations.filter((d) => d.enabled).map((d): CopyRow => (unreachable.has(d.name) ? { destination: d.name, state: "pending", error: cloudDown, since: at } : { destination: d.name, state: "done", error: null, since: null })) };
      backups = [b, ...backups];
      return b;
    },
    cancel_job: () => true,
    restore_preview: async (a) => {
      // A backup listed from a destination comes down first.
      if (backups.some((b) => b.id === a.what && !b.local)) {
        await progress(a.onProgress, ["download"]);
        backups = backups.map((b) => (b.id === a.what ? { ...b, local: true } : b));
      } else if (q.has("slow")) {
        // `?slow`: a large backup, read through before the warning shows.
        await progress(a.onProgress, ["verify"]);
      }
      return preview(String(a.what));
    },
    find_backups: (a) => {
      const name = String(a.name);
      if (!destinations.some((d) => d.name === name)) throw { code: "not_found", message: `There is no destination ${name}.` };
      if (unreachable.has(name)) throw { code: "destination_unreachable", message: cloudDown };
      // What a new computer finds there: the backups, known by their headers only.
      const found = [0, 1, 2, 3]
        .map((i): BackupRow => ({ ...backup(i, i === 2 ? "safety" : "scheduled", null), tables: 0, rows: 0, duration_ms: 0, local: false, copies: [{ destination: name, state: "done", error: null, since: null }] }))
        .filter((b) => !backups.some((o) => o.id === b.id));
      backups = [...backups, ...found].sort((x, y) => y.created_at.localeCompare(x.created_at));
      return { destination: name, listed: found.length, unfinished: 0, problems: [] };
    },
    restore: async (a) => {
      if (a.confirmName !== "school_erp") throw { code: "invalid_input", message: "Type the database's name (school_erp) to confirm the restore." };
      if (devKeyFile(String(a.what)) && a.trustDevKey !== true)
        throw { code: "untrusted_file", message: "This old-system file opened only with the old system's public development key, so anyone could have written it (for example adding an administrator account); nothing was changed. Restore it only if you know where it came from: confirm the second warning in the app, or pass --trust-dev-key to `schoolvault restore`." };
      if (q.has("sessions") && !endedSessions && a.endSessions !== true) {
        // Not ended: the restore waits for the pool's open transaction, then gives up.
        (a.onProgress as { onmessage?: (p: Progress) => void } | null)?.onmessage?.({ phase: "wait_lock", table: "pid 4242 erp-web (user erp from 10.0.0.7, idle in transaction since 2026-12-03 09:12:03 UTC)", tables_done: 0, tables_total: 0, rows: 0, bytes: 0, total_bytes: null });
        await new Promise((r) => setTimeout(r, 300));
        throw { code: "in_use", message: "Other sessions on backup@erp.school.lan:5432/school_erp kept the tables to restore locked for more than 60 s, so the restore stopped and nothing was changed; holding them: pid 4242 erp-web (user erp from 10.0.0.7, idle in transaction since 2026-12-03 09:12:03 UTC). Ask the users to close the ERP, or end those sessions and restore again." };
      }
      if (a.endSessions === true) endedSessions = true;
      await progress(a.onProgress, ["safety_backup", "restore", "commit"]);
      return { backup_id: a.what, target: "backup@erp.school.lan:5432/school_erp", tables: 175, rows: 1_254_000, duration_ms: 9_920, safety_backup_id: "safety-1", warnings: a.endSessions === true ? ["The 2 other sessions on school_erp were ended before the tables were emptied."] : [] };
    },
    pick_restore_file: () => "/media/usb/backups/backup-2025-12-01T02-00-00-000Z.enc",
    pick_ca_file: () => "/home/it/Documents/school-ca.pem",
    pick_backup_dir: () => {
      pickedDirs.add("/media/nas/schoolvault");
      return "/media/nas/schoolvault";
    },
    delete_backup: (a) => {
      backups = backups.filter((b) => b.id !== a.id);
      return null;
    },
    rebuild_list: async (a) => {
      await progress(a.onProgress, ["verify"]);
      return { listed: backups.filter((b) => b.local).length, problems: ["notes.svb: not a SchoolVault backup (it does not start with SchoolVault's header)"], set_aside: null };
    },
    verify_backup: (a) => {
      checked(String(a.id), "175 tables, 1,254,000 rows checked");
      return { backup_id: a.id, tables: 175, rows: 1_254_000, message: "175 tables and 1,254,000 rows read back and checked" };
    },
    test_restore_backup: async (a) => {
      await progress(a.onProgress, ["restore", "verify"]);
      checked(String(a.id), "test restore: 175 tables, 1,254,000 rows restored and compared");
      return { backup_id: a.id, tables: 175, rows: 1_254_000, message: "Restored into a scratch database: 175 tables and 1,254,000 rows identical" };
    },
    history: () => runs,
    get_settings: () => settings,
    save_settings: (a) => {
      const next = a.settings as Settings;
      // As the backend: the current, the default or a folder chosen with Choose….
      if (next.backup_dir !== settings.backup_dir && next.backup_dir !== defaultDir && !pickedDirs.has(next.backup_dir))
        throw { code: "invalid_input", message: `The backup folder is changed only with the Choose… button (SchoolVault's folder dialog), and ${next.backup_dir} was not chosen there; the backup folder stays ${settings.backup_dir}. Click Choose… next to the backup folder, pick the folder, then save the settings.` };
      return (settings = next);
    },
    schedule_preview: (a) => {
      if (String(a.cron).trim().split(/\s+/).length !== 5) throw { code: "invalid_input", message: `The schedule "${a.cron}" is not a valid cron expression. Write five fields: minute hour day month weekday.` };
      // At the expression's minute and hour on its weekdays when it has that shape, else daily
      // (enough for a mock).
      const [m, hr] = String(a.cron).trim().split(/\s+/).map(Number);
      const days = dailyOf(String(a.cron))?.days ?? [0, 1, 2, 3, 4, 5, 6];
      const first = new Date(now);
      first.setHours(Number.isNaN(hr) ? 2 : hr, Number.isNaN(m) ? 0 : m, 0, 0);
      if (first.getTime() <= now) first.setDate(first.getDate() + 1);
      const runs: string[] = [];
      for (let i = 0; runs.length < 5 && i < 60; i++) {
        const at = new Date(first.getTime() + i * day);
        if (days.includes(at.getDay())) runs.push(at.toISOString());
      }
      return runs;
    },
    send_test_email: () => settings.email_to.length,
    list_destinations: () => destinations.map(counted),
    save_destination: (a) => {
      const d = a.destination as DestinationRow;
      const secret = typeof a.secret === "string" && a.secret !== "" ? a.secret : null;
      if (!/^[A-Za-z0-9_-]{1,40}$/.test(d.name)) throw { code: "invalid_input", message: `${JSON.stringify(d.name)} cannot name a destination. Use up to 40 letters, digits, - or _ (e.g. NAS, cloud, usb-disk).` };
      if (!/^(file:\/\/\/|s3:\/\/[^/?]|webdav\+https?:\/\/[^/])/.test(d.url)) throw { code: "invalid_input", message: `The destination address ${d.url} is not valid. Write it as file:///media/usb/schoolvault, s3://BUCKET/PREFIX?endpoint=https://…&region=…, or webdav+https://HOST/PATH.` };
      if (secret === "wrong") throw { code: "destination_auth", message: `Destination ${d.name.toLowerCase()} refused the access key (a test write). Check the access key and secret, and that the key may write to the bucket.` };
      const existing = destinations.find((o) => o.name.toLowerCase() === d.name.toLowerCase());
      const saved: DestinationRow = { ...d, name: existing?.name ?? d.name, secret_saved: secret !== null || (existing?.secret_saved ?? false) };
      unreachable.delete(saved.name);
      destinations = existing ? destinations.map((o) => (o === existing ? saved : o)) : [...destinations, saved];
      // A new destination lacks every backup until the next sync.
      if (!existing) setCopies(saved.name, () => ({ destination: saved.name, state: "pending", error: null, since: new Date().toISOString() }));
      return counted(saved);
    },
    test_destination: (a) => {
      if (!destinations.some((d) => d.name === a.name)) throw { code: "not_found", message: `There is no destination ${a.name}.` };
      if (unreachable.has(String(a.name))) throw { code: "destination_unreachable", message: cloudDown };
      return null;
    },
    remove_destination: (a) => {
      destinations = destinations.filter((d) => d.name !== a.name);
      setCopies(String(a.name), () => null);
      return null;
    },
    sync_now: async (a) => {
      await progress(a.onProgress, ["upload"]);
      return destinations.filter((d) => d.enabled).map((d): SyncRow => {
        const owed = backups.filter((b) => b.copies.some((c) => c.destination === d.name && c.state !== "done")).length;
        if (unreachable.has(d.name)) return { destination: d.name, uploaded: 0, owed, findings: [], pruned: 0, error: cloudDown };
        setCopies(d.name, () => ({ destination: d.name, state: "done", error: null, since: null }));
        return { destination: d.name, uploaded: owed, owed: 0, findings: [], pruned: 0, error: null };
      });
    },
    acknowledge_failure: () => {
      failure = null;
      return null;
    },
  };
  mockIPC(
    async (cmd, args) => {
      const handler = handlers[cmd];
      if (!handler) throw { code: "internal", message: `The mock has no command ${cmd}` };
      return handler((args ?? {}) as Args);
    },
    { shouldMockEvents: true },
  );
  // `?failurelater`: a scheduled backup fails two seconds after the window opens, and the app
  // says so with its event (as the real one does when a job ends).
  if (q.has("failurelater")) {
    setTimeout(() => {
      failure = { at: new Date().toISOString(), operation: "scheduled backup", code: "db_unreachable", message: "Cannot reach the database server at backup@erp.school.lan:5432/school_erp (connection refused).", email_error: null };
      void import("@tauri-apps/api/event").then(({ emit }) => emit("status-changed"));
    }, 2000);
  }
  // `?backuplater`: a scheduled backup ends two seconds after the window opens; the app says so.
  if (q.has("backuplater")) {
    setTimeout(() => {
      const at = new Date().toISOString();
      backups = [{ ...backup(0, "scheduled", null), id: `scheduled-${Date.now()}`, created_at: at, key: key?.fingerprint ?? "" }, ...backups];
      void import("@tauri-apps/api/event").then(({ emit }) => emit("status-changed"));
    }, 2000);
  }
}
